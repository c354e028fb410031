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
  it("another tab of this device wrote {}: re-asserted at once, probablyLeft meanwhile", async () => {
    const h = watched();
    h.manager.join();
    await h.time.advance(3000);
    expect(h.manager.status).toBe("connected");
    const pendingBefore = h.server.pendingFor(h.key);
    h.server.sameDeviceWrite(h.key, {});
    const removedAt = h.time.now();
    const took = await h.time.until(() => isJoinedOnServer(h), 5000, 5);
    // The view had shown our write (it watches our key), so its "missing" counts at once: 50 ms view
    // lag + a read that confirms it (20 ms) + one write (20 ms). (Before issue 25: the 1 s grace first.)
    expect(took).toBeLessThan(200);
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
    // A fresh membership: no created_ts, so readers take its own (new) server timestamp.
    const rewrite = h.server.history.findLast((e) => e.stateKey === h.key)!;
    expect(rewrite.at).toBeGreaterThan(removedAt);
    expect(rewrite.content.created_ts).toBeUndefined();
    // With a live view, no periodic reads of our key: only the one that confirmed the removal, and the
    // one that learnt each fresh membership's server timestamp.
    expect(h.server.log.filter((e) => e.op === "probe").length).toBeLessThanOrEqual(3);
    h.manager.dispose();
    expect(h.manager.pendingTimers).toBe(0);
  });

  it("without a room view, reading our key every heartbeat interval closes the gap (issue 25)", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    h.manager.join();
    await h.time.advance(3000);
    h.server.sameDeviceWrite(h.key, {});
    const removedAt = h.time.now();
    const took = await h.time.until(() => isJoinedOnServer(h), 5000, 5);
    // One check interval (= the heartbeat interval, 1000 ms) at most, plus a read and a write.
    expect(took).toBeLessThanOrEqual(1000 + 60);
    await h.time.advance(100); // "certainly joined" again after the restart that follows the write
    expect(h.manager.status).toBe("connected");
    expect(h.states).toContainEqual({
      kind: "reconnecting",
      reason: "membership-removed",
      probablyLeft: true,
    });
    expect(h.server.history.findLast((e) => e.stateKey === h.key)!.at).toBeGreaterThan(removedAt);
    h.manager.dispose();
  });

  it("with no read path at all, joined says membershipWatched: false (it cannot vouch for what others see)", async () => {
    const h = harness((server) => ({
      delayedLeaveDelayMs: 2000,
      backend: {
        sendDelayedStateEvent: server.sendDelayedStateEvent.bind(server),
        sendStateEvent: server.sendStateEvent.bind(server),
        updateDelayedEvent: server.updateDelayedEvent.bind(server),
      },
    }));
    h.manager.join();
    await h.time.advance(3000);
    expect(h.manager.state).toEqual({ kind: "joined", delayedLeave: true, membershipWatched: false });
    expect(h.manager.status).toBe("connected");
    h.manager.dispose();
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
