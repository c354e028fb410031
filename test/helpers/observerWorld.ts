/**
 * A small world for the observer's unit tests: call membership and room membership events with
 * Synapse-like `unsigned`, a fake matrix-js-sdk client whose room applies a "sync" of events the way
 * js-sdk does (one `RoomState.events` per state event, then one `sync`), and js-sdk's own
 * `MatrixRTCSession.sessionMembershipsForSlot` over the same events, for comparison.
 */
import { EventEmitter } from "node:events";
import { EventTimeline, MatrixEvent } from "matrix-js-sdk";
import { MatrixRTCSession } from "matrix-js-sdk/lib/matrixrtc/index.js";
import {
  CALL_MEMBER_EVENT_TYPE,
  JS_SDK_EVENTS,
  RTC_MEMBER_EVENT_TYPE,
  type MatrixEventLike,
  type RoomLike,
  type RoomStateClient,
  type StateEventLike,
} from "../../src/index.js";

export const ROOM = "!room:hs";

let ids = 0;
export const nextId = (prefix = "$e"): string => `${prefix}${++ids}`;

export function callContent(device: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    application: "m.call",
    call_id: "",
    scope: "m.room",
    device_id: device,
    focus_active: { type: "livekit", focus_selection: "oldest_membership" },
    foci_preferred: [{ type: "livekit", livekit_service_url: "https://lk.example" }],
    ...extra,
  };
}

export const memberKey = (user: string, device: string): string => `_${user}_${device}_m.call`;

/**
 * A room's state as a server keeps it: each new state event says in `unsigned` which event it replaced
 * and that event's content (Synapse's `replaces_state` / `prev_content`), unless `plain` is set.
 */
export class ServerRoom {
  readonly state = new Map<string, StateEventLike>();
  private ts = 1_000;

  constructor(private readonly plain = false) {}

  /** Advance the server clock and return it. */
  tick(ms = 1_000): number {
    this.ts += ms;
    return this.ts;
  }

  now(): number {
    return this.ts;
  }

  put(type: string, stateKey: string, sender: string, content: unknown, ts = this.tick()): StateEventLike {
    const key = `${type}\u0000${stateKey}`;
    const previous = this.state.get(key);
    const event: StateEventLike = {
      type,
      state_key: stateKey,
      sender,
      content,
      origin_server_ts: ts,
      event_id: nextId(type === CALL_MEMBER_EVENT_TYPE ? "$c" : "$m"),
      room_id: ROOM,
    };
    if (!this.plain)
      event.unsigned = previous
        ? { age: 1, replaces_state: previous.event_id, prev_content: previous.content }
        : { age: 1 };
    this.state.set(key, event);
    return event;
  }

  join(user: string, ts?: number): StateEventLike {
    return this.put("m.room.member", user, user, { membership: "join", displayname: user }, ts);
  }

  leave(user: string, ts?: number): StateEventLike {
    return this.put("m.room.member", user, user, { membership: "leave" }, ts);
  }

  /** A profile change: still joined. */
  rename(user: string, name: string, ts?: number): StateEventLike {
    return this.put("m.room.member", user, user, { membership: "join", displayname: name }, ts);
  }

  call(user: string, device: string, extra: Record<string, unknown> = {}, ts?: number): StateEventLike {
    return this.put(CALL_MEMBER_EVENT_TYPE, memberKey(user, device), user, callContent(device, extra), ts);
  }

  hangUp(user: string, device: string, ts?: number): StateEventLike {
    return this.put(CALL_MEMBER_EVENT_TYPE, memberKey(user, device), user, {}, ts);
  }

  events(): StateEventLike[] {
    return [...this.state.values()];
  }

  callEvents(): StateEventLike[] {
    return this.events().filter((e) => e.type === CALL_MEMBER_EVENT_TYPE);
  }
}

/**
 * A sticky membership as a server delivers it (MSC4354, unstable names): js-sdk 43's content for a
 * device, `msc4354_sticky.duration_ms` and, unless `ttl` is null, `unsigned.msc4354_sticky_duration_ttl_ms`.
 */
export function stickyMember(
  user: string,
  device: string,
  options: {
    ts: number;
    key?: string;
    ttl?: number | null;
    durationMs?: number;
    content?: Record<string, unknown>;
  },
): StateEventLike {
  const key = options.key ?? `mem-${device}`;
  const event: Record<string, unknown> = {
    type: RTC_MEMBER_EVENT_TYPE,
    sender: user,
    content: options.content ?? {
      slot_id: "m.call#ROOM",
      application: { type: "m.call", "m.call.intent": "video" },
      transports: {
        published: [{ type: "livekit", livekit_service_url: "https://lk.example" }],
        can_subscribe: [],
      },
      member: { user_id: user, device_id: device, id: key },
      versions: [],
      msc4354_sticky_key: key,
    },
    origin_server_ts: options.ts,
    event_id: nextId("$s"),
    room_id: ROOM,
    msc4354_sticky: { duration_ms: options.durationMs ?? 3_600_000 },
  };
  if (options.ttl !== null) event.unsigned = { msc4354_sticky_duration_ttl_ms: options.ttl ?? 3_600_000 };
  return event as unknown as StateEventLike;
}

