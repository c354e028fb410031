/**
 * The fault matrix: each scenario runs against the test homeserver with a real MatrixClient behind a
 * FaultyLink, and asserts on what the server holds and on what another synced client (js-sdk's own
 * MatrixRTCSession) sees.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import { putState } from "../../helpers/matrix.js"; // also quiets matrix-js-sdk
import { CALL_MEMBER_EVENT_TYPE } from "../../../src/index.js";
import { startTestCall, waitFor, type TestCall, type TestDevice } from "../../../src/testing/index.js";

const DELAY = 1500;
const NO_LIMITS = { rateLimits: { message: null, delayedEventMgmt: null } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let call: TestCall | undefined;
afterEach(async () => {
  await call?.close();
  call = undefined;
});

async function joinedPair(options: Parameters<TestCall["device"]>[1] = {}) {
  call = await startTestCall({ delayMs: DELAY, homeserver: NO_LIMITS });
  const alice = await call.device("alice", options);
  const bob = await call.observer("bob");
  alice.manager.join();
  await bob.waitUntilSees(alice, { withinMs: 3000 });
  await alice.waitUntilConnected({ withinMs: 1000 });
  return { call, alice, bob };
}

/** `PUT {}` at the device's membership key with someone's token; resolves the HTTP status. */
function writeEmptyAt(c: TestCall, d: TestDevice, accessToken: string): Promise<number> {
  return putState(
    c.homeserver.baseUrl,
    accessToken,
    c.roomId,
    CALL_MEMBER_EVENT_TYPE,
    d.manager.stateKey,
    {},
  );
}

/** Every `{}` written at the device's key while it was not leaving (a leave others saw). */
function leavesSeenOnServer(c: TestCall, d: TestDevice): number {
  return c.homeserver
    .timeline(c.roomId)
    .filter(
      (e) =>
        e.type === CALL_MEMBER_EVENT_TYPE &&
        e.state_key === d.manager.stateKey &&
        Object.keys(e.content ?? {}).length === 0,
    ).length;
}

describe("network faults", () => {
  it("a cut shorter than the delay: nobody sees a leave, probablyLeft stays false", async () => {
    const { call, alice, bob } = await joinedPair();
    const flags: boolean[] = [];
    alice.manager.probablyLeft$.subscribe((p) => flags.push(p));
    alice.network.cut();
    await sleep(DELAY * 0.4);
    alice.network.restore();
    await sleep(DELAY * 2);
    expect(bob.sees(alice)).toBe(true);
    expect(leavesSeenOnServer(call, alice)).toBe(0);
    expect(flags).toEqual([false]);
    expect(alice.pendingDelayedLeaves()).toHaveLength(1);
  });

  it("a cut longer than the delay: the leave fires in time, probablyLeft on time, then a visible rejoin", async () => {
    const { call, alice, bob } = await joinedPair();
    alice.network.cut();
    const cutAt = Date.now();
    await bob.waitUntilGone(alice, { withinMs: DELAY + 1000 });
    expect(Date.now() - cutAt).toBeLessThanOrEqual(DELAY + 1000);
    await waitFor(() => alice.manager.probablyLeft, DELAY, "probablyLeft");
    const predictedError = Math.abs(Date.now() - cutAt - DELAY);
    expect(predictedError).toBeLessThan(DELAY); // "about the predicted time"
    expect(alice.isJoinedOnServer()).toBe(false);
    alice.network.restore();
    const back = await bob.waitUntilSees(alice, { withinMs: 3000 });
    expect(back).toBeLessThan(3000);
    await alice.waitUntilConnected({ withinMs: 1000 });
    expect(alice.manager.probablyLeft).toBe(false);
    expect(alice.pendingDelayedLeaves()).toHaveLength(1);
    expect(leavesSeenOnServer(call, alice)).toBe(1);
  });

  it("a flapping link (up/down faster than the delay) never lets the leave fire", async () => {
    const { call, alice, bob } = await joinedPair();
    for (let i = 0; i < 6; i++) {
      alice.network.cut();
      await sleep(DELAY * 0.25);
      alice.network.restore();
      await sleep(DELAY * 0.3);
    }
    await sleep(DELAY);
    expect(leavesSeenOnServer(call, alice)).toBe(0);
    expect(bob.sees(alice)).toBe(true);
    expect(alice.manager.status).toBe("connected");
  });

  it("lost responses: the server restarted the delayed event but we never heard", async () => {
    const { call, alice, bob } = await joinedPair();
    alice.network.loseResponses(3);
    await sleep(DELAY * 3);
    expect(leavesSeenOnServer(call, alice)).toBe(0);
    expect(bob.sees(alice)).toBe(true);
    expect(alice.network.stats.lostResponses).toBe(3);
    expect(alice.pendingDelayedLeaves()).toHaveLength(1);
  });

  it("connection resets and added latency with jitter", async () => {
    const { call, alice, bob } = await joinedPair();
    alice.network.setLatency(100, 50);
    for (let i = 0; i < 3; i++) {
      alice.network.reset();
      await sleep(DELAY / 2);
    }
    await sleep(DELAY);
    expect(leavesSeenOnServer(call, alice)).toBe(0);
    expect(bob.sees(alice)).toBe(true);
  });
});

