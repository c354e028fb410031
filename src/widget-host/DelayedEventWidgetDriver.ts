import {
  WidgetDriver,
  type Capability,
  type IMatrixApiError,
  type IOpenIDUpdate,
  type IRoomEvent,
  type IRtcLivekitDelegateDelayedLeaveFromWidgetRequestData,
  type IRtcLivekitDelegateDelayedLeaveFromWidgetResponseData,
  type IRtcTransport,
  type IRtcTransportsResult,
  type ISendDelayedEventDetails,
  type ISendEventDetails,
  type IWidgetApiErrorResponseDataDetails,
  type SimpleObservable,
} from "matrix-widget-api";
import { toCapabilityValidator, type CapabilityAllowList, type CapabilityValidator } from "./capabilities.js";
import { answerOpenId, type OpenIdPolicy, type OpenIdToken } from "./openId.js";
import { sendToDeviceWith, type ToDeviceClient } from "./toDevice.js";
import { scheduleIfMerged, updateIfMerged } from "./mergedDelayedEvents.js";
import { readDelayId } from "../core/validate.js";
import { HostRefusalError } from "./errors.js";

/** js-sdk's `client.http.authedRequest` (a real MatrixClient has it). */
type AuthedRequest = (
  method: string,
  path: string,
  query: undefined,
  body: unknown,
  opts: { prefix: string },
) => Promise<unknown>;
import { WidgetBuckets, type LimitedRequest, type WidgetLimits } from "./limits.js";
import { OpenIdTokens } from "./openIdTokens.js";
import { OwnDelayedEvents } from "./ownDelayedEvents.js";
import { readCurrentState, readTimeline, type SyncedViewClient } from "./roomView.js";
import { driverClients } from "./stateFeed.js";
import { checkStickyDuration, isStickyLeave, stickyUnsupported, type StickySendClient } from "./sticky.js";
import { readStickyEvents } from "./stickyView.js";

export type { CapabilityAllowList, CapabilityValidator } from "./capabilities.js";
export type { StickySendClient } from "./sticky.js";

/** Request options the driver passes (part of matrix-js-sdk's `IRequestOpts`). */
export interface RequestAbortOptions {
  /** Aborts the request (the bound on `widgetClosed`). */
  abortSignal?: AbortSignal;
}

/** Options of `driver.widgetClosed()`. */
export interface WidgetClosedOptions {
  /** How long the sends may take before they are aborted. Default 5000 ms. */
  timeoutMs?: number;
}

/** What `driver.widgetClosed()` did with the widget's pending delayed leaves. */
export interface WidgetClosedResult {
  /** Delayed leaves the server sent now. */
  sent: number;
  /** Delayed leaves that were no longer pending (already fired, sent or cancelled: 404). */
  gone: number;
  /** Sends that failed or did not finish within the timeout (the server fires those at their due time). */
  failed: number;
}

const DEFAULT_CLOSE_TIMEOUT_MS = 5000;

/**
 * The part of matrix-js-sdk's `MatrixClient` the driver uses (a bare client, no startClient() needed);
 * a `MatrixClient` fits it. Typed here so that our declarations do not pull in matrix-js-sdk's (whose
 * crypto types reference a file it does not ship), and this entry never loads matrix-js-sdk itself.
 */
