import { describe, expect, it } from "@jest/globals";
import { harness, isJoinedOnServer } from "../helpers/managerHarness.js";

describe("join", () => {
  it("schedules the delayed leave first, then sends the membership in js-sdk's wire format", async () => {
    const h = harness();
    h.manager.join();
    await h.time.advance(100);
    // (The sweep of our key for a dead predecessor's leftovers goes beside: issue 20 item 11.)
    const ops = h.server.log.map((e) => e.op).filter((op) => op !== "list");
    expect(ops.slice(0, 2)).toEqual(["schedule", "state"]);
    expect(h.server.log[0].content).toEqual({});
    expect(h.key).toBe("_@alice:localhost_DEV_m.call");
    const content = h.server.state.get(h.key)!;
    expect(content).toMatchObject({
      application: "m.call",
      call_id: "",
      scope: "m.room",
      device_id: "DEV",
      focus_active: { type: "livekit", focus_selection: "oldest_membership" },
      foci_preferred: [{ type: "livekit", livekit_service_url: "https://lk.example" }],
      expires: 4 * 3600_000,
    });
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
    expect(h.manager.state).toMatchObject({ kind: "joined", delayedLeave: true });
    expect(h.manager.status).toBe("connected");
    expect(h.states.map((s) => s.kind)).toEqual(["idle", "joining", "joining", "joined"]);
  });

  it("is idempotent: two quick joins schedule one delayed leave", async () => {
    const h = harness();
    h.manager.join();
    h.manager.join();
    await h.time.advance(200);
    expect(h.server.count("schedule")).toBe(1);
    expect(h.server.count("state")).toBe(1);
  });

  it("rejects bad configuration at construction", () => {
    expect(() => harness({ delayedLeaveDelayMs: 0 })).toThrow(/delayedLeaveDelayMs must be a positive/);
    expect(() => harness({ delayedLeaveDelayMs: -5 })).toThrow(/positive/);
    expect(() => harness({ delayedLeaveDelayMs: 1000, heartbeatIntervalMs: 1000 })).toThrow(
      /heartbeatIntervalMs/,
    );
    expect(() =>
      harness({ delayedLeaveDelayMs: 1000, heartbeatIntervalMs: 700, requestTimeoutMs: 400 }),
    ).toThrow(/one lost heartbeat/);
    expect(() => harness({ roomId: "" })).toThrow(/roomId/);
    expect(() => harness({ retryBaseMs: 10, retryMaxMs: 5 })).toThrow(/retryBaseMs/);
  });

  it("derives safe timing from the delay alone", () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    expect(h.manager.effectiveTiming).toMatchObject({
      delayMs: 2000,
      heartbeatIntervalMs: 1000,
      requestTimeoutMs: 400,
    });
    const d = harness().manager.effectiveTiming;
    expect(d).toMatchObject({ delayMs: 10_000, heartbeatIntervalMs: 5000, requestTimeoutMs: 2000 });
  });
});

