/**
 * Both ends of the widget API in one Node process, so widget mode can be tested (and demonstrated)
 * without a browser: a matrix-widget-api `WidgetApi` (what a call app runs in its iframe) and a
 * `ClientWidgetApi` with a host driver (what Element Web runs). `globalThis` plays the window of
 * both the widget and the host; `postMessage` structured-clones the message and dispatches it on one
 * shared bus on a later tick. The transports do not cross-talk: each only accepts requests of the
 * opposite direction and responses of its own, and both filter on the widget id.
 */
import { ClientWidgetApi, Widget, WidgetApi, type Capability, type WidgetDriver } from "matrix-widget-api";
import { createClientWidgetApi } from "../widget-host/index.js";
import type { DelayedEventWidgetDriver } from "../widget-host/index.js";

const HOST_ORIGIN = "https://host.example";
const WIDGET_URL = "https://widget.example/widget.html";

let bus: EventTarget | undefined;

/** Make `globalThis` look like a window whose parent is itself. Idempotent. */
export function installWindowShim(): void {
  if (bus) return;
  const target = new EventTarget();
  bus = target;
  const g = globalThis as unknown as Record<string, unknown>;
  g.parent = globalThis;
  g.addEventListener = (...args: Parameters<EventTarget["addEventListener"]>) =>
    target.addEventListener(...args);
  g.removeEventListener = (...args: Parameters<EventTarget["removeEventListener"]>) =>
    target.removeEventListener(...args);
  g.postMessage = (data: unknown) => {
    const copy = structuredClone(data);
    setTimeout(() => target.dispatchEvent(new MessageEvent("message", { data: copy })), 0);
  };
}

const NOISE = [
  /^\[PostmessageTransport\]/,
  /^error (sending event|updating delayed event)/i,
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

export interface WidgetPair {
  widgetId: string;
  widgetApi: WidgetApi;
  clientApi: ClientWidgetApi;
  /** Stops both transports (what removing the iframe does to the host side, and more). */
  close(): void;
}

export interface ConnectOptions {
  driver: DelayedEventWidgetDriver | WidgetDriver;
  capabilities: Capability[];
  widgetId?: string;
  /** Use a plain `ClientWidgetApi` (no `refresh` hook) instead of `createClientWidgetApi`. */
  plainClientApi?: boolean;
  /** Transport timeout of the widget side (matrix-widget-api default 10 s). */
  widgetTimeoutMs?: number;
  creatorUserId?: string;
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
  const widgetId = options.widgetId ?? `widget-${process.pid}-${++counter}`;
  const widgetApi = new WidgetApi(widgetId, HOST_ORIGIN);
  if (options.widgetTimeoutMs !== undefined)
    widgetApi.transport.timeoutSeconds = options.widgetTimeoutMs / 1000;
  widgetApi.requestCapabilities(options.capabilities);

  let onLoad: (() => void) | undefined;
  const iframe = {
    contentWindow: globalThis,
    addEventListener(type: string, cb: () => void) {
      if (type === "load") onLoad = cb;
    },
  } as unknown as HTMLIFrameElement;
  const widget = new Widget({
    id: widgetId,
    creatorUserId: options.creatorUserId ?? "@host:localhost",
    type: "m.custom",
    url: WIDGET_URL,
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
    close() {
      widgetApi.transport.stop();
      clientApi.stop();
    },
  };
}
