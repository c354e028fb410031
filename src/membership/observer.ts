/**
 * The call's members as an Observable, fed by room state: from a synced matrix-js-sdk `MatrixClient`
 * (standalone), from the widget API's `update_state` pushes (widget mode), or from plain state events.
 * Validation is `parse.ts`; this file only moves state around and re-evaluates on change and on expiry.
 *
 * No runtime import of matrix-js-sdk or matrix-widget-api: widget bundles stay small, and the event
 * names below are checked against js-sdk's enums in the unit tests.
 */
import {
  asyncScheduler,
  distinctUntilChanged,
  filter,
  from,
  isObservable,
  map,
  mergeMap,
  Observable,
  of,
  ReplaySubject,
  switchMap,
  type SchedulerLike,
  type Subscription,
} from "rxjs";
import { CALL_MEMBER_EVENT_TYPE, DEFAULT_SLOT, sameContent, type Slot } from "./content.js";
import {
  evaluateCallMembers,
  membershipLookupFrom,
  ownMembership,
  type CallMember,
  type MembershipLookup,
  type RejectedMembership,
  type StateEventLike,
} from "./parse.js";
import { receiveStateCapability } from "../backends/widget.js";

const ROOM_MEMBER_EVENT_TYPE = "m.room.member";

/** What a source knows about one room at one moment. */
export interface RoomStateSnapshot {
  /**
   * False until the source has the room's state (first sync, the host's first `update_state`):
   * before that, "no members" only means "not known yet", and `callMembers$` stays silent.
   */
  synced: boolean;
  /** The room's current `org.matrix.msc3401.call.member` state events, every state key. */
  callMemberEvents: readonly StateEventLike[];
  /** A user's `m.room.member` membership, or undefined when the source does not know it. */
  membershipOf: MembershipLookup;
}

/** Anything that emits a room's state: `roomStateSource`, `widgetStateSource`, `eventsStateSource`. */
export type RoomStateSource = Observable<RoomStateSnapshot>;

// ---------------------------------------------------------------------------------------------
// (a) A synced MatrixClient
// ---------------------------------------------------------------------------------------------

/** js-sdk's `RoomStateEvent.Events`, `ClientEvent.Room`, `ClientEvent.Sync`, `RoomEvent.TimelineReset`. */
export const JS_SDK_EVENTS = {
  /** A state event changed in a room. */
  roomStateEvents: "RoomState.events",
  /** A room became known to the client. */
  room: "Room",
  /** A sync completed (or failed). */
  sync: "sync",
  /** A room's timeline was reset (e.g. after a gappy sync). */
  timelineReset: "Room.timelineReset",
} as const;

/**
 * The part of a matrix-js-sdk `MatrixEvent` the room-state source reads. Typed here, not imported, so
 * that our declarations do not pull in matrix-js-sdk's (see `ClientLike`).
 */
export interface MatrixEventLike {
  /** The event type. */
  getType(): string;
  /** The state key (undefined for a timeline event). */
  getStateKey(): string | undefined;
  /** Who sent it. */
  getSender(): string | null | undefined;
  /** The content. */
  getContent(): Record<string, unknown>;
  /** `origin_server_ts`. */
  getTs(): number;
  /** The event id. */
  getId(): string | undefined;
  /** The room id. */
  getRoomId(): string | undefined;
}

/** The part of a matrix-js-sdk `Room` the room-state source reads. */
export interface RoomLike {
  /** The room id. */
  readonly roomId: string;
  /** The room's current state. */
  readonly currentState: {
    /** Every state event of one type. */
    getStateEvents(eventType: string): MatrixEventLike[];
  };
  /** A user's room membership, or null when unknown. */
  getMember(userId: string): {
    /** "join", "leave", "invite", … */
    membership?: string;
  } | null;
}

/**
 * The part of a matrix-js-sdk `MatrixClient` the room-state source uses (a started, syncing client);
 * a `MatrixClient` fits it.
 */
