/**
 * Both ends of the widget API in one Node process, so widget mode can be tested (and demonstrated)
 * without a browser: a matrix-widget-api `WidgetApi` (what a call app runs in its iframe) and a
 * `ClientWidgetApi` with a host driver (what Element Web runs). `globalThis` is where both ends listen
 * (the host window, and each widget's own window); `postMessage` structured-clones the message and
 * dispatches it on one shared bus on a later tick, stamped with the sending window (`source`) and its
 * origin as a browser would: a widget's messages carry its iframe window and origin, the host's carry
 * the host window and origin, and a message posted to a widget with a `targetOrigin` that is not the
 * widget's current origin is not delivered. `WidgetPair.postToHost` posts as another frame or as the
 * host page itself, so tests can check that the host listens only to its widget. The transports do not
 * cross-talk: each only accepts requests of the opposite direction and responses of its own, and both
 * filter on the widget id.
 */
import { ClientWidgetApi, Widget, WidgetApi, type Capability, type WidgetDriver } from "matrix-widget-api";
import { createClientWidgetApi } from "../widget-host/index.js";
import type { DelayedEventWidgetDriver } from "../widget-host/index.js";

const HOST_ORIGIN = "https://host.example";
const WIDGET_ORIGIN = "https://widget.example";
const OTHER_FRAME_ORIGIN = "https://other.example";

/** A window of the modelled page: what `postMessage` is called on, and what `event.source` is. */
interface BusWindow {
  /** The window's current origin (a widget window's changes when the test navigates it). */
  origin: string;
  /** Posts `data` to this window; the sender is bound by whoever made this handle (see `windowTo`). */
  postMessage(data: unknown, targetOrigin?: string): void;
}

let bus: EventTarget | undefined;
let hostWindow: BusWindow | undefined;

/** Dispatches `data` on the bus as a message from `source` (at `origin`) on a later tick. */
function dispatch(data: unknown, source: object, origin: string): void {
  const target = bus!;
  const copy = structuredClone(data);
  setTimeout(() => {
    // Node's MessageEvent accepts only a MessagePort as `source`; a plain Event carries the same fields.
    const ev = new Event("message");
    Object.defineProperties(ev, {
      data: { value: copy },
      origin: { value: origin },
      source: { value: source },
    });
    target.dispatchEvent(ev);
  }, 0);
}

/** Whether a browser would deliver a message posted with `targetOrigin` to a window at `origin`. */
function targetMatches(targetOrigin: string | undefined, origin: string): boolean {
  return targetOrigin === undefined || targetOrigin === "*" || targetOrigin === origin;
}

/**
 * A handle on `to` as `from` sees it: `handle.postMessage(data, targetOrigin)` is `from` posting to
 * `to`, delivered (stamped with `from` and its origin) only if `targetOrigin` matches `to`'s origin.
 */
function windowTo(to: () => BusWindow, from: () => BusWindow): BusWindow {
  return {
    get origin() {
      return to().origin;
    },
    postMessage(data: unknown, targetOrigin?: string) {
      if (!targetMatches(targetOrigin, to().origin)) return;
      const sender = from();
      dispatch(data, sender, sender.origin);
    },
  };
}

/** Make `globalThis` look like a window whose parent is itself (the host page). Idempotent. */
export function installWindowShim(): void {
  if (bus) return;
  const target = new EventTarget();
  bus = target;
  const host: BusWindow = {
    origin: HOST_ORIGIN,
    postMessage: (data, targetOrigin) =>
      windowTo(
        () => host,
        () => host,
      ).postMessage(data, targetOrigin),
  };
  hostWindow = host;
  const g = globalThis as unknown as Record<string, unknown>;
  // Code that is not a connected widget posts to its "parent" as the host page itself.
  g.parent = host;
  g.addEventListener = (...args: Parameters<EventTarget["addEventListener"]>) =>
    target.addEventListener(...args);
  g.removeEventListener = (...args: Parameters<EventTarget["removeEventListener"]>) =>
    target.removeEventListener(...args);
  g.postMessage = (data: unknown, targetOrigin?: string) => host.postMessage(data, targetOrigin);
}

/** Who posts in `WidgetPair.postToHost`. */
export interface MessageSender {
  /**
   * `"widget"`: the widget's own iframe window; `"other-frame"`: another frame on the page (a window of
   * its own); `"host"`: the host page's own window.
   */
  window: "widget" | "other-frame" | "host";
  /**
   * The origin the browser reports for the sender. Default: that window's own origin (the widget's,
   * `https://other.example` for another frame, the host's). A different origin for `"widget"` models
   * the widget's iframe after it navigated elsewhere.
   */
  origin?: string;
}

const NOISE = [
  /^\[PostmessageTransport\]/,
  /^error (sending event|sending to-device event|updating delayed event)/i,
  /^non-fatal error/i,
  /^Widget .* is allowed capabilities/,
  /^Data includes parent_delay_id/,
  /^Widget .* is allowed to receive sticky events/,
  /^Pushing sticky state to widget/,
  /^Pushing$/,
  // A widget closed while the host still pushes its initial state.
  /^Failed to push room state/,
  /^error while getting the RTC transports/,
];

/** Silence matrix-widget-api's per-message console logging and its expected driver-error logs. */
export function quietWidgetLogs(): () => void {
  const originals = { debug: console.debug, log: console.log, warn: console.warn, error: console.error };
  for (const level of ["debug", "log", "warn", "error"] as const) {
    const original = originals[level];
    console[level] = (...args: unknown[]) => {
      if (typeof args[0] === "string" && NOISE.some((re) => re.test(args[0] as string))) return;
      original.apply(console, args);
    };
  }
  return () => Object.assign(console, originals);
}

