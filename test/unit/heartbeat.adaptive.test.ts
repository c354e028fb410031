/**
 * Issue 22 part 2: the adaptive heartbeat through the public manager, on virtual time, against the
 * FakeServer's records (its request log: when each restart was sent; its delayed events: whether the
 * leave ever fired). A fast link gets a longer interval at the same margin; a link that slows down
 * (gradually, or in one step) gets a shorter one before the margin is gone; a jittery link neither
 * times out at every restart nor loses the call; a cut that ends just before the predicted leave still
 * lets a retry through. The pure rules are in heartbeatTiming.test.ts.
 */
import { describe, expect, it } from "@jest/globals";
import { harness, isJoinedOnServer, type Harness } from "../helpers/managerHarness.js";

const DELAY_MS = 10_000;
const CONFIGURED_MARGIN_MS = DELAY_MS / 2 - 2000;

/** Send times of the restarts the server got in [from, to). */
function restartsSent(h: Harness, from = 0, to = Infinity): number[] {
  return h.server.log.filter((e) => e.op === "restart" && e.at >= from && e.at < to).map((e) => e.at);
}

function gaps(times: number[]): number[] {
  return times.slice(1).map((t, i) => t - times[i]);
}

function fired(h: Harness): number {
  return h.server.history.filter((e) => e.by === "delayed").length;
}

/** Local timeouts of restarts the manager reported (its errors$ carry them as network errors). */
function restartTimeouts(h: Harness): number {
  return h.errors.filter((e) => e.operation === "restart" && e.message.includes("no answer")).length;
}

function peakPerSecond(h: Harness, from = 0): number {
  const at = h.server.log.filter((e) => e.at >= from).map((e) => e.at);
  let peak = 0;
  for (let i = 0, j = 0; i < at.length; i++) {
    while (at[i] - at[j] >= 1000) j++;
    peak = Math.max(peak, i - j + 1);
  }
  return peak;
}

/** Advance in steps, recording what must hold at every step. */
async function advanceWatching(h: Harness, ms: number, check: () => void, step = 100): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    await h.time.advance(step);
    check();
  }
}

describe("adaptive heartbeat: a fast link", () => {
  it("restarts every 6 750 ms (timeout 250 ms, margin still 3 s): 0.74 × the requests of a fixed 5 s", async () => {
    const h = harness({ delayedLeaveDelayMs: DELAY_MS });
    const fixed = harness({ delayedLeaveDelayMs: DELAY_MS, heartbeatIntervalMs: 5000 });
    h.manager.join();
    fixed.manager.join();
    await Promise.all([h.time.advance(600_000), fixed.time.advance(600_000)]);
    // What the server saw: one restart every 6 750 ms from its send, after the first measured answers.
    const ours = gaps(restartsSent(h, 20_000));
    expect(new Set(ours)).toEqual(new Set([6750]));
    expect(new Set(gaps(restartsSent(fixed, 20_000)))).toEqual(new Set([5000]));
    expect(h.manager.effectiveTiming).toMatchObject({
      adaptiveHeartbeat: true,
      heartbeatIntervalMs: 6750,
      restartTimeoutMs: 250,
      heartbeatMarginMs: CONFIGURED_MARGIN_MS,
    });
    expect(fixed.manager.effectiveTiming).toMatchObject({
      adaptiveHeartbeat: false,
      heartbeatIntervalMs: 5000,
      restartTimeoutMs: 2000,
      heartbeatMarginMs: CONFIGURED_MARGIN_MS,
    });
    const perHour = (x: Harness) => (restartsSent(x, 20_000).length * 3600_000) / 580_000;
    expect(perHour(h) / perHour(fixed)).toBeLessThan(0.75);
    for (const x of [h, fixed]) {
      expect(fired(x)).toBe(0);
      expect(x.probablyLeft).toEqual([false]);
      expect(x.manager.status).toBe("connected");
      expect(x.server.pendingFor(x.key)).toHaveLength(1);
    }
    expect(restartTimeouts(h)).toBe(0);
    h.manager.dispose();
    fixed.manager.dispose();
  });

  it("the predicted leave stays exact: the last successful restart's send + the delay", async () => {
    const h = harness({ delayedLeaveDelayMs: DELAY_MS });
    h.manager.join();
    await h.time.advance(60_000);
    const last = restartsSent(h).at(-1)!;
    expect(h.manager.predictedLeaveAt).toBe(last + DELAY_MS);
    // The server's own deadline for our delayed leave: the restart's arrival (half a round trip later) + delay.
    const [id] = h.server.pendingFor(h.key);
    expect(h.server.delayed.get(id)!.sendTs).toBe(last + 10 + DELAY_MS);
    h.manager.dispose();
  });
});

