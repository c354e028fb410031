import type { SourceLike } from "../membership/observer.js";

/**
 * The one interface both transports implement. Each method is one request to the homeserver (directly,
 * or through the widget host); the manager owns retries, timeouts and ordering.
 */

/** The MSC4140 actions on a pending delayed event: push its deadline back, fire it now, or drop it. */
export type DelayedEventAction = "restart" | "send" | "cancel";

/** Per-request options the manager passes to a backend. */
export interface RequestOptions {
  /** Aborted when the manager's local timeout fires or the manager is disposed. */
  signal?: AbortSignal;
  /**
   * The request must outlive the page (fetch `keepalive`): the delayed leave fired when the page goes
   * away. A backend that cannot ask for it sends the request as usual (the widget API's message to its
   * host is posted at once anyway).
   */
  keepAlive?: boolean;
  /**
   * Aborted when the request may no longer be started: the manager was disposed, or (for a schedule,
   * whose answer still counts after its local timeout) its local timeout passed. A backend gives up any
   * discovery of its own then, and checks it just before it sends anything. A request already sent goes
   * on (its answer, a delay id, must still be heard and cancelled).
   */
  notAfter?: AbortSignal;
  /**
   * A schedule while we hold a membership: a server that ignored its delay would write `{}` over it. The
   * backend re-checks which shape the server speaks first (its `/versions`, not a cached answer).
   */
  overMembership?: boolean;
}

/** One state event to send (now or delayed). */
export interface StateEventRequest {
  /** The room to send to. */
  roomId: string;
  /** The state event type (for memberships `org.matrix.msc3401.call.member`). */
  eventType: string;
  /** The state key (for memberships our device's key, see `membershipStateKey`). */
  stateKey: string;
  /** The event content (`{}` for a leave). */
  content: Record<string, unknown>;
}

/**
 * One sticky timeline event to send (MSC4354), now or delayed: the sticky membership format
 * (`membershipFormat: "sticky"`). `PUT …/send/{eventType}/{txnId}?org.matrix.msc4354.sticky_duration_ms=…`.
 */
export interface StickyEventRequest {
  /** The room to send to. */
  roomId: string;
  /** The event type (for memberships `org.matrix.msc4143.rtc.member`). */
  eventType: string;
  /** The sticky key the content carries (the member id): readers key sticky events by it. */
  stickyKey: string;
  /** The content, sticky key included. */
  content: Record<string, unknown>;
  /** How long the event stays sticky (at most 1 h). */
  durationMs: number;
}

/** What a backend knows about the server before any delayed-event request (all fields optional). */
export interface SupportHint {
  /** false: do not even try (feature flag off, capability refused); undefined: unknown, try. */
  delayedEvents?: boolean;
  /** The server's maximum delay, when advertised (Synapse ≥1.157 `/capabilities`). */
  maxDelayMs?: number;
  /** Why delayed events are unavailable, for `support$`. */
  reason?: string;
  /** false when the widget host refused the state capability for our key. */
  canSendState?: boolean;
  /**
   * false when the backend cannot read our membership back (a widget host that refused every read
   * capability): the manager then cannot see another writer remove it, and its state says so.
   */
  canReadState?: boolean;
  /**
   * Sticky events (the sticky membership format): false when the server does not advertise MSC4354 or
   * the widget host refused the sticky capability (`stickyReason` says which); undefined: unknown.
   */
  stickyEvents?: boolean;
  /** Why sticky events are unavailable. */
  stickyReason?: string;
}

/** One state event as the server holds it (`readState`): its content and what the server vouches for. */
export interface StateEventSnapshot {
  /** The event's content (`{}` for a left membership). */
  content: Record<string, unknown>;
  /** The server's `origin_server_ts` of the event, when the answer carried it. */
  originServerTs?: number;
  /** Who sent it, when the answer said. */
  sender?: string;
  /** The event's id, when the answer said. */
  eventId?: string;
}

