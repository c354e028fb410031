/**
 * The host page (browser): a matrix-js-sdk MatrixClient, a DelayedEventWidgetDriver on it, and a
 * ClientWidgetApi for one widget iframe on another origin. Everything comes from the query string:
 * `hs`, `user`, `device`, `token`, `room`, `widget` (the widget's origin), `delay`, `autojoin`.
 */
import { createClient } from "matrix-js-sdk";
import { Widget } from "matrix-widget-api";
import {
  CALL_MEMBER_EVENT_TYPE,
  DEFAULT_SLOT,
  membershipStateKey,
  widgetCapabilities,
} from "../../src/index.js";
import { createClientWidgetApi, DelayedEventWidgetDriver } from "../../src/widget-host/index.js";

interface HostHandle {
  ready: boolean;
  widgetId: string;
  /**
   * Removes the iframe without a leave from the widget, as closing its tab or a crash of the widget would;
   * the host then sends the widget's pending delayed leave itself (`api.stop()`).
   */
  removeWidget(): void;
  log: string[];
}

declare global {
  interface Window {
    host?: HostHandle;
  }
}

function param(name: string): string {
  const value = new URLSearchParams(location.search).get(name);
  if (!value) throw new Error(`host page: missing query parameter ${name}`);
  return value;
}

const log: string[] = [];
function note(line: string): void {
  log.push(line);
  const el = document.getElementById("log");
  if (el) el.textContent += `${new Date().toISOString().slice(11, 23)} ${line}\n`;
}

const userId = param("user");
const roomId = param("room");
const client = createClient({
  baseUrl: param("hs"),
  userId,
  deviceId: param("device"),
  accessToken: param("token"),
});
// The host's policy: the membership capabilities of this user's device, nothing else.
const driver = new DelayedEventWidgetDriver(client, {
  roomId,
  validateCapabilities: widgetCapabilities({ userId, deviceId: param("device") }),
});

const widgetId = "matrixrtc-membership-example";
const widgetUrl = new URL("/widget.html", param("widget"));
for (const [k, v] of Object.entries({
  widgetId,
  parentOrigin: location.origin,
  user: userId,
  device: param("device"),
  room: roomId,
  delay: new URLSearchParams(location.search).get("delay") ?? "10000",
  autojoin: new URLSearchParams(location.search).get("autojoin") ?? "0",
}))
  widgetUrl.searchParams.set(k, v);

const iframe = document.createElement("iframe");
iframe.src = widgetUrl.toString();
iframe.title = "membership widget";
// A widget gets scripts and its own origin (the host checks it), nothing more.
iframe.sandbox.add("allow-scripts", "allow-same-origin");
iframe.allow = "camera; microphone";
document.getElementById("widget")!.append(iframe);

const widget = new Widget({
  id: widgetId,
  creatorUserId: userId,
  type: "m.custom",
  url: widgetUrl.toString(),
  waitForIframeLoad: true,
});
const api = createClientWidgetApi(widget, iframe, driver);

const handle: HostHandle = {
  ready: false,
  widgetId,
  log,
  removeWidget() {
    // Stopping the api also sends the widget's pending delayed leave (driver.widgetClosed()).
    api.stop();
    iframe.remove();
    note("widget removed without a leave of its own: the host sends its pending delayed leave");
    void watchForLeave(Date.now());
  },
};

/**
 * The page shows the leave land by reading the device's membership from the room state until it is empty
 * (bounded: a delay plus 30 s; if the host's send failed, the server fires the delayed leave one delay
 * after the last heartbeat).
 */
async function watchForLeave(removedAt: number): Promise<void> {
  const delayMs = Number(new URLSearchParams(location.search).get("delay") ?? "10000");
  const stateKey = membershipStateKey(userId, param("device"), DEFAULT_SLOT);
  const seconds = () => ((Date.now() - removedAt) / 1000).toFixed(1);
  while (Date.now() - removedAt < delayMs + 30_000) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    let content: Record<string, unknown>;
    try {
      content = await client.getStateEvent(roomId, CALL_MEMBER_EVENT_TYPE, stateKey);
    } catch (e) {
      note(`cannot read the room state: ${(e as Error).message}`);
      return;
    }
    if (Object.keys(content).length === 0) {
      note(`the device left the call ${seconds()} s after the widget went`);
      return;
    }
  }
  note(`the membership is still in the room ${seconds()} s after the widget went`);
}
window.host = handle;

api.on("ready", () => {
  handle.ready = true;
  note(`widget ready on ${widget.origin}`);
});
document.getElementById("remove")!.addEventListener("click", () => handle.removeWidget());
note(`host on ${location.origin}, homeserver ${param("hs")}`);
