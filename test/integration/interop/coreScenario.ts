/**
 * The manager's core scenario (join, heartbeat across several delays, a cut longer than the delay,
 * rejoin, leave) on one test homeserver configuration, asserted on what the server holds, on what
 * matrix-js-sdk's MatrixRTCSession in another synced client lists, and on which MSC4140 HTTP shape the
 * requests used. Shared by presets.test.ts and merged.test.ts.
 */
import { expect } from "@jest/globals";
import "../../helpers/matrix.js"; // quiet matrix-js-sdk
import log from "loglevel";
import { CALL_MEMBER_EVENT_TYPE, type Support } from "../../../src/index.js";
import {
  startTestCall,
  SYNAPSE_PRESETS,
  waitFor,
  type SynapsePreset,
  type TestCall,
  type TestDevice,
  type TestHomeserverOptions,
} from "../../../src/testing/index.js";
import { NO_LIMITS, observeWithUs, roomOf, sleep } from "./helpers.js";
import { expectLeftThroughDelayedLeave } from "../../helpers/leave.js";

export const DELAY = 1000;
export const quiet = log.getLogger("presets-quiet");
quiet.setLevel("silent");

/** `{}` writes at the device's key: each one is a leave every other client saw. */
export function leavesAt(c: TestCall, d: TestDevice): number {
  return c.homeserver
    .timeline(c.roomId)
    .filter(
      (e) =>
        e.type === CALL_MEMBER_EVENT_TYPE &&
        e.state_key === d.manager.stateKey &&
        Object.keys(e.content).length === 0,
    ).length;
}

/** Which management routes the manager's requests took (js-sdk falls back to the body form when needed). */
function managementRoutes(c: TestCall): string[] {
  return [
    ...new Set(
      c.homeserver.requests
        .filter((r) => r.route.startsWith("delayed.") && r.route !== "delayed.list" && r.status === 200)
        .map((r) => r.route),
    ),
  ].sort();
}

/**
 * Paths of every MSC4140 request (scheduling, management, lookup, listing), which shows the shape
 * spoken: merged requests go to `/v1/delayed_events/…` and `/v3/rooms/…/delayed_event/…`.
 */
export function delayedEventRequests(c: TestCall): { route: string; path: string; userId?: string }[] {
  return c.homeserver.requests
    .filter((r) => r.route.startsWith("delayed.") || r.route.endsWith(".delayed"))
    .map(({ route, path, userId }) => ({ route, path, userId }));
}

export const WITH_DELAYED_EVENTS = (Object.keys(SYNAPSE_PRESETS) as SynapsePreset[]).filter(
  (p) => p !== "disabled" && p !== "merged",
);

/**
 * Join, heartbeat across several delays, (optionally) a cut longer than the delay and the rejoin, leave.
 * Asserted on the server's state and on js-sdk's session in another synced client.
 */
export async function coreScenario(
  preset: SynapsePreset,
  { cut, homeserver = {} }: { cut: boolean; homeserver?: TestHomeserverOptions },
): Promise<void> {
  // Servers offering the merged shape (alone or beside the unstable one) must get merged requests.
  const merged =
    (homeserver.delayedEventsShape ?? SYNAPSE_PRESETS[preset].delayedEventsShape ?? "unstable") !==
    "unstable";
  const call = await startTestCall({
    delayMs: DELAY,
    homeserver: { ...SYNAPSE_PRESETS[preset], ...NO_LIMITS, ...homeserver },
  });
  try {
    const alice = await call.device("alice", { logger: quiet });
    const bob = await call.observer("bob");
    await roomOf(bob.client, call.roomId);
    const ours = observeWithUs(bob.client, call.roomId);
    const support: Support[] = [];
    alice.manager.support$.subscribe((s) => support.push(s));

    // join
    alice.manager.join();
    await bob.waitUntilSees(alice, { withinMs: 5000 });
    await alice.waitUntilConnected({ withinMs: 2000 });
    expect(alice.manager.state).toEqual({ kind: "joined", delayedLeave: true });
    expect(support.at(-1)).toMatchObject({ delayedEvents: true, delayMs: DELAY });
    await waitFor(() => alice.pendingDelayedLeaves().length === 1, 2000, "one delayed leave");

    // heartbeat across several delays: the leave never fires
    await sleep(3 * DELAY);
    expect(alice.isJoinedOnServer()).toBe(true);
    expect(alice.pendingDelayedLeaves()).toHaveLength(1);
    expect(leavesAt(call, alice)).toBe(0);
    expect(bob.sees(alice)).toBe(true);
    expect(alice.manager.probablyLeft).toBe(false);

    if (cut) {
      // a cut longer than the delay: the server fires the leave, everyone sees it
      alice.network.cut();
      await bob.waitUntilGone(alice, { withinMs: DELAY + 1500 });
      expect(alice.isJoinedOnServer()).toBe(false);
      await waitFor(() => alice.manager.probablyLeft, DELAY, "probablyLeft");
      await waitFor(() => ours.latest().length === 0, 1000, "our observer to drop alice");
      await sleep(DELAY / 2);

      // rejoin when the network is back
      alice.network.restore();
      await bob.waitUntilSees(alice, { withinMs: 4000 });
      await alice.waitUntilConnected({ withinMs: 2000 });
      await waitFor(() => alice.pendingDelayedLeaves().length === 1, 2000, "a new delayed leave");
      expect(alice.manager.probablyLeft).toBe(false);
      expect(leavesAt(call, alice)).toBe(1);
      await sleep(DELAY);
      expect(bob.sees(alice)).toBe(true);
    }

    // leave
    expectLeftThroughDelayedLeave(
      await alice.manager.leave({ timeoutMs: 3000 }),
      call.homeserver.requests,
      alice.userId,
    );
    await bob.waitUntilGone(alice, { withinMs: 3000 });
    expect(alice.membershipOnServer()).toEqual({});
    expect(alice.pendingDelayedLeaves()).toEqual([]);
    expect(leavesAt(call, alice)).toBe(cut ? 2 : 1);

    // Before 1.143 there are no per-action routes: js-sdk's client falls back to the body form.
    // Merged: a 409 on a restart after the fired leave is followed by one lookup (`delayed.get`).
    // `delayed.cancel` only shows up when load delays a schedule answer past the local timeout and the
    // manager cancels that orphan (the leave counts above would catch a wrong cancel).
    const incidental = new Set(["delayed.get", "delayed.cancel"]);
    expect(managementRoutes(call).filter((r) => !incidental.has(r))).toEqual(
      preset === "1.116" || preset === "1.127"
        ? ["delayed.legacy"]
        : merged
          ? ["delayed.restart", "delayed.schedule", "delayed.send"]
          : ["delayed.restart", "delayed.send"],
    );
    if (!merged) expect(managementRoutes(call)).not.toContain("delayed.get");
    // One shape per server: merged endpoints only where offered, unstable ones only elsewhere.
    const spoken = delayedEventRequests(call);
    expect(spoken.length).toBeGreaterThan(0);
    for (const r of spoken) {
      if (merged)
        expect(r.path).toMatch(
          /^\/_matrix\/client\/(v1\/delayed_events\/|v3\/rooms\/[^/]+\/delayed_event\/)/,
        );
      else
        expect(r.path).toMatch(
          /^\/_matrix\/client\/(unstable\/org\.matrix\.msc4140\/|v3\/rooms\/[^/]+\/state\/)/,
        );
    }
    ours.stop();
  } finally {
    await call.close();
  }
}
