/**
 * Our observer on a real synced matrix-js-sdk client over HTTP, beside js-sdk 43's own MatrixRTCSession
 * in the same client (issue 24, issue 23 item 7):
 * - a sync carrying K call events is one evaluation and one list, equal to js-sdk's;
 * - a sync with only a chat message is no evaluation and no list;
 * - a forged `created_ts` does not move a member ahead (js-sdk is fooled), for a live reader, a client
 *   that syncs afterwards, and the server's state as plain events;
 * - a membership left behind when its sender left the room is not listed when they rejoin (js-sdk lists
 *   it), for the same three readers;
 * - after our manager says `connected` on a syncing client, `waitForCallMembers(..., includesDevice)`
 *   settles the race with the client's next sync, and a fresh `callMembers$` then lists our device
 *   (without `manager`; with it, the first list already does: own-first-list.test.ts).
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import "../../helpers/matrix.js"; // quiet matrix-js-sdk
import log from "loglevel";
import { ClientEvent, RoomEvent, type MatrixClient } from "matrix-js-sdk";
import { firstValueFrom } from "rxjs";
import {
  CALL_MEMBER_EVENT_TYPE,
  ClientBackend,
  MembershipManager,
  callMembers$,
  currentCallMembers,
  eventsStateSource,
  includesDevice,
  waitForCallMembers,
  whenConnected,
  type CallMember,
} from "../../../src/index.js";
import { storeCounters } from "../../../src/membership/store.js";
import {
  startFaultyLink,
  startTestHomeserver,
  type TestHomeserver,
  type UserCreds,
} from "../../../src/testing/index.js";
import { putState, stopClient, syncedClient, waitFor } from "../../helpers/matrix.js";
import { idOf, jsSdkView, NO_LIMITS, roomOf, sleep } from "./helpers.js";

const quiet = log.getLogger("observer-sync-quiet");
quiet.setLevel("silent");

let hs: TestHomeserver | undefined;
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) c();
  await hs?.close();
  hs = undefined;
});

function callContent(deviceId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    application: "m.call",
    call_id: "",
    scope: "m.room",
    device_id: deviceId,
    focus_active: { type: "livekit", focus_selection: "oldest_membership" },
    foci_preferred: [{ type: "livekit", livekit_service_url: "https://lk.example" }],
    ...extra,
  };
}

/** A user in the room who writes their own membership over plain HTTP (any content they like). */
async function writer(roomId: string, name: string) {
  const creds = await hs!.createUser(name);
  await hs!.joinRoom(creds.accessToken, roomId);
  return {
    ...creds,
    write: async (extra: Record<string, unknown> = {}) =>
      expect(
        await putState(
          hs!.baseUrl,
          creds.accessToken,
          roomId,
          CALL_MEMBER_EVENT_TYPE,
          `_${creds.userId}_${creds.deviceId}_m.call`,
          callContent(creds.deviceId, extra),
        ),
      ).toBe(200),
    leaveRoom: async () =>
      expect(
        (
          await fetch(`${hs!.baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/leave`, {
            method: "POST",
            headers: { Authorization: `Bearer ${creds.accessToken}`, "Content-Type": "application/json" },
            body: "{}",
          })
        ).status,
      ).toBe(200),
    rejoinRoom: () => hs!.joinRoom(creds.accessToken, roomId),
  };
}

/** A synced client with our observer on it; js-sdk's MatrixRTCSession runs in the same client. */
async function watcher(creds: UserCreds, roomId: string, baseUrl = hs!.baseUrl) {
  const client = await syncedClient(baseUrl, creds);
  cleanups.push(() => stopClient(client));
  await roomOf(client, roomId);
  const lists: CallMember[][] = [];
  const sub = callMembers$(client, { roomId }).subscribe((m) => lists.push(m));
  cleanups.push(() => sub.unsubscribe());
  return {
    client,
    lists,
    ids: () => (lists.at(-1) ?? []).map(idOf),
    jsSdk: () => jsSdkView(client, roomId).map(idOf),
  };
}

