/**
 * Issue 20, "Time": the manager's deadlines follow elapsed time whatever the wall clock does, and what
 * others judge (`created_ts`, `expires`) rests on the server's clock, never on the device's.
 *
 * Real HTTP against the test homeserver (whose clock is the machine's real one), matrix-js-sdk's
 * MatrixRTCSession in another synced client judging our membership with that real clock. The device's
 * wall clock is stepped where the manager could read it: RxJS's default scheduler (`asyncScheduler.now`,
 * which reads `Date.now()`) and the manager's `wallClock`; the process's own `Date.now()` stays true, so
 * the server and the other client keep the real time.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import { asyncScheduler } from "rxjs";
import "../../helpers/matrix.js"; // quiet matrix-js-sdk
import { CALL_MEMBER_EVENT_TYPE, type MembershipError } from "../../../src/index.js";
import { startTestCall, waitFor, type TestCall } from "../../../src/testing/index.js";
import { NO_LIMITS, sleep } from "../interop/helpers.js";

const DELAY = 1000;
const HOUR = 3600_000;

let call: TestCall | undefined;
const originalNow = asyncScheduler.now;
afterEach(async () => {
  asyncScheduler.now = originalNow;
  await call?.close();
  call = undefined;
});

/** The device's clock is off by `offset()` ms: RxJS's default scheduler and the wall clock both say so. */
function skewedDevice(offset: () => number): { wallClock: () => number } {
  asyncScheduler.now = () => Date.now() + offset();
  return { wallClock: () => Date.now() + offset() };
}

function restartsSince(c: TestCall, since: number): number {
  return c.homeserver.requests.filter(
    (r) => r.route === "delayed.restart" && r.status === 200 && r.ts >= since,
  ).length;
}

describe("the wall clock steps; deadlines follow elapsed time", () => {
  it("a step back of 60 s mid-call: heartbeats go on, the server never fires, nothing lies", async () => {
    let offset = 0;
    const device = skewedDevice(() => offset);
    call = await startTestCall({ delayMs: DELAY, homeserver: NO_LIMITS });
    const alice = await call.device("alice", device);
    const bob = await call.observer("bob");
    alice.manager.join();
    await bob.waitUntilSees(alice, { withinMs: 5000 });
    // Mid-call, between two heartbeats: the next one's deadline was set on the clock before the step.
    await sleep(2 * DELAY + DELAY / 4);
    const stepAt = Date.now();
    offset = -60_000; // NTP steps the clock back a minute
    await sleep(4 * DELAY);
    // About one restart per half delay; before issue 20 the wake timer waited 60 s and the server fired.
    expect(restartsSince(call, stepAt)).toBeGreaterThanOrEqual(6);
    expect(
      call.homeserver.timeline(call.roomId).filter((e) => e.origin_server_ts >= stepAt && isLeave(e, alice)),
    ).toEqual([]);
    expect(bob.sees(alice)).toBe(true);
    expect(alice.manager.status).toBe("connected");
    expect(alice.manager.probablyLeft).toBe(false);
  });

  it("a step forward of 5 h: no false expiry, and a refresh's expires does not carry the jump", async () => {
    let offset = 0;
    const device = skewedDevice(() => offset);
    call = await startTestCall({ delayMs: DELAY, homeserver: NO_LIMITS });
    // A short expiry window so refreshes come every 2 s.
    const alice = await call.device("alice", { ...device, membershipExpiryMs: 4000 });
    const bob = await call.observer("bob");
    const codes: string[] = [];
    alice.manager.errors$.subscribe((e: MembershipError) => codes.push(e.code));
    const states: boolean[] = [];
    alice.manager.probablyLeft$.subscribe((p) => states.push(p));
    alice.manager.join();
    await bob.waitUntilSees(alice, { withinMs: 5000 });
    offset = 5 * HOUR;
    const stepAt = Date.now();
    await sleep(5000); // two refreshes
    const refreshes = call.homeserver
      .timeline(call.roomId)
      .filter(
        (e) =>
          e.origin_server_ts > stepAt &&
          e.type === CALL_MEMBER_EVENT_TYPE &&
          e.state_key === alice.manager.stateKey,
      );
    expect(refreshes.length).toBeGreaterThanOrEqual(2);
    for (const e of refreshes) {
      const c = e.content as { created_ts?: number; expires: number };
      const until = (c.created_ts ?? e.origin_server_ts) + c.expires;
      // Valid one window past the server's time of the write, not five hours more.
      expect(until).toBeLessThanOrEqual(e.origin_server_ts + 4000 + 200);
      expect(until).toBeGreaterThan(e.origin_server_ts + 4000 - 200);
    }
    expect(codes).not.toContain("membership-expired");
    expect(states).toEqual([false]);
    expect(bob.sees(alice)).toBe(true);
  });
});

