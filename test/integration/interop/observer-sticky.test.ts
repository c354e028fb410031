/**
 * Issue 21 item 2 against a real writer: matrix-js-sdk 43's MatrixRTCSession joined with
 * `unstableSendStickyEvents: true` (its StickyEventMembershipManager) publishes a sticky
 * `org.matrix.msc4143.rtc.member` membership on the test homeserver speaking MSC4354 as Synapse 1.163
 * does. Another user's synced client runs our observer and js-sdk's own session: ours lists the sticky
 * device as js-sdk lists it, beside a state-dialect device, and drops it when it leaves.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import "../../helpers/matrix.js"; // quiet matrix-js-sdk
import type { MatrixClient } from "matrix-js-sdk";
import { startTestCall, waitFor, type TestCall } from "../../../src/testing/index.js";
import { syncedClient, stopClient } from "../../helpers/matrix.js";
import { idOf, jsSdkView, NO_LIMITS, observeWithUs, roomOf, type OurObserver } from "./helpers.js";

const DELAY = 1500;

let call: TestCall | undefined;
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) c();
  await call?.close();
  call = undefined;
});

describe("our observer lists js-sdk 43's sticky memberships", () => {
  it("lists js-sdk's sticky device as js-sdk does, beside a state device, and drops it when it leaves", async () => {
    call = await startTestCall({ delayMs: DELAY, homeserver: { ...NO_LIMITS, stickyEvents: true } });
    const hs = call.homeserver;

    // The watcher: our observer and js-sdk's session on one synced client of another user.
    const watcherCreds = await hs.createUser("watcher");
    await hs.joinRoom(watcherCreds.accessToken, call.roomId);
    const watcher: MatrixClient = await syncedClient(hs.baseUrl, watcherCreds);
    await roomOf(watcher, call.roomId);
    const ours: OurObserver = observeWithUs(watcher, call.roomId);
    cleanups.push(
      () => ours.stop(),
      () => stopClient(watcher),
    );
    const jsIds = () => jsSdkView(watcher, call!.roomId).map(idOf);

    // A state-dialect device (ours), then js-sdk's sticky device.
    const alice = await call.device("alice");
    alice.manager.join();
    await waitFor(() => ours.ids().includes(idOf(alice)), 5000, "our observer to list alice");

    const carolCreds = await hs.createUser("carol");
    await hs.joinRoom(carolCreds.accessToken, call.roomId);
    const carolClient = await syncedClient(hs.baseUrl, carolCreds);
    cleanups.push(() => stopClient(carolClient));
    const room = await roomOf(carolClient, call.roomId);
    const session = carolClient.matrixRTC.getRoomSession(room);
    const transport = { type: "livekit", livekit_service_url: "https://lk.carol.example" };
    // js-sdk 43's sticky manager needs the active transport (the third argument), or its join throws.
    session.joinRTCSession(
      { userId: carolCreds.userId, deviceId: carolCreds.deviceId, memberId: `carol-${Date.now()}` },
      [transport],
      transport,
      {
        unstableSendStickyEvents: true,
        delayedLeaveEventDelayMs: DELAY,
        delayedLeaveEventRestartMs: Math.round(DELAY / 3),
        delayedLeaveEventRestartLocalTimeoutMs: Math.round(DELAY / 4),
        networkErrorRetryMs: 200,
        manageMediaKeys: false,
      },
    );
    const carol = { userId: carolCreds.userId, deviceId: carolCreds.deviceId };
    await waitFor(
      () => ours.ids().includes(idOf(carol)),
      10_000,
      "our observer to list carol's sticky device",
    );
    await waitFor(() => jsIds().length === 2, 5000, "js-sdk to list both devices");

    // What the server delivered is a sticky rtc.member event, not a state event.
    const carolMember = ours.latest().find((m) => m.userId === carol.userId)!;
    expect(carolMember.stickyKey).toEqual(expect.any(String));
    expect(carolMember.memberId).toBe(carolMember.stickyKey);
    expect(carolMember.eventId).toEqual(expect.any(String));
    const delivered = watcher.getRoom(call.roomId)!.findEventById(carolMember.eventId!);
    expect(delivered?.getType()).toBe("org.matrix.msc4143.rtc.member");
    expect(delivered?.getStateKey()).toBeUndefined();
    expect(ours.latest().find((m) => m.userId === alice.userId)!.stickyKey).toBeUndefined();
    // The same devices in the same order as js-sdk's own list on the same client.
    expect(ours.ids()).toEqual(jsIds());
    expect(ours.ids()).toEqual([idOf(alice), idOf(carol)]);

    // Carol leaves (js-sdk sends its delayed sticky leave): both lists drop her.
    await session.leaveRoomSession(5000);
    await waitFor(() => !ours.ids().includes(idOf(carol)), 5000, "our observer to drop carol");
    await waitFor(() => jsIds().length === 1, 5000, "js-sdk to drop carol");
    expect(ours.ids()).toEqual(jsIds());
    expect(ours.ids()).toEqual([idOf(alice)]);
  }, 30_000);
});
