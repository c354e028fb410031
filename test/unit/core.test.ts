/**
 * The pure core (src/core): what each answer means, how long to wait, how many requests, how long a
 * request may take, and when a write may go out. No I/O: plain inputs and outputs.
 */
import { describe, expect, it } from "@jest/globals";
import { budgetLimits, fullBudget, takeToken } from "../../src/core/budget.js";
import {
  changedKeys,
  goneCause,
  lateIdDeadlines,
  mayWriteMembership,
  membershipExpiresAt,
  recoveryPauseMs,
} from "../../src/core/decisions.js";
import { initialLink, linkBounds, onAnswered, onLocalTimeout } from "../../src/core/linkTiming.js";
import {
  BARE_RATE_LIMIT_FLOOR_MS,
  MAX_TIMER_MS,
  isUnrecognised,
  onLeaveSendFailure,
  onRestartFailure,
  onScheduleFailure,
  retryWaitMs,
} from "../../src/core/policy.js";
import type { ErrorClass } from "../../src/errors.js";

const half = () => 0.5;
const wait = (cls: ErrorClass, over: Partial<Parameters<typeof retryWaitMs>[0]> = {}) =>
  retryWaitMs({
    cls,
    localTimeout: false,
    attempt: 0,
    baseMs: 250,
    capMs: 1000,
    hintCapMs: 3333,
    random: half,
    ...over,
  });

describe("policy: what an answer means", () => {
  it("only a real gone recovers a heartbeat; everything else backs off", () => {
    expect(onRestartFailure({ kind: "gone" })).toBe("recover");
    expect(onRestartFailure({ kind: "unsupported", reason: "x" })).toBe("degrade");
    for (const cls of [
      { kind: "rejected", status: 404 },
      { kind: "rejected", status: 404, errcode: "M_UNRECOGNIZED" },
      { kind: "forbidden", reason: "403" },
      { kind: "server", status: 601 },
      { kind: "unknown" },
    ] as ErrorClass[])
      expect(onRestartFailure(cls)).toBe("back-off");
  });

  it("unrecognised answers to the first schedule degrade after a few, never silence", () => {
    expect(isUnrecognised({ kind: "server", status: 601 })).toBe(true);
    expect(isUnrecognised({ kind: "rejected", status: 404 })).toBe(true);
    expect(isUnrecognised({ kind: "rejected", status: 400, errcode: "M_BAD_JSON" })).toBe(false);
    expect(isUnrecognised({ kind: "server", status: 502 })).toBe(false);
    expect(onScheduleFailure({ kind: "unknown" }, 0)).toBe("back-off");
    expect(onScheduleFailure({ kind: "unknown" }, 2)).toBe("degrade");
    expect(onScheduleFailure({ kind: "server", status: 200 }, 5)).toBe("back-off"); // a malformed 200
    expect(onScheduleFailure({ kind: "max-delay" }, 0)).toBe("lower-delay");
    expect(onScheduleFailure({ kind: "rejected", status: 400, errcode: "M_BAD_JSON" }, 0)).toBe("fail");
  });

  it("leave's send: busy or unreachable backs off; anything else writes {} at once", () => {
    expect(onLeaveSendFailure({ kind: "network" })).toBe("back-off");
    expect(onLeaveSendFailure({ kind: "rate-limited" })).toBe("back-off");
    expect(onLeaveSendFailure({ kind: "server", status: 502 })).toBe("back-off");
    expect(onLeaveSendFailure({ kind: "server", status: 601 })).toBe("write-empty");
    expect(onLeaveSendFailure({ kind: "unknown" })).toBe("write-empty");
    expect(onLeaveSendFailure({ kind: "gone" })).toBe("write-empty");
    expect(onLeaveSendFailure({ kind: "forbidden", reason: "403" })).toBe("write-empty");
  });
});

