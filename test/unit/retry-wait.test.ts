/**
 * Issue 11 item 3: every wait derived from a server's hint lies between a floor and a ceiling, and
 * every timer stays below 2^31 ms, whatever the hint says. The package has one retry-wait rule,
 * `retryWaitMs` in core/policy (the manager's and the public one), and one place that says which
 * ceilings apply on which lane, `laneWaitLimits`.
 */
import { describe, expect, it } from "@jest/globals";
import { backoffMs, clampWaitMs, resolveTiming, type Timing } from "../../src/core/config.js";
import {
  BARE_RATE_LIMIT_FLOOR_MS,
  laneWaitLimits,
  delayedLaneCapMs,
  MAX_TIMER_MS,
  MIN_HINT_MS,
  retryWaitMs,
  type WaitInput,
  type WaitLimits,
} from "../../src/core/policy.js";
import * as publicApi from "../../src/index.js";
import { classifyError, type ErrorClass } from "../../src/errors.js";

const NOW = Date.parse("2026-12-01T12:00:00Z");

/** A js-sdk MatrixError-shaped 429. */
function limited(body: Record<string, unknown>, headers: Record<string, string> = {}): unknown {
  return {
    name: "MatrixError",
    httpStatus: 429,
    errcode: "M_LIMIT_EXCEEDED",
    data: body,
    httpHeaders: headers,
  };
}

const HINTS: [string, unknown, number | undefined][] = [
  ["Retry-After: 0", limited({}, { "Retry-After": "0" }), 0],
  ["Retry-After: -5", limited({}, { "Retry-After": "-5" }), undefined],
  ["Retry-After: 1.5", limited({}, { "Retry-After": "1.5" }), undefined],
  ["Retry-After: 2", limited({}, { "Retry-After": "2" }), 2000],
  ["Retry-After: 3600", limited({}, { "Retry-After": "3600" }), 3_600_000],
  ["Retry-After: 1e10 s", limited({}, { "Retry-After": "10000000000" }), MAX_TIMER_MS],
  ["Retry-After: soon", limited({}, { "Retry-After": "soon" }), undefined],
  [
    "Retry-After: a date in the past",
    limited({}, { "Retry-After": new Date(NOW - 60_000).toUTCString() }),
    0,
  ],
  ["Retry-After: a date in 3 s", limited({}, { "Retry-After": new Date(NOW + 3000).toUTCString() }), 3000],
  [
    "Retry-After: a date in 10 years",
    limited({}, { "Retry-After": new Date(NOW + 3e11).toUTCString() }),
    MAX_TIMER_MS,
  ],
  ["retry_after_ms: 1e12", limited({ retry_after_ms: 1e12 }), MAX_TIMER_MS],
  ["retry_after_ms: -1", limited({ retry_after_ms: -1 }), undefined],
  ["retry_after_ms: NaN", limited({ retry_after_ms: NaN }), undefined],
  ["retry_after_ms: '500'", limited({ retry_after_ms: "500" }), undefined],
  ["retry_after_ms: null", limited({ retry_after_ms: null }), undefined],
  ["retry_after_ms: 300", limited({ retry_after_ms: 300 }), 300],
  ["retry_after_ms: 50", limited({ retry_after_ms: 50 }), 50],
  ["bare 429", limited({}), undefined],
  ["a bad header, a good body", limited({ retry_after_ms: 700 }, { "Retry-After": "-5" }), 700],
];

describe("the hint (errors.retryAfterMs through classifyError)", () => {
  it.each(HINTS)("%s", (_name, error, want) => {
    const cls = classifyError(error, "restart", NOW);
    expect(cls).toEqual({ kind: "rate-limited", retryAfterMs: want });
  });
});

const T10 = resolveTiming({});
const T1 = resolveTiming({ delayedLeaveDelayMs: 1000 });
const T1_5 = resolveTiming({ delayedLeaveDelayMs: 1500 });
const T120 = resolveTiming({ delayedLeaveDelayMs: 120_000 });
/** The manager's backoff cap on the delayed-event lane. */
const rejoinCap = (t: Timing) => delayedLaneCapMs(t);