/** Both ends of an in-process widget connection. */
export interface WidgetPair {
  /** The widget's id. */
  widgetId: string;
  /** The widget side: hand it to `WidgetBackend` / `widgetStateSource`. */
  widgetApi: WidgetApi;
  /** The host side, driven by the given driver. */
  clientApi: ClientWidgetApi;
  /** The widget's origin (from its URL; `ConnectOptions.widgetOrigin`). */
  widgetOrigin: string;
  /** The widget's iframe window as the host sees it (`iframe.contentWindow`, `event.source`). */
  widgetWindow: object;
  /**
   * Posts `message` to the host window as `from` would (structured-cloned, on a later tick): to check
   * that the host acts only on its widget's own window and origin.
   */
  postToHost(message: unknown, from: MessageSender): void;
  /**
   * The widget's iframe navigates to `origin`: from now on its messages carry that origin, and what the
   * host posts to the widget's origin no longer reaches it.
   */
  navigateWidget(origin: string): void;
  /** Stops both transports (what removing the iframe does to the host side, and more). */
  close(): void;
}

/** Options of `connectWidget`. */
export interface ConnectOptions {
  /** The host's driver (usually a `DelayedEventWidgetDriver` on a client). */
  driver: DelayedEventWidgetDriver | WidgetDriver;
  /** What the widget requests (e.g. `widgetCapabilities(...)`). */
  capabilities: Capability[];
  /** Default: a fresh id per call. */
  widgetId?: string;
  /** Use a plain `ClientWidgetApi` (no `refresh` hook) instead of `createClientWidgetApi`. */
  plainClientApi?: boolean;
  /** Transport timeout of the widget side (matrix-widget-api default 10 s). */
  widgetTimeoutMs?: number;
  /** The widget's creator, as the host's `Widget` record says. */
  creatorUserId?: string;
  /** The widget's origin (its URL is `<origin>/widget.html`). Default `https://widget.example`. */
  widgetOrigin?: string;
  /**
   * Runs after the capabilities are requested and before `start()`: where a widget creates what must see
   * the host's first messages (a `WidgetStateSource` gets the state pushed at negotiation).
   */
  beforeStart?: (widgetApi: WidgetApi) => void;
}

let counter = 0;

/** Negotiate a widget with a host in this process; resolves once both ends are "ready". */
export async function connectWidget(options: ConnectOptions): Promise<WidgetPair> {
  installWindowShim();
  const host = hostWindow!;
  const widgetId = options.widgetId ?? `widget-${process.pid}-${++counter}`;
  const origin = options.widgetOrigin ?? WIDGET_ORIGIN;
  // The widget's own window: what the host posts to (as the host), and the `source` of its messages.
  const own: BusWindow = { origin, postMessage: () => undefined };
  const toWidget = windowTo(
    () => own,
    () => host,
  );
  own.postMessage = toWidget.postMessage;
  // WidgetApi takes `globalThis.parent` once, in its constructor: give it the host as this widget sees it.
  const g = globalThis as unknown as Record<string, unknown>;
  g.parent = windowTo(
    () => host,
    () => own,
  );
  let widgetApi: WidgetApi;
  try {
    widgetApi = new WidgetApi(widgetId, HOST_ORIGIN);
  } finally {
    g.parent = host;
  }
  if (options.widgetTimeoutMs !== undefined)
    widgetApi.transport.timeoutSeconds = options.widgetTimeoutMs / 1000;
  widgetApi.requestCapabilities(options.capabilities);

  let onLoad: (() => void) | undefined;
  const iframe = {
    contentWindow: own,
    addEventListener(type: string, cb: () => void) {
      if (type === "load") onLoad = cb;
    },
  } as unknown as HTMLIFrameElement;
  const widget = new Widget({
    id: widgetId,
    creatorUserId: options.creatorUserId ?? "@host:localhost",
    type: "m.custom",
    url: `${origin}/widget.html`,
    waitForIframeLoad: true,
  });
  const clientApi = options.plainClientApi
    ? new ClientWidgetApi(widget, iframe, options.driver as WidgetDriver)
    : createClientWidgetApi(widget, iframe, options.driver as DelayedEventWidgetDriver);

  const ready = Promise.all([
    new Promise<void>((resolve) => widgetApi.once("ready", () => resolve())),
    new Promise<void>((resolve) => clientApi.once("ready", () => resolve())),
  ]);
  options.beforeStart?.(widgetApi);
  widgetApi.start();
  if (!onLoad) throw new Error("ClientWidgetApi did not listen for the iframe load event");
  onLoad();
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    ready,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("widget negotiation did not finish within 5 s")), 5000);
    }),
  ]).finally(() => clearTimeout(timer));

  return {
    widgetId,
    widgetApi,
    clientApi,
    widgetOrigin: origin,
    widgetWindow: own,
    postToHost(message, from) {
      if (from.window === "host") return dispatch(message, host, from.origin ?? host.origin);
      if (from.window === "widget") return dispatch(message, own, from.origin ?? own.origin);
      // Another frame: a window of its own, never the widget's.
      dispatch(message, { origin: from.origin ?? OTHER_FRAME_ORIGIN }, from.origin ?? OTHER_FRAME_ORIGIN);
    },
    navigateWidget(newOrigin) {
      own.origin = newOrigin;
    },
    close() {
      widgetApi.transport.stop();
      clientApi.stop();
    },
  };
}
