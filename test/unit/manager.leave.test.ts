import { describe, expect, it } from "@jest/globals";
import { harness, isJoinedOnServer } from "../helpers/managerHarness.js";
import { matrixError } from "../helpers/fakeServer.js";

describe("leave", () => {
  it("fires the delayed leave with one request", async () => {
    const h = harness();
    h.manager.join();
    await h.time.advance(1000);
    const before = h.server.log.length;
    const p = h.manager.leave();
    await h.time.advance(100);
    await expect(p).resolves.toEqual({ status: "left", via: "delayed-event-sent" });
    // (Reads of our key and the sweep for a predecessor's leftovers aside: issues 20 and 25.)
    expect(
      h.server.log
        .slice(before)
        .map((e) => e.op)
        .filter((op) => op !== "probe" && op !== "list"),
    ).toEqual(["send"]);
    expect(h.server.state.get(h.key)).toEqual({});
    expect(h.server.pendingFor(h.key)).toHaveLength(0);
    expect(h.manager.state).toEqual({ kind: "left", reason: "user" });
    expect(h.manager.pendingTimers).toBe(0);
  });

  it("writes {} directly when the delayed leave is gone", async () => {
    const h = harness();
    h.manager.join();
    await h.time.advance(1000);
    h.server.lose(h.server.pendingFor(h.key)[0]);
    const p = h.manager.leave();
    await h.time.advance(200);
    await expect(p).resolves.toEqual({ status: "left", via: "state-written" });
    expect(h.server.state.get(h.key)).toEqual({});
  });

  it("times out honestly while the network is down, keeps retrying, and lands when it returns", async () => {
    const h = harness({ delayedLeaveDelayMs: 10_000 });
    h.manager.join();
    await h.time.advance(1000);
    h.server.down = true;
    const p = h.manager.leave({ timeoutMs: 1000 });
    await h.time.advance(1500);
    await expect(p).resolves.toEqual({ status: "timed-out" });
    expect(h.manager.state.kind).toBe("leaving");
    h.server.down = false;
    await h.time.until(() => h.manager.state.kind === "left", 60_000);
    expect(h.server.state.get(h.key)).toEqual({});
    expect(h.server.pendingFor(h.key)).toHaveLength(0);
  });

  it("leave before join is a no-op that says so", async () => {
    const h = harness();
    await expect(h.manager.leave()).resolves.toEqual({ status: "left", via: "nothing-to-leave" });
    expect(h.server.log).toHaveLength(0);
  });

  it("retries a rate-limited leave and a 5xx", async () => {
    const h = harness();
    h.manager.join();
    await h.time.advance(1000);
    h.server.inject("send", {
      kind: "error",
      error: () => matrixError(429, "M_LIMIT_EXCEEDED", { retry_after_ms: 300 }),
    });
    h.server.inject("send", { kind: "error", error: () => matrixError(502, "M_UNKNOWN") }, 1);
    const p = h.manager.leave();
    await h.time.advance(3000);
    await expect(p).resolves.toEqual({ status: "left", via: "delayed-event-sent" });
    expect(h.server.state.get(h.key)).toEqual({});
  });
});