const half = () => 0.5;
function wait(cls: ErrorClass, limits: WaitLimits, over: Partial<WaitInput> = {}): number {
  return retryWaitMs({
    cls,
    localTimeout: false,
    attempt: 0,
    baseMs: T10.retryBaseMs,
    random: half,
    ...limits,
    ...over,
  });
}

describe("which ceilings apply on which lane (core/policy.laneWaitLimits)", () => {
  it("the default 10 s delay: heartbeat a quarter of the delay, writes retryMaxMs, refusals an interval", () => {
    expect(laneWaitLimits("delayed", T10, rejoinCap(T10))).toEqual({ capMs: 1000, hintCapMs: 2500 });
    expect(laneWaitLimits("state", T10, T10.retryMaxMs)).toEqual({ capMs: 30_000, hintCapMs: 30_000 });
    expect(laneWaitLimits("refusal", T10)).toEqual({ capMs: 5000, hintCapMs: 5000 });
  });

  it("a hint ceiling is never below the lane's own backoff cap", () => {
    expect(laneWaitLimits("delayed", T10, 4000)).toEqual({ capMs: 4000, hintCapMs: 4000 });
    expect(laneWaitLimits("state", T10, 1000)).toEqual({ capMs: 1000, hintCapMs: 30_000 });
    expect(laneWaitLimits("state", T10, 60_000)).toEqual({ capMs: 60_000, hintCapMs: 60_000 });
  });

  it("follows the delay: short test delays, long delays, a delay the server lowered", () => {
    expect(laneWaitLimits("delayed", T1, rejoinCap(T1))).toEqual({ capMs: 250, hintCapMs: 250 });
    expect(laneWaitLimits("delayed", T120, rejoinCap(T120))).toEqual({ capMs: 1000, hintCapMs: 30_000 });
    expect(laneWaitLimits("refusal", T1)).toEqual({ capMs: 500, hintCapMs: 500 });
    const lowered = resolveTiming({}, 4000);
    expect(laneWaitLimits("delayed", lowered, rejoinCap(lowered))).toEqual({ capMs: 400, hintCapMs: 1000 });
    expect(laneWaitLimits("refusal", lowered)).toEqual({ capMs: 2000, hintCapMs: 2000 });
  });
});