describe("heartbeat", () => {
  it("keeps the delayed leave from firing for many delays", async () => {
    // A fixed interval (the adaptive one is in heartbeat.adaptive.test.ts).
    const h = harness({ delayedLeaveDelayMs: 2000, heartbeatIntervalMs: 1000 });
    h.manager.join();
    await h.time.advance(20_000);
    expect(h.server.history.filter((e) => e.by === "delayed")).toHaveLength(0);
    expect(isJoinedOnServer(h)).toBe(true);
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
    // one restart per interval (1 s), plus the check right after the membership write
    expect(h.server.count("restart")).toBeGreaterThanOrEqual(19);
    expect(h.server.count("restart")).toBeLessThanOrEqual(22);
    expect(h.probablyLeft).toEqual([false]);
  });

  it("survives one lost and one hung heartbeat without the leave firing", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    h.manager.join();
    await h.time.advance(3000);
    h.server.inject("restart", { kind: "lose-response" });
    await h.time.advance(1100);
    h.server.inject("restart", { kind: "hang" });
    await h.time.advance(10_000);
    expect(h.server.history.filter((e) => e.by === "delayed")).toHaveLength(0);
    expect(h.probablyLeft).toEqual([false]);
    expect(h.manager.status).toBe("connected");
  });

  it("never waits behind a slow state send", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    h.manager.join();
    await h.time.advance(500);
    h.server.inject("state", { kind: "slow", ms: 8000 });
    const update = h.manager.update({ callIntent: "audio" });
    await h.time.advance(6000);
    expect(h.server.history.filter((e) => e.by === "delayed")).toHaveLength(0);
    expect(h.server.count("restart")).toBeGreaterThanOrEqual(5);
    await h.time.advance(5000);
    await update;
    expect(h.server.state.get(h.key)).toMatchObject({ "m.call.intent": "audio" });
  });

  it("retries a 429 after Retry-After, and backs off when the server gives no time", async () => {
    const { matrixError } = await import("../helpers/fakeServer.js");
    const h = harness({ delayedLeaveDelayMs: 10_000 });
    h.manager.join();
    await h.time.advance(100);
    h.server.inject("restart", {
      kind: "error",
      error: () => matrixError(429, "M_LIMIT_EXCEEDED", {}, { "Retry-After": "2" }),
    });
    await h.time.advance(9000);
    const restarts = h.server.log.filter((e) => e.op === "restart");
    const failed = restarts.findIndex((e) => e.outcome === "error");
    expect(restarts[failed + 1].at - restarts[failed].at).toBeGreaterThanOrEqual(2000);
    h.server.inject(
      "restart",
      { kind: "error", error: () => matrixError(429, "M_LIMIT_EXCEEDED", { retry_after_ms: null }) },
      3,
    );
    await h.time.advance(20_000);
    expect(h.errors.filter((e) => e.code === "rate-limited").length).toBeGreaterThanOrEqual(4);
    expect(h.manager.status).toBe("connected");
    expect(h.server.history.filter((e) => e.by === "delayed")).toHaveLength(0);
  });

  it("a run of local timeouts does not grow the backoff: the first answered error after it retries soon", async () => {
    const { matrixError } = await import("../helpers/fakeServer.js");
    // A fixed interval, so every restart has the 2 s timeout (an adaptive heartbeat's restarts have a
    // shorter one on this fast link, and its longer interval puts this 15 s cut over its predicted leave).
    const h = harness({ delayedLeaveDelayMs: 20_000, heartbeatIntervalMs: 10_000 });
    h.manager.join();
    await h.time.advance(10_100);
    h.server.down = true; // restarts hang: each ends in the 2 s local timeout and is retried at once
    await h.time.advance(15_000);
    expect(h.server.count("restart", "hang")).toBeGreaterThanOrEqual(3);
    h.server.down = false;
    h.server.inject("restart", { kind: "error", error: () => matrixError(502, "M_UNKNOWN", {}) });
    await h.time.until(() => h.server.count("restart", "error") === 1, 5000, 5);
    const failedAt = h.time.now();
    await h.time.until(() => h.server.log.filter((e) => e.op === "restart").at(-1)!.at > failedAt, 5000, 5);
    // backoff step 0: 125-250 ms (after three timeouts the old exponent would have waited 500-1000 ms)
    expect(h.time.now() - failedAt).toBeLessThanOrEqual(260);
    await h.time.advance(1000);
    expect(h.manager.status).toBe("connected");
    expect(h.server.history.filter((e) => e.by === "delayed")).toHaveLength(0);
  });

  it("keeps `expires` tracking real time: never more than one window past the last refresh", async () => {
    const h = harness({ delayedLeaveDelayMs: 10_000 });
    h.manager.join();
    await h.time.advance(3 * 3600_000 + 1000);
    const c = h.server.state.get(h.key)!;
    const deadline = (c.created_ts as number) + (c.expires as number);
    expect(deadline).toBeLessThanOrEqual(h.time.now() + 4 * 3600_000);
    expect(deadline).toBeGreaterThan(h.time.now() + 3 * 3600_000 - 1000);
    expect(h.server.count("state")).toBe(4); // join + hourly refreshes
  });
});

