/**
 * /sync: initial and incremental responses computed from the room logs, plus the long-poll wait.
 * Tokens are `s<stream position>`, or `s<position>_<sticky position>` when MSC4354's per-sync limit left
 * sticky events for the next sync. With `org.matrix.msc4222.use_state_after=true` (matrix-js-sdk 43 always
 * asks) rooms carry `org.matrix.msc4222.state_after` instead of `state`.
 */
import { badRequest, type JsonObject } from "./errors.js";
import type { RoomRecord, RoomStore, StoredEvent } from "./rooms.js";
import { serializeEvent, strippedState, type SerializeOptions, type Viewer } from "./serialize.js";
import { MAX_STICKY_EVENTS_IN_SYNC, type StickyEventTable } from "./sticky-events.js";

export interface SyncParams {
  since?: string;
  timelineLimit: number;
  useStateAfter: boolean;
}

export interface SyncResult {
  body: JsonObject;
  /** False when nothing changed for this user since `since` (the long-poll should keep waiting). */
  hasChanges: boolean;
}

/** MSC4354 on: where /sync takes sticky events from, and the section's name. */
export interface StickySyncSource {
  table: StickyEventTable;
  /** Server clock time (expiry is judged against it). */
  now: number;
  section: string;
}

export interface SyncPosition {
  pos: number;
  /** How far the sticky events were delivered (behind `pos` when the per-sync limit cut them short). */
  stickyPos: number;
}

export function parseSyncToken(token: string | undefined, currentPos: number): SyncPosition | undefined {
  if (token === undefined) return undefined;
  const match = /^s(\d+)(?:_(\d+))?$/.exec(token);
  if (!match) throw badRequest("Invalid stream token", "M_INVALID_PARAM");
  // A token from "the future" (e.g. a client that synced against another server) counts as "now".
  const pos = Math.min(Number(match[1]), currentPos);
  return { pos, stickyPos: match[2] === undefined ? pos : Math.min(Number(match[2]), pos) };
}

const syncToken = (pos: number, stickyPos: number): string =>
  stickyPos < pos ? `s${pos}_${stickyPos}` : `s${pos}`;

/** Timeline limit from a filter definition (`room.timeline.limit`), Synapse's default 10 otherwise. */
export function timelineLimitOf(filter: JsonObject | undefined): number {
  const room = filter?.room as JsonObject | undefined;
  const timeline = room?.timeline as JsonObject | undefined;
  const limit = timeline?.limit;
  return typeof limit === "number" && Number.isInteger(limit) && limit > 0 ? Math.min(limit, 100) : 10;
}

export function buildSync(
  rooms: RoomStore,
  viewer: Viewer,
  params: SyncParams,
  ser: SerializeOptions,
  sticky?: StickySyncSource,
): SyncResult {
  const now = rooms.streamPos;
  const sincePosition = parseSyncToken(params.since, now);
  const since = sincePosition?.pos;
  const stickyEvents = selectSticky(rooms, viewer.userId, sincePosition, now, sticky);
  const join: JsonObject = {};
  const invite: JsonObject = {};
  const leave: JsonObject = {};
  const serialize = (events: Iterable<StoredEvent>): JsonObject[] =>
    [...events].map((event) => serializeEvent(event, viewer, ser));

  for (const room of rooms.roomsOf(viewer.userId)) {
    const membership = rooms.membership(room.roomId, viewer.userId);
    const before = since === undefined ? undefined : rooms.membershipAt(room, viewer.userId, since);
    if (membership === "join") {
      const stickyHere = sticky && {
        section: sticky.section,
        events: stickyEvents.byRoom.get(room.roomId) ?? [],
      };
      const entry = joinedRoom(rooms, room, viewer, since, before !== "join", params, serialize, stickyHere);
      if (entry) join[room.roomId] = entry;
    } else if (membership === "invite" && (since === undefined || before !== "invite")) {
      invite[room.roomId] = {
        invite_state: {
          events: [...room.state.values()]
            .filter(
              (e) =>
                [
                  "m.room.create",
                  "m.room.join_rules",
                  "m.room.name",
                  "m.room.avatar",
                  "m.room.encryption",
                ].includes(e.type) ||
                (e.type === "m.room.member" && e.state_key === viewer.userId),
            )
            .map(strippedState),
        },
      };
    } else if (
      since !== undefined &&
      (membership === "leave" || membership === "ban") &&
      (before === "join" || before === "invite")
    ) {
      const own = rooms.stateEvent(room.roomId, "m.room.member", viewer.userId) as StoredEvent;
      const events = room.events.filter((e) => e.pos > since && e.pos <= own.pos);
      const timeline = events.slice(-params.timelineLimit);
      leave[room.roomId] = {
        timeline: {
          events: serialize(timeline),
          limited: events.length > timeline.length,
          prev_batch: `t${(timeline[0]?.pos ?? own.pos) - 1}`,
        },
        state: { events: [] },
        account_data: { events: [] },
      };
    }
  }

  const hasChanges = Object.keys(join).length + Object.keys(invite).length + Object.keys(leave).length > 0;
  return {
    hasChanges,
    body: {
      next_batch: syncToken(now, stickyEvents.readUpTo),
      rooms: { join, invite, leave, knock: {} },
      presence: { events: [] },
      account_data: { events: [] },
      to_device: { events: [] },
      device_lists: { changed: [], left: [] },
      device_one_time_keys_count: {},
      "org.matrix.msc2732.device_unused_fallback_key_types": [],
      device_unused_fallback_key_types: [],
    },
  };
}