export interface RoomStateClient {
  /** The room, once the client knows it. */
  getRoom(roomId: string): RoomLike | null;
  /** Subscribes to one of the client's events (see `JS_SDK_EVENTS`). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- js-sdk's listeners take typed args
  on(event: string, listener: (...args: any[]) => void): unknown;
  /** Unsubscribes. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as for `on`
  off(event: string, listener: (...args: any[]) => void): unknown;
}

interface LooseEmitter {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  off(event: string, listener: (...args: unknown[]) => void): unknown;
}

function plainStateEvent(e: MatrixEventLike): StateEventLike {
  const event: StateEventLike = {
    type: e.getType(),
    state_key: e.getStateKey() ?? "",
    sender: e.getSender() ?? "",
    content: e.getContent(),
    origin_server_ts: e.getTs(),
  };
  const id = e.getId();
  if (id !== undefined) event.event_id = id;
  const roomId = e.getRoomId();
  if (roomId !== undefined) event.room_id = roomId;
  return event;
}

function roomSnapshot(room: RoomLike | null): RoomStateSnapshot {
  if (!room) return { synced: false, callMemberEvents: [], membershipOf: () => undefined };
  // The same events, in the same order, as MatrixRTCSession.sessionMembershipsForSlot reads.
  const events = room.currentState.getStateEvents(CALL_MEMBER_EVENT_TYPE).map(plainStateEvent);
  const memberships = new Map<string, string | undefined>();
  return {
    synced: true,
    callMemberEvents: events,
    membershipOf: (userId) => {
      if (!memberships.has(userId)) memberships.set(userId, room.getMember(userId)?.membership);
      return memberships.get(userId);
    },
  };
}

/**
 * The room's state from a started matrix-js-sdk client: a snapshot at once (unsynced if the room is not
 * known yet), then one on every state change in the room, on the room's arrival and after every sync
 * (which catches redactions and timeline resets).
 */
export function roomStateSource(client: RoomStateClient, roomId: string): RoomStateSource {
  return new Observable<RoomStateSnapshot>((subscriber) => {
    const emitter = client as unknown as LooseEmitter;
    const emit = () => subscriber.next(roomSnapshot(client.getRoom(roomId)));
    const onStateEvent = (...args: unknown[]) => {
      const event = args[0] as MatrixEventLike | undefined;
      if (event?.getRoomId?.() !== roomId) return;
      const type = event.getType();
      if (type === CALL_MEMBER_EVENT_TYPE || type === ROOM_MEMBER_EVENT_TYPE) emit();
    };
    const onRoom = (...args: unknown[]) => {
      if ((args[0] as RoomLike | undefined)?.roomId === roomId) emit();
    };
    const onAny = () => emit();
    emitter.on(JS_SDK_EVENTS.roomStateEvents, onStateEvent);
    emitter.on(JS_SDK_EVENTS.room, onRoom);
    emitter.on(JS_SDK_EVENTS.sync, onAny);
    emitter.on(JS_SDK_EVENTS.timelineReset, onAny);
    emit();
    return () => {
      emitter.off(JS_SDK_EVENTS.roomStateEvents, onStateEvent);
      emitter.off(JS_SDK_EVENTS.room, onRoom);
      emitter.off(JS_SDK_EVENTS.sync, onAny);
      emitter.off(JS_SDK_EVENTS.timelineReset, onAny);
    };
  });
}

// ---------------------------------------------------------------------------------------------
// (b) The widget API (MSC2762 `update_state`)
// ---------------------------------------------------------------------------------------------

/**
 * The part of matrix-widget-api's `WidgetApi` the state source uses; a `WidgetApi` fits it. Typed here
 * so that apps that never use a widget need not install matrix-widget-api to type-check.
 */
export interface WidgetStateApi {
  /** Subscribes to a widget API event (`ready`, `action:update_state`). */
  on(event: string, listener: (ev: CustomEvent) => void): unknown;
  /** Unsubscribes. */
  off(event: string, listener: (ev: CustomEvent) => void): unknown;
  /** Reads state events the host lets the widget see. */
  readStateEvents(
    eventType: string,
    limit?: number,
    stateKey?: string,
    roomIds?: string[],
  ): Promise<unknown[]>;
  /** The widget API versions the host supports (to learn whether it pushes state). */
  getClientVersions(): Promise<string[]>;
  /** The transport, to acknowledge the host's `update_state` pushes. */
  transport: {
    /** Answers a request from the host. */
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- WidgetApi's reply is generic over the request
    reply(request: any, responseData: Record<string, unknown>): void;
  };
}

const UPDATE_STATE_ACTION = "action:update_state";
const MSC2762_UPDATE_STATE = "org.matrix.msc2762_update_state";

/**
 * The capabilities a widget requests to observe a room's call members: every call membership, every
 * room membership (for the "sender is joined" rule), and the room's timeline, which is what makes a
 * matrix-widget-api host push the room's current state at negotiation (`update_state`).
 */
export function widgetObserverCapabilities(roomId: string): string[] {
  return [
    receiveStateCapability(CALL_MEMBER_EVENT_TYPE),
    receiveStateCapability(ROOM_MEMBER_EVENT_TYPE),
    `org.matrix.msc2762.timeline:${roomId}`,
  ];
}

/** Options of `widgetStateSource` / `WidgetStateSource`. */
export interface WidgetStateSourceOptions {
  /**
   * How to get the state the host had before we listened. `"auto"` (default): on the widget's `ready`,
   * read it with `readStateEvents` only if the host does not push state (`update_state`); otherwise its
   * first push is the initial state. `"now"`: read at once (the source was made after `ready`, so the
   * host's initial push may have been missed; best effort). `"never"`.
   */
  backfill?: "auto" | "now" | "never";
}

interface RawStateEvent {
  type?: unknown;
  state_key?: unknown;
  room_id?: unknown;
  sender?: unknown;
  content?: unknown;
  origin_server_ts?: unknown;
  event_id?: unknown;
}

/**
 * Room state as a widget sees it: what the host pushes with `update_state` (MSC2762), merged by type
 * and state key. Make it **before** `widgetApi.start()` (as matrix-js-sdk's RoomWidgetClient does) so
 * the host's initial push is not missed, and request `widgetObserverCapabilities(roomId)`.
 * It listens from creation until `close()`; subscribers get the latest snapshot at once.
 */
export class WidgetStateSource extends Observable<RoomStateSnapshot> {
  private readonly events = new Map<string, StateEventLike>();
  private readonly snapshots = new ReplaySubject<RoomStateSnapshot>(1);
  private synced = false;
  private closed = false;