describe("policy: every wait between a floor and a ceiling", () => {
  it("Retry-After of 0, negative (no hint), an hour, 1e12 ms", () => {
    expect(wait({ kind: "rate-limited", retryAfterMs: 0 })).toBeGreaterThanOrEqual(BARE_RATE_LIMIT_FLOOR_MS);
    expect(wait({ kind: "rate-limited" })).toBeGreaterThanOrEqual(BARE_RATE_LIMIT_FLOOR_MS);
    expect(wait({ kind: "rate-limited", retryAfterMs: 3600_000 })).toBe(3333);
    expect(wait({ kind: "rate-limited", retryAfterMs: 1e12 }, { hintCapMs: 1e15 })).toBe(MAX_TIMER_MS);
    expect(wait({ kind: "rate-limited", retryAfterMs: 2000 })).toBe(2000);
    expect(wait({ kind: "rate-limited", retryAfterMs: Number.NaN })).toBeGreaterThanOrEqual(1000);
  });

  it("backoff grows to the lane's cap; a local timeout retries at once", () => {
    const steps = [0, 1, 2, 3, 4, 10, 60].map((attempt) =>
      wait({ kind: "server", status: 502 }, { attempt }),
    );
    expect(steps).toEqual([188, 375, 750, 750, 750, 750, 750]); // equal jitter: 3/4 of the step
    expect(wait({ kind: "network" }, { localTimeout: true })).toBe(0);
    expect(wait({ kind: "server", status: 502 }, { capMs: 1e15, attempt: 60 })).toBeLessThanOrEqual(
      MAX_TIMER_MS,
    );
  });
});

describe("budget: a bound on requests per second", () => {
  it("a hot loop gets at most capacity + perSecond requests in any second", () => {
    const limits = budgetLimits(1000);
    let b = fullBudget(limits, 0);
    let now = 0;
    const sent: number[] = [];
    for (let i = 0; i < 100; i++) {
      const r = takeToken(b, limits, now);
      b = r.budget;
      now += r.waitMs; // the caller waits, then sends
      sent.push(now);
    }
    let peak = 0;
    for (let i = 0, j = 0; i < sent.length; i++) {
      while (sent[i] - sent[j] >= 1000) j++;
      peak = Math.max(peak, i - j + 1);
    }
    expect(peak).toBeLessThanOrEqual(limits.capacity + limits.perSecond);
    expect(sent.at(-1)!).toBeGreaterThan(25_000); // ~3 a second once the burst is spent
  });
});

describe("linkTiming: the local timeout follows the round trip within what the delay allows", () => {
  const bounds = linkBounds(2000, 10_000, 5000);
  it("grows with a 2.3 s round trip, never past the ceiling; silence alone does not grow it", () => {
    let link = initialLink(bounds);
    link = onLocalTimeout(link, bounds);
    expect(link.timeoutMs).toBe(2000);
    link = onAnswered(link, bounds, 2300);
    expect(link.timeoutMs).toBe(4500);
    expect(link.tooSlow).toBe(false);
    link = onAnswered(link, bounds, 20);
    expect(link.timeoutMs).toBeGreaterThanOrEqual(2000);
  });
  it("a round trip over the ceiling is reported as too slow", () => {
    const link = onAnswered(initialLink(bounds), bounds, 6000);
    expect(link.tooSlow).toBe(true);
    expect(link.timeoutMs).toBe(bounds.maxMs);
  });
});

describe("decisions", () => {
  const guard = {
    now: 1000,
    delayed: "armed" as const,
    rearming: false,
    armedAt: 0,
    delayMs: 2000,
    timeoutMs: 400,
    orphanWindowUntil: 0,
    canListDelayed: true,
  };
  it("a membership write needs a delayed leave that cannot fire before it lands", () => {
    expect(mayWriteMembership(guard)).toBe(true);
    expect(mayWriteMembership({ ...guard, now: 1700 })).toBe(false);
    expect(mayWriteMembership({ ...guard, delayed: "pending" })).toBe(false);
    expect(mayWriteMembership({ ...guard, delayed: "none" })).toBe(true);
    expect(mayWriteMembership({ ...guard, orphanWindowUntil: 5000 })).toBe(false);
    expect(mayWriteMembership({ ...guard, orphanWindowUntil: 5000, canListDelayed: false })).toBe(true);
  });
  it("gone: fired or lost by time; recoveries spaced; late ids' deadlines; expiry; changed fields", () => {
    expect(goneCause(2000, 0, 2000)).toBe("fired");
    expect(goneCause(1999, 0, 2000)).toBe("lost");
    expect(recoveryPauseMs(1000, undefined, 1000)).toBe(0);
    expect(recoveryPauseMs(1200, 1000, 1000)).toBe(800);
    expect(lateIdDeadlines(0, 800, 2000, 400)).toEqual({
      earliestFire: 2000,
      latestFire: 2800,
      cancelUntil: 3200,
    });
    expect(membershipExpiresAt({ created_ts: 10, expires: 100 })).toBe(110);
    expect(membershipExpiresAt({})).toBeUndefined();
    expect(changedKeys({ a: [1], b: "x" }, { a: [1], b: "y" }, ["a", "b"] as const)).toEqual(["b"]);
  });
});