describe("the wait (core/policy.retryWaitMs): the one rule", () => {
  it("is the rule the package exports", () => {
    expect(publicApi.retryWaitMs).toBe(retryWaitMs);
    expect(publicApi.MAX_TIMER_MS).toBe(2 ** 31 - 1);
    expect("laneWaitLimits" in publicApi).toBe(false);
  });

  const LANES: [string, WaitLimits][] = [
    ["heartbeat, 10 s delay", laneWaitLimits("delayed", T10, rejoinCap(T10))],
    ["membership write, 10 s delay", laneWaitLimits("state", T10, T10.retryMaxMs)],
    ["refused heartbeat, 10 s delay", laneWaitLimits("refusal", T10)],
    ["heartbeat, 1 s delay", laneWaitLimits("delayed", T1, rejoinCap(T1))],
    ["refused heartbeat, 1 s delay", laneWaitLimits("refusal", T1)],
    ["heartbeat, 120 s delay", laneWaitLimits("delayed", T120, rejoinCap(T120))],
    ["a lane with absurd ceilings", { capMs: 1e15, hintCapMs: 1e15 }],
  ];
  // Including randoms a caller's `random` option might return by mistake.
  const RANDOMS: [string, () => number][] = [
    ["0", () => 0],
    ["0.5", half],
    ["0.999", () => 0.999],
    ["NaN", () => NaN],
    ["7", () => 7],
    ["-3", () => -3],
  ];
  for (const [lane, limits] of LANES)
    it.each(HINTS)(`${lane}: %s waits between the floor and the ceiling`, (_name, error) => {
      const cls = classifyError(error, "restart", NOW);
      const hint = cls.kind === "rate-limited" ? cls.retryAfterMs : undefined;
      const usable = hint !== undefined && hint > 0;
      const cap = Math.min(limits.capMs, MAX_TIMER_MS);
      // A usable hint: at least MIN_HINT_MS, at most the lane's hint ceiling. None (or "now"): the
      // backoff, never less than a second, even where the lane's cap is lower.
      const floor = usable ? MIN_HINT_MS : BARE_RATE_LIMIT_FLOOR_MS;
      const ceiling = usable
        ? Math.max(MIN_HINT_MS, Math.min(limits.hintCapMs, MAX_TIMER_MS))
        : Math.max(BARE_RATE_LIMIT_FLOOR_MS, cap);
      for (const attempt of [-1, 0, 3, 30, 1000])
        for (const [, random] of RANDOMS) {
          const w = wait(cls, limits, { attempt, random });
          expect(Number.isFinite(w)).toBe(true);
          expect(w).toBeGreaterThanOrEqual(floor);
          expect(w).toBeLessThanOrEqual(ceiling);
          expect(w).toBeLessThan(2 ** 31);
          if (usable) expect(w).toBe(Math.min(ceiling, Math.max(floor, hint)));
        }
    });

  it.each(LANES)("%s: other failures back off between 1 ms and the lane's cap", (_lane, limits) => {
    for (const cls of [
      { kind: "server", status: 502 },
      { kind: "network" },
      { kind: "unknown" },
      { kind: "server", status: 601 },
    ] as ErrorClass[])
      for (const attempt of [-1, 0, 3, 30, 1000])
        for (const [, random] of RANDOMS) {
          const w = wait(cls, limits, { attempt, random });
          expect(Number.isFinite(w)).toBe(true);
          expect(w).toBeGreaterThanOrEqual(1);
          expect(w).toBeLessThanOrEqual(Math.min(limits.capMs, MAX_TIMER_MS));
        }
  });

  it("the waits over attempts: a bare 429 never under a second; backoff grows to the lane's cap", () => {
    const attempts = [0, 1, 2, 3, 4, 5, 6, 7, 10, 60];
    const bare: ErrorClass = { kind: "rate-limited" };
    const heartbeat = laneWaitLimits("delayed", T10, rejoinCap(T10));
    const write = laneWaitLimits("state", T10, T10.retryMaxMs);
    const refusal = laneWaitLimits("refusal", T10);
    const table = (cls: ErrorClass, limits: WaitLimits) =>
      attempts.map((attempt) => wait(cls, limits, { attempt }));
    // Equal jitter at random() = 0.5: 3/4 of min(cap, 250·2^attempt).
    expect(table(bare, heartbeat)).toEqual([1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000]);
    expect(table(bare, write)).toEqual([1000, 1000, 1000, 1500, 3000, 6000, 12_000, 22_500, 22_500, 22_500]);
    const err502: ErrorClass = { kind: "server", status: 502 };
    expect(table(err502, heartbeat)).toEqual([188, 375, 750, 750, 750, 750, 750, 750, 750, 750]);
    expect(table(err502, refusal)).toEqual([188, 375, 750, 1500, 3000, 3750, 3750, 3750, 3750, 3750]);
    // The step is the same function the rest of the package uses.
    for (const attempt of attempts)
      expect(wait(err502, write, { attempt })).toBe(backoffMs(attempt, 250, 30_000, half));
  });

  it("a bare 429 waits at least a second (js-sdk waits 5 s; we used to retry at 125-250 ms)", () => {
    const bare = classifyError(limited({}), "restart", NOW);
    expect(wait(bare, laneWaitLimits("delayed", T10, rejoinCap(T10)))).toBe(1000);
    expect(wait(bare, laneWaitLimits("state", T10, T10.retryMaxMs))).toBe(1000);
    expect(wait(bare, laneWaitLimits("state", T10, T10.retryMaxMs), { attempt: 5 })).toBe(6000);
    // Even on a short test delay whose lane cap is 250 ms.
    expect(wait(bare, laneWaitLimits("delayed", T1, rejoinCap(T1)))).toBe(1000);
  });

  it("Retry-After: 3600 on a heartbeat costs a quarter of the delay; on a write retryMaxMs; on a refusal an interval", () => {
    const cls = classifyError(limited({}, { "Retry-After": "3600" }), "restart", NOW);
    expect(wait(cls, laneWaitLimits("delayed", T10, rejoinCap(T10)))).toBe(2500);
    expect(wait(cls, laneWaitLimits("state", T10, T10.retryMaxMs))).toBe(30_000);
    expect(wait(cls, laneWaitLimits("refusal", T10))).toBe(5000);
    expect(wait(cls, laneWaitLimits("delayed", T120, rejoinCap(T120)))).toBe(30_000);
  });

  it("a hint that says 'now' is no hint (at least a second); a small exact hint is honoured from 100 ms", () => {
    const heartbeat = laneWaitLimits("delayed", T10, rejoinCap(T10));
    const now = classifyError(limited({}, { "Retry-After": "0" }), "restart", NOW);
    expect(wait(now, heartbeat)).toBe(1000);
    const past = classifyError(
      limited({}, { "Retry-After": new Date(NOW - 5000).toUTCString() }),
      "restart",
      NOW,
    );
    expect(wait(past, laneWaitLimits("state", T10, T10.retryMaxMs))).toBe(1000);
    expect(wait({ kind: "rate-limited", retryAfterMs: 400 }, heartbeat)).toBe(400);
    // A 1.5 s delay: Synapse's exact 200 ms is kept; 50 ms is raised to MIN_HINT_MS.
    const short = laneWaitLimits("delayed", T1_5, rejoinCap(T1_5));
    expect(short).toEqual({ capMs: 250, hintCapMs: 375 });
    expect(wait({ kind: "rate-limited", retryAfterMs: 200 }, short)).toBe(200);
    expect(wait({ kind: "rate-limited", retryAfterMs: 50 }, short)).toBe(MIN_HINT_MS);
    expect(wait({ kind: "rate-limited", retryAfterMs: 0 }, short)).toBe(1000);
  });

  it("a hint inside the bounds is honoured", () => {
    const cls: ErrorClass = { kind: "rate-limited", retryAfterMs: 2000 };
    expect(wait(cls, laneWaitLimits("delayed", T10, rejoinCap(T10)))).toBe(2000);
  });

  it("NaN, infinite and negative hints, huge hints and caps: sane waits below 2^31 ms", () => {
    const heartbeat = laneWaitLimits("delayed", T10, rejoinCap(T10));
    for (const retryAfterMs of [NaN, -5, -Infinity, Infinity])
      expect(wait({ kind: "rate-limited", retryAfterMs }, heartbeat)).toBe(1000);
    const huge = { capMs: 1e15, hintCapMs: 1e15 };
    expect(wait({ kind: "rate-limited", retryAfterMs: 1e12 }, huge)).toBe(MAX_TIMER_MS);
    expect(wait({ kind: "server", status: 502 }, huge, { attempt: 60, random: () => 1 })).toBe(MAX_TIMER_MS);
    expect(wait({ kind: "rate-limited" }, huge, { attempt: 60, random: () => 1 })).toBe(MAX_TIMER_MS);
  });

  it("other failures keep their backoff, capped; our own local timeout retries at once", () => {
    const heartbeat = laneWaitLimits("delayed", T10, rejoinCap(T10));
    expect(wait({ kind: "server", status: 502 }, heartbeat, { attempt: 1 })).toBe(375);
    expect(wait({ kind: "network" }, heartbeat, { attempt: 8 })).toBe(750);
    expect(wait({ kind: "unknown" }, heartbeat, { random: () => NaN })).toBe(1);
    expect(wait({ kind: "network" }, heartbeat, { localTimeout: true })).toBe(0);
  });

  it("clampWaitMs: the ceiling wins over the floor, NaN gives the floor, nothing reaches 2^31", () => {
    expect(clampWaitMs(5, 1000, 250)).toBe(250);
    expect(clampWaitMs(NaN, 1000, 5000)).toBe(1000);
    expect(clampWaitMs(Infinity, 0, Infinity)).toBe(MAX_TIMER_MS);
    expect(clampWaitMs(-5, -10, 100)).toBe(0);
  });
});
