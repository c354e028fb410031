/**
 * Issue 20 item 10: a membership write processed after its local timeout, after a clean leave. The
 * FakeServer processes a "slow" request when its time comes, whether or not we still wait for it (a
 * request held in the network). After `left`, nothing of ours may remain: the leave keeps a delayed `{}`
 * pending until such a write can no longer land.
 */
import { describe, expect, it } from "@jest/globals";
import { LATE_WRITE_HORIZON_MS } from "../../src/core/limits.js";
import { harness, isJoinedOnServer, type Harness } from "../helpers/managerHarness.js";

/** leave(), with virtual time run until it resolves. */
async function leaveNow(h: Harness): Promise<unknown> {
  let result: unknown;
  void h.manager.leave().then((r) => (result = r));
  await h.time.until(() => result !== undefined, 20_000, 5);
  return result;
}

describe("a membership write that lands after leave() resolved (issue 20 item 10)", () => {
  it("is taken down by the leave's guard; nothing of ours remains once it can no longer land", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    h.manager.join();
    await h.time.until(() => h.manager.status === "connected", 5000);
    // The next write (an update) is held 12 s in the network: past its 10 s local timeout.
    h.server.inject("state", { kind: "slow", ms: 12_000 });
    const updated = h.manager.update({ callIntent: "audio" });
    updated.catch(() => undefined);
    await h.time.advance(10_500); // our timeout passed; the request is still on its way
    let result: unknown;
    void h.manager.leave().then((r) => (result = r));
    await h.time.until(() => result !== undefined, 20_000, 5);
    expect(result).toEqual({ status: "left", via: "delayed-event-sent" });
    expect(isJoinedOnServer(h)).toBe(false);
    // The guard: a delayed {} of ours stays pending while the write may still land.
    const guards = h.server.pendingFor(h.key);
    expect(guards).toHaveLength(1);
    expect(h.server.delayed.get(guards[0])!.content).toEqual({});
    // The held write lands (1.5 s after left, as the review saw): a full membership, for now.
    await h.time.until(() => isJoinedOnServer(h), 5000, 5);
    // The guard takes it down, and then nothing of ours remains.
    await h.time.advance(LATE_WRITE_HORIZON_MS);
    expect(isJoinedOnServer(h)).toBe(false);
    expect(h.server.pendingFor(h.key)).toEqual([]);
    expect(h.manager.state).toEqual({ kind: "left", reason: "user" });
    h.manager.dispose();
  });

  it("a join after such a leave cancels the guard first (it would fire into the new membership)", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    h.manager.join();
    await h.time.until(() => h.manager.status === "connected", 5000);
    h.server.inject("state", { kind: "slow", ms: 12_000 });
    h.manager.update({ callIntent: "audio" }).catch(() => undefined);
    await h.time.advance(10_500);
    await leaveNow(h);
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
    const guard = h.server.pendingFor(h.key)[0];
    const rejoinedAt = h.time.now();
    h.manager.join();
    await h.time.until(() => h.manager.status === "connected", 10_000);
    await h.time.advance(LATE_WRITE_HORIZON_MS);
    expect(h.server.delayed.has(guard)).toBe(false);
    // Nothing fired into the new call (the held write landed meanwhile, and the new membership stays).
    expect(h.server.history.some((e) => e.by === "delayed" && e.at > rejoinedAt)).toBe(false);
    expect(isJoinedOnServer(h)).toBe(true);
    expect(h.manager.status).toBe("connected");
    h.manager.dispose();
  });

  it.each([
    ["reading our key", false],
    ["without reads (the guard is sent at the horizon)", true],
  ])(
    "on a server before Synapse 1.127, whose rules let the late write cancel the guard: taken down after the horizon, %s",
    async (_, blind) => {
      // Found by the randomized invariants with that rule set (test/unit/invariants.test.ts, G1 and G2): our
      // own state write cancels our pending delayed state at the key, so the late write cancelled the very
      // guard that was to take it down, and stood for its whole `expires` (4 h).
      const h = harness(
        (server) => ({
          delayedLeaveDelayMs: 2000,
          ...(blind
            ? {
                backend: {
                  sendDelayedStateEvent: server.sendDelayedStateEvent.bind(server),
                  sendStateEvent: server.sendStateEvent.bind(server),
                  updateDelayedEvent: server.updateDelayedEvent.bind(server),
                  listDelayedEvents: server.listDelayedEvents.bind(server),
                },
              }
            : {}),
        }),
        (server) => (server.ownWritesCancel = true),
      );
      h.manager.join();
      await h.time.until(() => h.manager.status === "connected", 5000);
      h.server.inject("state", { kind: "slow", ms: 12_000 });
      h.manager.update({ callIntent: "audio" }).catch(() => undefined);
      await h.time.advance(10_500);
      expect(await leaveNow(h)).toMatchObject({ status: "left" });
      const [guard] = h.server.pendingFor(h.key);
      expect(guard).toBeDefined();
      await h.time.until(() => isJoinedOnServer(h), 5000, 5);
      // The late write cancelled the guard (these servers' rule).
      expect(h.server.delayed.has(guard)).toBe(false);
      await h.time.advance(LATE_WRITE_HORIZON_MS);
      expect(isJoinedOnServer(h)).toBe(false);
      expect(h.server.state.get(h.key)).toEqual({});
      expect(h.server.pendingFor(h.key)).toEqual([]);
      expect(h.manager.state).toEqual({ kind: "left", reason: "user" });
      // Nothing more afterwards.
      const sent = h.server.log.length;
      await h.time.advance(60_000);
      expect(h.server.log.length).toBe(sent);
      h.manager.dispose();
    },
  );

  it("without a write in doubt, a leave keeps nothing pending (no guard)", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    h.manager.join();
    await h.time.until(() => h.manager.status === "connected", 5000);
    expect(await leaveNow(h)).toEqual({ status: "left", via: "delayed-event-sent" });
    expect(h.server.pendingFor(h.key)).toEqual([]);
    h.manager.dispose();
  });
});