  constructor(
    private readonly widgetApi: WidgetStateApi,
    /** The room whose state this source follows. */
    readonly roomId: string,
    options: WidgetStateSourceOptions = {},
  ) {
    super((subscriber) => this.snapshots.subscribe(subscriber));
    this.widgetApi.on(UPDATE_STATE_ACTION, this.onUpdateState);
    const backfill = options.backfill ?? "auto";
    if (backfill === "now") void this.backfill();
    else if (backfill === "auto") this.widgetApi.on("ready", this.onReady);
    this.publish();
  }

  /** Stop listening; subscribers complete. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.widgetApi.off(UPDATE_STATE_ACTION, this.onUpdateState);
    this.widgetApi.off("ready", this.onReady);
    this.snapshots.complete();
  }

  private readonly onReady = (): void => {
    this.widgetApi.off("ready", this.onReady);
    void this.widgetApi.getClientVersions().then(
      (versions) => {
        if (!versions.includes(MSC2762_UPDATE_STATE as never)) void this.backfill();
      },
      () => this.backfill(),
    );
  };

  private readonly onUpdateState = (ev: CustomEvent<{ data?: { state?: unknown } }>): void => {
    // Acknowledge unless another listener (e.g. js-sdk's RoomWidgetClient) already does.
    if (!ev.defaultPrevented) {
      ev.preventDefault();
      this.widgetApi.transport.reply(ev.detail as never, {});
    }
    if (this.closed) return;
    const state = ev.detail?.data?.state;
    if (Array.isArray(state)) for (const raw of state) this.merge(raw as RawStateEvent, true);
    this.synced = true;
    this.publish();
  };

  /** Read the current state through `readStateEvents` (keys the host already pushed are kept). */
  async backfill(): Promise<void> {
    const types = [CALL_MEMBER_EVENT_TYPE, ROOM_MEMBER_EVENT_TYPE];
    const results = await Promise.allSettled(
      types.map((type) => this.widgetApi.readStateEvents(type, undefined, undefined, [this.roomId])),
    );
    if (this.closed) return;
    for (const result of results)
      if (result.status === "fulfilled" && Array.isArray(result.value))
        // Timeline-backed hosts may answer older events too: keep the newest per key.
        for (const raw of [...result.value].sort(byTs)) this.merge(raw as RawStateEvent, false);
    if (results.some((r) => r.status === "fulfilled")) this.synced = true;
    this.publish();
  }