describe("the device clock is wrong from the start; what others judge rests on the server's clock", () => {
  it("5 h behind, with delayed events: listed by js-sdk (it judged our device's created_ts expired), and said so", async () => {
    const device = skewedDevice(() => -5 * HOUR);
    call = await startTestCall({ delayMs: DELAY, homeserver: NO_LIMITS });
    const alice = await call.device("alice", device);
    const bob = await call.observer("bob");
    const errors: MembershipError[] = [];
    alice.manager.errors$.subscribe((e) => errors.push(e));
    alice.manager.join();
    await alice.waitUntilConnected();
    await bob.waitUntilSees(alice, { withinMs: 3000 });
    await alice.manager.update({ callIntent: "audio" }); // a write that carries created_ts
    await sleep(500);
    expect(bob.sees(alice)).toBe(true);
    const content = alice.membershipOnServer() as { created_ts?: number };
    expect(Math.abs(content.created_ts! - Date.now())).toBeLessThan(60_000);
    await waitFor(() => errors.some((e) => e.code === "clock-skew"), 2000, "a clock-skew warning");
    expect(errors.find((e) => e.code === "clock-skew")!.message).toMatch(/behind the server/);
  });

  it("without delayed events, 3 min behind: others list us while we say connected", async () => {
    const device = skewedDevice(() => -3 * 60_000);
    call = await startTestCall({ delayMs: DELAY, homeserver: { ...NO_LIMITS, delayedEvents: false } });
    const alice = await call.device("alice", device);
    const bob = await call.observer("bob");
    alice.manager.join();
    await waitFor(() => alice.manager.status === "connected", 5000, "connected (degraded)");
    await bob.waitUntilSees(alice, { withinMs: 3000 });
    await sleep(1000);
    expect(bob.sees(alice)).toBe(true);
  });

  it("without delayed events, 1 h ahead: a crash leaves a ghost of one degraded window, not an hour more", async () => {
    const device = skewedDevice(() => HOUR);
    call = await startTestCall({ delayMs: DELAY, homeserver: { ...NO_LIMITS, delayedEvents: false } });
    const alice = await call.device("alice", { ...device, degradedMembershipExpiryMs: 3000 });
    const bob = await call.observer("bob");
    alice.manager.join();
    await bob.waitUntilSees(alice, { withinMs: 5000 });
    await sleep(1600); // a refresh (every half window) that carries created_ts
    alice.manager.dispose(); // the process dies
    const diedAt = Date.now();
    await bob.waitUntilGone(alice, { withinMs: 4000 });
    expect(Date.now() - diedAt).toBeLessThanOrEqual(3000 + 500);
  });
});

function isLeave(
  e: { type: string; state_key?: string; content: object },
  d: { manager: { stateKey: string } },
) {
  return (
    e.type === CALL_MEMBER_EVENT_TYPE &&
    e.state_key === d.manager.stateKey &&
    Object.keys(e.content).length === 0
  );
}