export interface DriverClient extends ToDeviceClient, SyncedViewClient, StickySendClient {
  /** A token a widget can show a third party (`POST /user/{userId}/openid/request_token`). */
  getOpenIdToken(): Promise<OpenIdToken>;
  /** Sends a state event now. */
  sendStateEvent(
    roomId: string,
    eventType: string,
    content: Record<string, unknown>,
    stateKey?: string,
  ): Promise<{
    /** The sent event's id. */
    event_id: string;
  }>;
  /** Sends a room (timeline) event now. */
  sendEvent(
    roomId: string,
    threadId: string | null,
    eventType: string,
    // js-sdk types timeline content as a union per event type; any content goes through.
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    content: any,
  ): Promise<{
    /** The sent event's id. */
    event_id: string;
  }>;
  /** Schedules a delayed state event (MSC4140). */
  _unstable_sendDelayedStateEvent(
    roomId: string,
    delayOpts: { delay: number },
    eventType: string,
    content: Record<string, unknown>,
    stateKey?: string,
  ): Promise<{
    /** The scheduled event's delay id. */
    delay_id: string;
  }>;
  /** Schedules a delayed room event (MSC4140). */
  _unstable_sendDelayedEvent(
    roomId: string,
    delayOpts: { delay: number },
    threadId: string | null,
    eventType: string,
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as for sendEvent
    content: any,
  ): Promise<{
    /** The scheduled event's delay id. */
    delay_id: string;
  }>;
  /** Pushes a delayed event's deadline back. */
  _unstable_restartScheduledDelayedEvent(delayId: string, opts?: RequestAbortOptions): Promise<unknown>;
  /** Sends a delayed event now. */
  _unstable_sendScheduledDelayedEvent(delayId: string, opts?: RequestAbortOptions): Promise<unknown>;
  /** Drops a delayed event. */
  _unstable_cancelScheduledDelayedEvent(delayId: string, opts?: RequestAbortOptions): Promise<unknown>;
  /** The room's current state events (`/rooms/{roomId}/state`). */
  roomState(roomId: string): Promise<
    {
      /** The event type. */
      type: string;
      /** The state key. */
      state_key?: string;
    }[]
  >;
}

/** MSC4515 RTC transports (e.g. `{ type: "livekit", livekit_service_url }`), or where to get them. */
export type RtcTransportsOption = IRtcTransport[] | (() => IRtcTransport[] | Promise<IRtcTransport[]>);

/** Options of `new DelayedEventWidgetDriver(client, options)`; only `roomId` is required. */
export interface DelayedEventWidgetDriverOptions {
  /** The widget's room: where events go when a request names no `room_id`. */
  roomId: string;
  /**
   * The host's capability policy: a function, or an allow-list (the approved set is what was requested
   * and allowed). Default: approve nothing. `callWidgetCapabilities()` is the set a call widget needs.
   */
  validateCapabilities?: CapabilityValidator | CapabilityAllowList;
  /** Rooms the widget may name in `room_id` (besides `roomId`). Default none. */
  knownRooms?: string[];
  /**
   * The answer to MSC4515 `get_rtc_transports` (the widget also needs the
   * `org.matrix.msc4515.rtc_transports` capability). Default: none, the request fails.
   */
  rtcTransports?: RtcTransportsOption;
  /**
   * Whether the widget gets an OpenID token for the user. Default `"deny"`. An allowed widget gets the
   * same token again while it has at least 5 minutes (or half its life) left.
   */
  openId?: OpenIdPolicy;
  /**
   * What this widget can make the host send: per-kind rate limits and the longest `delay`. Defaults are far
   * above what a call widget such as Element Call sends (see `WidgetLimits`).
   */
  limits?: WidgetLimits;
}

/** The MSC4157 `update_delayed_event` actions, including the MSC text's `refresh` for `restart`. */
export type UpdateDelayedEventActionName = "cancel" | "restart" | "send" | "refresh";

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null;
}

/** A monotonic clock in ms (deadlines must not follow wall-clock steps). */
const monotonicNow = (): number => performance.now();

/** What a server answers for a delay id it does not know: the widget classifies it as "gone". */
function notFound(): HostRefusalError {
  return new HostRefusalError(404, { errcode: "M_NOT_FOUND", error: "Delayed event not found" });
}

/** Whether a failure means the delayed event is not pending any more (404, or 409 from MSC4140 as merged). */
function isGone(error: unknown): boolean {
  return isRecord(error) && (error.httpStatus === 404 || error.httpStatus === 409);
}

/** The MatrixRTC membership types: a delayed `{}` state event at one of them is a delayed leave. */
const MEMBERSHIP_TYPES = new Set(["org.matrix.msc3401.call.member", "org.matrix.msc4143.rtc.member"]);

