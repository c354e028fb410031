/**
 * Issue 22 part 2: the adaptive heartbeat's pure rules (src/core/heartbeatTiming.ts): the margin as
 * defined there, the restart timeout and interval a measured link gets, the retries of a lost restart,
 * and what the request budget still bounds. No manager, no time: plain inputs and outputs.
 */
import { describe, expect, it } from "@jest/globals";
import fc from "fast-check";
import { budgetLimits } from "../../src/core/budget.js";
import { MAX_TIMER_MS, MIN_DELAY_MS, resolveTiming, type Timing } from "../../src/core/config.js";
import {
  heartbeatMarginMs,
  heartbeatTiming,
  measuredRestartTimeoutMs,
  minAdaptiveIntervalMs,
  retriesWithinMargin,
  retryTimeoutMs,
} from "../../src/core/heartbeatTiming.js";
import {
  initialLink,
  linkBounds,
  onAnswered,
  onRestartAnswered,
  onSilentRestart,
  type LinkTiming,
} from "../../src/core/linkTiming.js";

const boundsOf = (t: Timing) => linkBounds(t.requestTimeoutMs, t.delayMs, t.heartbeatIntervalMs);
const measured = (srttMs: number, rttvarMs: number, silentRestarts?: number): LinkTiming => ({
  restartSrttMs: srttMs,
  restartRttvarMs: rttvarMs,
  timeoutMs: 2000,
  tooSlow: false,
  silentRestarts,
});
/** js-sdk with Element Call's settings: restart 5 s after the previous answer, 2 s local timeout. */
const jsSdkMargin = (delayMs: number, rttMs: number) => heartbeatMarginMs(delayMs, 5000 + rttMs, 2000);

describe("the margin: delay − interval (send to send) − restart timeout", () => {
  it("js-sdk: 3 s − 1 RTT at Element Call's 10 s delay, 1 s − 1 RTT at its own 8 s", () => {
    expect(jsSdkMargin(10_000, 53)).toBe(2947);
    expect(jsSdkMargin(8000, 53)).toBe(947);
  });

  it("our fixed default (interval delay/2 from the send, timeout min(2 s, delay/5)): 3 s at 10 s", () => {
    const t = resolveTiming({ delayedLeaveDelayMs: 10_000, heartbeatIntervalMs: 5000 });
    expect(heartbeatTiming(t, undefined, boundsOf(t))).toEqual({
      intervalMs: 5000,
      timeoutMs: 2000,
      marginMs: 3000,
    });
  });

  it("retries a lost restart gets within its margin: js-sdk 2 (2 s each, the last clamped), ours 5", () => {
    expect(retriesWithinMargin(2947, (_k, left) => Math.min(2000, left))).toBe(2);
    // Ours on a 53 ms link: each retry waits half of what is left, at least the 250 ms restart timeout.
    expect(retriesWithinMargin(3000, (k, left) => retryTimeoutMs(250, 2000, k, left))).toBe(5);
    expect(retriesWithinMargin(0, () => 250)).toBe(0);
  });
});

describe("resolveTiming: adaptive unless the app fixes the interval", () => {
  it("default: adaptive, restart timeouts down to 250 ms", () => {
    expect(resolveTiming({})).toMatchObject({
      adaptiveHeartbeat: true,
      heartbeatIntervalMs: 5000,
      requestTimeoutMs: 2000,
      minRestartTimeoutMs: 250,
    });
    // A delay so short that its request timeout is under 250 ms: that is the floor.
    expect(resolveTiming({ delayedLeaveDelayMs: 1000 }).minRestartTimeoutMs).toBe(200);
  });

  it("heartbeatMarginMs: the margin the adaptive heartbeat keeps; not with a fixed interval; room for an interval", () => {
    expect(resolveTiming({}).heartbeatMarginMs).toBe(3000);
    const thin = resolveTiming({ heartbeatMarginMs: 2500 });
    expect(heartbeatTiming(thin, measured(53, 5), boundsOf(thin))).toEqual({
      intervalMs: 7250,
      timeoutMs: 250,
      marginMs: 2500,
    });
    expect(() => resolveTiming({ heartbeatIntervalMs: 4000, heartbeatMarginMs: 2000 })).toThrow(/not both/);
    expect(() => resolveTiming({ heartbeatMarginMs: 5501 })).toThrow(
      /heartbeatMarginMs \(5501\) must be at most/,
    );
    expect(() => resolveTiming({ heartbeatMarginMs: 50 })).toThrow(/at least 100/);
    // A fixed interval under a quarter of the delay stays valid (its margin is only reported).
    expect(resolveTiming({ heartbeatIntervalMs: 2000 }).heartbeatMarginMs).toBe(6000);
    // A lowered delay scales a margin that no longer fits.
    expect(resolveTiming({ heartbeatMarginMs: 5000 }, 4000).heartbeatMarginMs).toBe(1200);
  });

  it("an explicit heartbeatIntervalMs fixes it; an explicit requestTimeoutMs is the restarts' floor", () => {
    expect(resolveTiming({ heartbeatIntervalMs: 4000 }).adaptiveHeartbeat).toBe(false);
    expect(resolveTiming({ requestTimeoutMs: 800 })).toMatchObject({
      adaptiveHeartbeat: true,
      minRestartTimeoutMs: 800,
    });
  });
});

