/**
 * One user, several clients in the same call:
 * - two devices, one with our package and one with matrix-js-sdk's MatrixRTCSession: different state
 *   keys, so neither touches the other's membership or delayed leave;
 * - two tabs of the same device with our package: the same state key. What happens is asserted here
 *   (and explained in docs/compatibility.md): on Synapse ≥ 1.127 the second tab's join overwrites the
 *   first's content, both keep their own delayed leave, and the first tab to leave wipes the device out
 *   of the call while the other tab still reports `connected`, unless that tab has the manager's
 *   `roomState` view, which puts the membership back within its grace period; on Synapse < 1.127 each tab's write
 *   cancels the other's delayed leave and the two re-join in turn on every heartbeat.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import "../../helpers/matrix.js"; // quiet matrix-js-sdk
import log from "loglevel";
import {
  CALL_MEMBER_EVENT_TYPE,
  ClientBackend,
  MembershipManager,
  type MembershipManagerOptions,
} from "../../../src/index.js";
import {
  bareClient,
  startTestCall,
  stopClient,
  SYNAPSE_PRESETS,
  waitFor,
  type SynapsePreset,
  type TestCall,
  type TestDevice,
} from "../../../src/testing/index.js";
import { idOf, joinWithJsSdk, jsSdkView, NO_LIMITS, observeWithUs, roomOf, sleep } from "./helpers.js";

const DELAY = 1000;
const quiet = log.getLogger("interop-quiet");
quiet.setLevel("silent");

let call: TestCall | undefined;
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) c();
  await call?.close();
  call = undefined;
});

const localpartOf = (userId: string) => userId.slice(1).split(":")[0];

/** Membership writes at a state key, oldest first: "{}" for a leave, else the first focus URL. */
function writesAt(c: TestCall, stateKey: string): string[] {
  return c.homeserver
    .timeline(c.roomId)
    .filter((e) => e.type === CALL_MEMBER_EVENT_TYPE && e.state_key === stateKey)
    .map((e) =>
      Object.keys(e.content).length === 0
        ? "{}"
        : String((e.content.foci_preferred as { livekit_service_url?: string }[])[0]?.livekit_service_url),
    );
}

describe.each(["1.157", "1.116"] as SynapsePreset[])(
  "one user, two devices: ours and matrix-js-sdk's (Synapse %s)",
  (preset) => {
    it("stay in the call together over several delays; each leaves without removing the other", async () => {
      call = await startTestCall({
        delayMs: DELAY,
        homeserver: { ...SYNAPSE_PRESETS[preset], ...NO_LIMITS },
      });
      const hs = call.homeserver;
      const ours = await call.device("alice");
      const phoneCreds = await hs.loginDevice(localpartOf(ours.userId));
      expect(phoneCreds.userId).toBe(ours.userId);
      expect(phoneCreds.deviceId).not.toBe(ours.deviceId);
      const bob = await call.observer("bob");
      await roomOf(bob.client, call.roomId);
      const bobOurs = observeWithUs(bob.client, call.roomId);
      cleanups.push(() => bobOurs.stop());

      ours.manager.join();
      await bob.waitUntilSees(ours, { withinMs: 5000 });
      const phone = await joinWithJsSdk(hs.baseUrl, phoneCreds, call.roomId, { delayMs: DELAY });
      cleanups.push(() => phone.stop());
      const phoneOurs = observeWithUs(phone.client, call.roomId);
      cleanups.push(() => phoneOurs.stop());
      const phoneKey = `_${phone.userId}_${phone.deviceId}_m.call`;
      const both = [idOf(ours), idOf(phone)];
      await waitFor(() => bobOurs.ids().length === 2, 5000, "both devices listed");

      // Several delays: sample what the server holds and what every observer lists.
      const until = Date.now() + 4 * DELAY;
      while (Date.now() < until) {
        expect(ours.isJoinedOnServer()).toBe(true);
        expect(
          Object.keys(hs.stateContent(call.roomId, CALL_MEMBER_EVENT_TYPE, phoneKey) ?? {}),
        ).not.toHaveLength(0);
        // Both listed, and our observer in js-sdk's order. (The order itself is js-sdk's oldest-first:
        // on a loaded machine a restart of ours can miss its timeout and our membership be written again,
        // which moves it behind the phone's; what is asserted is that nobody drops out.)
        expect([...bob.members()].sort()).toEqual([...both].sort());
        expect([...bobOurs.ids()].sort()).toEqual([...both].sort());
        await sleep(100);
      }
      // Our observer's order is js-sdk's (after a reorder the two update a sync apart: wait, bounded).
      await waitFor(
        () => JSON.stringify(bobOurs.ids()) === JSON.stringify(bob.members()),
        2000,
        "our observer's order to be js-sdk's",
      );
      expect(phoneOurs.ids()).toEqual(jsSdkView(phone.client, call.roomId).map(idOf));
      expect([...phoneOurs.ids()].sort()).toEqual([...both].sort());
      // Nobody ever wrote a leave; each device wrote its membership once (ours at most twice: see above).
      const ourWrites = writesAt(call, ours.manager.stateKey);
      expect(ourWrites.length).toBeLessThanOrEqual(2);
      expect(new Set(ourWrites)).toEqual(new Set(["https://livekit.test"]));
      expect(writesAt(call, phoneKey)).toHaveLength(1);
      expect(ours.manager.status).toBe("connected");
      expect(phone.session.isJoined()).toBe(true);

      // Our device leaves: the phone stays.
      await ours.manager.leave({ timeoutMs: 3000 });
      await bob.waitUntilGone(ours, { withinMs: 3000 });
      await sleep(2 * DELAY);
      expect(bob.members()).toEqual([idOf(phone)]);
      expect(phoneOurs.ids()).toEqual([idOf(phone)]);

      // Rejoin, then the phone leaves: ours stays.
      ours.manager.join();
      await bob.waitUntilSees(ours, { withinMs: 3000 });
      expect(await phone.leave()).toBe(true);
      await waitFor(() => !bob.members().includes(idOf(phone)), 3000, "the phone to leave");
      await sleep(2 * DELAY);
      expect(bob.members()).toEqual([idOf(ours)]);
      expect(ours.manager.status).toBe("connected");
    });
  },
);

