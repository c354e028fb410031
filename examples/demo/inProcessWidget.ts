/**
 * A widget and its host in one Node process, for the demo: the host side is a matrix-widget-api
 * `ClientWidgetApi` driven by this package's `DelayedEventWidgetDriver` on a matrix-js-sdk client (what
 * Element Web does for Element Call); the widget side is a `WidgetApi` (what Element Call runs in its
 * iframe). Both talk `postMessage` through `globalThis`, which plays the window of both: each message is
 * structured-cloned and delivered on a later tick, as between a page and its iframe.
 *
 * (The same idea as test/helpers/widgetBus.ts, kept here so the example stands on its own.)
 */
import type { MatrixClient } from "matrix-js-sdk";
import { WidgetApi, Widget } from "matrix-widget-api";
import { widgetCapabilities, type WidgetMembershipKey } from "../../src/index.js";
import { createClientWidgetApi, DelayedEventWidgetDriver } from "../../src/widget-host/index.js";

const HOST_ORIGIN = "https://host.demo";

let installed = false;

/** Make `globalThis` look like a window whose parent is itself. */
function installWindowShim(): void {
  if (installed) return;
  installed = true;
  const bus = new EventTarget();
  const g = globalThis as unknown as Record<string, unknown>;
  g.parent = globalThis;
  g.addEventListener = (...args: Parameters<EventTarget["addEventListener"]>) =>
    bus.addEventListener(...args);
  g.removeEventListener = (...args: Parameters<EventTarget["removeEventListener"]>) =>
    bus.removeEventListener(...args);
  g.postMessage = (data: unknown) => {
    const copy = structuredClone(data);
    setTimeout(() => bus.dispatchEvent(new MessageEvent("message", { data: copy })), 0);
  };
}

const NOISE = [
  /^\[PostmessageTransport\]/,
  /^error (sending event|updating delayed event)/i,
  /^non-fatal error/i,
  /^Widget .* is allowed capabilities/,
  /^Data includes parent_delay_id/,
];

/** matrix-widget-api logs every message to the console; this drops those lines. Returns an undo. */
export function quietWidgetLogs(): () => void {
  const originals = { log: console.log, warn: console.warn, error: console.error };
  for (const level of ["log", "warn", "error"] as const) {
    const original = originals[level];
    console[level] = (...args: unknown[]) => {
      if (typeof args[0] === "string" && NOISE.some((re) => re.test(args[0] as string))) return;
      original.apply(console, args);
    };
  }
  return () => Object.assign(console, originals);
}

export interface InProcessWidget {
  /** The widget side: give it to `new WidgetBackend(widgetApi, { membership })`. */
  widgetApi: WidgetApi;
  /** Stops both ends (what removing the iframe does). */
  close(): void;
}

let counter = 0;

/**
 * Host a widget for `client`'s user in `roomId`: the widget asks for exactly `widgetCapabilities(key)`,
 * the driver approves them, and this resolves once both ends have finished negotiating.
 */
export async function hostWidget(
  client: MatrixClient,
  roomId: string,
  key: WidgetMembershipKey,
): Promise<InProcessWidget> {
  installWindowShim();
  const widgetId = `demo-widget-${++counter}`;
  const widgetApi = new WidgetApi(widgetId, HOST_ORIGIN);
  widgetApi.requestCapabilities(widgetCapabilities(key));

  // The host's view of the iframe: its window is ours, and we fire its "load" ourselves.
  let onLoad: (() => void) | undefined;
  const iframe = {
    contentWindow: globalThis,
    addEventListener(type: string, cb: () => void) {
      if (type === "load") onLoad = cb;
    },
  } as unknown as HTMLIFrameElement;
  const widget = new Widget({
    id: widgetId,
    creatorUserId: key.userId,
    type: "m.custom",
    url: "https://widget.demo/call.html",
    waitForIframeLoad: true,
  });
  const driver = new DelayedEventWidgetDriver(client, { roomId });
  const clientApi = createClientWidgetApi(widget, iframe, driver);

  const ready = Promise.all([
    new Promise<void>((resolve) => widgetApi.once("ready", () => resolve())),
    new Promise<void>((resolve) => clientApi.once("ready", () => resolve())),
  ]);
  widgetApi.start();
  onLoad?.();
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    ready,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("widget negotiation did not finish within 5 s")), 5000);
    }),
  ]).finally(() => clearTimeout(timer));
  return {
    widgetApi,
    close() {
      widgetApi.transport.stop();
      clientApi.stop();
    },
  };
}
