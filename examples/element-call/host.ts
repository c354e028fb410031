/**
 * The host page (browser) for Element Call: a matrix-js-sdk MatrixClient, a DelayedEventWidgetDriver on
 * it with the host side a call widget needs (capability policy, MSC4515 transports, OpenID), Element
 * Call's own actions answered, and Element Call's embedded build in an iframe on another port of the
 * same host name (same-site: Chromium gives a cross-site iframe no localStorage, and Element Call
 * does not start without it). The session (`hs`, `user`, `device`, `token`, `room`, `ec`: Element
 * Call's origin, `sfu`: the LiveKit token service, `sync`: "1" for a client that syncs before the widget
 * loads, as Element Web's does) comes from the host server at `/session/<id>.json` for `?session=<id>`,
 * so no access token is in a URL or a printed line.
 */
import { createClient } from "matrix-js-sdk";
import { Widget } from "matrix-widget-api";
import {
  attachCallWidgetActions,
  callWidgetCapabilities,
  createClientWidgetApi,
  DelayedEventWidgetDriver,
  toCapabilityValidator,
} from "../../src/widget-host/index.js";

interface ElementCallHostHandle {
  ready: boolean;
  /** Element Call's actions as they arrived: `io.element.join`, `im.vector.hangup`, ... */
  actions: string[];
  capabilities: { requested: string[]; approved: string[] };
  log: string[];
  /** Sends `im.vector.hangup` to Element Call. */
  hangup(): Promise<void>;
  /** Removes the iframe without a leave from Element Call (as a crash would); the host sends its pending leave. */
  removeWidget(): void;
}

declare global {
  interface Window {
    elementCallHost?: ElementCallHostHandle;
  }
}

const sessionId = new URLSearchParams(location.search).get("session") ?? "";
const session = (await (await fetch(`/session/${encodeURIComponent(sessionId)}.json`)).json()) as Record<
  string,
  string
>;
function param(name: string): string {
  const value = session[name];
  if (!value) throw new Error(`host page: the session has no ${name}`);
  return value;
}

const log: string[] = [];
function note(line: string): void {
  log.push(line);
  const el = document.getElementById("log");
  if (el) el.textContent = `${new Date().toISOString().slice(11, 23)} ${line}\n` + el.textContent;
}

const homeserver = param("hs");
const userId = param("user");
const deviceId = param("device");
const roomId = param("room");
const client = createClient({ baseUrl: homeserver, userId, deviceId, accessToken: param("token") });
if (session.sync === "1") {
  // Like Element Web: the client has synced the room before the widget loads; the host then feeds the
  // widget room-state changes and sticky events (a sticky-mode call's members) as they arrive.
  await client.startClient({ initialSyncLimit: 20 });
  while (client.getRoom(roomId)?.getMyMembership() !== "join") await new Promise((r) => setTimeout(r, 50));
  note("host client synced");
}
// The host's policy: exactly what a call widget needs for this user's device in this room.
const policy = toCapabilityValidator(callWidgetCapabilities({ roomId, userId, deviceId }));
const capabilities = { requested: [] as string[], approved: [] as string[] };
const driver = new DelayedEventWidgetDriver(client, {
  roomId,
  validateCapabilities: async (requested) => {
    const approved = [...(await policy(requested))];
    Object.assign(capabilities, { requested: [...requested], approved });
    note(`capabilities: ${approved.length} of ${requested.size} requested approved`);
    return approved;
  },
  rtcTransports: [{ type: "livekit", livekit_service_url: param("sfu") }],
  openId: "allow",
});

// Element Web's URL for Element Call, with the values filled in (Element Call reads the fragment).
const widgetId = "element-call-via-matrixrtc-membership";
const widgetParams = new URLSearchParams({
  widgetId,
  parentUrl: location.href,
  roomId,
  userId,
  deviceId,
  baseUrl: homeserver,
  intent: "join_existing",
  skipLobby: "true",
  confineToRoom: "true",
  header: "none",
  lang: "en",
  theme: "dark",
});
const widgetUrl = `${new URL("/index.html", param("ec"))}#?${widgetParams}`;

const iframe = document.createElement("iframe");
iframe.src = widgetUrl;
iframe.title = "Element Call";
// Like Element Web: scripts and its own origin (the host checks it), forms, popups, downloads.
iframe.sandbox.add("allow-scripts", "allow-same-origin", "allow-forms", "allow-popups", "allow-downloads");
iframe.allow = "camera; microphone; display-capture; autoplay; clipboard-write";
document.getElementById("widget")!.append(iframe);

// Element Call says when it has loaded (content_loaded), as Element Web expects of it.
const widget = new Widget({
  id: widgetId,
  creatorUserId: userId,
  type: "m.call",
  url: widgetUrl,
  waitForIframeLoad: false,
});
const api = createClientWidgetApi(widget, iframe, driver);

const handle: ElementCallHostHandle = {
  ready: false,
  actions: [],
  capabilities,
  log,
  hangup: () => controls.hangup(),
  removeWidget() {
    controls.dispose();
    api.stop();
    iframe.remove();
    note("widget removed without a leave of its own: the host sent its pending delayed leave");
  },
};
window.elementCallHost = handle;

const controls = attachCallWidgetActions(api, {
  onJoin: () => (handle.actions.push("io.element.join"), note("Element Call joined")),
  onHangup: () => (handle.actions.push("im.vector.hangup"), note("Element Call hung up")),
  onClose: () => (handle.actions.push("io.element.close"), note("Element Call asks to be closed")),
  onDeviceMute: (s) => (
    handle.actions.push("io.element.device_mute"),
    note(`mute state ${JSON.stringify(s)}`)
  ),
  onAlwaysOnScreen: (v) => (handle.actions.push(`set_always_on_screen:${v}`), true),
});

api.on("ready", () => {
  handle.ready = true;
  note(`Element Call ready on ${widget.origin}`);
});
document.getElementById("hangup")!.addEventListener("click", () => void handle.hangup());
document.getElementById("remove")!.addEventListener("click", () => handle.removeWidget());
note(`host on ${location.origin}, homeserver ${homeserver}`);
