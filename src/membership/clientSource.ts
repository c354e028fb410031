/**
 * Room state from a started matrix-js-sdk `MatrixClient`, one snapshot per sync that changed it.
 *
 * js-sdk applies a sync's state events one by one (`RoomState.events`), then says the sync is done
 * (`sync`). This source only notes which call memberships and room memberships changed, and emits one
 * snapshot at the end of the sync carrying just those (`changes`): K call events in one sync are one
 * snapshot, a sync that touched neither (a chat message, a typing notice) is none. A change that comes
 * outside a sync (members loaded lazily, a client that never emits `sync`) is emitted once nothing has
 * changed for `quietMs`. The room's arrival makes the next snapshot a full one. A timeline reset (a gappy
 * sync) does not: js-sdk moves the room's current state to the new timeline (or clones it, unchanged)
 * and applies what the sync changed to it, emitting `RoomState.events` as ever; redactions of current
 * state are set again the same way.
 *
 * No runtime import of matrix-js-sdk: the event names are checked against js-sdk's enums in the tests.
 */
import { asyncScheduler, Observable, type SchedulerLike, type Subscription } from "rxjs";
import { CALL_MEMBER_EVENT_TYPE } from "./content.js";
import type { StateEventLike } from "./parse.js";
import { RTC_MEMBER_EVENT_TYPE, RTC_SLOT_EVENT_TYPE } from "./sticky.js";
import type { RoomStateSnapshot, RoomStateSource } from "./snapshot.js";

const ROOM_MEMBER_EVENT_TYPE = "m.room.member";

/** js-sdk's `RoomStateEvent.Events`, `ClientEvent.Room`, `ClientEvent.Sync`, `RoomEvent.TimelineReset`. */
export const JS_SDK_EVENTS = {
  /** A state event changed in a room. */
  roomStateEvents: "RoomState.events",
  /** A room became known to the client. */
  room: "Room",
  /** A sync completed (or failed). */
  sync: "sync",
  /** A room's timeline was reset (e.g. after a gappy sync); not listened to (see above). */
  timelineReset: "Room.timelineReset",
  /** A room's sticky events changed (js-sdk's `RoomStickyEventsEvent.Update`, emitted by the room). */
  stickyEventsUpdate: "RoomStickyEvents.Update",
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
  /** `unsigned` (`replaces_state`, `prev_content`: see `facts.ts`); js-sdk answers `{}` when absent. */
  getUnsigned?(): object;
  /** A sticky event's expiry on our clock, as js-sdk 43 computed it on receipt (MSC4354). */
  readonly unstableStickyExpiresAt?: number;
}

/** The part of a matrix-js-sdk `Room` the room-state source reads. */
export interface RoomLike {
  /** The room id. */
  readonly roomId: string;
  /** The room's current state. */
  readonly currentState: {
    /** Every state event of one type. */
    getStateEvents(eventType: string): MatrixEventLike[];
    /** The state event of one type and state key. */
    getStateEvents(eventType: string, stateKey: string): MatrixEventLike | null;
  };
  /** A user's room membership, or null when unknown. */
  getMember(userId: string): {
    /** "join", "leave", "invite", … */
    membership?: string;
  } | null;
  /** js-sdk 43: the room's current sticky events (MSC4354); absent in older versions. */
  _unstable_getStickyEvents?(): Iterable<MatrixEventLike>;
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

/** Options of `roomStateSource`. */
export interface RoomStateSourceOptions {
  /** Timers (the quiet wait below). Default RxJS's `asyncScheduler`. */
  scheduler?: SchedulerLike;
  /**
   * A change that arrives outside a sync is emitted once no other change came for this long (ms).
   * Changes within a sync wait for its end instead. Default 20.
   */
  quietMs?: number;
}

interface LooseEmitter {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  off(event: string, listener: (...args: unknown[]) => void): unknown;
}

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}

/** A js-sdk event as a plain state event (what the parser reads). */
export function plainStateEvent(e: MatrixEventLike): StateEventLike {
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
  const unsigned = e.getUnsigned?.();
  // js-sdk answers {} when the server sent none: leave it out then ("unknown", see facts.ts).
  if (typeof unsigned === "object" && unsigned !== null && hasKeys(unsigned))
    event.unsigned = unsigned as Record<string, unknown>;
  return event;
}