/** Whether a delayed event is a MatrixRTC delayed leave: `{}` at a membership state key. */
function isDelayedLeave(eventType: string, stateKey: string | null, content: unknown): boolean {
  return (
    stateKey !== null &&
    MEMBERSHIP_TYPES.has(eventType) &&
    isRecord(content) &&
    !Array.isArray(content) &&
    Object.keys(content).length === 0
  );
}

function headersRecord(headers: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (isRecord(headers) && typeof headers.forEach === "function")
    (headers as unknown as Headers).forEach((value, name) => (out[name.toLowerCase()] = value));
  return out;
}

/**
 * What a widget needs to classify a failed Matrix request: status, every response header (so
 * `Retry-After` arrives), the URL and the whole JSON body (`retry_after_ms`, `org.matrix.msc4140.*`).
 * Undefined for errors that never got an HTTP answer.
 */
export function matrixApiErrorOf(error: unknown): IMatrixApiError | undefined {
  if (!isRecord(error) || typeof error.httpStatus !== "number") return undefined;
  // A js-sdk MatrixError keeps the JSON body in `data` (checked by shape, so this entry never loads js-sdk).
  const body: Record<string, unknown> = isRecord(error.data) ? { ...error.data } : {};
  const message = typeof error.message === "string" ? error.message : "Unknown error";
  return {
    http_status: error.httpStatus,
    http_headers: headersRecord(error.httpHeaders),
    url: typeof error.url === "string" ? error.url : "",
    response: {
      ...body,
      errcode: typeof body.errcode === "string" ? body.errcode : "M_UNKNOWN",
      error: typeof body.error === "string" ? body.error : message,
    },
  };
}

/**
 * A matrix-widget-api `WidgetDriver` that carries a widget's MSC4157 requests to the homeserver with a
 * matrix-js-sdk `MatrixClient`: state and room events with and without `delay`, sticky room events
 * (MSC4407) with and without `delay`, and the three delayed-event actions. Use it with `ClientWidgetApi`
 * (see `createClientWidgetApi`).
 *
 * Events are sent as they are (no end-to-end encryption unless the client encrypts `sendEvent`).
 *
 * One driver serves one widget: it remembers the delayed events its widget scheduled, and lets that widget
 * restart, send or cancel only those (any other id is answered like a server answers an unknown one, 404
 * `M_NOT_FOUND`). `createClientWidgetApi` refuses to attach a driver that already serves a live widget.
 */
export class DelayedEventWidgetDriver extends WidgetDriver {
  /** The widget's room (`options.roomId`). */
  readonly roomId: string;
  private readonly validator: CapabilityValidator;
  private readonly knownRooms: string[];
  private readonly rtcTransports: RtcTransportsOption | undefined;
  private readonly openId: OpenIdPolicy;
  /** The delayed events this driver's widget scheduled: the only ones it may manage. */
  private readonly own = new OwnDelayedEvents();
  /** What this widget may still make the host send. */
  private readonly buckets: WidgetBuckets;
  private readonly openIdTokens: OpenIdTokens;

  constructor(
    private readonly client: DriverClient,
    options: DelayedEventWidgetDriverOptions,
  ) {
    super();
    this.roomId = options.roomId;
    this.knownRooms = [options.roomId, ...(options.knownRooms ?? [])];
    this.validator = toCapabilityValidator(options.validateCapabilities);
    this.rtcTransports = options.rtcTransports;
    this.openId = options.openId ?? "deny";
    driverClients.set(this, client as object);
    this.buckets = new WidgetBuckets(options.limits);
    this.openIdTokens = new OpenIdTokens(
      () => this.client.getOpenIdToken(),
      (now) => this.buckets.take("openIdTokens", now),
      monotonicNow,
    );
  }

  /** Takes a token from the widget's `kind` bucket, or refuses like a rate-limiting server (429). */
  private spend(kind: LimitedRequest): void {
    const wait = this.buckets.take(kind, monotonicNow());
    if (wait > 0)
      throw new HostRefusalError(429, {
        errcode: "M_LIMIT_EXCEEDED",
        error: "Too many requests from this widget",
        retry_after_ms: wait,
      });
  }