/**
 * Synapse's rule (handlers/sync.py): the unexpired sticky events of the joined rooms that arrived since
 * the token's sticky position, in stream order, at most 100 (the token then remembers where it stopped);
 * for a room joined since the token, every unexpired one up to that position, with no limit. Initial
 * syncs read from the start.
 */
function selectSticky(
  rooms: RoomStore,
  userId: string,
  since: SyncPosition | undefined,
  now: number,
  sticky: StickySyncSource | undefined,
): { byRoom: Map<string, StoredEvent[]>; readUpTo: number } {
  if (!sticky) return { byRoom: new Map(), readUpTo: now };
  const joined = rooms.roomsOf(userId).filter((room) => rooms.membership(room.roomId, userId) === "join");
  const selection = sticky.table.select(
    new Set(joined.map((room) => room.roomId)),
    since?.stickyPos ?? 0,
    now,
    sticky.now,
    MAX_STICKY_EVENTS_IN_SYNC,
  );
  if (since !== undefined) {
    // Up to where the limited read stopped, as Synapse reads them (its token is advanced first): sticky
    // events sent after the token and beyond the first 100 come in the next sync, not in this one.
    const newlyJoined = joined.filter((room) => rooms.membershipAt(room, userId, since.pos) !== "join");
    const all = sticky.table.select(
      new Set(newlyJoined.map((room) => room.roomId)),
      0,
      selection.readUpTo,
      sticky.now,
    );
    for (const [roomId, events] of all.byRoom) selection.byRoom.set(roomId, events);
  }
  return selection;
}

function joinedRoom(
  rooms: RoomStore,
  room: RoomRecord,
  viewer: Viewer,
  since: number | undefined,
  fullRoom: boolean,
  params: SyncParams,
  serialize: (events: Iterable<StoredEvent>) => JsonObject[],
  sticky?: { section: string; events: StoredEvent[] },
): JsonObject | undefined {
  const candidates = fullRoom || since === undefined ? room.events : room.events.filter((e) => e.pos > since);
  const hasSticky = (sticky?.events.length ?? 0) > 0;
  if (!fullRoom && candidates.length === 0 && !hasSticky) return undefined;
  const timeline = candidates.slice(-params.timelineLimit);
  const timelineStart = timeline.length > 0 ? timeline[0].pos - 1 : rooms.streamPos;
  const changedSince = (e: StoredEvent): boolean => fullRoom || since === undefined || e.pos > since;

  const entry: JsonObject = {
    timeline: {
      events: serialize(timeline),
      limited: candidates.length > timeline.length,
      prev_batch: `t${timelineStart}`,
    },
    ephemeral: { events: [] },
    account_data: { events: [] },
    unread_notifications: { highlight_count: 0, notification_count: 0 },
    summary: summary(room, viewer.userId),
  };
  if (sticky && hasSticky) {
    // Not repeated when the timeline already carries it (the MSC's deduplication), stream order kept.
    const inTimeline = new Set(timeline.map((e) => e.event_id));
    const rest = sticky.events.filter((e) => !inTimeline.has(e.event_id));
    if (rest.length > 0) entry[sticky.section] = { events: serialize(rest) };
  }
  if (params.useStateAfter) {
    entry["org.matrix.msc4222.state_after"] = {
      events: serialize([...room.state.values()].filter(changedSince)),
    };
  } else {
    const atStart = rooms.stateAt(room, timelineStart);
    entry.state = { events: serialize([...atStart.values()].filter(changedSince)) };
  }
  return entry;
}

function summary(room: RoomRecord, viewerId: string): JsonObject {
  let joined = 0;
  let invited = 0;
  const heroes: string[] = [];
  for (const event of room.state.values()) {
    if (event.type !== "m.room.member" || event.state_key === undefined) continue;
    if (event.content.membership === "join") joined += 1;
    else if (event.content.membership === "invite") invited += 1;
    else continue;
    if (event.state_key !== viewerId && heroes.length < 5) heroes.push(event.state_key);
  }
  return { "m.heroes": heroes, "m.joined_member_count": joined, "m.invited_member_count": invited };
}

/** Wakes long-polling /sync requests when anything is persisted; each waiter re-checks for itself. */
export class SyncNotifier {
  private readonly waiters = new Set<() => void>();

  public notify(): void {
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiting) wake();
  }

  /** Resolves on the next notification, after `ms`, or when `signal` aborts, whichever is first. */
  public wait(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
      signal.addEventListener("abort", done);
    });
  }

  /** Releases every waiter (server stopping). */
  public releaseAll(): void {
    this.notify();
  }
}
