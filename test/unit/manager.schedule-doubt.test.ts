/**
 * A schedule of unknown outcome and the membership it may take down (src/core/machine/doubt.ts): found by
 * the randomized invariants (test/unit/invariants.test.ts, G3). On a server before Synapse 1.127 our own
 * membership write cancels the join's delayed leave; the recovery's schedule reaches the server just as
 * the network goes down, so its answer never comes and no listing gets through. The delayed leave it made
 * fires over our membership a delay later. Asserted on what the FakeServer holds and on its request log.
 */
import { describe, expect, it } from "@jest/globals";
import type { MembershipBackend } from "../../src/backends/types.js";
import type { FakeServer } from "../helpers/fakeServer.js";
import { harness, isJoinedOnServer, type Harness } from "../helpers/managerHarness.js";

const DELAY_MS = 2000;

/** No reads of our key (a widget host that refused them): nothing can see the `{}` land. */
function blindBackend(server: FakeServer, canList: boolean): MembershipBackend {
  return {
    sendDelayedStateEvent: server.sendDelayedStateEvent.bind(server),
    sendStateEvent: server.sendStateEvent.bind(server),
    updateDelayedEvent: server.updateDelayedEvent.bind(server),
    ...(canList ? { listDelayedEvents: server.listDelayedEvents.bind(server) } : {}),
  };
}

/** Join; the restart after our first write says "gone"; the network goes down once the recovery's schedule arrived. */
async function recoveryScheduleLost(canList: boolean): Promise<{ h: Harness; sentAt: number }> {
  const h = harness(
    (server) => ({ delayedLeaveDelayMs: DELAY_MS, backend: blindBackend(server, canList) }),
    (server) => (server.ownWritesCancel = true),
  );
  h.manager.join();
  // The recovery's schedule: the second one, after the restart's 404.
  await h.time.until(() => h.server.log.filter((e) => e.op === "schedule").length === 2, 1000, 1);
  const sentAt = h.server.log.filter((e) => e.op === "schedule")[1].at;
  await h.time.until(() => h.server.pendingFor(h.key).length === 1, 100, 1);
  h.server.down = true;
  expect(h.manager.probablyLeft).toBe(false);
  expect(isJoinedOnServer(h)).toBe(true);
  return { h, sentAt };
}

describe("a recovery's schedule whose answer never came, on a server before Synapse 1.127, nothing reading our key", () => {
  it.each([
    ["where the backend can list our delayed events", true],
    ["where it cannot (a widget host)", false],
  ])(
    "%s: probablyLeft from a delay after its send (before its leave fires), no membership write until that is settled, then joined again",
    async (_, canList) => {
      const { h, sentAt } = await recoveryScheduleLost(canList);
      const [orphan] = h.server.pendingFor(h.key);
      const firesAt = h.server.delayed.get(orphan)!.sendTs;
      // Said at the earliest moment it can fire (a delay after the send), before it does.
      await h.time.advance(sentAt + DELAY_MS - h.time.now());
      expect(h.manager.probablyLeft).toBe(true);
      expect(h.manager.state).toMatchObject({ kind: "reconnecting", probablyLeft: true });
      expect(isJoinedOnServer(h)).toBe(true);
      await h.time.advance(firesAt - h.time.now() + 1);
      expect(isJoinedOnServer(h)).toBe(false);
      expect(h.manager.probablyLeft).toBe(true);
      // Before: the manager said `connected` (probablyLeft false) again before any write put the membership back.
      const healedAt = h.time.now() + 500;
      await h.time.advance(500);
      h.server.down = false;
      await h.time.until(() => h.manager.status === "connected", 10_000, 5);
      const writes = h.server.log.filter((e) => e.op === "state" && e.at > firesAt);
      expect(writes.length).toBeGreaterThan(0);
      // The membership went back only once what the schedule made was found and cancelled (a listing after
      // healing), or, where nothing can list, once it surely fired (its abort, a delay after the send, plus
      // a delay and a request timeout).
      const firstListAfterHeal = h.server.log.find((e) => e.op === "list" && e.at >= healedAt)?.at;
      if (canList) expect(writes[0].at).toBeGreaterThanOrEqual(firstListAfterHeal!);
      else expect(writes[0].at).toBeGreaterThanOrEqual(sentAt + 2 * DELAY_MS);
      // probablyLeft turned false only after that write landed.
      expect(h.probablyLeft.slice(-2)).toEqual([true, false]);
      await h.time.advance(5000);
      expect(isJoinedOnServer(h)).toBe(true);
      expect(h.server.pendingFor(h.key)).toHaveLength(1);
      expect(h.manager.status).toBe("connected");
      expect(h.manager.probablyLeft).toBe(false);
      h.manager.dispose();
    },
  );
});