/** A js-sdk sticky event as a plain event (no state key), with js-sdk's own expiry as `expiresAt`. */
export function plainStickyEvent(e: MatrixEventLike): StateEventLike {
  const event: Record<string, unknown> = {
    type: e.getType(),
    sender: e.getSender() ?? "",
    content: e.getContent(),
    origin_server_ts: e.getTs(),
  };
  const id = e.getId();
  if (id !== undefined) event.event_id = id;
  const unsigned = e.getUnsigned?.();
  if (typeof unsigned === "object" && unsigned !== null && hasKeys(unsigned)) event.unsigned = unsigned;
  if (typeof e.unstableStickyExpiresAt === "number") event.expiresAt = e.unstableStickyExpiresAt;
  // The store tells a sticky event by its missing state key; typed as the changes' element type.
  return event as unknown as StateEventLike;
}

/** The room's current sticky memberships (js-sdk 43 and later; none before). */
function stickyMembersOf(room: RoomLike): StateEventLike[] {
  const out: StateEventLike[] = [];
  const all = room._unstable_getStickyEvents?.();
  if (all) for (const e of all) if (e.getType() === RTC_MEMBER_EVENT_TYPE) out.push(plainStickyEvent(e));
  return out;
}

/** One state event of the room's current state (also with a room stub that ignores the state key). */
function currentStateEvent(room: RoomLike, type: string, stateKey: string): MatrixEventLike | undefined {
  const found = room.currentState.getStateEvents(type, stateKey) as
    MatrixEventLike | MatrixEventLike[] | null | undefined;
  if (Array.isArray(found)) return found.find((e) => e.getStateKey() === stateKey);
  return found ?? undefined;
}

const UNSYNCED: RoomStateSnapshot = Object.freeze({
  synced: false,
  callMemberEvents: Object.freeze([]) as readonly StateEventLike[],
  membershipOf: () => undefined,
});

/** A user's room membership and `m.room.member` event, read from the room when asked. */
function roomMembersOf(room: RoomLike): Pick<RoomStateSnapshot, "membershipOf" | "memberEventOf"> {
  // Apart from `roomSnapshot`'s scope: a closure there would keep its whole list of events alive.
  return {
    membershipOf: (userId) => room.getMember(userId)?.membership,
    memberEventOf: (userId) => {
      const event = currentStateEvent(room, ROOM_MEMBER_EVENT_TYPE, userId);
      return event ? plainStateEvent(event) : undefined;
    },
  };
}

/** The room as a snapshot; `callMemberEvents` is read only if someone asks (the observer reads `changes`). */
function roomSnapshot(room: RoomLike, changes?: RoomStateSnapshot["changes"]): RoomStateSnapshot {
  let events: StateEventLike[] | undefined;
  let sticky: StateEventLike[] | undefined;
  const snapshot: RoomStateSnapshot = {
    synced: true,
    get callMemberEvents(): StateEventLike[] {
      // The same events, in the same order, as MatrixRTCSession.sessionMembershipsForSlot reads.
      events ??= room.currentState.getStateEvents(CALL_MEMBER_EVENT_TYPE).map(plainStateEvent);
      return events;
    },
    get stickyMemberEvents(): StateEventLike[] {
      sticky ??= stickyMembersOf(room);
      return sticky;
    },
    slotEventOf: (slotId) => {
      const event = currentStateEvent(room, RTC_SLOT_EVENT_TYPE, slotId);
      return event ? plainStateEvent(event) : undefined;
    },
    ...roomMembersOf(room),
  };
  if (changes) snapshot.changes = changes;
  return snapshot;
}

/**
 * The room's state from a started matrix-js-sdk client: a full snapshot at once (unsynced if the room is
 * not known yet), then one at the end of every sync that changed a call membership or a room membership
 * in the room, carrying what changed.
 */
