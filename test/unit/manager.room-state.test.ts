/**
 * The manager's optional `roomState` view: when the room no longer holds our membership although our own
 * delayed leave is alive (another tab of this device left; a client wrote `{}` at our key without
 * cancelling our delayed leave), the manager puts it back at once instead of at the next hourly refresh.
 * Virtual time; the FakeServer's view lags 50 ms behind each write, as a sync would.
 */
import { describe, expect, it } from "@jest/globals";
import { eventsStateSource } from "../../src/index.js";
import { harness, isJoinedOnServer } from "../helpers/managerHarness.js";

const USER = "@alice:localhost";

function watched(extra: Parameters<typeof harness>[0] = {}) {
  return harness((server) => ({
    delayedLeaveDelayMs: 2000,
    roomState: eventsStateSource(server.roomStateView(USER)),
    ...(typeof extra === "function" ? extra(server) : extra),
  }));
}

describe("roomState: our membership gone from the room", () => {
  it("another tab of this device wrote {}: re-asserted within the grace period, probablyLeft meanwhile", async () => {
    const h = watched();
    h.manager.join();
    await h.time.advance(3000);
    expect(h.manager.status).toBe("connected");
    const pendingBefore = h.server.pendingFor(h.key);
    h.server.sameDeviceWrite(h.key, {});
    const removedAt = h.time.now();
    const took = await h.time.until(() => isJoinedOnServer(h), 5000, 5);
    // 50 ms view lag + 1000 ms grace + one write (20 ms)
    expect(took).toBeGreaterThanOrEqual(1000);
    expect(took).toBeLessThan(1200);
    await h.time.advance(1000);
    expect(h.manager.status).toBe("connected");
    expect(h.manager.probablyLeft).toBe(false);
    expect(h.probablyLeft).toEqual([false, true, false]);
    expect(h.states).toContainEqual({
      kind: "reconnecting",
      reason: "membership-removed",
      probablyLeft: true,
    });
    expect(h.errors.map((e) => e.code)).toContain("membership-removed");
    // The same delayed leave protects it: nothing was rescheduled.
    expect(h.server.pendingFor(h.key)).toEqual(pendingBefore);
    // A fresh membership: a new created_ts, as after any rejoin.
    expect(h.server.state.get(h.key)!.created_ts).toBeGreaterThan(removedAt);
    h.manager.dispose();
    expect(h.manager.pendingTimers).toBe(0);
  });

  it("without roomState the gap stays until something else notices (what the option is for)", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    h.manager.join();
    await h.time.advance(3000);
    h.server.sameDeviceWrite(h.key, {});
    await h.time.advance(10_000);
    expect(isJoinedOnServer(h)).toBe(false);
    expect(h.manager.status).toBe("connected");
  });

  it("with autoRejoin off: cleans up its delayed leave and ends in left(membership-removed)", async () => {
    const h = watched({ autoRejoin: false });
    h.manager.join();
    await h.time.advance(3000);
    h.server.sameDeviceWrite(h.key, {});
    await h.time.advance(3000);
    expect(h.manager.state).toEqual({ kind: "left", reason: "membership-removed" });
    expect(isJoinedOnServer(h)).toBe(false);
    expect(h.server.pendingFor(h.key)).toHaveLength(0);
    expect(h.manager.pendingTimers).toBe(0);
  });

  it("no extra writes while the view lags behind our own writes (join, update, heartbeats)", async () => {
    const h = watched({ membershipGraceMs: 100 });
    h.manager.join();
    await h.time.advance(5000);
    await Promise.all([h.manager.update({ callIntent: "audio" }), h.time.advance(500)]);
    await h.time.advance(20_000);
    expect(h.server.count("state")).toBe(2); // the join and the update
    expect(h.errors).toEqual([]);
    expect(h.probablyLeft).toEqual([false]);
  });

  it("a membership that leaves with the user is not put back; a later join still works", async () => {
    const h = watched();
    h.manager.join();
    await h.time.advance(3000);
    const left = h.manager.leave();
    await h.time.advance(3000);
    expect(await left).toEqual({ status: "left", via: "delayed-event-sent" });
    await h.time.advance(5000);
    expect(isJoinedOnServer(h)).toBe(false);
    expect(h.server.count("state")).toBe(1);
    h.manager.join();
    await h.time.advance(3000);
    expect(isJoinedOnServer(h)).toBe(true);
    expect(h.manager.status).toBe("connected");
  });
});