/** A delayed event the server holds for us (from `listDelayedEvents`). */
export interface PendingDelayedEvent {
  /** The id to restart, send or cancel it with. */
  delayId: string;
  /** The room it will be sent to. */
  roomId: string;
  /** Its state key, for a delayed state event. */
  stateKey?: string;
  /** When its delay last (re)started, in server ms, when the listing says: a restart moves it. */
  delayedSinceTs?: number;
  /** Its event type, when the listing says. */
  type?: string;
  /** The sticky key its content carries (a sticky delayed leave), when there is one. */
  stickyKey?: string;
}

/**
 * What became of one delayed event (`getDelayedEvent`). `finalised` comes only from servers that keep
 * finalised delayed events (MSC4140 as merged); `manual` is true when it was sent before its due time
 * (someone used `send`). `unknown` is a 404: never existed, someone else's, or (where
 * `tracksFinalised` is false, e.g. Synapse's unstable lookup) no longer scheduled.
 */
export type DelayedEventStatus =
  /** Still scheduled. */
  | {
      /** The server still holds it. */
      status: "pending";
      /** Its delay in ms, as scheduled (or last restarted). */
      delayMs: number;
      /** When its delay last (re)started, in server ms since the epoch: it fires at this + `delayMs`. */
      delayedSinceTs: number;
    }
  /** Sent: by its timeout, or earlier through `send`. */
  | {
      /** No longer scheduled. */
      status: "finalised";
      /** It was sent. */
      outcome: "sent";
      /** The id of the event it became. */
      eventId: string;
      /** When it was finalised, in server ms since the epoch (0 when the answer did not say). */
      finalisedTs: number;
      /** True when it was sent before its due time (someone used `send`). */
      manual?: boolean;
    }
  /** Cancelled before it was sent. */
  | {
      /** No longer scheduled. */
      status: "finalised";
      /** It was cancelled. */
      outcome: "cancelled";
      /** When it was finalised, in server ms since the epoch (0 when the answer did not say). */
      finalisedTs: number;
    }
  /** Due, but the server could not send it (e.g. power levels changed meanwhile). */
  | {
      /** No longer scheduled. */
      status: "finalised";
      /** Sending it failed. */
      outcome: "error";
      /** When it was finalised, in server ms since the epoch (0 when the answer did not say). */
      finalisedTs: number;
      /** The error the server recorded for the send. */
      error: {
        /** Matrix errcode, when recorded. */
        errcode?: string;
        /** Human-readable message, when recorded. */
        error?: string;
      };
    }
  /** A 404: see above. */
  | {
      /** The server does not know it (anymore). */
      status: "unknown";
      /** Whether this server keeps finalised delayed events, so that a 404 cannot mean "finalised". */
      tracksFinalised: boolean;
    };

/**
 * How the manager reaches the homeserver: `ClientBackend` (a matrix-js-sdk client) or `WidgetBackend`
 * (the widget API). Implement it to run the manager over anything else (a test double, another SDK).
 */
