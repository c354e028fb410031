/**
 * Plain state events as a room-state source: one list, or an Observable of lists. Each list is the whole
 * state (the observer compares it with the previous one by event id and re-reads only what differs).
 */
import { isObservable, map, Observable, of } from "rxjs";
import { CALL_MEMBER_EVENT_TYPE } from "./content.js";
import type { StateEventLike } from "./parse.js";
import { roomMembersFrom, type RoomStateSource } from "./snapshot.js";

function isCallMemberEvent(e: unknown): e is StateEventLike {
  try {
    return typeof e === "object" && e !== null && (e as { type?: unknown }).type === CALL_MEMBER_EVENT_TYPE;
  } catch {
    return false;
  }
}

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
      const all: unknown[] = [];
      try {
        for (const e of list) all.push(e);
      } catch {
        // A throwing iterable: use what was read.
      }
      return { synced: true, callMemberEvents: all.filter(isCallMemberEvent), ...roomMembersFrom(all) };
    }),
  );
}