  /**
   * A widget's `delay`: an integer number of ms from 0 to `limits.maxDelayMs`. matrix-widget-api passes on
   * whatever the widget sent (`null` included, which js-sdk would send as a plain event at once).
   */
  private checkDelay(delay: unknown): number {
    if (typeof delay !== "number" || !Number.isInteger(delay) || delay < 0)
      throw new HostRefusalError(400, {
        errcode: "M_INVALID_PARAM",
        error: "delay must be a non-negative integer number of milliseconds",
      });
    const max = this.buckets.maxDelayMs;
    if (delay > max)
      // As Synapse answers a delay over its maximum, so the widget can retry with a shorter one.
      throw new HostRefusalError(400, {
        errcode: "M_UNKNOWN",
        error: "The requested delay exceeds the allowed maximum.",
        "org.matrix.msc4140.errcode": "M_MAX_DELAY_EXCEEDED",
        "org.matrix.msc4140.max_delay": max,
      });
    return delay;
  }

  override async validateCapabilities(requested: Set<Capability>): Promise<Set<Capability>> {
    const approved = await this.validator(new Set(requested));
    // Never approve what was not asked for.
    return new Set([...approved].filter((cap) => requested.has(cap)));
  }

  override async sendEvent(
    eventType: string,
    content: unknown,
    stateKey: string | null = null,
    roomId: string | null = null,
  ): Promise<ISendEventDetails> {
    this.spend("sendEvents");
    const room = roomId ?? this.roomId;
    const body = (content ?? {}) as never;
    const res =
      stateKey !== null
        ? await this.client.sendStateEvent(room, eventType as never, body, stateKey)
        : await this.client.sendEvent(room, null, eventType as never, body);
    return { roomId: room, eventId: res.event_id };
  }

  override async sendDelayedEvent(
    delay: number,
    eventType: string,
    content: unknown,
    stateKey: string | null = null,
    roomId: string | null = null,
  ): Promise<ISendDelayedEventDetails> {
    delay = this.checkDelay(delay);
    this.spend("scheduleDelayedEvents");
    const room = roomId ?? this.roomId;
    const body = (content ?? {}) as never;
    // MSC4140 as merged where the server offers it (mergedDelayedEvents.ts).
    const req = { roomId: room, eventType, content: body, delayMs: delay, stateKey: stateKey ?? undefined };
    let delayId = await scheduleIfMerged(this.client, req);
    if (delayId === undefined) {
      const res =
        stateKey !== null
          ? await this.client._unstable_sendDelayedStateEvent(
              room,
              { delay },
              eventType as never,
              body,
              stateKey,
            )
          : await this.client._unstable_sendDelayedEvent(room, { delay }, null, eventType as never, body);
      // js-sdk passes the body through: an id outside the grammar is a bad answer, never put in a URL.
      delayId = readDelayId(res);
    }
    this.own.add(
      { delayId, delayMs: delay, leave: isDelayedLeave(eventType, stateKey, body) },
      monotonicNow(),
    );
    return { roomId: room, delayId };
  }

  /**
   * MSC4407: a sticky room event (MSC4354), sent through the client's `_unstable_sendStickyEvent`, which
   * refuses when the server's `/versions` lacks `org.matrix.msc4354` (the widget then hears "unsupported"),
   * so a server without sticky events never turns it into a plain event. Counted with the widget's sends.
   */
  override async sendStickyEvent(
    stickyDurationMs: number,
    eventType: string,
    content: unknown,
    roomId: string | null = null,
  ): Promise<ISendEventDetails> {
    const duration = checkStickyDuration(stickyDurationMs);
    if (typeof this.client._unstable_sendStickyEvent !== "function") throw stickyUnsupported();
    this.spend("sendEvents");
    const room = roomId ?? this.roomId;
    const res = await this.client._unstable_sendStickyEvent(room, duration, null, eventType, content ?? {});
    return { roomId: room, eventId: res.event_id };
  }

