import { delayIdForPath, readDelayId } from "../core/validate.js";
import {
  CALL_MEMBER_EVENT_TYPE,
  DEFAULT_SLOT,
  membershipStateKey,
  type Slot,
} from "../membership/content.js";
import type {
  DelayedEventAction,
  MembershipBackend,
  RequestOptions,
  StateEventRequest,
  SupportHint,
} from "./types.js";

/** The unstable MSC4157 capability strings (no host implements the stable `m.*` names yet). */
export const MSC4157_SEND_DELAYED_EVENT = "org.matrix.msc4157.send.delayed_event";
/** The MSC4157 capability to restart, send and cancel delayed events. */
export const MSC4157_UPDATE_DELAYED_EVENT = "org.matrix.msc4157.update_delayed_event";

/** `org.matrix.msc2762.send.state_event:<type>#<stateKey>`: send one state event type at one key. */
export function sendStateCapability(eventType: string, stateKey?: string): string {
  return `org.matrix.msc2762.send.state_event:${eventType}${stateKey === undefined ? "" : `#${stateKey}`}`;
}

/** `org.matrix.msc2762.receive.state_event:<type>[#<stateKey>]`. */
export function receiveStateCapability(eventType: string, stateKey?: string): string {
  return `org.matrix.msc2762.receive.state_event:${eventType}${stateKey === undefined ? "" : `#${stateKey}`}`;
}

/** Whose membership a widget manages: the same inputs the manager derives its state key from. */
export interface WidgetMembershipKey {
  /** Our user id. */
  userId: string;
  /** Our device id. */
  deviceId: string;
  /** Default `{application: "m.call", id: "ROOM"}`. */
  slot?: Slot;
  /** MSC3757/MSC3779 rooms use state keys without the leading underscore. */
  roomVersion?: string;
}

export interface WidgetCapabilityOptions extends WidgetMembershipKey {
  /**
   * Only when the backend addresses the room explicitly (`sendRoomId: true`): adds
   * `org.matrix.msc2762.timeline:<roomId>`, which matrix-widget-api requires whenever `room_id` is sent.
   */
  roomId?: string;
  /** Also receive everyone's call memberships (`receive.state_event` for the whole event type). */
  readState?: boolean;
}

/**
 * Exactly the capabilities a widget must request for one device's membership: the state send at our
 * key, the delayed send and the delayed update. Nothing else unless `roomId` or `readState` asks.
 */
export function widgetCapabilities(options: WidgetCapabilityOptions): string[] {
  const stateKey = membershipStateKey(
    options.userId,
    options.deviceId,
    options.slot ?? DEFAULT_SLOT,
    options.roomVersion,
  );
  const caps = [
    sendStateCapability(CALL_MEMBER_EVENT_TYPE, stateKey),
    MSC4157_SEND_DELAYED_EVENT,
    MSC4157_UPDATE_DELAYED_EVENT,
  ];
  if (options.roomId !== undefined) caps.push(`org.matrix.msc2762.timeline:${options.roomId}`);
  if (options.readState) caps.push(receiveStateCapability(CALL_MEMBER_EVENT_TYPE));
  return caps;
}

/**
 * The part of matrix-widget-api's `WidgetApi` the backend uses; a `WidgetApi` fits it. Typed here, not
 * picked from `WidgetApi`, so that apps that never use a widget need not install matrix-widget-api to
 * type-check.
 */
export interface WidgetApiLike {
  /** Sends a state event, or schedules it when `delay` is given (MSC4157). */
  sendStateEvent(
    eventType: string,
    stateKey: string,
    content: unknown,
    roomId?: string,
    delay?: number,
  ): Promise<{
    /** The sent event's id (sent now). */
    event_id?: string;
    /** The scheduled event's delay id (sent with `delay`). */
    delay_id?: string;
  }>;
  /** MSC4157 `update_delayed_event` with `restart`. */
  restartScheduledDelayedEvent(delayId: string): Promise<unknown>;
  /** MSC4157 `update_delayed_event` with `send`. */
  sendScheduledDelayedEvent(delayId: string): Promise<unknown>;
  /** MSC4157 `update_delayed_event` with `cancel`. */
  cancelScheduledDelayedEvent(delayId: string): Promise<unknown>;
  /** Whether the host approved a capability (after negotiation). */
  hasCapability(capability: string): boolean;
  /** The widget transport, whose per-request timeout `transportTimeoutMs` sets. */
  transport?: {
    /** Seconds before an unanswered request fails. */
    timeoutSeconds?: number;
  };
}

/** Options of `WidgetBackend`. */
export interface WidgetBackendOptions {
  /**
   * Whose membership this backend sends, so that `probeSupport()` can check the state capability for
   * our key (without it only the delayed-event capabilities are checked). Or give `stateKey` directly.
   */
  membership?: WidgetMembershipKey;
  /** Our membership's state key, when `membership` is not given. */
  stateKey?: string;
  /**
   * Send `room_id` with every request. Default false: the host uses the widget's own room, and no
   * timeline capability is needed. When true, request `widgetCapabilities({ ..., roomId })`.
   */
  sendRoomId?: boolean;
  /** Sets the widget transport's per-request timeout (matrix-widget-api's default is 10 s). */
  transportTimeoutMs?: number;
}