describe("adaptive heartbeat: a link that slows down", () => {
  it("step by step (20 → 150 → 400 → 800 → 1 300 ms): each step shortens the interval; never a leave or probablyLeft", async () => {
    const h = harness({ delayedLeaveDelayMs: DELAY_MS });
    h.manager.join();
    await h.time.advance(30_000);
    const steady: number[] = [];
    let from = h.time.now();
    const watch = () => {
      // The margin is never gone: the timing in force keeps at least the configured one, and room for
      // two attempts (between beats: a retry's timeout may be longer than the first attempt's).
      const t = h.manager.effectiveTiming;
      expect(t.heartbeatMarginMs).toBeGreaterThanOrEqual(CONFIGURED_MARGIN_MS);
      expect(h.manager.status).toBe("connected");
      expect(h.manager.probablyLeft).toBe(false);
    };
    for (const latencyMs of [20, 150, 400, 800, 1300]) {
      h.server.latencyMs = latencyMs;
      from = h.time.now();
      await advanceWatching(h, 60_000, watch);
      steady.push(gaps(restartsSent(h, from + 30_000)).at(-1)!);
    }
    // Shorter with each step (150 ms almost fits the 250 ms floor), strictly from 400 ms on.
    expect(steady[0]).toBe(6750);
    expect(steady[1]).toBeLessThanOrEqual(6750);
    for (let i = 2; i < steady.length; i++) expect(steady[i]).toBeLessThan(steady[i - 1]);
    // At 1.3 s: the timeout about 1.5 RTT (the deviation still fading), the interval what is left
    // after it and the 3 s margin.
    const timeout = h.manager.effectiveTiming.restartTimeoutMs;
    expect(timeout).toBeGreaterThanOrEqual(1800);
    expect(timeout).toBeLessThan(2600);
    expect(steady.at(-1)).toBeLessThanOrEqual(DELAY_MS - 1800 - CONFIGURED_MARGIN_MS);
    expect(fired(h)).toBe(0);
    expect(h.probablyLeft).toEqual([false]);
    expect(isJoinedOnServer(h)).toBe(true);
    expect(peakPerSecond(h, 30_000)).toBeLessThanOrEqual(4);
    h.manager.dispose();
  });

  it("in one step (20 → 1 200 ms): the first restart times out, its retry gets the answer before the predicted leave", async () => {
    const h = harness({ delayedLeaveDelayMs: DELAY_MS });
    h.manager.join();
    await h.time.advance(30_000);
    expect(h.manager.effectiveTiming.heartbeatIntervalMs).toBe(6750);
    h.server.latencyMs = 1200;
    const stepAt = h.time.now();
    await advanceWatching(h, 60_000, () => {
      expect(h.manager.probablyLeft).toBe(false);
      expect(h.manager.status).toBe("connected");
    });
    // One restart timed out (250 ms for a 1.2 s link); the retry (half of the 3 s left) was answered.
    expect(restartTimeouts(h)).toBe(1);
    const after = restartsSent(h, stepAt);
    expect(gaps(after.slice(0, 2))[0]).toBe(250);
    // From then on the measured link sets the pace: a longer timeout, a shorter interval.
    expect(h.manager.effectiveTiming.restartTimeoutMs).toBeGreaterThanOrEqual(1700);
    expect(h.manager.effectiveTiming.heartbeatIntervalMs).toBeLessThanOrEqual(DELAY_MS - 1700 - 3000);
    expect(fired(h)).toBe(0);
    expect(h.probablyLeft).toEqual([false]);
    h.manager.dispose();
  });

  it("in one step too slow for the retries (20 → 2 500 ms): the server still gets every restart; we say 'probably left' only until an answer", async () => {
    const h = harness({ delayedLeaveDelayMs: DELAY_MS });
    h.manager.join();
    await h.time.advance(30_000);
    h.server.latencyMs = 2500;
    await h.time.advance(60_000);
    // The restarts we gave up on reached the server (a request on the wire is not recalled): no leave.
    expect(fired(h)).toBe(0);
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
    // We could not know that before an answer came: probablyLeft (honest), then false again.
    expect(h.probablyLeft).toEqual([false, true, false]);
    expect(h.manager.status).toBe("connected");
    expect(h.manager.effectiveTiming.restartTimeoutMs).toBeGreaterThanOrEqual(3000);
    h.manager.dispose();
  });
});

describe("adaptive heartbeat: jitter and cuts", () => {
  it("a jittery link (each way 10-400 ms, seeded): few spurious timeouts, no leave, no probablyLeft", async () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const h = harness({ delayedLeaveDelayMs: DELAY_MS }, (s) => {
      // Each half of each round trip draws its own latency.
      Object.defineProperty(s, "latencyMs", { get: () => 20 + random() * 780, set: () => undefined });
    });
    h.manager.join();
    await advanceWatching(h, 1800_000, () => expect(h.manager.probablyLeft).toBe(false), 1000);
    const restarts = restartsSent(h).length;
    expect(fired(h)).toBe(0);
    expect(h.probablyLeft).toEqual([false]);
    // The deviation keeps the timeout above most round trips: under 5 % of restarts time out.
    expect(restartTimeouts(h)).toBeLessThan(restarts * 0.05);
    // And the interval still beats the fixed 5 s one.
    const t = h.manager.effectiveTiming;
    expect(t.heartbeatIntervalMs).toBeGreaterThan(5000);
    expect(t.heartbeatMarginMs).toBeGreaterThanOrEqual(CONFIGURED_MARGIN_MS);
    h.manager.dispose();
  });

  it("a cut from just before a restart until just before the predicted leave: a retry gets through", async () => {
    const h = harness({ delayedLeaveDelayMs: DELAY_MS });
    h.manager.join();
    await h.time.advance(40_000);
    const last = restartsSent(h).at(-1)!;
    const nextAt = last + 6750;
    // Down 100 ms before the next restart; requests sent meanwhile hang (they never reach the server).
    await h.time.advance(nextAt - 100 - h.time.now());
    h.server.down = true;
    // Back 300 ms before the predicted leave (last + delay): the margin less 300 ms.
    await h.time.advance(last + DELAY_MS - 300 - h.time.now());
    h.server.down = false;
    await h.time.advance(30_000);
    expect(fired(h)).toBe(0);
    expect(h.probablyLeft).toEqual([false]);
    expect(h.manager.status).toBe("connected");
    // Retries kept coming through the cut, closer together as the predicted leave came nearer.
    const during = gaps(restartsSent(h, nextAt, last + DELAY_MS));
    expect(during[0]).toBe(250);
    expect(Math.min(...during)).toBe(250);
    expect(Math.max(...during)).toBeLessThanOrEqual(1500);
    h.manager.dispose();
  });
});
