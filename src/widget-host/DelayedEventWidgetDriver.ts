import {
  WidgetDriver,
  type Capability,
  type IMatrixApiError,
  type IOpenIDUpdate,
  type IRoomEvent,
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

export type { CapabilityAllowList, CapabilityValidator } from "./capabilities.js";

/**
 * The part of matrix-js-sdk's `MatrixClient` the driver uses (a bare client, no startClient() needed);
 * a `MatrixClient` fits it. Typed here so that our declarations do not pull in matrix-js-sdk's (whose
 * crypto types reference a file it does not ship), and this entry never loads matrix-js-sdk itself.
 */
export interface DriverClient extends ToDeviceClient {
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
  _unstable_restartScheduledDelayedEvent(delayId: string): Promise<unknown>;
  /** Sends a delayed event now. */
  _unstable_sendScheduledDelayedEvent(delayId: string): Promise<unknown>;
  /** Drops a delayed event. */
  _unstable_cancelScheduledDelayedEvent(delayId: string): Promise<unknown>;
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
  /** Whether the widget gets an OpenID token for the user. Default `"deny"`. */
  openId?: OpenIdPolicy;
}

/** The MSC4157 `update_delayed_event` actions, including the MSC text's `refresh` for `restart`. */
export type UpdateDelayedEventActionName = "cancel" | "restart" | "send" | "refresh";

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null;
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
 * matrix-js-sdk `MatrixClient`: state and room events with and without `delay`, and the three
 * delayed-event actions. Use it with `ClientWidgetApi` (see `createClientWidgetApi`).
 *
 * Events are sent as they are (no end-to-end encryption unless the client encrypts `sendEvent`).
 */
export class DelayedEventWidgetDriver extends WidgetDriver {
  /** The widget's room (`options.roomId`). */
  readonly roomId: string;
  private readonly validator: CapabilityValidator;
  private readonly knownRooms: string[];
  private readonly rtcTransports: RtcTransportsOption | undefined;
  private readonly openId: OpenIdPolicy;

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
    const room = roomId ?? this.roomId;
    const body = (content ?? {}) as never;
    // MSC4140 as merged where the server offers it (mergedDelayedEvents.ts).
    const req = { roomId: room, eventType, content: body, delayMs: delay, stateKey: stateKey ?? undefined };
    const mergedId = await scheduleIfMerged(this.client, req);
    if (mergedId !== undefined) return { roomId: room, delayId: mergedId };
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
    return { roomId: room, delayId: res.delay_id };
  }

  override async cancelScheduledDelayedEvent(delayId: string): Promise<void> {
    if (await updateIfMerged(this.client, delayId, "cancel")) return;
    await this.client._unstable_cancelScheduledDelayedEvent(delayId);
  }

  override async restartScheduledDelayedEvent(delayId: string): Promise<void> {
    if (await updateIfMerged(this.client, delayId, "restart")) return;
    await this.client._unstable_restartScheduledDelayedEvent(delayId);
  }

  override async sendScheduledDelayedEvent(delayId: string): Promise<void> {
    if (await updateIfMerged(this.client, delayId, "send")) return;
    await this.client._unstable_sendScheduledDelayedEvent(delayId);
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

  /** Current state of a room, for widgets granted `receive.state_event` (e.g. to list call members). */
  override async readRoomState(
    roomId: string,
    eventType: string,
    stateKey: string | undefined,
  ): Promise<IRoomEvent[]> {
    const events = await this.client.roomState(roomId);
    return events
      .filter((e) => e.type === eventType && (stateKey === undefined || e.state_key === stateKey))
      .map((e) => ({ ...e, room_id: roomId }) as unknown as IRoomEvent);
  }

  /**
   * `read_events` from a widget when the host supports `update_state` (matrix-widget-api then asks the
   * timeline, also for state): a state read (a state key given) is answered with the room's current
   * state from the server, never with an empty timeline this client does not have.
   */
  override async readRoomTimeline(
    roomId: string,
    eventType: string,
    _msgtype: string | undefined,
    stateKey: string | undefined,
  ): Promise<IRoomEvent[]> {
    if (stateKey === undefined) return [];
    return this.readRoomState(roomId, eventType, stateKey);
  }

  /** MSC4515: the transports the host was given (a call widget picks its SFU from these). */
  override async getRtcTransports(): Promise<IRtcTransportsResult> {
    const option = this.rtcTransports;
    if (option === undefined) throw new Error("This host offers no RTC transports");
    return { rtc_transports: typeof option === "function" ? await option() : option };
  }

  /** `get_openid`, answered by the `openId` policy with a token from the client. */
  override askOpenID(observer: SimpleObservable<IOpenIDUpdate>): void {
    answerOpenId(observer, this.openId, () => this.client.getOpenIdToken());
  }

  /**
   * MSC4407: the room's sticky events. This host keeps none (memberships are state events here), so
   * the answer is an empty list rather than an error the widget would log at every start.
   */
  override async readStickyEvents(_roomId: string): Promise<IRoomEvent[]> {
    return [];
  }

  /** To-device messages (a call widget's media keys) go out through the client, encrypted if asked. */
  override async sendToDevice(
    eventType: string,
    encrypted: boolean,
    contentMap: { [userId: string]: { [deviceId: string]: object } },
  ): Promise<void> {
    await sendToDeviceWith(this.client, eventType, encrypted, contentMap);
  }

  override getKnownRooms(): string[] {
    return [...this.knownRooms];
  }

  /**
   * Matrix errors reach the widget as `{ matrix_api_error: { http_status, http_headers, url, response } }`
   * (as Element Web's driver does). js-sdk's refusal to try a delayed request because the server does not
   * advertise `org.matrix.msc4140` becomes a 404 `M_UNRECOGNIZED`, so the widget sees "unsupported"
   * instead of a detail-less error it would retry forever.
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
