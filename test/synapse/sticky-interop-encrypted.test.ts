/**
 * An encrypted room on real Synapse 1.163.2 (`msc4354_enabled`), matrix-js-sdk's Rust crypto on both sides
 * (`initRustCrypto({ useIndexedDB: false })` in Node; no cross-signing, unverified devices are shared
 * with, as js-sdk's default): our manager in the sticky format, over a synced client that has crypto,
 * sends its join as `m.room.encrypted` (Synapse holds no plain `org.matrix.msc4143.rtc.member` join of
 * ours), and the other user's MatrixRTCSession decrypts and lists the device. A client without crypto
 * sends nothing into the room and says why (`encryption-unavailable`).
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import log from "loglevel";
import { ClientEvent, createClient, type MatrixClient } from "matrix-js-sdk";
import { ClientBackend, MembershipManager, type MembershipError } from "../../src/index.js";
import { clientTimers, startClient, stopClient } from "../../src/node/index.js";
import { startSynapse, waitFor, type Credentials, type SynapseHomeserver } from "../../src/testing/index.js";
import {
  idOf,
  listedBy,
  rawSync,
  RTC_MEMBER,
  syncedEvents,
  untilEqual,
} from "../integration/interop/sticky-helpers.js";

const DELAY = 4000;

let synapse: SynapseHomeserver | undefined;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await synapse?.close();
  synapse = undefined;
});

/** A synced client with js-sdk's Rust crypto (in memory: no IndexedDB in Node). */
async function cryptoClient(hs: SynapseHomeserver, creds: Credentials): Promise<MatrixClient> {
  const client = createClient({
    baseUrl: hs.baseUrl,
    userId: creds.userId,
    accessToken: creds.accessToken,
    deviceId: creds.deviceId,
  });
  await client.initRustCrypto({ useIndexedDB: false });
  const ready = new Promise<void>((resolve) =>
    client.on(ClientEvent.Sync, (state) => {
      if (state === "PREPARED" || state === "SYNCING") resolve();
    }),
  );
  await startClient(client, { initialSyncLimit: 20 });
  await ready;
  clientTimers(client).run(() => client.matrixRTC.start());
  cleanups.push(() => stopClient(client));
  return client;
}

/** Does `client`'s crypto know `other`'s device (its keys, from /keys/query)? */
async function knowsDevice(client: MatrixClient, other: Credentials): Promise<boolean> {
  const devices = await client.getCrypto()!.getUserDeviceInfo([other.userId], true);
  return devices.get(other.userId)?.has(other.deviceId) ?? false;
}

/** A room with `m.room.encryption` (megolm), made by a separate owner; `users` joined. */
async function encryptedRoom(hs: SynapseHomeserver, users: Credentials[]): Promise<string> {
  const owner = await hs.createUser("owner");
  const roomId = await hs.createRoom(owner.accessToken, { name: "encrypted call" });
  const res = await fetch(
    `${hs.baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.encryption/`,
    {
      method: "PUT",
      headers: { Authorization: `Bearer ${owner.accessToken}`, "Content-Type": "application/json" },
      body: JSON.stringify({ algorithm: "m.megolm.v1.aes-sha2" }),
    },
  );
  expect(res.status).toBe(200);
  for (const u of users) await hs.joinRoom(u.accessToken, roomId);
  return roomId;
}

/** Alice and Bob, each with a crypto client, in an encrypted room, knowing each other's device keys. */
async function twoCryptoDevices(hs: SynapseHomeserver) {
  const alice = await hs.createUser("alice");
  const bob = await hs.createUser("bob");
  const roomId = await encryptedRoom(hs, [alice, bob]);
  const aliceClient = await cryptoClient(hs, alice);
  const bobClient = await cryptoClient(hs, bob);
  // Both devices know each other's keys before anything is encrypted (Olm sessions for the room key).
  await waitFor(() => knowsDevice(aliceClient, bob), 10_000, "alice's crypto to know bob's device");
  await waitFor(() => knowsDevice(bobClient, alice), 10_000, "bob's crypto to know alice's device");
  await waitFor(
    () => aliceClient.getRoom(roomId)?.hasEncryptionStateEvent() === true,
    5000,
    "alice to see the room encrypted",
  );
  return { alice, bob, roomId, aliceClient, bobClient };
}

