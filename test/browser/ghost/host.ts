/**
 * A widget host page (browser) for the ghost tests and bench: a MatrixClient, our
 * DelayedEventWidgetDriver on it (the call widget's capabilities for this device), and one call widget
 * in an iframe on another origin. `removeIframe()` takes the iframe out of the page and keeps the
 * widget API listening, so what the widget itself sends as it goes (its own `pagehide`) is all that can
 * take it out of the call before its delayed leave fires: the host does nothing of its own here.
 * Query string: `impl` (passed to the widget), `hs`, `user`, `device`, `token`, `room`, `widget` (the
 * widget's origin), `delay`.
 */
import { createClient } from "matrix-js-sdk";
import { Widget } from "matrix-widget-api";
import {
  callWidgetCapabilities,
  createClientWidgetApi,
  DelayedEventWidgetDriver,
} from "../../../src/widget-host/index.js";

interface GhostHostHandle {
  ready: boolean;
  /** Removes the widget's iframe; the host's widget API goes on listening. */
  removeIframe(): void;
}

declare global {
  interface Window {
    ghostHost?: GhostHostHandle;
  }
}

const q = new URLSearchParams(location.search);
const param = (name: string): string => {
  const value = q.get(name);
  if (!value) throw new Error(`host page: missing ${name}`);
  return value;
};
const userId = param("user");
const deviceId = param("device");
const roomId = param("room");
const client = createClient({ baseUrl: param("hs"), userId, deviceId, accessToken: param("token") });
const driver = new DelayedEventWidgetDriver(client, {
  roomId,
  validateCapabilities: callWidgetCapabilities({ roomId, userId, deviceId }),
});
const widgetId = "ghost-call-widget";
const url = new URL("/widget.html", param("widget"));
for (const [k, v] of Object.entries({
  impl: param("impl"),
  hs: param("hs"),
  widgetId,
  parentOrigin: location.origin,
  user: userId,
  device: deviceId,
  room: roomId,
  delay: param("delay"),
}))
  url.searchParams.set(k, v);
const iframe = document.createElement("iframe");
iframe.src = url.toString();
iframe.title = "call widget";
document.body.append(iframe);
const widget = new Widget({
  id: widgetId,
  creatorUserId: userId,
  type: "m.call",
  url: url.toString(),
  waitForIframeLoad: true,
});
const api = createClientWidgetApi(widget, iframe, driver);
const handle: GhostHostHandle = {
  ready: false,
  removeIframe: () => iframe.remove(),
};
api.on("ready", () => (handle.ready = true));
window.ghostHost = handle;