async function setUp(writers: string[]) {
  hs = await startTestHomeserver(NO_LIMITS);
  const owner = await hs.createUser("owner");
  const roomId = await hs.createRoom(owner.accessToken);
  const ws = [];
  for (const name of writers) ws.push(await writer(roomId, name));
  return { roomId, owner, writers: ws };
}

/** Wait for `client` to process one more sync (js-sdk emits `sync` at the end of each). */
function nextSync(client: MatrixClient): Promise<void> {
  return new Promise((resolve) => client.once(ClientEvent.Sync, () => resolve()));
}

describe("one evaluation per sync, on a real synced client", () => {
  it("a sync carrying K call events (a gappy one): one evaluation, one list, equal to js-sdk's", async () => {
    // More than the client's timeline limit (20): the sync is limited and js-sdk resets the timeline.
    const K = 30;
    const names = Array.from({ length: K }, (_, i) => `w${i}`);
    const { roomId, owner, writers } = await setUp(names);
    // The watcher reaches the server through a link we can cut: all K writes then arrive in one sync.
    const link = await startFaultyLink({ target: hs!.baseUrl });
    cleanups.push(() => void link.close());
    const w = await watcher(owner, roomId, link.url);
    expect(w.lists).toEqual([[]]);
    let resets = 0;
    w.client.on(RoomEvent.TimelineReset, () => resets++);
    link.cut();
    for (const x of writers) await x.write();
    await sleep(100);
    expect(w.lists).toHaveLength(1);
    const before = { ...storeCounters };
    link.restore();
    await waitFor(
      () => {
        w.client.retryImmediately();
        return w.ids().length === K;
      },
      10_000,
      "the catch-up sync",
    );
    expect(resets).toBeGreaterThan(0);
    expect(w.lists).toHaveLength(2);
    expect(storeCounters.evaluations - before.evaluations).toBe(1);
    expect(storeCounters.parses - before.parses).toBe(K);
    await waitFor(() => w.jsSdk().length === K, 3000, "js-sdk to list all K");
    expect(w.ids()).toEqual(w.jsSdk());
  });

  it("a sync with only a chat message: no evaluation, no list", async () => {
    const { roomId, owner, writers } = await setUp(["a", "b"]);
    const w = await watcher(owner, roomId);
    for (const x of writers) await x.write();
    await waitFor(() => w.ids().length === 2, 5000, "both listed");
    const emissions = w.lists.length;
    const before = { ...storeCounters };
    const synced = nextSync(w.client);
    const { event_id } = await w.client.sendTextMessage(roomId, "hello");
    await synced;
    await waitFor(
      () =>
        w.client
          .getRoom(roomId)!
          .getLiveTimeline()
          .getEvents()
          .some((e) => e.getId() === event_id),
      3000,
      "the message to arrive",
    );
    await sleep(50);
    expect(w.lists).toHaveLength(emissions);
    expect(storeCounters.evaluations - before.evaluations).toBe(0);
    expect(storeCounters.parses - before.parses).toBe(0);
  });
});