describe("heartbeatTiming: adaptive", () => {
  const t = resolveTiming({ delayedLeaveDelayMs: 10_000 });
  const bounds = boundsOf(t);

  it("unmeasured: the configured timing (delay/2, 2 s)", () => {
    expect(heartbeatTiming(t, undefined, bounds)).toEqual({
      intervalMs: 5000,
      timeoutMs: 2000,
      marginMs: 3000,
    });
  });

  it("a fast link (53 ms, steady): 250 ms timeout, the 1 750 ms it saves go to the interval", () => {
    expect(heartbeatTiming(t, measured(53, 5), bounds)).toEqual({
      intervalMs: 6750,
      timeoutMs: 250,
      marginMs: 3000,
    });
  });

  it("a slower link: the timeout follows RTT + 4 deviations, the interval shortens, the margin stays", () => {
    expect(heartbeatTiming(t, measured(400, 100), bounds)).toEqual({
      intervalMs: 6200,
      timeoutMs: 800,
      marginMs: 3000,
    });
    // RTT 2.3 s: the timeout (1.5 RTT) is over the 3 s margin floor: the margin grows to one more timeout.
    expect(heartbeatTiming(t, measured(2300, 0), bounds)).toEqual({
      intervalMs: 3100,
      timeoutMs: 3450,
      marginMs: 3450,
    });
    // Past what the delay allows: the timeout at its ceiling, the interval at its floor (a quarter).
    expect(heartbeatTiming(t, measured(6000, 0), bounds)).toEqual({
      intervalMs: 2500,
      timeoutMs: bounds.maxMs,
      marginMs: 10_000 - 2500 - bounds.maxMs,
    });
  });

  it("an explicit requestTimeoutMs is the floor: on a fast link the interval stays delay/2", () => {
    const slow = resolveTiming({ delayedLeaveDelayMs: 10_000, requestTimeoutMs: 2000 });
    expect(heartbeatTiming(slow, measured(20, 2), boundsOf(slow))).toEqual({
      intervalMs: 5000,
      timeoutMs: 2000,
      marginMs: 3000,
    });
  });

  it("a retry after silent restarts waits half the time left, within the measured and configured timeouts", () => {
    const at = (silent: number, msLeft: number) =>
      heartbeatTiming(t, measured(53, 5, silent), bounds, msLeft);
    // The first attempt: the measured timeout, whatever is left.
    expect(at(0, 3250).timeoutMs).toBe(250);
    // Its retries, 3 000, 1 500, 750, 375 and 125 ms before the predicted leave.
    expect([3000, 1500, 750, 375, 125].map((left) => at(1, left).timeoutMs)).toEqual([
      1500, 750, 375, 250, 250,
    ]);
    // Early in a long window: never past the configured timeout on silence alone.
    expect(at(1, 60_000).timeoutMs).toBe(2000);
    // Past the predicted leave: as long as the delay allows (only an answer says where we stand).
    expect(at(3, -100).timeoutMs).toBe(bounds.maxMs);
    // A measured slow link's timeout is not capped by the configured one.
    expect(heartbeatTiming(t, measured(2300, 0, 2), bounds, 100).timeoutMs).toBe(3450);
  });

  it("fixed: the interval the app gave, the link's conservative timeout", () => {
    const fixed = resolveTiming({ delayedLeaveDelayMs: 10_000, heartbeatIntervalMs: 5000 });
    const link = onAnswered(initialLink(boundsOf(fixed)), boundsOf(fixed), 1500);
    expect(heartbeatTiming(fixed, link, boundsOf(fixed))).toEqual({
      intervalMs: 5000,
      timeoutMs: 3000,
      marginMs: 2000,
    });
  });

  it("properties over any delay and link: bounded, two attempts' worth, a slower link never waits longer", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: MIN_DELAY_MS, max: 3600_000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.integer({ min: 0, max: 50_000 }),
        fc.integer({ min: 0, max: 5000 }),
        fc.integer({ min: 0, max: 6 }),
        (delayMs, srttMs, rttvarMs, slowerBy, silent) => {
          const timing = resolveTiming({ delayedLeaveDelayMs: delayMs });
          const b = boundsOf(timing);
          const hb = heartbeatTiming(timing, measured(srttMs, rttvarMs, silent), b);
          const first = measuredRestartTimeoutMs(timing, measured(srttMs, rttvarMs), b);
          const configuredMargin = heartbeatMarginMs(
            delayMs,
            timing.heartbeatIntervalMs,
            timing.requestTimeoutMs,
          );
          // Every wait is a timer: positive, integral, below 2^31.
          for (const ms of [hb.intervalMs, hb.timeoutMs])
            expect(Number.isInteger(ms) && ms > 0 && ms < MAX_TIMER_MS).toBe(true);
          expect(hb.timeoutMs).toBeLessThanOrEqual(b.maxMs);
          expect(hb.intervalMs).toBeGreaterThanOrEqual(minAdaptiveIntervalMs(delayMs));
          expect(hb.intervalMs + first).toBeLessThan(delayMs);
          // Above its floor, the interval keeps the configured margin and room for one more timeout.
          if (hb.intervalMs > minAdaptiveIntervalMs(delayMs)) {
            expect(hb.marginMs).toBeGreaterThanOrEqual(configuredMargin);
            expect(delayMs - hb.intervalMs).toBeGreaterThanOrEqual(2 * first);
          }
          // A slower link (or a more jittery one) never gets a longer interval.
          const slower = heartbeatTiming(timing, measured(srttMs + slowerBy, rttvarMs + slowerBy), b);
          expect(slower.intervalMs).toBeLessThanOrEqual(hb.intervalMs);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe("linkTiming: the round trip's deviation and silent restarts", () => {
  const bounds = linkBounds(2000, 10_000, 5000);
  it("restarts keep RFC 6298's deviation: half the first sample, then a quarter of each difference", () => {
    let link = onRestartAnswered(initialLink(bounds), 100);
    expect(link).toMatchObject({ restartSrttMs: 100, restartRttvarMs: 50 });
    link = onRestartAnswered(link, 500);
    expect(link).toMatchObject({ restartSrttMs: 200, restartRttvarMs: 138 });
    // Other requests (a schedule that included discovery) do not touch the restarts' estimate.
    expect(onAnswered(link, bounds, 900)).toMatchObject({
      srttMs: 900,
      restartSrttMs: 200,
      restartRttvarMs: 138,
    });
  });
  it("before any restart was answered, a restart waits the link's timeout for any delayed-event request", () => {
    const t = resolveTiming({ delayedLeaveDelayMs: 10_000 });
    const slowSchedule = onAnswered(initialLink(boundsOf(t)), boundsOf(t), 1500);
    expect(heartbeatTiming(t, slowSchedule, boundsOf(t))).toEqual({
      intervalMs: 4000,
      timeoutMs: 3000,
      marginMs: 3000,
    });
  });
  it("a silent restart counts; any answer resets the count; silence alone is no slow link", () => {
    let link = onSilentRestart(onSilentRestart(initialLink(bounds), bounds), bounds);
    expect(link.silentRestarts).toBe(2);
    expect(link.tooSlow).toBe(false);
    for (let i = 0; i < 20; i++) link = onSilentRestart(link, bounds);
    expect(link.silentRestarts).toBe(6);
    expect(onAnswered(link, bounds, 50).silentRestarts).toBeUndefined();
  });
});

describe("the request budget still bounds an adaptive heartbeat", () => {
  it("the shortest adaptive interval needs at most two of the three tokens per configured interval", () => {
    for (const delayMs of [MIN_DELAY_MS, 1000, 2000, 4000, 10_000, 60_000, 3600_000]) {
      const timing = resolveTiming({ delayedLeaveDelayMs: delayMs });
      const perSecond = budgetLimits(timing.heartbeatIntervalMs).perSecond;
      const heartbeatsPerSecond = 1000 / minAdaptiveIntervalMs(delayMs);
      expect(heartbeatsPerSecond).toBeLessThanOrEqual((perSecond * 2) / 3 + 1e-9);
    }
  });
});
