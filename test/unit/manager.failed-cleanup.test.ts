/**
 * A membership write that lands after the call failed, with no delayed leave behind it, is taken down
 * again (found by the machine's model test, test/unit/machine.model.test.ts). Here through the public
 * manager and its driver, every request held by a ScriptedBackend until the test decides its fate, and
 * asserted on the server model's records.
 */
import { describe, expect, it } from "@jest/globals";
import log from "loglevel";
import { membershipStateKey, DEFAULT_SLOT } from "../../src/membership/content.js";
import { matrixError } from "../helpers/fakeServer.js";
import { harness, isJoinedOnServer } from "../helpers/managerHarness.js";
import { scriptedWorld, type Held } from "../helpers/scriptedBackend.js";

const quiet = log.getLogger("failed-cleanup-quiet");
quiet.setLevel("silent");

function world() {
  const { time, server, backend, manager } = scriptedWorld(quiet);
  const key = membershipStateKey("@alice:localhost", "DEV", DEFAULT_SLOT);
  const held = (op: Held["op"]): Held => {
    const h = backend.held.find((x) => x.op === op);
    if (!h) throw new Error(`no ${op} held (held: ${backend.held.map((x) => x.op).join(", ")})`);
    return h;
  };
  const answer = async (op: Held["op"], error?: () => unknown) => {
    await backend.settleOne(held(op), error ? "error" : "ok", error ?? (() => undefined));
    await time.advance(0);
  };
  return { time, server, backend, manager, key, held, answer };
}

describe("a write landing after the call failed", () => {
  it("is taken down again, and the state stays failed", async () => {
    const w = world();
    w.manager.join();
    await w.answer("schedule");
    // The first call then lists our key for a dead predecessor's leftovers (issue 20 item 11): none.
    await w.answer("list");
    // The membership write goes out and stays in flight.
    const write = w.held("state");
    // The heartbeat's restart is told "gone" (wrongly: the delayed leave is pending) before its due time.
    // (The second sweep comes after a live tab's longest heartbeat plus a restart's flight, orphans.ts
    // relistAfterMs: after this restart.)
    await w.time.advance(Math.max(w.manager.effectiveTiming.heartbeatIntervalMs, 1000));
    await w.answer("restart", () => matrixError(404, "M_NOT_FOUND"));
    // Recovery: the replaced delayed leave is cancelled, and the new schedule is refused: the call fails.
    await w.answer("cancel");
    await w.answer("schedule", () => matrixError(404, "M_NOT_FOUND"));
    expect(w.manager.state.kind).toBe("failed");
    expect(w.server.pendingFor(w.key)).toHaveLength(0);
    // Now the first write lands: our membership, with no delayed leave to remove it.
    await w.backend.settleOne(write, "ok", () => undefined);
    await w.time.advance(0);
    expect(w.server.state.get(w.key)?.device_id).toBe("DEV");
    // The manager takes it down again: one `{}` write, and the state stays failed.
    await w.answer("state");
    expect(w.server.state.get(w.key)).toEqual({});
    expect(w.server.pendingFor(w.key)).toHaveLength(0);
    expect(w.manager.state.kind).toBe("failed");
    await w.time.advance(10_000);
    expect(w.backend.held).toHaveLength(0);
    expect(w.manager.pendingTimers).toBe(0);
    // The app may still leave (nothing left to do) or join again.
    await expect(w.manager.leave()).resolves.toEqual({ status: "left", via: "nothing-to-leave" });
    w.manager.dispose();
  });
});

describe("join() after a failed call", () => {
  // The leave job that cleans up a failed call can finish at once (nothing to clean): it starts the new
  // call itself, and join() must not start another (found by the randomized invariants, seed
  // 1777141663: two schedules at once, one orphaned, which fired into the next call).
  it("starts exactly one new call: one schedule, no orphan, and leave() leaves nothing behind", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    h.server.inject("schedule", { kind: "error", error: () => matrixError(400, "M_BAD_JSON") });
    h.manager.join();
    await h.time.advance(100);
    expect(h.manager.state.kind).toBe("failed");
    h.manager.join();
    await h.time.advance(500);
    expect(h.server.count("schedule")).toBe(2);
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
    expect(isJoinedOnServer(h)).toBe(true);
    expect(h.manager.status).toBe("connected");
    const left = h.manager.leave();
    await h.time.advance(200);
    await expect(left).resolves.toEqual({ status: "left", via: "delayed-event-sent" });
    await h.time.advance(5000);
    expect(h.server.pendingFor(h.key)).toHaveLength(0);
    expect(isJoinedOnServer(h)).toBe(false);
    h.manager.dispose();
  });
});