describe("races", () => {
  it("leave while the delayed leave is being scheduled: the id is cancelled once it arrives, nothing orphaned", async () => {
    const h = harness();
    h.manager.join();
    await h.time.advance(5); // the schedule request is in flight
    const p = h.manager.leave();
    await h.time.advance(500);
    await expect(p).resolves.toEqual({ status: "left", via: "delayed-event-cancelled" });
    expect(h.server.pendingFor(h.key)).toHaveLength(0);
    expect(h.server.count("state")).toBe(0);
    expect(h.server.state.has(h.key)).toBe(false);
  });

  it("leave while the membership is in flight: the leave lands after it", async () => {
    const h = harness();
    h.manager.join();
    await h.time.advance(25); // schedule answered, membership PUT in flight
    expect(h.server.log.map((e) => e.op).filter((op) => op !== "list")).toEqual(["schedule", "state"]);
    const p = h.manager.leave();
    await h.time.advance(500);
    await expect(p).resolves.toEqual({ status: "left", via: "delayed-event-sent" });
    expect(h.server.state.get(h.key)).toEqual({});
    expect(h.server.pendingFor(h.key)).toHaveLength(0);
  });

  it("leave during a heartbeat in flight", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    h.manager.join();
    await h.time.advance(1005);
    expect(h.server.log.filter((e) => e.op !== "probe" && e.op !== "list").at(-1)!.op).toBe("restart");
    const p = h.manager.leave();
    await h.time.advance(500);
    await expect(p).resolves.toMatchObject({ status: "left" });
    expect(h.server.state.get(h.key)).toEqual({});
    expect(h.server.pendingFor(h.key)).toHaveLength(0);
  });

  it("leave then join at once: the old delayed leave never wipes the new membership", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    h.manager.join();
    await h.time.advance(5);
    void h.manager.leave();
    h.manager.join();
    await h.time.advance(10_000);
    expect(isJoinedOnServer(h)).toBe(true);
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
    expect(h.server.history.filter((e) => e.by === "delayed")).toHaveLength(0);
    expect(h.manager.status).toBe("connected");
  });

  it("join, leave, join, leave in a burst ends left with nothing pending", async () => {
    const h = harness();
    h.manager.join();
    await h.time.advance(30);
    void h.manager.leave();
    h.manager.join();
    await h.time.advance(15);
    const last = h.manager.leave();
    await h.time.advance(2000);
    await expect(last).resolves.toMatchObject({ status: "left" });
    expect(isJoinedOnServer(h)).toBe(false);
    expect(h.server.pendingFor(h.key)).toHaveLength(0);
    await h.time.advance(30_000);
    expect(isJoinedOnServer(h)).toBe(false);
  });

  it("a schedule whose answer is lost: the orphan that fires later is repaired by a re-assert", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    h.server.inject("schedule", { kind: "lose-response" });
    h.manager.join();
    await h.time.advance(6000);
    // the orphan fired once at its deadline; we re-asserted right after
    expect(h.server.history.filter((e) => e.by === "delayed").length).toBeLessThanOrEqual(1);
    expect(isJoinedOnServer(h)).toBe(true);
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
  });

  it("a schedule answered after our timeout, in time to keep: adopted, no second one sent (issue 20 item 15)", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    h.server.inject("schedule", { kind: "slow", ms: 1000 });
    h.manager.join();
    await h.time.advance(5000);
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
    // Before: a second schedule went out at our timeout and the late id was cancelled.
    expect(h.server.count("schedule")).toBe(1);
    expect(h.server.count("cancel")).toBe(0);
    expect(isJoinedOnServer(h)).toBe(true);
    expect(h.manager.status).toBe("connected");
  });

  it("a schedule answered too late to keep: cancelled, and a new one scheduled", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    h.server.inject("schedule", { kind: "slow", ms: 1950 });
    h.manager.join();
    await h.time.advance(8000);
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
    expect(h.server.count("cancel")).toBeGreaterThanOrEqual(1);
    expect(isJoinedOnServer(h)).toBe(true);
  });

  it("responses after dispose() change nothing and throw nothing; no timers remain", async () => {
    const h = harness();
    h.manager.join();
    await h.time.advance(5);
    const p = h.manager.leave({ timeoutMs: 10_000 });
    h.manager.dispose();
    await expect(p).resolves.toEqual({ status: "disposed" });
    await h.time.advance(20_000);
    expect(h.manager.pendingTimers).toBe(0);
    expect(h.server.count("state")).toBe(0);
    expect(() => h.manager.join()).toThrow(/dispose/);
    await expect(h.manager.update({ callIntent: "audio" })).rejects.toThrow();
  });

  it("dispose() while joined sends nothing: the server fires the leave within the delay", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    h.manager.join();
    await h.time.advance(3000);
    const n = h.server.log.length;
    h.manager.dispose();
    await h.time.advance(2100);
    expect(h.server.log.length).toBe(n);
    expect(isJoinedOnServer(h)).toBe(false);
    expect(h.manager.pendingTimers).toBe(0);
  });

  it("update() during a join resolves once the new content is on the server; rejects when the call ends", async () => {
    const h = harness();
    h.manager.join();
    await h.time.advance(200);
    const u = h.manager.update({
      callIntent: "video",
      fociPreferred: [{ type: "livekit", livekit_service_url: "https://b" }],
    });
    await h.time.advance(200);
    await u;
    expect(h.server.state.get(h.key)).toMatchObject({
      "m.call.intent": "video",
      foci_preferred: [{ livekit_service_url: "https://b" }],
    });
    h.server.down = true;
    const u2 = expect(h.manager.update({ callIntent: "audio" })).rejects.toThrow(/ended/);
    void h.manager.leave();
    await h.time.advance(100);
    await u2;
    h.manager.dispose();
  });
});