export interface MembershipBackend {
  /** Schedules a delayed state event and resolves to its delay id. */
  sendDelayedStateEvent(req: StateEventRequest & { delayMs: number }, opts?: RequestOptions): Promise<string>;
  /** Sends a state event now. */
  sendStateEvent(req: StateEventRequest, opts?: RequestOptions): Promise<void>;
  /** restart / send / cancel one delayed event. */
  updateDelayedEvent(delayId: string, action: DelayedEventAction, opts?: RequestOptions): Promise<void>;
  /**
   * Optional: the current content of one state event (undefined when there is none). Lets the manager
   * tell "the server lost our delayed leave" from "someone else replaced our membership".
   */
  readStateEvent?(
    req: Omit<StateEventRequest, "content">,
    opts?: RequestOptions,
  ): Promise<Record<string, unknown> | undefined>;
  /**
   * Optional, preferred over `readStateEvent` when present: one state event with the server's timestamp
   * (undefined when there is none). The manager learns the server's clock from it, so what others judge
   * (`created_ts`, `expires`) never rests on a device clock that may be wrong.
   */
  readState?(
    req: Omit<StateEventRequest, "content">,
    opts?: RequestOptions,
  ): Promise<StateEventSnapshot | undefined>;
  /**
   * Optional: our own room membership (`m.room.member`'s `membership`: "join", "leave", "ban", ...), or
   * undefined when there is none. Lets the manager notice a kick or a ban without a room view.
   */
  readRoomMembership?(roomId: string, userId: string, opts?: RequestOptions): Promise<string | undefined>;
  /**
   * Optional: our pending delayed events (all rooms). Lets the manager find and cancel a delayed leave
   * whose schedule request reached the server but whose answer never reached us.
   */
  listDelayedEvents?(opts?: RequestOptions): Promise<PendingDelayedEvent[]>;
  /**
   * Optional: what became of one of our delayed events (MSC4140 `GET …/delayed_events/{delay_id}`).
   * Throws what the server answered when it has no such endpoint (404/405 `M_UNRECOGNIZED`).
   */
  getDelayedEvent?(delayId: string, opts?: RequestOptions): Promise<DelayedEventStatus>;
  /**
   * Optional: the user whose credentials the backend holds, when it knows (ClientBackend). The manager
   * refuses a `userId` that differs (MembershipConfigError). Widget mode cannot know it.
   */
  ownUserId?(): string | undefined;
  /**
   * Optional: a live view of the room (a synced client's room, the widget host's state pushes) for the
   * manager to watch its own membership in, and how to stop it. The manager trusts it only once it
   * shows the manager's own writes; until then (a client that does not sync) it reads its key instead.
   */
  watchRoom?(roomId: string): { source: SourceLike; close?: () => void } | undefined;
  /**
   * Sends a sticky event now (the sticky membership format's join, refresh and fallback leave); resolves
   * to its event id. Must never send a plain event instead: a server or host without sticky events gives
   * a `StickyEventsUnsupportedError`. In an encrypted room it sends the event encrypted, or refuses with
   * an `EncryptionUnavailableError`.
   */
  sendStickyEvent?(req: StickyEventRequest, opts?: RequestOptions): Promise<string>;
  /** Schedules a delayed sticky event (the sticky format's delayed leave); resolves to its delay id. */
  sendDelayedStickyEvent?(
    req: StickyEventRequest & { delayMs: number },
    opts?: RequestOptions,
  ): Promise<string>;
  /**
   * Optional: one event of the room by id, with the server's timestamp (undefined when the server has
   * none): the sticky format reads its own membership event back (a redaction empties it).
   */
  readEvent?(roomId: string, eventId: string, opts?: RequestOptions): Promise<StateEventSnapshot | undefined>;
  /** Optional probe of server support; called once per join, failures are ignored. */
  probeSupport?(opts?: RequestOptions): Promise<SupportHint>;
  /**
   * Hands a delayed leave over to the SFU's token service (MSC4195, the homeserver's
   * `…/rtc/livekit/delegate_delayed_leave`); resolves when the service took it, rejects with its answer
   * (404: no delegation there; 400: refused). Without it the manager never delegates.
   */
  delegateDelayedLeave?(req: DelegateDelayedLeaveRequest, opts?: RequestOptions): Promise<void>;
}

/** What a delegation names (MSC4195): the delayed leave, the membership it ends, and the SFU we are on. */
export interface DelegateDelayedLeaveRequest {
  /** The LiveKit SFU's URL (the `url` its token service answered), which the service checks as its own. */
  url: string;
  roomId: string;
  /** The slot id as MSC4143 writes it, `m.call#ROOM`. */
  slotId: string;
  /** Our membership's member id (`membershipID`). */
  memberId: string;
  deviceId: string;
  delayId: string;
}