  private merge(raw: RawStateEvent, fromPush: boolean): void {
    if (typeof raw !== "object" || raw === null) return;
    if (raw.room_id !== undefined && raw.room_id !== this.roomId) return;
    if (raw.type !== CALL_MEMBER_EVENT_TYPE && raw.type !== ROOM_MEMBER_EVENT_TYPE) return;
    if (typeof raw.state_key !== "string") return;
    const key = `${raw.type}\u0000${raw.state_key}`;
    const previous = this.events.get(key);
    const ts = typeof raw.origin_server_ts === "number" ? raw.origin_server_ts : NaN;
    if (!fromPush && previous && !(ts >= previous.origin_server_ts)) return;
    this.events.set(key, raw as StateEventLike);
  }

  private publish(): void {
    if (this.closed) return;
    const all = [...this.events.values()];
    this.snapshots.next({
      synced: this.synced,
      callMemberEvents: all.filter((e) => e.type === CALL_MEMBER_EVENT_TYPE),
      membershipOf: membershipLookupFrom(all),
    });
  }
}

function byTs(a: unknown, b: unknown): number {
  const ts = (e: unknown) => {
    const v = (e as RawStateEvent | null)?.origin_server_ts;
    return typeof v === "number" ? v : 0;
  };
  return ts(a) - ts(b);
}

/** `new WidgetStateSource(widgetApi, roomId, options)`. */
export function widgetStateSource(
  widgetApi: WidgetStateApi,
  roomId: string,
  options?: WidgetStateSourceOptions,
): WidgetStateSource {
  return new WidgetStateSource(widgetApi, roomId, options);
}

// ---------------------------------------------------------------------------------------------
// (c) Plain state events
// ---------------------------------------------------------------------------------------------

/**
 * State events as a source: one list, or an Observable of lists. Each list is the room's state (later
 * events with the same type and state key override earlier ones, so an event log works too) and
 * should include the senders' `m.room.member` events: a sender without one does not count.
 */
export function eventsStateSource(
  events: Iterable<unknown> | Observable<Iterable<unknown>>,
): RoomStateSource {
  const lists: Observable<Iterable<unknown>> = isObservable(events) ? events : of(events);
  return lists.pipe(
    map((list) => {
      const all = [...list];
      return {
        synced: true,
        callMemberEvents: all.filter(
          (e): e is StateEventLike =>
            typeof e === "object" && e !== null && (e as { type?: unknown }).type === CALL_MEMBER_EVENT_TYPE,
        ),
        membershipOf: membershipLookupFrom(all),
      };
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// The observable
// ---------------------------------------------------------------------------------------------

/** Options of `callMembers$` and its relatives. */
export interface CallMembersOptions {
  /** Required when the source is a MatrixClient. */
  roomId?: string;
  /** Default `{application: "m.call", id: "ROOM"}`. */
  slot?: Slot;
  /** Time and expiry timers (tests pass a TestScheduler/VirtualTimeScheduler). Default asyncScheduler. */
  scheduler?: SchedulerLike;
  /**
   * Count only senders whose `m.room.member` is `join` (js-sdk's rule). Default true; false only for
   * sources that cannot know room membership and whose senders are known to be joined.
   */
  requireJoinedSender?: boolean;
}

/** One evaluation of the room's call state. */
export interface CallMembersSnapshot {
  /** false until the source has the room's state (an empty `members` then means "not known yet"). */
  synced: boolean;
  /** Oldest first: `members[0]` is the one `oldest_membership` focus selection follows. */
  members: CallMember[];
  /** Membership events that are not counted, and why (malformed, spoofed keys, expired, not joined). */
  rejected: RejectedMembership[];
  /** Scheduler time of this evaluation. */
  at: number;
}

/** Where call members are read from: a `RoomStateSource` observable, or a started js-sdk client. */
export type SourceLike = RoomStateSource | RoomStateClient;

/** A `RoomStateSource` for any `SourceLike` (a started client needs `roomId`). */
export function toRoomStateSource(source: SourceLike, roomId: string | undefined): RoomStateSource {
  return toSource(source, roomId);
}

function toSource(source: SourceLike, roomId: string | undefined): RoomStateSource {
  if (isObservable(source)) return source as RoomStateSource;
  if (roomId === undefined) throw new TypeError("callMembers$: roomId is required with a MatrixClient");
  return roomStateSource(source, roomId);
}

/** Evaluate one snapshot now, and again whenever a member's expiry passes. */
function evaluations(
  snapshot: RoomStateSnapshot,
  slot: Slot,
  scheduler: SchedulerLike,
  requireJoined: boolean,
): Observable<CallMembersSnapshot> {
  return new Observable<CallMembersSnapshot>((subscriber) => {
    let pending: Subscription | undefined;
    const run = (): void => {
      const now = scheduler.now();
      const result = evaluateCallMembers(snapshot.callMemberEvents, {
        slot,
        now,
        membershipOf: requireJoined ? snapshot.membershipOf : undefined,
      });
      subscriber.next({
        synced: snapshot.synced,
        members: result.members,
        rejected: result.rejected,
        at: now,
      });
      if (result.nextExpiryAt !== undefined) {
        // setTimeout overflows past 2^31-1 ms (and would fire at once): wake up then and look again.
        const wait = Math.min(Math.max(0, result.nextExpiryAt - now), 2 ** 31 - 1);
        pending = scheduler.schedule(run, wait);
      }
    };
    run();
    return () => pending?.unsubscribe();
  });
}

function memberFingerprint(m: CallMember): unknown {
  return [m.stateKey, m.eventId, m.userId, m.deviceId, m.createdTs, m.expiresAt, m.content];
}

function sameSnapshot(a: CallMembersSnapshot, b: CallMembersSnapshot): boolean {
  return (
    a.synced === b.synced &&
    sameContent(a.members.map(memberFingerprint), b.members.map(memberFingerprint)) &&
    sameContent(a.rejected, b.rejected)
  );
}

/** Same members, same order, same content: what `callMembers$` suppresses. */
export function sameMembers(a: readonly CallMember[], b: readonly CallMember[]): boolean {
  return a.length === b.length && sameContent(a.map(memberFingerprint), b.map(memberFingerprint));
}

/**
 * Every evaluation of the call's state: on subscription, on each change of the source's state, and when
 * a member expires. Consecutive equal evaluations are dropped.
 */
export function callMembersState$(
  source: SourceLike,
  options: CallMembersOptions = {},
): Observable<CallMembersSnapshot> {
  const slot = options.slot ?? DEFAULT_SLOT;
  const scheduler = options.scheduler ?? asyncScheduler;
  const requireJoined = options.requireJoinedSender ?? true;
  return toSource(source, options.roomId).pipe(
    switchMap((snapshot) => evaluations(snapshot, slot, scheduler, requireJoined)),
    distinctUntilChanged(sameSnapshot),
  );
}

/**
 * The call's members for a room and slot, oldest first, once the source is synced; emits when the list
 * or any member's content changes (a join, an update, a leave, an expiry).
 */
export function callMembers$(source: SourceLike, options: CallMembersOptions = {}): Observable<CallMember[]> {
  return callMembersState$(source, options).pipe(
    filter((s) => s.synced),
    map((s) => s.members),
    distinctUntilChanged<CallMember[]>(sameMembers),
  );
}

/** Each membership event that is not counted, once per event and reason, as it appears. */
export function rejectedMemberships$(
  source: SourceLike,
  options: CallMembersOptions = {},
): Observable<RejectedMembership> {
  return new Observable<RejectedMembership>((subscriber) => {
    const seen = new Set<string>();
    return callMembersState$(source, options)
      .pipe(
        mergeMap((s) => {
          const current = new Set<string>();
          const fresh: RejectedMembership[] = [];
          for (const r of s.rejected) {
            const key = JSON.stringify([r.stateKey, r.eventId, r.reason, r.sender]);
            current.add(key);
            if (!seen.has(key)) fresh.push(r);
          }
          // Forget what is gone, so a rejection that comes back is reported again.
          seen.clear();
          for (const k of current) seen.add(k);
          return from(fresh);
        }),
      )
      .subscribe(subscriber);
  });
}

/**
 * Our own device's valid membership as the room state shows it (undefined when the server holds none,
 * or only an expired or invalid one). A manager can compare it with what it believes it holds.
 */
export function ownMembership$(
  source: SourceLike,
  options: CallMembersOptions & { userId: string; deviceId: string },
): Observable<CallMember | undefined> {
  return callMembers$(source, options).pipe(
    map((members) => ownMembership(members, options.userId, options.deviceId)),
    distinctUntilChanged((a, b) => (a && b ? sameMembers([a], [b]) : a === b)),
  );
}
