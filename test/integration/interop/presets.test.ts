/**
 * The manager's core scenarios (join, heartbeat across several delays, a cut longer than the delay,
 * rejoin, leave) on every Synapse behaviour preset of the test homeserver (protocol.md A.1), asserted
 * on what the server holds and what matrix-js-sdk's MatrixRTCSession in another synced client lists.
 * The presets run concurrently (each has its own homeserver) to keep the suite short. The `merged`
 * preset (not a Synapse release) runs in merged.test.ts.
 */
import { describe, expect, it } from "@jest/globals";
import "../../helpers/matrix.js"; // quiet matrix-js-sdk
import { type MembershipState, type Support } from "../../../src/index.js";
import { startTestCall, SYNAPSE_PRESETS, waitFor } from "../../../src/testing/index.js";
import { coreScenario, DELAY, leavesAt, quiet, WITH_DELAYED_EVENTS } from "./coreScenario.js";
import { NO_LIMITS, observeWithUs, roomOf, sleep } from "./helpers.js";
describe("core scenarios on every Synapse preset", () => {
  it("the presets under test are the ones the test homeserver knows", () => {
    expect(WITH_DELAYED_EVENTS).toEqual(["1.116", "1.127", "1.143", "1.156", "1.157", "1.163"]);
    expect(Object.keys(SYNAPSE_PRESETS)).toContain("merged");
    expect(Object.keys(SYNAPSE_PRESETS)).toContain("disabled");
  });

  it.concurrent.each(WITH_DELAYED_EVENTS.filter((p) => p !== "1.116"))(
    "Synapse %s: join, heartbeat, cut longer than the delay, rejoin, leave",
    (preset) => coreScenario(preset, { cut: true }),
    30_000,
  );

  it.concurrent("Synapse 1.116: join, heartbeat, leave", () => coreScenario("1.116", { cut: false }), 30_000);

  /**
   * On servers whose own state writes cancel the writer's delayed state (Synapse < 1.127, preset "1.116"),
   * the rejoin after a fired delayed leave once looped: the fresh write cancelled the new delayed leave,
   * the next restart 404'd, and a stale probablyLeft flag made the manager rejoin fresh again, forever.
   * The manager now judges "fired" by time, so that 404 is a lost delayed leave: re-armed, re-asserted.
   */
  it.concurrent(
    "Synapse 1.116: cut longer than the delay, then rejoin",
    () => coreScenario("1.116", { cut: true }),
    30_000,
  );

  it.concurrent(
    "delayed events disabled: degraded mode; a cut outlives the delay, the membership stays until it expires",
    async () => {
      const EXPIRY = 4000;
      const call = await startTestCall({
        delayMs: DELAY,
        homeserver: { ...SYNAPSE_PRESETS.disabled, ...NO_LIMITS },
      });
      try {
        const alice = await call.device("alice", {
          logger: quiet,
          degradedMembershipExpiryMs: EXPIRY,
          retryMaxMs: 500,
        });
        const bob = await call.observer("bob");
        await roomOf(bob.client, call.roomId);
        const ours = observeWithUs(bob.client, call.roomId);
        const states: MembershipState[] = [];
        alice.manager.state$.subscribe((s) => states.push(s));

        // join, without a delayed leave; support$ says why
        alice.manager.join();
        await bob.waitUntilSees(alice, { withinMs: 5000 });
        await alice.waitUntilConnected({ withinMs: 2000 });
        expect(alice.manager.state).toEqual({ kind: "joined", delayedLeave: false });
        expect(
          await new Promise<Support>((r) => alice.manager.support$.subscribe((s) => r(s))),
        ).toMatchObject({ delayedEvents: false, reason: expect.any(String) });
        expect(alice.pendingDelayedLeaves()).toEqual([]);
        // The short expiry is what protects the call if we crash.
        expect(alice.membershipOnServer()?.expires).toBeLessThanOrEqual(EXPIRY);

        // "heartbeat": the membership is refreshed (expires moves on), nothing is ever scheduled
        await sleep(2 * DELAY);
        expect(bob.sees(alice)).toBe(true);
        await sleep(DELAY);
        expect(alice.isJoinedOnServer()).toBe(true);
        expect(bob.sees(alice)).toBe(true);
        expect(call.homeserver.requests.filter((r) => r.route.startsWith("delayed."))).toEqual([]);

        // a cut longer than the delay: nothing fires, the server keeps the membership...
        alice.network.cut();
        const cutAt = Date.now();
        await sleep(DELAY * 1.5);
        expect(alice.isJoinedOnServer()).toBe(true);
        expect(bob.sees(alice)).toBe(true);
        expect(leavesAt(call, alice)).toBe(0);
        // ...until its expiry passes: js-sdk and our observer drop it on their own clocks, while the
        // server still holds the (expired) content.
        await bob.waitUntilGone(alice, { withinMs: EXPIRY + 1000 });
        expect(Date.now() - cutAt).toBeLessThanOrEqual(EXPIRY + 1000);
        await waitFor(() => ours.latest().length === 0, 1000, "our observer to drop the expired membership");
        expect(alice.isJoinedOnServer()).toBe(true);

        // rejoin: the next refresh after the cut writes a valid membership again
        alice.network.restore();
        await bob.waitUntilSees(alice, { withinMs: 3000 });
        await waitFor(() => ours.latest().length === 1, 1000, "our observer to list alice again");
        // Issue 11 item 9: while the membership was expired for others we said so (reconnecting,
        // membership-expired); `connected` again once our own write's answer is back.
        await alice.waitUntilConnected({ withinMs: 2000 });
        expect(states).toContainEqual({
          kind: "reconnecting",
          reason: "membership-expired",
          probablyLeft: true,
        });

        // leave writes `{}` directly
        expect(await alice.manager.leave({ timeoutMs: 3000 })).toEqual({
          status: "left",
          via: "state-written",
        });
        await bob.waitUntilGone(alice, { withinMs: 3000 });
        expect(alice.membershipOnServer()).toEqual({});
        expect(states.some((s) => s.kind === "failed")).toBe(false);
        ours.stop();
      } finally {
        await call.close();
      }
    },
    30_000,
  );
});