/**
 * Thrown without asking the host when a negotiated capability makes a request pointless or harmful.
 * Worded like matrix-widget-api's own refusal, so `classifyError` treats both alike.
 */
export class WidgetCapabilityError extends Error {
  constructor(
    /** The capability that is missing. */
    readonly capability: string,
    detail?: string,
  ) {
    super(`Missing capability for ${capability}${detail ? `: ${detail}` : ""}`);
    this.name = "WidgetCapabilityError";
  }
}

/**
 * Widget mode (MSC4157): the membership and the delayed leave go out through the widget host with
 * `send_event` (with `delay` for the leave), the heartbeat and leave with `update_delayed_event`.
 * Errors are passed through untouched: `classifyError` understands the host's `matrix_api_error`.
 */
export class WidgetBackend implements MembershipBackend {
  private readonly stateKey?: string;
  private readonly sendRoomId: boolean;

  constructor(
    private readonly widgetApi: WidgetApiLike,
    options: WidgetBackendOptions = {},
  ) {
    this.sendRoomId = options.sendRoomId ?? false;
    this.stateKey =
      options.stateKey ??
      (options.membership &&
        membershipStateKey(
          options.membership.userId,
          options.membership.deviceId,
          options.membership.slot ?? DEFAULT_SLOT,
          options.membership.roomVersion,
        ));
    if (options.transportTimeoutMs !== undefined && widgetApi.transport)
      widgetApi.transport.timeoutSeconds = options.transportTimeoutMs / 1000;
  }

  async sendDelayedStateEvent(
    req: StateEventRequest & { delayMs: number },
    opts?: RequestOptions,
  ): Promise<string> {
    opts?.signal?.throwIfAborted();
    // A delayed leave we could not restart, send or cancel would fire under a live membership.
    if (!this.widgetApi.hasCapability(MSC4157_UPDATE_DELAYED_EVENT))
      throw new WidgetCapabilityError(
        MSC4157_UPDATE_DELAYED_EVENT,
        "not scheduling a delayed leave the widget could not manage",
      );
    const res = await this.widgetApi.sendStateEvent(
      req.eventType,
      req.stateKey,
      req.content,
      this.sendRoomId ? req.roomId : undefined,
      req.delayMs,
    );
    const answer = res as unknown;
    if (
      typeof answer !== "object" ||
      answer === null ||
      (answer as { delay_id?: unknown }).delay_id === undefined
    )
      // The host ignored `delay` (and may have sent the event at once): it does not do MSC4157.
      throw new WidgetCapabilityError(MSC4157_SEND_DELAYED_EVENT, "the host answered without a delay_id");
    // Present but not a usable id (a number, null, ""): a broken host, retried like a server error.
    return readDelayId(answer);
  }

  async sendStateEvent(req: StateEventRequest, opts?: RequestOptions): Promise<void> {
    opts?.signal?.throwIfAborted();
    await this.widgetApi.sendStateEvent(
      req.eventType,
      req.stateKey,
      req.content,
      this.sendRoomId ? req.roomId : undefined,
    );
  }

  async updateDelayedEvent(
    delayId: string,
    action: DelayedEventAction,
    opts?: RequestOptions,
  ): Promise<void> {
    opts?.signal?.throwIfAborted();
    delayIdForPath(delayId, `${action}-delayed-event`);
    // The transport cannot abort a request; the manager's own timeout moves on without it.
    if (action === "restart") await this.widgetApi.restartScheduledDelayedEvent(delayId);
    else if (action === "send") await this.widgetApi.sendScheduledDelayedEvent(delayId);
    else await this.widgetApi.cancelScheduledDelayedEvent(delayId);
  }

  /**
   * What the host refused at negotiation (before it, matrix-widget-api answers with what was requested).
   * Join after the WidgetApi's `ready` event for this to be meaningful.
   */
  async probeSupport(): Promise<SupportHint> {
    const hint: SupportHint = {};
    if (this.stateKey !== undefined) {
      const canSend =
        this.widgetApi.hasCapability(sendStateCapability(CALL_MEMBER_EVENT_TYPE, this.stateKey)) ||
        this.widgetApi.hasCapability(sendStateCapability(CALL_MEMBER_EVENT_TYPE));
      if (!canSend) hint.canSendState = false;
    }
    const refused = [MSC4157_SEND_DELAYED_EVENT, MSC4157_UPDATE_DELAYED_EVENT].filter(
      (cap) => !this.widgetApi.hasCapability(cap),
    );
    if (refused.length > 0) {
      hint.delayedEvents = false;
      hint.reason = `the widget host refused ${refused.join(" and ")}`;
    }
    return hint;
  }
}
