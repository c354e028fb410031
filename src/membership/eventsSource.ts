/**
 * Plain state events as a room-state source: one list, or an Observable of lists. Each list is the whole
 * state (the observer compares it with the previous one by event id and re-reads only what differs).
 */
import { isObservable, map, Observable, of } from "rxjs";
import { CALL_MEMBER_EVENT_TYPE } from "./content.js";
import { RTC_MEMBER_EVENT_TYPE, RTC_SLOT_EVENT_TYPE } from "./sticky.js";
import type { StateEventLike } from "./parse.js";
import { roomMembersFrom, type RoomStateSource } from "./snapshot.js";

function typeOf(e: unknown): unknown {
  try {
    return typeof e === "object" && e !== null ? (e as { type?: unknown }).type : undefined;
  } catch {
    return undefined;
  }
}

const isCallMemberEvent = (e: unknown): e is StateEventLike => typeOf(e) === CALL_MEMBER_EVENT_TYPE;

/** A sticky membership: an `rtc.member` event that is not a state event. */
function isStickyMemberEvent(e: unknown): boolean {
  try {
    return typeOf(e) === RTC_MEMBER_EVENT_TYPE && (e as { state_key?: unknown }).state_key === undefined;
  } catch {
    return false;
  }
}

/** The last `rtc.slot` state event per slot id. */
function slotEventsFrom(events: readonly unknown[]): (slotId: string) => unknown {
  const bySlot = new Map<string, unknown>();
  for (const e of events)
    if (typeOf(e) === RTC_SLOT_EVENT_TYPE) {
      const key = (e as { state_key?: unknown }).state_key;
      if (typeof key === "string") bySlot.set(key, e);
    }
  return (slotId) => bySlot.get(slotId);
}

/**
 * State events as a source: one list, or an Observable of lists. Each list is the room's state (later
 * events with the same type and state key override earlier ones, so an event log works too) and
 * should include the senders' `m.room.member` events: a sender without one does not count. Sticky
 * memberships (`org.matrix.msc4143.rtc.member` events without a state key, with `msc4354_sticky`) in a
 * list count while they are sticky, from when the list is read.
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
      return {
        synced: true,
        callMemberEvents: all.filter(isCallMemberEvent),
        stickyMemberEvents: all.filter(isStickyMemberEvent),
        slotEventOf: slotEventsFrom(all),
        ...roomMembersFrom(all),
      };
    }),
  );
}