function fakeEvent(raw: StateEventLike): MatrixEventLike {
  return {
    getType: () => raw.type,
    getStateKey: () => raw.state_key,
    getSender: () => raw.sender,
    getContent: () => raw.content as Record<string, unknown>,
    getTs: () => raw.origin_server_ts,
    getId: () => raw.event_id,
    getRoomId: () => raw.room_id ?? ROOM,
    getUnsigned: () => raw.unsigned ?? {},
  };
}

/**
 * A stand-in for a started matrix-js-sdk client with one room: `sync(events)` applies the events to the
 * room's state one by one (a `RoomState.events` each, as js-sdk does) and then emits `sync`. Counts the
 * reads of the whole call (`getStateEvents(type)` without a state key).
 */
export class FakeSyncClient extends EventEmitter implements RoomStateClient {
  readonly events = new Map<string, MatrixEventLike>();
  /** js-sdk 43's room sticky store, simplified: the current event per (sender, sticky key). */
  readonly sticky = new Map<string, MatrixEventLike>();
  private readonly roomEvents = new EventEmitter();
  wholeCallReads = 0;
  private known = false;
  readonly room: RoomLike;

  constructor(readonly roomId = ROOM) {
    super();
    const events = this.events;
    const countRead = () => this.wholeCallReads++;
    this.room = {
      roomId,
      currentState: {
        getStateEvents(type: string, stateKey?: string) {
          if (stateKey !== undefined) return events.get(`${type}\u0000${stateKey}`) ?? null;
          if (type === CALL_MEMBER_EVENT_TYPE) countRead();
          return [...events.values()].filter((e) => e.getType() === type);
        },
      } as RoomLike["currentState"],
      getMember(userId: string) {
        const e = events.get(`m.room.member\u0000${userId}`);
        return e ? { membership: e.getContent().membership as string } : null;
      },
      _unstable_getStickyEvents: () => this.sticky.values(),
    };
    // js-sdk's Room is an emitter (RoomStickyEvents.Update comes from it).
    Object.assign(this.room, {
      on: (name: string, f: (...a: unknown[]) => void) => this.roomEvents.on(name, f),
      off: (name: string, f: (...a: unknown[]) => void) => this.roomEvents.off(name, f),
    });
  }

  /** Sticky events in one sync: the room's store takes them (Update), then `sync`. */
  syncSticky(raws: readonly StateEventLike[], expiresAt: number): void {
    const added: MatrixEventLike[] = [];
    const updated: { current: MatrixEventLike; previous: MatrixEventLike }[] = [];
    for (const raw of raws) {
      const content = raw.content as { msc4354_sticky_key?: string; sticky_key?: string };
      const key = `${raw.sender}\u0000${content.sticky_key ?? content.msc4354_sticky_key}`;
      const event = Object.assign(fakeEvent(raw), { unstableStickyExpiresAt: expiresAt });
      event.getStateKey = () => undefined;
      const previous = this.sticky.get(key);
      this.sticky.set(key, event);
      if (previous) updated.push({ current: event, previous });
      else added.push(event);
    }
    this.roomEvents.emit(JS_SDK_EVENTS.stickyEventsUpdate, added, updated, []);
    this.emit(JS_SDK_EVENTS.sync, "SYNCING");
  }

  getRoom(roomId: string): RoomLike | null {
    return this.known && roomId === this.roomId ? this.room : null;
  }

  /** One sync: the state events in order, then `sync` (and `Room` first if the room is new). */
  sync(raws: readonly StateEventLike[], extra: { timelineOnly?: boolean } = {}): void {
    const wasKnown = this.known;
    for (const raw of raws) {
      const event = fakeEvent(raw);
      if (!extra.timelineOnly) {
        this.events.set(`${raw.type}\u0000${raw.state_key}`, event);
        this.emit(JS_SDK_EVENTS.roomStateEvents, event);
      }
    }
    if (!wasKnown) {
      this.known = true;
      this.emit(JS_SDK_EVENTS.room, this.room);
    }
    this.emit(JS_SDK_EVENTS.sync, "SYNCING");
  }
}

/** What js-sdk 43's MatrixRTCSession lists for these state events, at `now`, as "@user|DEVICE". */
export async function jsSdkList(events: readonly StateEventLike[], now: number): Promise<string[]> {
  const callEvents = events
    .filter((e) => e.type === CALL_MEMBER_EVENT_TYPE)
    .map((e) => new MatrixEvent({ ...e, room_id: ROOM } as never));
  const memberships = new Map<string, string>();
  for (const e of events)
    if (e.type === "m.room.member")
      memberships.set(e.state_key, (e.content as { membership: string }).membership);
  const room = {
    roomId: ROOM,
    getLiveTimeline: () => ({
      getState: (dir: string) =>
        dir === EventTimeline.FORWARDS
          ? { getStateEvents: (type: string) => (type === CALL_MEMBER_EVENT_TYPE ? callEvents : []) }
          : undefined,
    }),
    hasMembershipState: (userId: string, m: string) => memberships.get(userId) === m,
    _unstable_getStickyEvents: () => [],
  };
  const realNow = Date.now;
  Date.now = () => now;
  try {
    const members = await MatrixRTCSession.sessionMembershipsForSlot(
      room as never,
      { application: "m.call", id: "ROOM" },
      { listenForStickyEvents: false, listenForMemberStateEvents: true },
    );
    return members.map((m) => `${m.userId}|${m.deviceId}`);
  } finally {
    Date.now = realNow;
  }
}

export const idsOf = (members: readonly { userId: string; deviceId: string }[]): string[] =>
  members.map((m) => `${m.userId}|${m.deviceId}`);
