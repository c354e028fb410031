/**
 * The token service's delegation job on virtual time (jest's fake timers, Date.now included): when it
 * restarts, how it retries within the delay, what it does with 404/409/429, the connect wait, the send
 * window, pause/resume, and that it leaves no timer behind.
 */
import { afterEach, beforeEach, describe, expect, it, jest } from "@jest/globals";
import { DelegationJob, type JobTimings } from "../../src/testing/sfu/job.js";
import type { ManageAnswer } from "../../src/testing/sfu/homeserver.js";
import type { DelegationOutcome } from "../../src/testing/sfu/types.js";

interface Call {
  action: "restart" | "send";
  at: number;
  signal: AbortSignal;
}

/** A scripted homeserver: answers each request after `latencyMs` with the next scripted status (default 200). */
function harness(timings: Partial<JobTimings> = {}, script: (ManageAnswer | number)[] = [], latencyMs = 10) {
  const calls: Call[] = [];
  const ended: DelegationOutcome[] = [];
  const start = Date.now();
  const job = new DelegationJob(
    { via: "homeserver", userId: "@a:x", roomId: "!r:x", slotId: "m.call#ROOM", memberId: "m", delayId: "d" },
    { delayMs: 10_000, headroomMs: 2000, connectTimeoutMs: 10_000, retryMs: 1000, ...timings },
    {
      manage: (_delayId, action, signal) => {
        calls.push({ action, at: Date.now() - start, signal });
        const next = script.shift() ?? 200;
        const answer = typeof next === "number" ? { status: next } : next;
        return new Promise((resolve) => setTimeout(() => resolve(answer), latencyMs));
      },
      onEnded: (j) => ended.push(j.snapshot().outcome!),
    },
  );
  return { job, calls, ended, at: () => calls.map((c) => `${c.action}@${c.at}`) };
}

beforeEach(() => {
  jest.useFakeTimers({ doNotFake: ["nextTick", "setImmediate", "queueMicrotask"], now: 1_000_000 });
});
afterEach(() => {
  jest.useRealTimers();
});

const advance = (ms: number) => jest.advanceTimersByTimeAsync(ms);

describe("the delegation job", () => {
  it("connected: restarts at once, then `headroom` before each expiry; the disconnect sends at once", async () => {
    const h = harness();
    h.job.start(true);
    await advance(25_000);
    // At 0, then 8 s after each answer (10 s delay − 2 s headroom), each answer taking 10 ms.
    expect(h.at()).toEqual(["restart@0", "restart@8010", "restart@16020", "restart@24030"]);
    expect(h.job.snapshot()).toMatchObject({ state: "connected", restarts: 4 });
    h.job.disconnected();
    await advance(100);
    expect(h.at().at(-1)).toBe("send@25000");
    expect(h.ended).toEqual(["sent"]);
    expect(jest.getTimerCount()).toBe(0);
  });

  it("waiting: nothing until the connect timeout (the delay by default), then the leave is sent", async () => {
    const h = harness();
    h.job.start(false);
    await advance(9_999);
    expect(h.calls).toEqual([]);
    await advance(100);
    expect(h.at()).toEqual(["send@10000"]);
    expect(h.ended).toEqual(["sent"]);
  });

  it("a connect wait longer than the delay restarts meanwhile; a connect then restarts at once", async () => {
    const h = harness({ connectTimeoutMs: 30_000 });
    h.job.start(false);
    await advance(12_000);
    expect(h.at()).toEqual(["restart@8000"]);
    h.job.connected();
    await advance(100);
    expect(h.at()).toEqual(["restart@8000", "restart@12000"]);
  });

  it("a failing restart is retried after growing waits, never past the delay: then the job ends 'expired'", async () => {
    const h = harness({}, Array(50).fill(503));
    h.job.start(true);
    await advance(20_000);
    expect(h.ended).toEqual(["expired"]);
    const times = h.calls.map((c) => c.at);
    expect(times.every((t) => t < 10_000)).toBe(true);
    // Waits of 1000 × 1.5^n, ±50 %.
    const waits = times.slice(1).map((t, i) => t - times[i] - 10);
    waits.forEach((w, i) => {
      expect(w).toBeGreaterThanOrEqual(Math.floor(0.5 * 1000 * 1.5 ** i));
    });
    expect(jest.getTimerCount()).toBe(0);
  });

  it("429 waits as long as the server asks; 404 ends it (not-found); 409 ends it (finalised)", async () => {
    const h = harness({}, [{ status: 429, retryAfterMs: 3000 }, 404]);
    h.job.start(true);
    await advance(5000);
    expect(h.at()).toEqual(["restart@0", "restart@3010"]);
    expect(h.ended).toEqual(["not-found"]);
    const g = harness({}, [409]);
    g.job.start(true);
    await advance(100);
    expect(g.ended).toEqual(["finalised"]);
  });

  it("a send answered 404 or 409 means someone was first; a failing send gives up at the delay's end", async () => {
    const h = harness({}, [200, 404]);
    h.job.start(true);
    await advance(100);
    h.job.disconnected();
    await advance(100);
    expect(h.ended).toEqual(["already-final"]);
    const g = harness({}, [200, ...Array(50).fill(502)]);
    g.job.start(true);
    await advance(5000);
    g.job.disconnected();
    await advance(60_000);
    expect(g.ended).toEqual(["send-failed"]);
    // Sent until about 10 s after the last restart (at 10 ms), not after.
    expect(g.calls.filter((c) => c.action === "send").every((c) => c.at < 10_010)).toBe(true);
  });

  it("pause drops the request in flight and every timer; resume restarts at once; a replaced job makes no request", async () => {
    const h = harness({}, [], 500);
    h.job.start(true);
    await advance(100);
    h.job.pause();
    expect(h.calls[0].signal.aborted).toBe(true);
    await advance(30_000);
    expect(h.calls.length).toBe(1);
    expect(h.job.snapshot().restarts).toBe(0);
    // The delay ran out while paused: the job knows the leave fired.
    h.job.resume();
    await advance(10);
    expect(h.ended).toEqual(["expired"]);

    const g = harness();
    g.job.start(true);
    await advance(1000);
    g.job.pause();
    await advance(2000);
    g.job.resume();
    await advance(100);
    expect(g.at()).toEqual(["restart@0", "restart@3000"]);
    g.job.end("replaced");
    await advance(60_000);
    expect(g.calls.length).toBe(2);
    expect(g.ended).toEqual(["replaced"]);
    expect(jest.getTimerCount()).toBe(0);
  });
});