describe("faults", () => {
  it("a cut longer than the delay: probablyLeft at the predicted time, then a fresh rejoin", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    h.manager.join();
    await h.time.advance(1500);
    const lastOk = Math.max(
      ...h.server.log.filter((e) => e.op === "restart" && e.outcome === "ok").map((e) => e.at),
    );
    h.server.down = true;
    await h.time.until(() => h.manager.probablyLeft, 10_000, 5);
    expect(h.time.now()).toBeGreaterThanOrEqual(lastOk + 2000 - 20);
    expect(h.time.now()).toBeLessThanOrEqual(lastOk + 2000 + 20);
    expect(h.manager.status).toBe("reconnecting");
    await h.time.advance(5000);
    expect(isJoinedOnServer(h)).toBe(false); // the server fired our leave
    h.server.down = false;
    const took = await h.time.until(() => isJoinedOnServer(h) && h.manager.status === "connected", 10_000, 5);
    expect(took).toBeLessThan(1000);
    expect(h.manager.probablyLeft).toBe(false);
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
    expect(h.states.map((s) => s.kind)).toContain("reconnecting");
  });

  it("a cut shorter than the delay: no leave, probablyLeft stays false", async () => {
    const h = harness({ delayedLeaveDelayMs: 4000 });
    h.manager.join();
    await h.time.advance(2000);
    h.server.down = true;
    await h.time.advance(1500);
    h.server.down = false;
    await h.time.advance(10_000);
    expect(h.server.history.filter((e) => e.by === "delayed")).toHaveLength(0);
    expect(h.probablyLeft).toEqual([false]);
  });

  it("with autoRejoin off, a fired leave ends in `left` with the reason", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000, autoRejoin: false });
    h.manager.join();
    await h.time.advance(500);
    h.server.down = true;
    await h.time.advance(4000);
    h.server.down = false;
    await h.time.advance(3000);
    expect(h.manager.state).toEqual({ kind: "left", reason: "delayed-leave-fired" });
    expect(isJoinedOnServer(h)).toBe(false);
    expect(h.server.pendingFor(h.key)).toHaveLength(0);
    expect(h.manager.pendingTimers).toBe(0);
  });

  it("a delayed leave lost by the server (404 before it was due): re-armed and re-asserted, no probablyLeft", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    h.manager.join();
    await h.time.advance(500);
    h.server.lose(h.server.pendingFor(h.key)[0]);
    await h.time.advance(3000);
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
    expect(isJoinedOnServer(h)).toBe(true);
    expect(h.probablyLeft).toEqual([false]);
    expect(h.errors.some((e) => e.code === "delayed-leave-lost")).toBe(true);
    expect(h.manager.status).toBe("connected");
  });

  it("someone else replacing our membership: said so, and rejoined (autoRejoin) or left with the reason", async () => {
    for (const autoRejoin of [true, false]) {
      const h = harness({ delayedLeaveDelayMs: 2000, autoRejoin });
      h.manager.join();
      await h.time.advance(500);
      h.server.foreignWrite(h.key, {});
      await h.time.advance(3000);
      expect(h.errors.some((e) => e.code === "membership-removed")).toBe(true);
      if (autoRejoin) {
        // Seen by the periodic read of our key (or by the next heartbeat's 404, whichever comes first).
        expect(h.states).toContainEqual(
          expect.objectContaining({ kind: "reconnecting", reason: "membership-removed" }),
        );
        expect(isJoinedOnServer(h)).toBe(true);
        expect(h.manager.status).toBe("connected");
      } else {
        expect(h.manager.state).toEqual({ kind: "left", reason: "membership-removed" });
        expect(isJoinedOnServer(h)).toBe(false);
        expect(h.server.pendingFor(h.key)).toHaveLength(0);
        expect(h.manager.pendingTimers).toBe(0);
      }
    }
  });

  it("servers whose own writes cancel the delayed leave (Synapse < 1.127) still end up protected", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 }, (s) => (s.ownWritesCancel = true));
    h.manager.join();
    await h.time.advance(3000);
    expect(isJoinedOnServer(h)).toBe(true);
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
    await h.time.advance(10_000);
    expect(h.server.history.filter((e) => e.by === "delayed")).toHaveLength(0);
    expect(h.manager.status).toBe("connected");
  });

  it("lowers the delay to the server maximum (legacy dialect) and reports it", async () => {
    const h = harness({ delayedLeaveDelayMs: 10_000 }, (s) => {
      s.dialect = "legacy";
      s.maxDelayMs = 4000;
    });
    h.manager.join();
    await h.time.advance(500);
    expect(h.manager.effectiveTiming.delayMs).toBe(4000);
    // The adaptive heartbeat follows the lowered delay: its margin is the new delay/2 − delay/5 (1 200
    // ms), and on this fast link (restart timeout 250 ms) the interval is 4000 − 250 − 1200.
    expect(h.manager.effectiveTiming).toMatchObject({
      heartbeatIntervalMs: 2550,
      restartTimeoutMs: 250,
      heartbeatMarginMs: 1200,
    });
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
    expect(isJoinedOnServer(h)).toBe(true);
    let support: unknown;
    h.manager.support$.subscribe((s) => (support = s));
    expect(support).toMatchObject({ delayedEvents: true, delayMs: 4000, maxDelayMs: 4000 });
  });

  it("lowers the delay with the 1.157 dialect (403 + capability)", async () => {
    const h = harness({ delayedLeaveDelayMs: 10_000 }, (s) => (s.maxDelayMs = 3000));
    h.manager.join();
    await h.time.advance(500);
    expect(h.manager.effectiveTiming.delayMs).toBe(3000);
    expect(isJoinedOnServer(h)).toBe(true);
    await h.time.advance(20_000);
    expect(h.server.history.filter((e) => e.by === "delayed")).toHaveLength(0);
  });

  it("joins in a visible degraded mode when delayed events are disabled, with a short refreshed expiry", async () => {
    for (const dialect of ["1.157", "legacy"] as const) {
      const h = harness({}, (s) => {
        s.dialect = dialect;
        s.delayedEventsEnabled = false;
      });
      h.manager.join();
      await h.time.advance(500);
      expect(h.manager.state).toEqual({ kind: "joined", delayedLeave: false });
      let support: { delayedEvents?: boolean } = {};
      h.manager.support$.subscribe((s) => (support = s));
      expect(support.delayedEvents).toBe(false);
      expect(h.server.state.get(h.key)).toMatchObject({ expires: 120_000 });
      await h.time.advance(10 * 60_000);
      const c = h.server.state.get(h.key)!;
      expect((c.created_ts as number) + (c.expires as number)).toBeLessThanOrEqual(h.time.now() + 120_000);
      expect(h.server.count("restart")).toBe(0);
      const r = await leaveNow(h);
      expect(r).toEqual({ status: "left", via: "state-written" });
      expect(h.server.state.get(h.key)).toEqual({});
    }
  });

  it("a state send refused for good ends in a typed failed state, not a silent retry loop", async () => {
    const { matrixError } = await import("../helpers/fakeServer.js");
    const h = harness();
    h.server.inject("state", {
      kind: "error",
      error: () => matrixError(403, "M_FORBIDDEN", { error: "power levels" }),
    });
    h.manager.join();
    await h.time.advance(500);
    expect(h.manager.state.kind).toBe("failed");
    if (h.manager.state.kind === "failed") expect(h.manager.state.error.code).toBe("forbidden");
    // the delayed leave it scheduled is cleaned up by leave()
    const r = await leaveNow(h);
    expect(r.status).toBe("left");
    expect(h.server.pendingFor(h.key)).toHaveLength(0);
  });

  it("gives up after giveUpAfterMs of continuous failure, with the cause", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000, giveUpAfterMs: 30_000 });
    h.manager.join();
    await h.time.advance(500);
    h.server.down = true;
    await h.time.advance(40_000);
    expect(h.manager.state.kind).toBe("failed");
    if (h.manager.state.kind === "failed") expect(h.manager.state.error.code).toBe("gave-up");
  });
});

async function leaveNow(h: ReturnType<typeof harness>) {
  const p = h.manager.leave();
  await h.time.advance(2000);
  return p;
}
