/**
 * Issue 11 item 3: every wait derived from a server's hint lies between a floor and a ceiling, and
 * every timer stays below 2^31 ms, whatever the hint says.
 */
import { describe, expect, it } from "@jest/globals";
import {
  backoffMs,
  clampWaitMs,
  MAX_TIMER_MS,
  RATE_LIMIT_FLOOR_MS,
  RATE_LIMIT_HINT_FLOOR_MS,
  resolveTiming,
  retryWaitMs,
} from "../../src/core/config.js";
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
  ["bare 429", limited({}), undefined],
  ["a bad header, a good body", limited({ retry_after_ms: 700 }, { "Retry-After": "-5" }), 700],
];

describe("the hint (errors.retryAfterMs through classifyError)", () => {
  it.each(HINTS)("%s", (_name, error, want) => {
    const cls = classifyError(error, "restart", NOW);
    expect(cls).toEqual({ kind: "rate-limited", retryAfterMs: want });
  });
});

describe("the wait (core/config.retryWaitMs)", () => {
  // The manager's lanes with the default 10 s delay: heartbeat/schedule cap 1 s, writes cap 30 s;
  // and with a short 1 s delay (tests): cap 250 ms.
  const LANES: [string, number, number][] = [
    ["heartbeat, 10 s delay", 1000, 10_000],
    ["membership write, 10 s delay", 30_000, 10_000],
    ["heartbeat, 1 s delay", 250, 1000],
    ["heartbeat, 120 s delay", 12_000, 120_000],
  ];
  for (const [lane, cap, delay] of LANES)
    it.each(HINTS)(`${lane}: %s waits between the floor and the ceiling`, (_name, error) => {
      const cls = classifyError(error, "restart", NOW);
      for (const attempt of [0, 3, 30, 1000]) {
        const backoff = backoffMs(attempt, 250, cap, () => 0.5);
        const wait = retryWaitMs(cls, backoff, cap, delay);
        const ceiling = Math.max(cap, delay / 4);
        const floor =
          cls.kind === "rate-limited" && cls.retryAfterMs !== undefined
            ? Math.min(RATE_LIMIT_HINT_FLOOR_MS, delay / 10)
            : RATE_LIMIT_FLOOR_MS;
        expect(wait).toBeGreaterThanOrEqual(Math.min(floor, ceiling));
        expect(wait).toBeLessThanOrEqual(ceiling);
        expect(wait).toBeLessThan(2 ** 31);
        expect(Number.isFinite(wait)).toBe(true);
      }
    });

  it("a bare 429 waits at least a second (js-sdk waits 5 s; we used to retry at 125-250 ms)", () => {
    const bare = classifyError(limited({}), "restart", NOW);
    expect(retryWaitMs(bare, 125, 1000, 10_000)).toBe(1000);
    expect(retryWaitMs(bare, 125, 30_000, 10_000)).toBe(1000);
    expect(retryWaitMs(bare, 8000, 30_000, 10_000)).toBe(8000);
  });

  it("Retry-After: 3600 on a heartbeat costs at most a quarter of the delay; on a write at most retryMaxMs", () => {
    const cls = classifyError(limited({}, { "Retry-After": "3600" }), "restart", NOW);
    const t = resolveTiming({});
    const heartbeatCap = Math.max(t.retryBaseMs, t.requestTimeoutMs / 2);
    expect(retryWaitMs(cls, 200, heartbeatCap, t.delayMs)).toBe(2500);
    expect(retryWaitMs(cls, 200, t.retryMaxMs, t.delayMs)).toBe(30_000);
  });

  it("a hint that says 'now' waits 250 ms; a small exact hint above it is honoured", () => {
    const now = classifyError(limited({}, { "Retry-After": "0" }), "restart", NOW);
    expect(retryWaitMs(now, 125, 1000, 10_000)).toBe(250);
    const past = classifyError(
      limited({}, { "Retry-After": new Date(NOW - 5000).toUTCString() }),
      "restart",
      NOW,
    );
    expect(retryWaitMs(past, 125, 30_000, 10_000)).toBe(250);
    expect(retryWaitMs({ kind: "rate-limited", retryAfterMs: 400 }, 125, 30_000, 10_000)).toBe(400);
    // A 1.5 s delay: the floor for a hint is a tenth of the delay, so Synapse's exact 200 ms is kept.
    expect(retryWaitMs({ kind: "rate-limited", retryAfterMs: 200 }, 125, 250, 1500)).toBe(200);
    expect(retryWaitMs({ kind: "rate-limited", retryAfterMs: 0 }, 125, 250, 1500)).toBe(150);
  });

  it("a hint inside the bounds is honoured", () => {
    const cls: ErrorClass = { kind: "rate-limited", retryAfterMs: 2000 };
    expect(retryWaitMs(cls, 100, 1000, 10_000)).toBe(2000);
  });

  it("other failures keep their backoff, capped", () => {
    expect(retryWaitMs({ kind: "server", status: 502 }, 300, 1000, 10_000)).toBe(300);
    expect(retryWaitMs({ kind: "network" }, 5000, 1000, 10_000)).toBe(1000);
    expect(retryWaitMs({ kind: "unknown" }, NaN, 1000, 10_000)).toBe(0);
  });

  it("clampWaitMs: the ceiling wins over the floor, NaN gives the floor, nothing reaches 2^31", () => {
    expect(clampWaitMs(5, 1000, 250)).toBe(250);
    expect(clampWaitMs(NaN, 1000, 5000)).toBe(1000);
    expect(clampWaitMs(Infinity, 0, Infinity)).toBe(MAX_TIMER_MS);
    expect(clampWaitMs(-5, -10, 100)).toBe(0);
  });
});