describe("server faults", () => {
  it("a rate-limit storm on management: retried after Retry-After, still joined afterwards", async () => {
    const { call, alice, bob } = await joinedPair();
    call.homeserver.faults.add({
      route: "delayed.restart",
      times: 3,
      respond: {
        status: 429,
        body: { errcode: "M_LIMIT_EXCEEDED", error: "Too Many Requests", retry_after_ms: 200 },
      },
    });
    await sleep(DELAY * 3);
    expect(leavesSeenOnServer(call, alice)).toBe(0);
    expect(bob.sees(alice)).toBe(true);
    expect(alice.manager.status).toBe("connected");
  });

  it("a rate-limit storm on state sends: the update lands once the storm passes", async () => {
    // Issue 11 item 12: this failed 1 run in 3 on a loaded 2-core machine. A 4 s delay leaves the
    // heartbeat room for scheduling hiccups, and we wait for conditions, not for fixed sleeps.
    const { call, alice } = await joinedPair({ delayedLeaveDelayMs: 4000 });
    call.homeserver.faults.add({
      route: "state.put",
      times: 3,
      respond: {
        status: 429,
        body: { errcode: "M_LIMIT_EXCEEDED", error: "Too Many Requests", retry_after_ms: 100 },
        headers: { "Retry-After": "1" },
      },
    });
    const from = call.homeserver.requests.length;
    await alice.manager.update({ callIntent: "audio" });
    expect(alice.membershipOnServer()).toMatchObject({ "m.call.intent": "audio" });
    // The header's second was honoured between attempts: 3 refusals and one success, no more.
    const puts = call.homeserver.requests
      .slice(from)
      .filter((r) => r.route === "state.put" && r.userId === alice.userId);
    expect(puts.map((r) => r.status)).toEqual([429, 429, 429, 200]);
    for (let i = 1; i < puts.length; i++) expect(puts[i].ts - puts[i - 1].ts).toBeGreaterThanOrEqual(950);
    await alice.waitUntilConnected({ withinMs: 3000 });
    expect(alice.pendingDelayedLeaves()).toHaveLength(1);
  });

  it("a 5xx burst on management: retried with backoff, no leave", async () => {
    const { call, alice, bob } = await joinedPair();
    call.homeserver.faults.add({
      route: "delayed.restart",
      times: 3,
      respond: { status: 502, body: { errcode: "M_UNKNOWN", error: "Bad gateway" } },
    });
    await sleep(DELAY * 2);
    expect(leavesSeenOnServer(call, alice)).toBe(0);
    expect(bob.sees(alice)).toBe(true);
  });

  it("a server restart shorter than the delay: pending delayed events survive, no leave", async () => {
    const { call, alice, bob } = await joinedPair();
    await call.homeserver.restart({ downMs: DELAY / 3 });
    await sleep(DELAY * 2);
    expect(leavesSeenOnServer(call, alice)).toBe(0);
    await bob.waitUntilSees(alice, { withinMs: 5000 });
    expect(alice.pendingDelayedLeaves()).toHaveLength(1);
  });

  it("the delayed leave lost by the server while connected: a new one on the next 404, no leave seen", async () => {
    const { call, alice, bob } = await joinedPair();
    call.homeserver.loseDelayedEvent(alice.pendingDelayedLeaves()[0].delayId);
    await waitFor(() => alice.pendingDelayedLeaves().length === 1, DELAY * 2, "a new delayed leave");
    await sleep(DELAY);
    expect(leavesSeenOnServer(call, alice)).toBe(0);
    expect(bob.sees(alice)).toBe(true);
    expect(alice.manager.probablyLeft).toBe(false);
  });

  it("someone else overwriting our state key: reported, and we rejoin (autoRejoin)", async () => {
    const { call, alice, bob } = await joinedPair();
    const admin = await call.homeserver.createUser("admin");
    await call.homeserver.joinRoom(admin.accessToken, call.roomId);
    const codes: string[] = [];
    alice.manager.errors$.subscribe((e) => codes.push(e.code));
    // Call rooms give call.member power level 0, so any joined user can write any key of that type.
    expect(await writeEmptyAt(call, alice, admin.accessToken)).toBe(200);
    await waitFor(() => codes.includes("membership-removed"), DELAY * 3, "membership-removed");
    await bob.waitUntilSees(alice, { withinMs: DELAY * 2 });
    // The other user's write cancelled our delayed leave (Synapse's rule): the restart that follows our
    // rewrite finds it gone and schedules a new one (issue 25: the periodic read may see the removal first).
    await waitFor(() => alice.pendingDelayedLeaves().length === 1, DELAY, "a delayed leave again");
  });

  it("our membership removed without touching our delayed leave: with a roomState view we put it back", async () => {
    // Another session of the same device (a second tab) writes `{}` at our key: on Synapse >= 1.127 our
    // delayed leave survives, so restarts keep succeeding and only the room's state shows the loss.
    call = await startTestCall({ delayMs: DELAY, homeserver: NO_LIMITS });
    const bob = await call.observer("bob");
    const alice = await call.device("alice", { roomState: bob.client, membershipGraceMs: 300 });
    alice.manager.join();
    await bob.waitUntilSees(alice, { withinMs: 3000 });
    await alice.waitUntilConnected({ withinMs: 1000 });
    const codes: string[] = [];
    alice.manager.errors$.subscribe((e) => codes.push(e.code));
    const tab = await call.homeserver.loginDevice("alice", alice.deviceId);
    const pendingBefore = alice.pendingDelayedLeaves().map((e) => e.delayId);
    expect(await writeEmptyAt(call, alice, tab.accessToken)).toBe(200);
    // Our delayed leave is untouched: nothing but the room tells. (The view watches our key, so the
    // membership is back within a few round trips: too soon to poll bob for the gap; the room's
    // timeline shows the `{}` and our membership after it.)
    expect(alice.pendingDelayedLeaves().map((e) => e.delayId)).toEqual(pendingBefore);
    await waitFor(
      () => {
        const at = call!.homeserver
          .timeline(call!.roomId)
          .filter((e) => e.type === CALL_MEMBER_EVENT_TYPE && e.state_key === alice.manager.stateKey)
          .map((e) => Object.keys(e.content).length > 0);
        const empty = at.lastIndexOf(false);
        return empty >= 0 && at.lastIndexOf(true) > empty;
      },
      2000,
      "our membership after the {}",
    );
    await bob.waitUntilSees(alice, { withinMs: 2000 });
    expect(alice.isJoinedOnServer()).toBe(true);
    expect(codes).toContain("membership-removed");
    await alice.waitUntilConnected({ withinMs: DELAY });
    expect(alice.manager.probablyLeft).toBe(false);
    expect(alice.pendingDelayedLeaves()).toHaveLength(1);
  });
});