  /**
   * MSC4407 + MSC4157: a delayed sticky room event, through the client's `_unstable_sendStickyDelayedEvent`
   * (it needs `org.matrix.msc4140` and `org.matrix.msc4354` in `/versions`). Tracked like the widget's other
   * delayed events: only this widget may restart, send or cancel it, and a delayed leave
   * (`org.matrix.msc4143.rtc.member` that ends a membership) is sent when the widget goes away.
   */
  override async sendDelayedStickyEvent(
    delay: number,
    stickyDurationMs: number,
    eventType: string,
    content: unknown,
    roomId: string | null = null,
  ): Promise<ISendDelayedEventDetails> {
    delay = this.checkDelay(delay);
    const duration = checkStickyDuration(stickyDurationMs);
    if (typeof this.client._unstable_sendStickyDelayedEvent !== "function") throw stickyUnsupported();
    this.spend("scheduleDelayedEvents");
    const room = roomId ?? this.roomId;
    const body = content ?? {};
    const res = await this.client._unstable_sendStickyDelayedEvent(
      room,
      duration,
      { delay },
      null,
      eventType,
      body,
    );
    // js-sdk passes the body through: an id outside the grammar is a bad answer, never put in a URL.
    const delayId = readDelayId(res);
    this.own.add({ delayId, delayMs: delay, leave: isStickyLeave(eventType, body) }, monotonicNow());
    return { roomId: room, delayId };
  }

  override cancelScheduledDelayedEvent(delayId: string): Promise<void> {
    return this.manage(delayId, "cancel");
  }

  override restartScheduledDelayedEvent(delayId: string): Promise<void> {
    return this.manage(delayId, "restart");
  }

  override sendScheduledDelayedEvent(delayId: string): Promise<void> {
    return this.manage(delayId, "send");
  }

  /**
   * Runs a management action for the widget, on one of its own delayed events only. Forgets the id
   * once it is sent, cancelled or reported gone; a restart moves its due time.
   */
  private async manage(delayId: string, action: "cancel" | "restart" | "send"): Promise<void> {
    if (typeof delayId !== "string" || !this.own.has(delayId, monotonicNow())) throw notFound();
    this.spend("updateDelayedEvents");
    try {
      await this.update(delayId, action);
    } catch (e) {
      if (isGone(e)) this.own.forget(delayId);
      throw e;
    }
    if (action === "restart") this.own.restarted(delayId, monotonicNow());
    else this.own.forget(delayId);
  }

  /** One management request to the server, in the server's dialect. */
  private async update(
    delayId: string,
    action: "cancel" | "restart" | "send",
    signal?: AbortSignal,
  ): Promise<void> {
    if (await updateIfMerged(this.client, delayId, action, signal)) return;
    const opts = signal ? { abortSignal: signal } : undefined;
    if (action === "restart") await this.client._unstable_restartScheduledDelayedEvent(delayId, opts);
    else if (action === "send") await this.client._unstable_sendScheduledDelayedEvent(delayId, opts);
    else await this.client._unstable_cancelScheduledDelayedEvent(delayId, opts);
  }

