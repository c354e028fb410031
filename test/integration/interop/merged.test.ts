/**
 * MSC4140 as merged: the manager's core scenario on a merged-only server and on a server offering both
 * shapes (merged requests only, asserted on the request log), and interop on a server offering both: a
 * matrix-js-sdk 43 MatrixRTCSession (unstable shape only) and our manager (merged shape) stay in the
 * call together and see each other.
 */
import { describe, expect, it } from "@jest/globals";
import "../../helpers/matrix.js"; // quiet matrix-js-sdk
import { CALL_MEMBER_EVENT_TYPE } from "../../../src/index.js";
import { startTestCall, SYNAPSE_PRESETS, waitFor } from "../../../src/testing/index.js";
import { stopClient, syncedClient } from "../../helpers/matrix.js";
import { coreScenario, DELAY, delayedEventRequests, quiet } from "./coreScenario.js";
import { idOf, joinWithJsSdk, jsSession, NO_LIMITS, observeWithUs, roomOf, sleep } from "./helpers.js";

// One after the other: with 1 s delays, concurrent scenarios on a loaded 2-core machine starve heartbeats.
describe("the manager on servers offering the merged shape", () => {
  it(
    "merged only: join, heartbeat, cut longer than the delay, rejoin, leave, with merged requests only",
    () => coreScenario("merged", { cut: true }),
    30_000,
  );

  it(
    "merged and unstable: the same, and the manager picks the merged shape",
    () => coreScenario("merged", { cut: true, homeserver: { delayedEventsShape: "both" } }),
    30_000,
  );
});

describe("interop on a server offering both shapes", () => {
  it("a matrix-js-sdk 43 session (unstable shape) and our manager (merged shape) see each other and stay", async () => {
    const call = await startTestCall({
      delayMs: DELAY,
      homeserver: { ...SYNAPSE_PRESETS.merged, delayedEventsShape: "both", ...NO_LIMITS },
    });
    const cleanups: (() => void)[] = [];
    try {
      const hs = call.homeserver;
      const alice = await call.device("alice", { logger: quiet });
      const carolCreds = await hs.createUser("carol");
      await hs.joinRoom(carolCreds.accessToken, call.roomId);
      const carol = await joinWithJsSdk(hs.baseUrl, carolCreds, call.roomId, { delayMs: DELAY });
      cleanups.push(() => carol.stop());
      // Alice's own view of the call, in a synced client of hers.
      const aliceWatch = await hs.loginDevice("alice", "WATCH");
      const aliceClient = await syncedClient(hs.baseUrl, aliceWatch);
      cleanups.push(() => stopClient(aliceClient));
      await roomOf(aliceClient, call.roomId);
      const aliceSees = observeWithUs(aliceClient, call.roomId);
      cleanups.push(() => aliceSees.stop());

      alice.manager.join();
      await alice.waitUntilConnected({ withinMs: 5000 });
      const both = [idOf(alice), idOf(carol)].sort();
      // js-sdk's session in carol's client lists alice; our observer in alice's client lists carol.
      await waitFor(
        () =>
          jsSession(carol.client, call.roomId)
            .memberships.map((m) => `${m.userId}|${m.deviceId}`)
            .sort()
            .join() === both.join(),
        5000,
        "carol's js-sdk session to list both",
      );
      await waitFor(() => aliceSees.ids().sort().join() === both.join(), 5000, "our observer to list both");

      // Several delays of heartbeats: nobody's delayed leave fires, both stay.
      await sleep(3 * DELAY);
      expect(alice.isJoinedOnServer()).toBe(true);
      const carolOnServer = hs
        .roomState(call.roomId)
        .filter((e) => e.type === CALL_MEMBER_EVENT_TYPE && e.sender === carol.userId);
      expect(carolOnServer.map((e) => Object.keys(e.content).length > 0)).toEqual([true]);
      expect(aliceSees.ids().sort()).toEqual(both);
      expect(jsSession(carol.client, call.roomId).memberships).toHaveLength(2);
      expect(
        hs
          .pendingDelayedEvents()
          .map((d) => d.userId)
          .sort(),
      ).toEqual([alice.userId, carol.userId].sort());

      // Each spoke its own shape: carol the query parameter and unstable management, alice merged.
      const byUser = (userId: string) => delayedEventRequests(call).filter((r) => r.userId === userId);
      const carolRoutes = new Set(byUser(carol.userId).map((r) => r.route));
      const aliceRoutes = new Set(byUser(alice.userId).map((r) => r.route));
      expect(carolRoutes.has("state.put.delayed")).toBe(true);
      expect([...carolRoutes].filter((r) => r === "delayed.schedule")).toEqual([]);
      expect(
        byUser(carol.userId).every(
          (r) => r.path.includes("/unstable/org.matrix.msc4140/") || r.route === "state.put.delayed",
        ),
      ).toBe(true);
      expect(aliceRoutes.has("delayed.schedule")).toBe(true);
      expect(aliceRoutes.has("state.put.delayed")).toBe(false);
      expect(byUser(alice.userId).every((r) => !r.path.includes("/unstable/"))).toBe(true);

      // Both leave cleanly.
      expect(await alice.manager.leave({ timeoutMs: 3000 })).toEqual({
        status: "left",
        via: "delayed-event-sent",
      });
      expect(await carol.leave(3000)).toBe(true);
      await waitFor(() => hs.pendingDelayedEvents().length === 0, 3000, "no delayed leaves left");
      expect(alice.membershipOnServer()).toEqual({});
    } finally {
      for (const c of cleanups.reverse()) c();
      await call.close();
    }
  }, 30_000);
});
