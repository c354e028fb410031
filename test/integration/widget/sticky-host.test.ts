/**
 * matrix-js-sdk 43's sticky MatrixRTCSession as a widget through our host, on the test homeserver (the
 * suite also runs on real Synapse), and what the host does when its own server has no sticky events.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import { randomUUID } from "node:crypto";
import {
  createRoomWidgetClient,
  UnsupportedStickyEventsEndpointError,
  type MatrixClient,
} from "matrix-js-sdk";
import { MatrixRTCSessionEvent } from "matrix-js-sdk/lib/matrixrtc/index.js";
import {
  bareClient,
  connectWidget,
  quietWidgetLogs,
  startTestHomeserver,
  waitFor,
  type TestHomeserver,
  type WidgetPair,
} from "../../../src/testing/index.js";
import { callWidgetCapabilities, DelayedEventWidgetDriver } from "../../../src/widget-host/index.js";
import { stickyHostSuite } from "./sticky-host-suite.js";

const NO_LIMITS = { rateLimits: { message: null, delayedEventMgmt: null } };
const RTC = "org.matrix.msc4143.rtc.member";

stickyHostSuite(
  "widget mode, sticky memberships: js-sdk 43 through our host driver on the test homeserver",
  () => startTestHomeserver({ ...NO_LIMITS, stickyEvents: true }),
  { delayMs: 2000 },
);

describe("widget mode, sticky memberships: the host's server has no sticky events", () => {
  const servers: TestHomeserver[] = [];
  const cleanups: (() => void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) c();
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it("the host refuses (no plain event goes out) and js-sdk's widget reports sticky events unsupported", async () => {
    const restore = quietWidgetLogs();
    cleanups.push(restore);
    // The host's server: sticky events off (Synapse's default: it would send the event plain).
    const off = await startTestHomeserver(NO_LIMITS);
    // What the widget reads as /versions says yes, so the widget itself does not stop first.
    const claims = await startTestHomeserver({ ...NO_LIMITS, stickyEvents: true });
    servers.push(off, claims);
    const alice = await off.createUser("alice");
    const roomId = await off.createRoom(alice.accessToken);
    const driver = new DelayedEventWidgetDriver(bareClient(off.baseUrl, alice), {
      roomId,
      validateCapabilities: callWidgetCapabilities({ roomId, ...alice }),
    });
    let widgetClient!: MatrixClient;
    const pair: WidgetPair = await connectWidget({
      driver,
      capabilities: [],
      creatorUserId: alice.userId,
      beforeStart: (widgetApi) => {
        widgetClient = createRoomWidgetClient(
          widgetApi,
          {
            sendEvent: [RTC],
            receiveEvent: [RTC],
            receiveState: [{ eventType: "m.room.member" }],
            sendDelayedEvents: true,
            updateDelayedEvents: true,
            sendSticky: true,
            receiveSticky: true,
          },
          roomId,
          { baseUrl: claims.baseUrl, userId: alice.userId, deviceId: alice.deviceId },
          false,
        );
      },
    });
    cleanups.push(
      () => pair.close(),
      () => widgetClient.stopClient(),
    );
    await widgetClient.startClient();
    const session = widgetClient.matrixRTC.getRoomSession(widgetClient.getRoom(roomId)!);
    const errors: unknown[] = [];
    session.on(MatrixRTCSessionEvent.MembershipManagerError, (e) => errors.push(e));
    session.joinRTCSession(
      { userId: alice.userId, deviceId: alice.deviceId, memberId: randomUUID() },
      [],
      { type: "livekit", livekit_service_url: "https://lk.example" },
      {
        unstableSendStickyEvents: true,
        delayedLeaveEventDelayMs: 2000,
        networkErrorRetryMs: 100,
        manageMediaKeys: false,
      },
    );
    const sent = () => off.requests.filter((r) => r.route === "send" || r.route === "send.delayed");
    await waitFor(
      () => errors.length > 0 || sent().length > 0,
      5000,
      "js-sdk's membership manager to give up (or a send to reach the server)",
    );
    // Nothing reached the room: no sticky event, no plain one, no delayed one.
    expect(sent()).toEqual([]);
    expect(off.timeline(roomId).filter((e) => e.type === RTC)).toEqual([]);
    expect(off.pendingDelayedEvents()).toEqual([]);
    // And the widget was told why, in the words js-sdk's widget client understands.
    expect((errors[0] as Error).cause).toBeInstanceOf(UnsupportedStickyEventsEndpointError);
  });
});
