/**
 * A call widget (browser, in an iframe on its own origin) for the ghost tests and bench: one device
 * joins through the widget API, either with our MembershipManager on a WidgetBackend (`impl=ours`:
 * leaveOnPageHide on by default) or with matrix-js-sdk's own, as Element Call runs it (`impl=js-sdk`:
 * createRoomWidgetClient, MatrixRTCSession with Element Call's join settings). Query string: `impl`,
 * `hs` (js-sdk's client wants a base URL), `widgetId`, `parentOrigin`, `user`, `device`, `room`, `delay`.
 */
import { createRoomWidgetClient } from "matrix-js-sdk";
import { Status as SdkStatus } from "matrix-js-sdk/lib/matrixrtc/index.js";
import { WidgetApi } from "matrix-widget-api";
import { MembershipManager, WidgetBackend, widgetCapabilities } from "../../../src/index.js";
import { ecJoinConfig, ecTransport, type CallPageHandle } from "./shared.js";

declare global {
  interface Window {
    ghostCall?: CallPageHandle;
  }
}

const q = new URLSearchParams(location.search);
const param = (name: string): string => {
  const value = q.get(name);
  if (!value) throw new Error(`widget: missing ${name}`);
  return value;
};
const impl = param("impl");
const roomId = param("room");
const userId = param("user");
const deviceId = param("device");
const delayMs = Number(param("delay"));
const events: string[] = [];
addEventListener("pagehide", (e) => events.push(`pagehide persisted=${e.persisted}`));
const api = new WidgetApi(param("widgetId"), param("parentOrigin"));
const CALL_MEMBER = "org.matrix.msc3401.call.member";

if (impl === "ours") {
  const key = { userId, deviceId };
  api.requestCapabilities(widgetCapabilities(key));
  const ready = new Promise<void>((resolve) => api.once("ready", () => resolve()));
  api.start();
  await ready;
  const manager = new MembershipManager({
    backend: new WidgetBackend(api, { membership: key }),
    roomId,
    userId,
    deviceId,
    delayedLeaveDelayMs: delayMs,
    focusActive: { type: "livekit", focus_selection: "multi_sfu" },
    fociPreferred: [ecTransport(roomId)],
  });
  window.ghostCall = {
    ready: true,
    impl,
    events,
    join: () => manager.join(),
    connected: () => manager.status === "connected",
    state: () => JSON.stringify(manager.state),
  };
} else {
  // As Element Call makes its client in a widget (the host's state pushes stand in for /sync).
  const client = createRoomWidgetClient(
    api,
    {
      sendState: [{ eventType: CALL_MEMBER, stateKey: `_${userId}_${deviceId}_m.call` }],
      receiveState: ["m.room.create", "m.room.name", "m.room.member", CALL_MEMBER].map((eventType) => ({
        eventType,
      })),
      sendDelayedEvents: true,
      updateDelayedEvents: true,
    },
    roomId,
    { baseUrl: param("hs"), userId, deviceId },
    false,
  );
  await client.startClient();
  client.matrixRTC.start();
  while (!client.getRoom(roomId)) await new Promise((r) => setTimeout(r, 20));
  const session = client.matrixRTC.getRoomSession(client.getRoom(roomId)!);
  window.ghostCall = {
    ready: true,
    impl,
    events,
    join: () =>
      session.joinRTCSession(
        { userId, deviceId, memberId: crypto.randomUUID() },
        [],
        ecTransport(roomId) as never,
        ecJoinConfig(delayMs),
      ),
    connected: () => session.membershipStatus === SdkStatus.Connected,
    state: () => String(session.membershipStatus),
  };
}