describe("sticky memberships in an encrypted room on real Synapse 1.163.2, Rust crypto on both sides", () => {
  it("our join goes out as m.room.encrypted and js-sdk's MatrixRTCSession decrypts and lists our device", async () => {
    synapse = await startSynapse({ version: "1.163.2", stickyEvents: true });
    const { alice, bob, roomId, aliceClient, bobClient } = await twoCryptoDevices(synapse);

    const errors: MembershipError[] = [];
    const manager = new MembershipManager({
      backend: new ClientBackend(aliceClient),
      roomId,
      userId: alice.userId,
      deviceId: alice.deviceId,
      membershipFormat: "sticky",
      delayedLeaveDelayMs: DELAY,
      fociPreferred: [{ type: "livekit", livekit_service_url: "https://livekit.test" }],
    });
    cleanups.push(() => manager.dispose());
    const sub = manager.errors$.subscribe((e) => errors.push(e));
    cleanups.push(() => sub.unsubscribe());
    manager.join();

    await untilEqual(() => listedBy(bobClient, roomId), [idOf(alice)], 15_000, "bob's js-sdk to list alice");
    const [listed] = bobClient.matrixRTC.getRoomSession(bobClient.getRoom(roomId)!).memberships;
    expect(listed.memberId).toBe(manager.memberId);
    expect(listed.deviceId).toBe(alice.deviceId);

    // What Synapse holds: alice's join is an m.room.encrypted sticky event; no plain join of hers.
    const ofAlice = synapse.timeline(roomId).filter((e) => e.sender === alice.userId);
    const encrypted = ofAlice.filter((e) => e.type === "m.room.encrypted");
    expect(encrypted.length).toBeGreaterThanOrEqual(1);
    expect(encrypted[0].msc4354_sticky?.duration_ms).toBeGreaterThan(0);
    expect(encrypted[0].content.algorithm).toBe("m.megolm.v1.aes-sha2");
    const plainJoins = ofAlice.filter((e) => e.type === RTC_MEMBER && "member" in e.content);
    expect(plainJoins).toEqual([]);
    // What Synapse delivers to bob through a plain /sync: the same encrypted sticky event, nothing plain.
    const synced = await rawSync(synapse.baseUrl, bob.accessToken);
    const deliveredEncrypted = syncedEvents(synced, roomId, "m.room.encrypted").filter(
      (e) => e.sender === alice.userId,
    );
    expect(deliveredEncrypted.map((e) => e.event_id)).toContain(encrypted[0].event_id);
    expect(deliveredEncrypted[0].unsigned?.msc4354_sticky_duration_ttl_ms).toBeGreaterThan(0);
    expect(syncedEvents(synced, roomId, RTC_MEMBER).filter((e) => e.sender === alice.userId)).toEqual([]);
    expect(errors).toEqual([]);

    const result = await manager.leave({ timeoutMs: 5000 });
    expect(result.status).toBe("left");
    await untilEqual(() => listedBy(bobClient, roomId), [], 10_000, "bob's js-sdk to drop alice");
  });

  it("each refresh goes out encrypted too: js-sdk keeps listing us past the first event's stickiness", async () => {
    synapse = await startSynapse({ version: "1.163.2", stickyEvents: true });
    const { alice, roomId, aliceClient, bobClient } = await twoCryptoDevices(synapse);
    const STICKY_MS = 8000;
    const manager = new MembershipManager({
      backend: new ClientBackend(aliceClient),
      roomId,
      userId: alice.userId,
      deviceId: alice.deviceId,
      membershipFormat: "sticky",
      stickyDurationMs: STICKY_MS,
      delayedLeaveDelayMs: DELAY,
    });
    cleanups.push(() => manager.dispose());
    manager.join();
    await untilEqual(() => listedBy(bobClient, roomId), [idOf(alice)], 15_000, "bob's js-sdk to list alice");
    const joinedAt = Date.now();
    // Sampled until well past the first event's stickiness: never dropped.
    const dropped: number[] = [];
    while (Date.now() - joinedAt < STICKY_MS * 1.5) {
      if (!listedBy(bobClient, roomId).includes(idOf(alice))) dropped.push(Date.now() - joinedAt);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(dropped).toEqual([]);
    const ofAlice = synapse.timeline(roomId).filter((e) => e.sender === alice.userId);
    const encrypted = ofAlice.filter((e) => e.type === "m.room.encrypted");
    expect(encrypted.length).toBeGreaterThanOrEqual(2);
    for (const e of encrypted) expect(e.msc4354_sticky?.duration_ms).toBe(STICKY_MS);
    expect(ofAlice.filter((e) => e.type === RTC_MEMBER && "member" in e.content)).toEqual([]);
  });

  it("a client without crypto sends no membership into the encrypted room and says encryption-unavailable", async () => {
    synapse = await startSynapse({ version: "1.163.2", stickyEvents: true });
    const alice = await synapse.createUser("alice");
    const roomId = await encryptedRoom(synapse, [alice]);
    // A bare client: no crypto, no sync (the backend asks the server whether the room is encrypted).
    const bare = createClient({
      baseUrl: synapse.baseUrl,
      userId: alice.userId,
      accessToken: alice.accessToken,
      deviceId: alice.deviceId,
    });
    cleanups.push(() => stopClient(bare));
    const errors: MembershipError[] = [];
    const quiet = log.getLogger("sticky-interop-encrypted: expected failure");
    quiet.setLevel("silent");
    const manager = new MembershipManager({
      logger: quiet,
      backend: new ClientBackend(bare),
      roomId,
      userId: alice.userId,
      deviceId: alice.deviceId,
      membershipFormat: "sticky",
      delayedLeaveDelayMs: DELAY,
    });
    cleanups.push(() => manager.dispose());
    const sub = manager.errors$.subscribe((e) => errors.push(e));
    cleanups.push(() => sub.unsubscribe());
    manager.join();
    await waitFor(
      () => errors.some((e) => e.code === "encryption-unavailable"),
      10_000,
      "encryption-unavailable",
    );
    expect(manager.state.kind).toBe("failed");
    // Nothing of a membership of hers reached the room: no join, plain or encrypted. Her delayed leave
    // (sent before the join, in the clear as js-sdk 43 sends it: only the slot and the sticky key) is
    // gone from the server once the manager gave up, leaving at most that leave in the timeline.
    await waitFor(
      () => synapse!.pendingDelayedEvents().every((e) => e.userId !== alice.userId),
      DELAY + 2000,
      "alice's delayed leave to be gone",
    );
    const ofAlice = synapse.timeline(roomId).filter((e) => e.sender === alice.userId);
    expect(ofAlice.filter((e) => e.type === "m.room.encrypted")).toEqual([]);
    for (const e of ofAlice.filter((x) => x.type === RTC_MEMBER))
      expect(Object.keys(e.content).sort()).toEqual(["msc4354_sticky_key", "slot_id"]);
  });
});
