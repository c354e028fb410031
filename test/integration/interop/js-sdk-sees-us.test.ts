/**
 * Direction 1: our device (MembershipManager + ClientBackend over real HTTP) as matrix-js-sdk's
 * MatrixRTCSession in another synced client lists it, through join, update, leave and a server-fired
 * leave after a network cut. Our observer runs on the same synced client and must agree with js-sdk.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import "../../helpers/matrix.js"; // quiet matrix-js-sdk
import { startTestCall, waitFor, type TestCall } from "../../../src/testing/index.js";
import {
  idOf,
  jsSdkView,
  jsSession,
  NO_LIMITS,
  observeWithUs,
  roomOf,
  sleep,
  type OurObserver,
} from "./helpers.js";

const DELAY = 1000;

let call: TestCall | undefined;
let ours: OurObserver | undefined;
afterEach(async () => {
  ours?.stop();
  ours = undefined;
  await call?.close();
  call = undefined;
});

describe("matrix-js-sdk's MatrixRTCSession lists our device", () => {
  it("join, update of intent and foci, leave: js-sdk's CallMembership follows, and our observer agrees", async () => {
    call = await startTestCall({ delayMs: DELAY, homeserver: NO_LIMITS });
    const alice = await call.device("alice", {
      callIntent: "video",
      fociPreferred: [{ type: "livekit", livekit_service_url: "https://lk-one.example" }],
    });
    const bob = await call.observer("bob");
    await roomOf(bob.client, call.roomId);
    ours = observeWithUs(bob.client, call.roomId);

    alice.manager.join();
    await bob.waitUntilSees(alice, { withinMs: 5000 });
    const [joined] = jsSession(bob.client, call.roomId).memberships;
    expect(joined.sender).toBe(alice.userId);
    expect(joined.deviceId).toBe(alice.deviceId);
    expect(joined.slotId).toBe("m.call#ROOM");
    expect(joined.callIntent).toBe("video");
    expect(joined.transports).toEqual([{ type: "livekit", livekit_service_url: "https://lk-one.example" }]);
    expect(joined.memberId).toBe(`${alice.userId}:${alice.deviceId}`);
    expect(joined.isExpired()).toBe(false);
    // The oldest (only) member's focus is its own first preferred one.
    expect(joined.getTransport(joined)).toEqual({
      type: "livekit",
      livekit_service_url: "https://lk-one.example",
    });
    await waitFor(() => ours!.ids().includes(idOf(alice)), 2000, "our observer to list alice");
    expect(ours.view()).toEqual(jsSdkView(bob.client, call.roomId));
    const createdTs = joined.createdTs();

    await alice.manager.update({
      callIntent: "audio",
      fociPreferred: [{ type: "livekit", livekit_service_url: "https://lk-two.example" }],
    });
    await waitFor(
      () => jsSession(bob.client, call!.roomId).memberships[0]?.callIntent === "audio",
      3000,
      "js-sdk to see the new intent",
    );
    const [updated] = jsSession(bob.client, call.roomId).memberships;
    expect(updated.transports).toEqual([{ type: "livekit", livekit_service_url: "https://lk-two.example" }]);
    // An update is not a rejoin: created_ts keeps the first join's time, so the order does not change.
    expect(updated.createdTs()).toBe(createdTs);
    await waitFor(() => ours!.latest()[0]?.callIntent === "audio", 2000, "our observer to see the update");
    expect(ours.view()).toEqual(jsSdkView(bob.client, call.roomId));

    const result = await alice.manager.leave({ timeoutMs: 5000 });
    expect(result).toEqual({ status: "left", via: "delayed-event-sent" });
    await bob.waitUntilGone(alice, { withinMs: 3000 });
    await waitFor(() => ours!.latest().length === 0, 2000, "our observer to drop alice");
    expect(alice.isJoinedOnServer()).toBe(false);
  });

  it("a cut longer than the delay: the server fires the leave, js-sdk drops us, and lists us again after the rejoin", async () => {
    call = await startTestCall({ delayMs: DELAY, homeserver: NO_LIMITS });
    const alice = await call.device("alice");
    const carol = await call.device("carol");
    const bob = await call.observer("bob");
    await roomOf(bob.client, call.roomId);
    ours = observeWithUs(bob.client, call.roomId);
    alice.manager.join();
    await bob.waitUntilSees(alice, { withinMs: 5000 });
    carol.manager.join();
    await bob.waitUntilSees(carol, { withinMs: 5000 });
    expect(bob.members()).toEqual([idOf(alice), idOf(carol)]);

    alice.network.cut();
    const cutAt = Date.now();
    await bob.waitUntilGone(alice, { withinMs: DELAY + 1500 });
    // The server fired no earlier than one delay after the last heartbeat it received (the deadline runs
    // from that heartbeat, which may be up to an interval before the cut, so not from cutAt).
    const lastArmedAt = Math.max(
      ...call.homeserver.requests
        .filter(
          (r) =>
            r.userId === alice.userId &&
            r.status === 200 &&
            r.ts <= cutAt &&
            ["delayed.restart", "delayed.legacy", "state.put.delayed"].includes(r.route),
        )
        .map((r) => r.ts),
    );
    const fired = call.homeserver
      .timeline(call.roomId)
      .find((e) => e.state_key === alice.manager.stateKey && Object.keys(e.content).length === 0);
    expect(fired).toBeDefined();
    expect(fired!.origin_server_ts - lastArmedAt).toBeGreaterThanOrEqual(DELAY - 5); // timer granularity
    // The server removed it: the leave is in room state, not just a client's opinion.
    expect(alice.isJoinedOnServer()).toBe(false);
    await waitFor(() => !ours!.ids().includes(idOf(alice)), 1000, "our observer to drop alice");
    expect(bob.members()).toEqual([idOf(carol)]);
    await sleep(DELAY);
    expect(bob.sees(carol)).toBe(true);

    alice.network.restore();
    await bob.waitUntilSees(alice, { withinMs: 4000 });
    await alice.waitUntilConnected({ withinMs: 2000 });
    // A rejoin is a new membership: alice is now younger than carol, in both views.
    expect(bob.members()).toEqual([idOf(carol), idOf(alice)]);
    await waitFor(() => ours!.ids().length === 2, 1000, "our observer to list both");
    expect(ours.view()).toEqual(jsSdkView(bob.client, call.roomId));
  });
});