describe("judged on the server's facts (real server, js-sdk in the same client)", () => {
  it("a forged created_ts does not move a member ahead: live, fresh and plain-event readers agree", async () => {
    const { roomId, owner, writers } = await setUp(["alice", "bob"]);
    const [alice, bob] = writers;
    const w = await watcher(owner, roomId);
    await alice.write();
    await bob.write({ created_ts: Date.now() });
    await waitFor(() => w.ids().length === 2, 5000, "alice and bob listed");
    // Mallory joins the room now and the call at once, claiming to have been there since 1970.
    const mallory = await writer(roomId, "mallory");
    // A forger also claims a long life, or the claim would have expired long ago.
    const forever = Date.now() + 3600_000;
    await mallory.write({ created_ts: 1, expires: forever });
    const honest = [idOf(alice), idOf(bob), idOf(mallory)];
    await waitFor(() => w.ids().length === 3 && w.jsSdk().length === 3, 5000, "all three listed").catch(
      (e) => {
        throw new Error(`${String(e)}: ours ${JSON.stringify(w.ids())}, js-sdk ${JSON.stringify(w.jsSdk())}`);
      },
    );
    expect(w.ids()).toEqual(honest);
    expect(w.jsSdk()).toEqual([idOf(mallory), idOf(alice), idOf(bob)]);
    // Her refresh, still claiming 1970, changes nothing.
    await mallory.write({ created_ts: 1, expires: forever, "m.call.intent": "audio" });
    await waitFor(() => w.lists.at(-1)![2]?.callIntent === "audio", 5000, "mallory's refresh");
    expect(w.ids()).toEqual(honest);

    // A client that syncs now reads the same order from the server's notes: Mallory's stay in the room
    // began after Alice and Bob were in the call (unsigned of her m.room.member event).
    const late = await hs!.createUser("late");
    await hs!.joinRoom(late.accessToken, roomId);
    const fresh = await watcher(late, roomId);
    await waitFor(() => fresh.ids().length === 3, 5000, "the late client to list all three");
    expect(fresh.ids()).toEqual(honest);
    // And so does the server's state read as plain events.
    const fromServer = await firstValueFrom(callMembers$(eventsStateSource(hs!.roomState(roomId))));
    expect(fromServer.map(idOf)).toEqual(honest);
  });

  it("a membership left behind by a leave does not come back on a rejoin: live, fresh and plain events", async () => {
    const { roomId, owner, writers } = await setUp(["alice", "xavier"]);
    const [alice, xavier] = writers;
    const w = await watcher(owner, roomId);
    await alice.write();
    await xavier.write();
    await waitFor(() => w.ids().length === 2, 5000, "both listed");
    // Xavier leaves the room without leaving the call (his client crashed, or he was kicked), then
    // comes back for another reason: his old membership is still in the room's state.
    await xavier.leaveRoom();
    await waitFor(() => w.ids().length === 1, 5000, "xavier's leave to show");
    await xavier.rejoinRoom();
    await waitFor(() => w.jsSdk().length === 2, 5000, "js-sdk to list xavier again");
    await sleep(100);
    expect(w.ids()).toEqual([idOf(alice)]);

    const late = await hs!.createUser("late");
    await hs!.joinRoom(late.accessToken, roomId);
    const fresh = await watcher(late, roomId);
    await waitFor(() => fresh.jsSdk().length === 2, 5000, "the late client's js-sdk");
    expect(fresh.ids()).toEqual([idOf(alice)]);
    const fromServer = await firstValueFrom(callMembers$(eventsStateSource(hs!.roomState(roomId))));
    expect(fromServer.map(idOf)).toEqual([idOf(alice)]);

    // A new membership after the rejoin counts.
    await xavier.write({ "m.call.intent": "audio" });
    await waitFor(() => w.ids().length === 2, 5000, "xavier's new membership");
    expect(w.ids()).toEqual(w.jsSdk());
  });
});

describe("our own device after `connected` (issue 23 item 7)", () => {
  it("waitForCallMembers(includesDevice) settles the race with the sync; a fresh callMembers$ then lists us", async () => {
    hs = await startTestHomeserver(NO_LIMITS);
    const alice = await hs.createUser("alice");
    const roomId = await hs.createRoom(alice.accessToken);
    const client = await syncedClient(hs.baseUrl, alice);
    cleanups.push(() => stopClient(client));
    await roomOf(client, roomId);
    const manager = new MembershipManager({
      backend: new ClientBackend(client),
      roomId,
      userId: alice.userId,
      deviceId: alice.deviceId,
      delayedLeaveDelayMs: 2000,
      logger: quiet,
    });
    cleanups.push(() => manager.dispose());
    const own = includesDevice(alice.userId, alice.deviceId);
    manager.join();
    await whenConnected(manager, { timeoutMs: 5000 });
    // The server holds our membership now; this client shows it once its next sync has arrived, which
    // may be just before or just after this line. Either answer is allowed here, never a wrong one.
    const atConnected = currentCallMembers(client, { roomId });
    expect(atConnected === undefined || Array.isArray(atConnected)).toBe(true);
    const members = await waitForCallMembers(client, own, { roomId, timeoutMs: 5000 });
    expect(members.map(idOf)).toEqual([idOf(alice)]);
    const first = await firstValueFrom(callMembers$(client, { roomId }));
    expect(own(first)).toBe(true);
    expect(first.map(idOf)).toEqual(jsSdkView(client, roomId).map(idOf));
  });
});
