/**
 * Makes a matrix-widget-api `ClientWidgetApi` listen only to its own widget.
 *
 * matrix-widget-api 1.19's `PostmessageTransport` listens for `message` events on the host window and
 * accepts any message with the right `api` direction, `widgetId` and `requestId`: it checks neither the
 * window that sent it (`event.source`) nor its origin (its optional `strictOriginCheck` compares with the
 * host's own origin, which a cross-origin widget never has). Widget ids are public and every frame on a
 * page can `postMessage` its parent, so any frame could act with the widget's capabilities, or answer the
 * host's requests to the widget (capabilities included) in its place.
 *
 * The guard replaces the transport's window listener with one that hands the transport only messages whose
 * `source` is the widget's iframe window and whose `origin` is the widget's origin (from its URL), and
 * pins the transport's `targetOrigin` (where replies and pushes may go) to that origin. It reaches two
 * internals of the transport, the listener and the widget window, both set once in its constructor; if a
 * matrix-widget-api version lacks them, installing the guard throws rather than leaving the host open.
 */
import log from "loglevel";
import type { ClientWidgetApi, Widget } from "matrix-widget-api";
import { WidgetHostSetupError } from "./errors.js";

const logger = log.getLogger("matrixrtc-membership:widget-host");

/** What the guard reads from a `PostmessageTransport` (private in its typings, present at run time). */
interface TransportInternals {
  /** The listener the transport registered on its inbound window (an arrow function: bound). */
  handleMessage?: unknown;
  /** Where the transport posts: the widget's iframe window. */
  transportWindow?: unknown;
  /** Where the transport listens: the host window (`globalThis`). */
  inboundWindow?: unknown;
}

interface Listenable {
  addEventListener(type: "message", listener: (ev: MessageEvent) => void): void;
  removeEventListener(type: "message", listener: (ev: MessageEvent) => void): void;
}

function isListenable(v: unknown): v is Listenable {
  return (
    typeof v === "object" &&
    v !== null &&
    typeof (v as Listenable).addEventListener === "function" &&
    typeof (v as Listenable).removeEventListener === "function"
  );
}

/** Transports already guarded (a second call changes nothing). */
const guarded = new WeakSet<object>();

/**
 * The origin a widget's messages must come from: its URL's origin. An opaque origin (`data:` or `blob:`
 * URLs, `"null"`) cannot be told apart from any other opaque frame, nor addressed by `postMessage`.
 */
export function widgetOrigin(widget: Widget): string {
  let origin: string;
  try {
    origin = widget.origin;
  } catch {
    throw new WidgetHostSetupError(`widget ${widget.id}: its URL is not an absolute URL`);
  }
  if (!/^[a-z][a-z0-9+.-]*:\/\/[^/]+$/i.test(origin))
    throw new WidgetHostSetupError(
      `widget ${widget.id}: its URL has no origin of its own (${origin}); serve the widget from an http(s) origin`,
    );
  return origin;
}

/** Whether `data` is a message the transport would act on for this widget (to log a drop, not content). */
function isForThisWidget(data: unknown, widgetId: string): boolean {
  if (typeof data !== "object" || data === null) return false;
  const m = data as { api?: unknown; widgetId?: unknown; response?: unknown };
  if (m.widgetId !== widgetId) return false;
  // A request from a widget, or a response to one of the host's requests.
  return (
    (m.api === "fromWidget" && m.response === undefined) || (m.api === "toWidget" && m.response !== undefined)
  );
}

function describeSender(ev: MessageEvent, source: unknown): string {
  const window = ev.source === source ? "the widget's own window" : "another window";
  return `${window}, origin ${typeof ev.origin === "string" && ev.origin !== "" ? ev.origin : "unknown"}`;
}

/**
 * Restricts `api` to its own widget: it acts only on messages from the widget's iframe window and origin
 * (others are dropped, logged at debug without their content), and posts only to that origin. Idempotent.
 * `createClientWidgetApi`, `acceptRefreshAction` and `attachCallWidgetActions` call it; a host that
 * constructs `new ClientWidgetApi(...)` itself calls it right after, before the iframe can load.
 *
 * Throws a WidgetHostSetupError when the widget's URL has no origin of its own, or when this
 * matrix-widget-api's transport does not have the internals the guard replaces.
 */
export function guardClientWidgetApi(api: ClientWidgetApi): void {
  const transport = api.transport;
  if (guarded.has(transport)) return;
  const origin = widgetOrigin(api.widget);
  const internals = transport as unknown as TransportInternals;
  const deliver = internals.handleMessage;
  const source = internals.transportWindow;
  const inbound = internals.inboundWindow;
  if (
    typeof deliver !== "function" ||
    typeof source !== "object" ||
    source === null ||
    !isListenable(inbound)
  )
    throw new WidgetHostSetupError(
      "this matrix-widget-api's ClientWidgetApi transport cannot be restricted to its widget's window " +
        "(expected PostmessageTransport's handleMessage, transportWindow and inboundWindow)",
    );
  const widgetId = api.widget.id;
  const listener = (ev: MessageEvent): void => {
    if (ev.source === source && ev.origin === origin) {
      (deliver as (ev: MessageEvent) => void)(ev);
      return;
    }
    if (isForThisWidget(ev.data, widgetId))
      logger.debug(`widget ${widgetId}: dropped a widget API message from ${describeSender(ev, source)}`);
  };
  inbound.removeEventListener("message", deliver as (ev: MessageEvent) => void);
  // A transport already stopped listens to nothing; the guard must not start it again.
  if (transport.ready) inbound.addEventListener("message", listener);
  transport.targetOrigin = origin;
  const stop = transport.stop.bind(transport);
  transport.stop = () => {
    inbound.removeEventListener("message", listener);
    stop();
  };
  guarded.add(transport);
}