async function secondTab(
  c: TestCall,
  first: TestDevice,
  extra: Partial<MembershipManagerOptions> = {},
): Promise<MembershipManager> {
  // A second login with the same device id: another tab of the same device.
  const creds = await c.homeserver.loginDevice(localpartOf(first.userId), first.deviceId);
  const client = bareClient(c.homeserver.baseUrl, creds);
  const tab = new MembershipManager({
    backend: new ClientBackend(client),
    roomId: c.roomId,
    userId: first.userId,
    deviceId: first.deviceId,
    delayedLeaveDelayMs: DELAY,
    logger: quiet,
    fociPreferred: [{ type: "livekit", livekit_service_url: "https://tab-two.example" }],
    ...extra,
  });
  cleanups.push(
    () => tab.dispose(),
    () => stopClient(client),
  );
  return tab;
}

describe("two tabs of the same device with our package (same state key)", () => {
  it("Synapse ≥ 1.127: the second join overwrites; the first tab's leave wipes the device out, the other tab reads its key and puts it back", async () => {
    call = await startTestCall({ delayMs: DELAY, homeserver: { ...SYNAPSE_PRESETS["1.157"], ...NO_LIMITS } });
    const tab1 = await call.device("alice", { logger: quiet });
    const tab2 = await secondTab(call, tab1);
    expect(tab2.stateKey).toBe(tab1.manager.stateKey);
    const bob = await call.observer("bob");

    tab1.manager.join();
    await tab1.waitUntilConnected();
    tab2.join();
    await waitFor(() => tab2.status === "connected", 3000, "tab 2 connected");
    // Last writer wins: the server holds tab 2's content; each tab holds its own delayed leave.
    await waitFor(() => tab1.pendingDelayedLeaves().length === 2, 2000, "two delayed leaves at one key");
    await bob.waitUntilSees(tab1);
    await sleep(3 * DELAY);
    expect(writesAt(call, tab1.manager.stateKey)).toEqual([
      "https://livekit.test",
      "https://tab-two.example",
    ]);
    expect(tab1.pendingDelayedLeaves()).toHaveLength(2);
    expect(tab1.manager.status).toBe("connected");
    expect(tab2.status).toBe("connected");
    expect(bob.members()).toEqual([idOf(tab1)]);
    expect(jsSdkView(bob.client, call.roomId)[0].fociPreferred).toEqual([
      { type: "livekit", livekit_service_url: "https://tab-two.example" },
    ]);

    // Tab 1 leaves: its delayed leave fires `{}` at the shared key. Tab 2's own delayed leave is a
    // separate delayed event, its restarts keep succeeding; before issue 25 it never learned the device
    // was out. Now its client does not sync, so it reads its key every heartbeat interval: within one
    // interval it sees the `{}` and puts the device back.
    expect(await tab1.manager.leave({ timeoutMs: 3000 })).toEqual({
      status: "left",
      via: "delayed-event-sent",
    });
    await bob.waitUntilGone(tab1, { withinMs: 3000 });
    const goneAt = Date.now();
    await bob.waitUntilSees(tab1, { withinMs: DELAY });
    expect(Date.now() - goneAt).toBeLessThan(DELAY);
    await sleep(2 * DELAY);
    expect(tab1.isJoinedOnServer()).toBe(true);
    expect(bob.sees(tab1)).toBe(true);
    expect(tab2.status).toBe("connected");
    expect(tab1.pendingDelayedLeaves()).toHaveLength(1);
  });

  it("Synapse ≥ 1.127, with the manager's roomState view, the remaining tab puts the device back", async () => {
    call = await startTestCall({ delayMs: DELAY, homeserver: { ...SYNAPSE_PRESETS["1.157"], ...NO_LIMITS } });
    const tab1 = await call.device("alice", { logger: quiet });
    const bob = await call.observer("bob");
    await roomOf(bob.client, call.roomId);
    // The tab's own synced view of the room (here another synced client's; an app passes its own).
    const tab2 = await secondTab(call, tab1, { roomState: bob.client, membershipGraceMs: 300 });
    const reasons: string[] = [];
    tab2.state$.subscribe((s) => s.kind === "reconnecting" && reasons.push(s.reason));

    tab1.manager.join();
    await tab1.waitUntilConnected();
    tab2.join();
    await waitFor(() => tab2.status === "connected", 3000, "tab 2 connected");
    await bob.waitUntilSees(tab1);
    const writesBefore = writesAt(call, tab1.manager.stateKey).length;
    await sleep(2 * DELAY);
    // Both tabs in the call with the view on: no extra writes.
    expect(writesAt(call, tab1.manager.stateKey).length).toBe(writesBefore);

    await tab1.manager.leave({ timeoutMs: 3000 });
    const leftAt = Date.now();
    await waitFor(() => !tab1.isJoinedOnServer(), 2000, "the leave to land");
    await waitFor(() => tab1.isJoinedOnServer(), 3000, "tab 2 to restore the membership");
    await bob.waitUntilSees(tab1, { withinMs: 2000 });
    expect(Date.now() - leftAt).toBeLessThan(2000);
    expect(reasons).toContain("membership-removed");
    expect(writesAt(call, tab1.manager.stateKey).at(-1)).toBe("https://tab-two.example");
    await sleep(2 * DELAY);
    expect(bob.sees(tab1)).toBe(true);
    expect(tab2.status).toBe("connected");
    // Still protected: tab 2's delayed leave is pending.
    expect(tab1.pendingDelayedLeaves()).toHaveLength(1);
  });

  it("Synapse < 1.127: each tab's write cancels the other's delayed leave, so they re-join in turn", async () => {
    call = await startTestCall({ delayMs: DELAY, homeserver: { ...SYNAPSE_PRESETS["1.116"], ...NO_LIMITS } });
    const tab1 = await call.device("alice", { logger: quiet });
    const tab2 = await secondTab(call, tab1);
    const reasons: string[] = [];
    for (const m of [tab1.manager, tab2])
      m.state$.subscribe((s) => s.kind === "reconnecting" && reasons.push(s.reason));
    const bob = await call.observer("bob");

    tab1.manager.join();
    await tab1.waitUntilConnected();
    tab2.join();
    await bob.waitUntilSees(tab1);
    const before = writesAt(call, tab1.manager.stateKey).length;
    await sleep(3 * DELAY);
    const during = writesAt(call, tab1.manager.stateKey).length - before;
    // Both tabs keep re-writing (about twice per heartbeat interval), never leaving the key empty.
    // (At least 4: the reads of issue 25 share the request budget with the rewrites.)
    expect(during).toBeGreaterThanOrEqual(4);
    expect(writesAt(call, tab1.manager.stateKey)).not.toContain("{}");
    expect(reasons).toContain("membership-removed");
    expect(reasons).toContain("delayed-leave-lost");
    expect(bob.sees(tab1)).toBe(true);

    // Here the remaining tab notices: tab 1's fired leave cancelled tab 2's delayed leave too, the
    // next restart 404s, tab 2 reads `{}` at its key and re-joins.
    await tab1.manager.leave({ timeoutMs: 3000 });
    await waitFor(
      () => writesAt(call!, tab1.manager.stateKey).at(-1) === "https://tab-two.example",
      3000,
      "tab 2 to re-join",
    );
    // tab 2's re-join may be followed by more rounds (its own write can cancel the delayed leave it had
    // just scheduled under pre-1.127 rules; the next restart 404s and it schedules a new one), more of
    // them on a loaded machine. Wait for the steady state the server shows rather than sampling at a
    // fixed time: tab 2 connected, the device's membership held and listed, a delayed leave pending.
    await waitFor(
      () =>
        tab2.status === "connected" &&
        tab1.isJoinedOnServer() &&
        bob.sees(tab1) &&
        tab1.pendingDelayedLeaves().length === 1,
      10 * DELAY,
      "tab 2 connected, listed, with a pending delayed leave",
    );
  });
});
