import { delayIdForPath, readDelayId, readStateSnapshot } from "../core/validate.js";
import { MalformedResponseError } from "../errors.js";
import {
  CALL_MEMBER_EVENT_TYPE,
  DEFAULT_SLOT,
  membershipStateKey,
  type Slot,
} from "../membership/content.js";
import { widgetStateSource, type SourceLike, type WidgetStateApi } from "../membership/observer.js";
import type {
  DelegateDelayedLeaveRequest,
  DelayedEventAction,
  MembershipBackend,
  RequestOptions,
  StateEventRequest,
  StateEventSnapshot,
  StickyEventRequest,
  SupportHint,
} from "./types.js";
import { RTC_MEMBER_EVENT_TYPE } from "../membership/rtcMember.js";

/** The unstable MSC4157 capability strings (no host implements the stable `m.*` names yet). */
export const MSC4157_SEND_DELAYED_EVENT = "org.matrix.msc4157.send.delayed_event";
/** The MSC4157 capability to restart, send and cancel delayed events. */
export const MSC4157_UPDATE_DELAYED_EVENT = "org.matrix.msc4157.update_delayed_event";
/** MSC4533: ask the host to delegate a delayed leave (MSC4195) on the widget's behalf. */
export const MSC4533_DELEGATE_DELAYED_LEAVE = "org.matrix.msc4533.rtc_livekit_delegate_delayed_leave";

/** MSC4407: the widget may send sticky events (the sticky membership format). */
export const MSC4407_SEND_STICKY_EVENT = "org.matrix.msc4407.send.sticky_event";
/** MSC4407: the widget receives sticky events with their sticky field. */
export const MSC4407_RECEIVE_STICKY_EVENT = "org.matrix.msc4407.receive.sticky_event";

/** `org.matrix.msc2762.send.event:<type>`: send one room (timeline) event type. */
export function sendEventCapability(eventType: string): string {
  return `org.matrix.msc2762.send.event:${eventType}`;
}

/** `org.matrix.msc2762.send.state_event:<type>#<stateKey>`: send one state event type at one key. */
export function sendStateCapability(eventType: string, stateKey?: string): string {
  return `org.matrix.msc2762.send.state_event:${eventType}${stateKey === undefined ? "" : `#${stateKey}`}`;
}

/** `org.matrix.msc2762.receive.state_event:<type>[#<stateKey>]`. */
export function receiveStateCapability(eventType: string, stateKey?: string): string {
  return `org.matrix.msc2762.receive.state_event:${eventType}${stateKey === undefined ? "" : `#${stateKey}`}`;
}

const ROOM_MEMBER_EVENT_TYPE = "m.room.member";

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
  /**
   * Receive call memberships and room memberships (`receive.state_event` for both whole event types,
   * which is what hosts such as Element Web and `callWidgetCapabilities` grant). Default true: the
   * manager reads its own membership back to notice another writer removing it, and its own room
   * membership to notice a kick; false leaves it blind to both (its `joined` state then says
   * `membershipWatched: false`).
   */
  readState?: boolean;
  /**
   * `"sticky"`: the capabilities of the sticky membership format instead of the state send (sending
   * `org.matrix.msc4143.rtc.member` events, MSC4407's sticky send, and, unless `readState` is false,
   * receiving them). Default `"state"`.
   */
  membershipFormat?: "state" | "sticky";
  /** Also ask to delegate the delayed leave through the host (MSC4533; the manager's `delegation`). */
  delegation?: boolean;
}

/**
 * Exactly the capabilities a widget must request for one device's membership: the state send at our
 * key, the delayed send and the delayed update, and reading call memberships back (unless `readState`
 * is false). The timeline capability only with `roomId`.
 */