export function roomStateSource(
  client: RoomStateClient,
  roomId: string,
  options: RoomStateSourceOptions = {},
): RoomStateSource {
  const scheduler = options.scheduler ?? asyncScheduler;
  const quietMs = options.quietMs ?? 20;
  return new Observable<RoomStateSnapshot>((subscriber) => {
    const emitter = client as unknown as LooseEmitter;
    let needFull = true;
    // The changed events in the order js-sdk applied them (it emits only for the room's current state).
    let changes: StateEventLike[] = [];
    let pending = false;
    let lastChangeAt = 0;
    let quiet: Subscription | undefined;

    const emit = (): void => {
      quiet?.unsubscribe();
      quiet = undefined;
      pending = false;
      const room = client.getRoom(roomId);
      followSticky();
      const events = changes;
      changes = [];
      if (!room || needFull) {
        needFull = !room;
        subscriber.next(room ? roomSnapshot(room) : UNSYNCED);
        return;
      }
      subscriber.next(roomSnapshot(room, { events }));
    };
    const waitQuiet = (): void => {
      const idle = scheduler.now() - lastChangeAt;
      quiet = idle >= quietMs ? undefined : scheduler.schedule(waitQuiet, quietMs - idle);
      if (!quiet) emit();
    };
    const changed = (): void => {
      pending = true;
      lastChangeAt = scheduler.now();
      quiet ??= scheduler.schedule(waitQuiet, quietMs);
    };

    const onStateEvent = (...args: unknown[]): void => {
      const event = args[0] as MatrixEventLike | undefined;
      if (event?.getRoomId?.() !== roomId) return;
      const type = event.getType();
      if (type !== CALL_MEMBER_EVENT_TYPE && type !== ROOM_MEMBER_EVENT_TYPE && type !== RTC_SLOT_EVENT_TYPE)
        return;
      if (event.getStateKey() === undefined) return;
      if (!needFull) changes.push(plainStateEvent(event));
      changed();
    };
    const onRoom = (...args: unknown[]): void => {
      if ((args[0] as RoomLike | undefined)?.roomId !== roomId) return;
      needFull = true;
      changed();
    };
    const onSync = (): void => {
      if (pending) emit();
    };
    // Sticky memberships: js-sdk's room store says what it added or replaced (noted like state changes).
    // What it removed is either expired (our store expires it at the same instant, from js-sdk's own
    // expiry) or redacted before its time: only the latter needs a full read.
    const onStickyUpdate = (...args: unknown[]): void => {
      const [added, updated, removed] = args as [
        MatrixEventLike[] | undefined,
        { current: MatrixEventLike }[] | undefined,
        MatrixEventLike[] | undefined,
      ];
      let touched = false;
      const take = (e: MatrixEventLike): void => {
        if (e.getType() !== RTC_MEMBER_EVENT_TYPE) return;
        if (!needFull) changes.push(plainStickyEvent(e));
        touched = true;
      };
      for (const e of added ?? []) take(e);
      for (const u of updated ?? []) take(u.current);
      for (const e of removed ?? [])
        if (e.getType() === RTC_MEMBER_EVENT_TYPE && (e.unstableStickyExpiresAt ?? 0) > Date.now()) {
          needFull = true;
          touched = true;
        }
      if (touched) changed();
    };
    let stickyRoom: LooseEmitter | undefined;
    const followSticky = (): void => {
      const room = client.getRoom(roomId) as unknown as Partial<LooseEmitter> | null;
      if (!room || (room as unknown) === stickyRoom || typeof room.on !== "function") return;
      stickyRoom?.off(JS_SDK_EVENTS.stickyEventsUpdate, onStickyUpdate);
      stickyRoom = room as LooseEmitter;
      stickyRoom.on(JS_SDK_EVENTS.stickyEventsUpdate, onStickyUpdate);
    };

    emitter.on(JS_SDK_EVENTS.roomStateEvents, onStateEvent);
    emitter.on(JS_SDK_EVENTS.room, onRoom);
    emitter.on(JS_SDK_EVENTS.sync, onSync);
    emit();
    return () => {
      quiet?.unsubscribe();
      emitter.off(JS_SDK_EVENTS.roomStateEvents, onStateEvent);
      emitter.off(JS_SDK_EVENTS.room, onRoom);
      emitter.off(JS_SDK_EVENTS.sync, onSync);
      stickyRoom?.off(JS_SDK_EVENTS.stickyEventsUpdate, onStickyUpdate);
    };
  });
}