describe("leave() during faults", () => {
  it("leave during a cut: times out honestly, then lands when the network returns", async () => {
    const { alice, bob } = await joinedPair();
    alice.network.cut();
    const r = await alice.manager.leave({ timeoutMs: 300 });
    expect(r).toEqual({ status: "timed-out" });
    alice.network.restore();
    await waitFor(() => alice.manager.state.kind === "left", DELAY * 3, "left");
    await bob.waitUntilGone(alice);
    expect(alice.pendingDelayedLeaves()).toHaveLength(0);
    expect(alice.isJoinedOnServer()).toBe(false);
  });

  it("leave during a rate-limit storm and during a 5xx burst", async () => {
    const { call, alice, bob } = await joinedPair();
    call.homeserver.faults.add({
      route: "delayed.send",
      times: 2,
      respond: {
        status: 429,
        body: { errcode: "M_LIMIT_EXCEEDED", error: "Too Many Requests", retry_after_ms: 100 },
      },
    });
    call.homeserver.faults.add({
      route: "delayed.send",
      times: 1,
      respond: { status: 503, body: { errcode: "M_UNKNOWN", error: "unavailable" } },
    });
    const r = await alice.manager.leave({ timeoutMs: 5000 });
    expect(r).toEqual({ status: "left", via: "delayed-event-sent" });
    await bob.waitUntilGone(alice);
    expect(alice.pendingDelayedLeaves()).toHaveLength(0);
  });

  it("leave whose response is lost: the retry sees 404 and writes {} directly", async () => {
    const { call, alice, bob } = await joinedPair();
    // the server processes the send (writes {}) and the answer never comes back
    call.homeserver.faults.add({ route: "delayed.send", times: 1, respond: "process-then-drop" });
    const r = await alice.manager.leave({ timeoutMs: 5000 });
    expect(r).toEqual({ status: "left", via: "state-written" });
    await bob.waitUntilGone(alice);
    expect(alice.pendingDelayedLeaves()).toHaveLength(0);
  });

  it("leave after the server fired our leave during a cut", async () => {
    const { alice, bob } = await joinedPair();
    alice.network.cut();
    await bob.waitUntilGone(alice, { withinMs: DELAY + 1000 });
    alice.network.restore();
    const r = await alice.manager.leave({ timeoutMs: 5000 });
    expect(r.status).toBe("left");
    await sleep(DELAY);
    expect(bob.sees(alice)).toBe(false);
    expect(alice.pendingDelayedLeaves()).toHaveLength(0);
    expect(alice.isJoinedOnServer()).toBe(false);
  });
});