  /**
   * The widget went away (its iframe was removed, its `ClientWidgetApi` stopped) without leaving: sends
   * the delayed leaves it scheduled that may still be pending (delayed `{}` at a MatrixRTC membership
   * state key, or a delayed sticky `org.matrix.msc4143.rtc.member` that ends a membership), all at once, so others see it leave within a round trip instead of a whole delay. Other
   * delayed events it scheduled are left to fire at their time. Never throws; settles within `timeoutMs` (default 5 s),
   * aborting what is still on the way. `createClientWidgetApi` calls it when its api is stopped; a host
   * that builds its own `ClientWidgetApi` calls it after `api.stop()`.
   */
  async widgetClosed(options: WidgetClosedOptions = {}): Promise<WidgetClosedResult> {
    const leaves = this.own.pendingLeaves(monotonicNow());
    const result: WidgetClosedResult = { sent: 0, gone: 0, failed: 0 };
    if (leaves.length === 0) return result;
    for (const leave of leaves) this.own.forget(leave.delayId);
    const timeoutMs = Math.min(Math.max(0, options.timeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS), 2 ** 31 - 1);
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        controller.abort();
        resolve();
      }, timeoutMs);
    });
    const sends = leaves.map((leave) =>
      this.update(leave.delayId, "send", controller.signal).then(
        () => void result.sent++,
        (e: unknown) => void (isGone(e) ? result.gone++ : result.failed++),
      ),
    );
    try {
      await Promise.race([Promise.all(sends), expired]);
    } finally {
      clearTimeout(timer);
    }
    // Sends still on the way when the time ran out count as failed (and are aborted).
    return { sent: result.sent, gone: result.gone, failed: leaves.length - result.sent - result.gone };
  }

  /**
   * One entry point for every spelling: matrix-widget-api ≤1.13's single `updateDelayedEvent`, and the
   * MSC4157 text's `refresh` (which all implementations call `restart`).
   */
  async updateDelayedEvent(delayId: string, action: UpdateDelayedEventActionName): Promise<void> {
    switch (action) {
      case "restart":
      case "refresh":
        return this.restartScheduledDelayedEvent(delayId);
      case "send":
        return this.sendScheduledDelayedEvent(delayId);
      case "cancel":
        return this.cancelScheduledDelayedEvent(delayId);
      default:
        throw new Error(`unsupported delayed event action: ${String(action)}`);
    }
  }

  /**
   * Current state of a room, for widgets granted `receive.state_event` (e.g. to list call members): from
   * the client's synced view of the room when it has one (a started client that joined it), otherwise
   * from the server (`/rooms/{roomId}/state`). Never from an empty store: a bare client has no rooms.
   */
  override async readRoomState(
    roomId: string,
    eventType: string,
    stateKey: string | undefined,
  ): Promise<IRoomEvent[]> {
    return (await readCurrentState(this.client, roomId, eventType, stateKey)) as unknown as IRoomEvent[];
  }

  /**
   * `read_events` with a `state_key` (matrix-widget-api calls this for it once the widget speaks
   * `update_state`): the current state entry, as `readRoomState` reads it. Without: room events, newest
   * first, from the synced timeline or the server's `/messages`.
   */
  override async readRoomTimeline(
    roomId: string,
    eventType: string,
    msgtype: string | undefined,
    stateKey: string | undefined,
    limit: number,
    since: string | undefined,
  ): Promise<IRoomEvent[]> {
    if (stateKey !== undefined) {
      const state = await this.readRoomState(roomId, eventType, stateKey);
      return limit > 0 ? state.slice(0, limit) : state;
    }
    return (await readTimeline(
      this.client,
      roomId,
      eventType,
      msgtype,
      limit,
      since,
    )) as unknown as IRoomEvent[];
  }

  /** The rooms a deprecated read names: null is the widget's room; `*` every known room. */
  private roomsOf(roomIds: string[] | null): string[] {
    if (roomIds === null) return [this.roomId];
    return roomIds.includes("*") ? this.getKnownRooms() : roomIds;
  }

  /** The deprecated state read (a host that never set a viewed room): `readRoomState` per room. */
  override async readStateEvents(
    eventType: string,
    stateKey: string | undefined,
    limit: number,
    roomIds: string[] | null = null,
  ): Promise<IRoomEvent[]> {
    const perRoom = await Promise.all(
      this.roomsOf(roomIds).map((roomId) => this.readRoomState(roomId, eventType, stateKey)),
    );
    return perRoom.flatMap((events) => (limit > 0 ? events.slice(0, limit) : events));
  }

  /** The deprecated timeline read: `readRoomTimeline` per room. */
  override async readRoomEvents(
    eventType: string,
    msgtype: string | undefined,
    limit: number,
    roomIds: string[] | null = null,
    since?: string,
  ): Promise<IRoomEvent[]> {
    const perRoom = await Promise.all(
      this.roomsOf(roomIds).map((roomId) =>
        this.readRoomTimeline(roomId, eventType, msgtype, undefined, limit, since),
      ),
    );
    return perRoom.flat();
  }

  /** MSC4515: the transports the host was given (a call widget picks its SFU from these). */
  override async getRtcTransports(): Promise<IRtcTransportsResult> {
    const option = this.rtcTransports;
    if (option === undefined) throw new Error("This host offers no RTC transports");
    return { rtc_transports: typeof option === "function" ? await option() : option };
  }

  /**
   * MSC4533: MSC4195's delegation for the widget, `data` as the body (ClientWidgetApi has checked the
   * capability). Through the client's HTTP API, unstable path; a client without one answers 404.
   */
  override async delegateRtcLivekitDelayedLeave(
    data: IRtcLivekitDelegateDelayedLeaveFromWidgetRequestData,
  ): Promise<IRtcLivekitDelegateDelayedLeaveFromWidgetResponseData> {
    const http = (this.client as { http?: { authedRequest?: AuthedRequest } }).http;
    if (typeof http?.authedRequest !== "function")
      throw new HostRefusalError(404, { errcode: "M_UNRECOGNIZED", error: "No delegation from this host" });
    await http.authedRequest("POST", "/rtc/livekit/delegate_delayed_leave", undefined, data, {
      prefix: "/_matrix/client/unstable/io.element.msc4195",
    });
    return {};
  }

  /** `get_openid`, answered by the `openId` policy with a token from the client. */
  override askOpenID(observer: SimpleObservable<IOpenIDUpdate>): void {
    answerOpenId(observer, this.openId, () => this.openIdTokens.get());
  }

  /**
   * MSC4407: the room's unexpired sticky events (MSC4354), which matrix-widget-api pushes to a widget
   * granted `receive.sticky_event` when it starts (sticky events are a call's members: a widget that
   * starts mid-call must learn them). From the client's synced room (js-sdk's sticky map, one event per
   * sender, type and sticky key) or, for a client that does not sync, from the server's /sync (every
   * unexpired one). Each keeps its sticky field; `unsigned`'s remaining time is as of now.
   */
  override async readStickyEvents(roomId: string): Promise<IRoomEvent[]> {
    return (await readStickyEvents(this.client, roomId)) as unknown as IRoomEvent[];
  }

  /** To-device messages (a call widget's media keys) go out through the client, encrypted if asked. */
  override async sendToDevice(
    eventType: string,
    encrypted: boolean,
    contentMap: { [userId: string]: { [deviceId: string]: object } },
  ): Promise<void> {
    this.spend("toDevice");
    await sendToDeviceWith(this.client, eventType, encrypted, contentMap);
  }

  override getKnownRooms(): string[] {
    return [...this.knownRooms];
  }

  /**
   * Matrix errors reach the widget as `{ matrix_api_error: { http_status, http_headers, url, response } }`
   * (as Element Web's driver does). js-sdk's refusal to try a delayed request because the server does not
   * advertise `org.matrix.msc4140` becomes a 404 `M_UNRECOGNIZED`, so the widget sees "unsupported"
   * instead of a detail-less error it would retry forever. Its refusal of a sticky event (no
   * `org.matrix.msc4354`) stays detail-less on purpose: that is how matrix-js-sdk's widget client (43)
   * tells "the host cannot send sticky events" from a server's answer.
   */
  override processError(error: unknown): IWidgetApiErrorResponseDataDetails | undefined {
    const mae = matrixApiErrorOf(error);
    if (mae) return { matrix_api_error: mae };
    if (isRecord(error) && error.name === "UnsupportedDelayedEventsEndpointError")
      return {
        matrix_api_error: {
          http_status: 404,
          http_headers: {},
          url: "",
          response: {
            errcode: "M_UNRECOGNIZED",
            error: "The homeserver does not support delayed events (org.matrix.msc4140)",
          },
        },
      };
    return undefined;
  }
}