export function widgetCapabilities(options: WidgetCapabilityOptions): string[] {
  const stateKey = membershipStateKey(
    options.userId,
    options.deviceId,
    options.slot ?? DEFAULT_SLOT,
    options.roomVersion,
  );
  if (options.membershipFormat === "sticky") {
    const caps = [
      sendEventCapability(RTC_MEMBER_EVENT_TYPE),
      MSC4407_SEND_STICKY_EVENT,
      MSC4157_SEND_DELAYED_EVENT,
      MSC4157_UPDATE_DELAYED_EVENT,
    ];
    if (options.roomId !== undefined) caps.push(`org.matrix.msc2762.timeline:${options.roomId}`);
    if (options.readState !== false)
      caps.push(
        `org.matrix.msc2762.receive.event:${RTC_MEMBER_EVENT_TYPE}`,
        MSC4407_RECEIVE_STICKY_EVENT,
        receiveStateCapability(ROOM_MEMBER_EVENT_TYPE),
      );
    return caps;
  }
  const caps = [
    sendStateCapability(CALL_MEMBER_EVENT_TYPE, stateKey),
    MSC4157_SEND_DELAYED_EVENT,
    MSC4157_UPDATE_DELAYED_EVENT,
  ];
  if (options.roomId !== undefined) caps.push(`org.matrix.msc2762.timeline:${options.roomId}`);
  if (options.delegation) caps.push(MSC4533_DELEGATE_DELAYED_LEAVE);
  if (options.readState !== false)
    caps.push(receiveStateCapability(CALL_MEMBER_EVENT_TYPE), receiveStateCapability(ROOM_MEMBER_EVENT_TYPE));
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
  /**
   * Sends a room event; `delay` schedules it (MSC4157), `stickyDurationMs` makes it sticky (MSC4407).
   * matrix-widget-api ≥ 1.18 has it; the sticky membership format needs it.
   */
  sendRoomEvent?(
    eventType: string,
    content: unknown,
    roomId?: string,
    delay?: number,
    stickyDurationMs?: number,
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
  /** MSC4533 (matrix-widget-api ≥ 1.19): the host calls MSC4195's delegation endpoint with `data` as its body. */
  delegateRtcLivekitDelayedLeave?(data: Record<string, unknown>): Promise<unknown>;
  /** Reads state events the host lets the widget see (a `WidgetApi` has it): our key, read back. */
  readStateEvents?(
    eventType: string,
    limit?: number,
    stateKey?: string,
    roomIds?: string[],
  ): Promise<unknown[]>;
  /** Widget API events (a `WidgetApi` has them): the host's state pushes. */
  on?(event: string, listener: (ev: CustomEvent) => void): unknown;
  /** Unsubscribes. */
  off?(event: string, listener: (ev: CustomEvent) => void): unknown;
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

  /**
   * MSC4533: the host delegates the delayed leave (MSC4195's homeserver endpoint) with this body, the
   * same as ClientBackend's. Without the capability (or a widget API that predates it) a 404, which the
   * manager reads as "no delegation here" and does not ask again.
   */
  async delegateDelayedLeave(req: DelegateDelayedLeaveRequest, opts?: RequestOptions): Promise<void> {
    opts?.signal?.throwIfAborted();
    opts?.notAfter?.throwIfAborted();
    const api = this.widgetApi;
    if (!api.delegateRtcLivekitDelayedLeave || !api.hasCapability(MSC4533_DELEGATE_DELAYED_LEAVE))
      throw Object.assign(new Error(`the widget host did not grant ${MSC4533_DELEGATE_DELAYED_LEAVE}`), {
        httpStatus: 404,
      });
    await api.delegateRtcLivekitDelayedLeave({
      url: req.url,
      room_id: req.roomId,
      slot_id: req.slotId,
      member_id: req.memberId,
      member: { id: req.memberId, claimed_device_id: req.deviceId },
      delay_id: req.delayId,
    });
  }

  async sendDelayedStateEvent(
    req: StateEventRequest & { delayMs: number },
    opts?: RequestOptions,
  ): Promise<string> {
    opts?.signal?.throwIfAborted();
    opts?.notAfter?.throwIfAborted();
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

  /**
   * The sticky format's send through the host (MSC4407 `send_event` with `sticky_duration_ms`). Refused
   * without asking the host when it did not grant the sticky capability (a host that does not know the
   * field would send a plain event), worded like the host's own refusal: `sticky-events-unsupported`.
   */
  private sendSticky(req: StickyEventRequest, delayMs?: number) {
    for (const cap of [MSC4407_SEND_STICKY_EVENT, sendEventCapability(req.eventType)])
      if (!this.widgetApi.hasCapability(cap))
        throw new WidgetCapabilityError(
          MSC4407_SEND_STICKY_EVENT,
          cap === MSC4407_SEND_STICKY_EVENT ? "the host did not grant it" : `nor ${cap}`,
        );
    const send = this.widgetApi.sendRoomEvent?.bind(this.widgetApi);
    if (!send)
      throw new WidgetCapabilityError(MSC4407_SEND_STICKY_EVENT, "this WidgetApi cannot send room events");
    return send(
      req.eventType,
      req.content,
      this.sendRoomId ? req.roomId : undefined,
      delayMs,
      req.durationMs,
    );
  }

  /** The sticky format's membership (join, refresh, fallback leave), to its event id. */
  async sendStickyEvent(req: StickyEventRequest, opts?: RequestOptions): Promise<string> {
    opts?.signal?.throwIfAborted();
    opts?.notAfter?.throwIfAborted();
    const res = (await this.sendSticky(req)) as { event_id?: unknown } | null | undefined;
    const id = res?.event_id;
    if (typeof id !== "string" || id.length === 0)
      throw new MalformedResponseError("send-sticky-event", `event_id is ${typeof id}`);
    return id;
  }

  /** The sticky format's delayed leave (MSC4157 + MSC4407 in one `send_event`), to its delay id. */
  async sendDelayedStickyEvent(
    req: StickyEventRequest & { delayMs: number },
    opts?: RequestOptions,
  ): Promise<string> {
    opts?.signal?.throwIfAborted();
    opts?.notAfter?.throwIfAborted();
    if (!this.widgetApi.hasCapability(MSC4157_UPDATE_DELAYED_EVENT))
      throw new WidgetCapabilityError(
        MSC4157_UPDATE_DELAYED_EVENT,
        "not scheduling a delayed leave the widget could not manage",
      );
    const answer = (await this.sendSticky(req, req.delayMs)) as unknown;
    if (
      typeof answer !== "object" ||
      answer === null ||
      (answer as { delay_id?: unknown }).delay_id === undefined
    )
      throw new WidgetCapabilityError(MSC4157_SEND_DELAYED_EVENT, "the host answered without a delay_id");
    return readDelayId(answer);
  }

  async sendStateEvent(req: StateEventRequest, opts?: RequestOptions): Promise<void> {
    opts?.signal?.throwIfAborted();
    opts?.notAfter?.throwIfAborted();
    await this.widgetApi.sendStateEvent(
      req.eventType,
      req.stateKey,
      req.content,
      this.sendRoomId ? req.roomId : undefined,
    );
  }

  /**
   * Our key, read back through the host (`read_events` with the state key): the newest event's content and
   * server timestamp, or undefined when the host holds none. Needs the `receive.state_event` capability.
   */
  async readState(
    req: Omit<StateEventRequest, "content">,
    opts?: RequestOptions,
  ): Promise<StateEventSnapshot | undefined> {
    opts?.signal?.throwIfAborted();
    opts?.notAfter?.throwIfAborted();
    const read = this.widgetApi.readStateEvents?.bind(this.widgetApi);
    if (!read) throw new WidgetCapabilityError(receiveStateCapability(req.eventType), "no readStateEvents");
    if (!this.canReceive(req.eventType, req.stateKey))
      throw new WidgetCapabilityError(receiveStateCapability(req.eventType, req.stateKey));
    const events = await read(req.eventType, 1, req.stateKey, this.sendRoomId ? [req.roomId] : undefined);
    if (!Array.isArray(events)) throw readStateSnapshot(events); // throws: not a list of events
    let newest: StateEventSnapshot | undefined;
    for (const raw of events) {
      const e = raw as { state_key?: unknown; room_id?: unknown };
      if (e?.state_key !== req.stateKey) continue;
      if (e.room_id !== undefined && e.room_id !== req.roomId) continue;
      const snapshot = readStateSnapshot(raw);
      if (!newest || (snapshot.originServerTs ?? 0) >= (newest.originServerTs ?? 0)) newest = snapshot;
    }
    return newest;
  }

  /** Our own `m.room.member` membership through the host (needs `receive.state_event:m.room.member`). */
  async readRoomMembership(
    roomId: string,
    userId: string,
    opts?: RequestOptions,
  ): Promise<string | undefined> {
    const read = await this.readState({ roomId, eventType: ROOM_MEMBER_EVENT_TYPE, stateKey: userId }, opts);
    const membership = read?.content.membership;
    return typeof membership === "string" ? membership : undefined;
  }

  /**
   * The host's state pushes (`update_state`) as the manager's view of its own membership. Hosts that do
   * not push never show the manager's writes, and it then reads its key instead.
   */
  watchRoom(roomId: string): { source: SourceLike; close: () => void } | undefined {
    const api = this.widgetApi as Partial<WidgetStateApi>;
    if (
      typeof api.on !== "function" ||
      typeof api.off !== "function" ||
      typeof api.readStateEvents !== "function" ||
      typeof api.getClientVersions !== "function" ||
      typeof api.transport?.reply !== "function"
    )
      return undefined;
    // Made after negotiation, as a rule: the host's first push is past, so read what it holds now.
    const source = widgetStateSource(api as WidgetStateApi, roomId, { backfill: "now" });
    return { source, close: () => source.close() };
  }

  private canReceive(eventType: string, stateKey: string): boolean {
    return (
      this.widgetApi.hasCapability(receiveStateCapability(eventType)) ||
      this.widgetApi.hasCapability(receiveStateCapability(eventType, stateKey))
    );
  }

  async updateDelayedEvent(
    delayId: string,
    action: DelayedEventAction,
    opts?: RequestOptions,
  ): Promise<void> {
    opts?.signal?.throwIfAborted();
    opts?.notAfter?.throwIfAborted();
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
      if (!this.widgetApi.readStateEvents || !this.canReceive(CALL_MEMBER_EVENT_TYPE, this.stateKey))
        hint.canReadState = false;
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
