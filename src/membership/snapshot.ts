/**
 * What a room-state source emits: the room's call memberships and room memberships at one moment, and,
 * when the source knows, what changed since its previous snapshot (so the observer reads only that).
 */
import type { Observable } from "rxjs";
import type { MembershipLookup, StateEventLike } from "./parse.js";

/** What changed since the previous snapshot of the same subscription. */
export interface RoomStateChanges {
  /**
   * Every call membership and room membership (`m.room.member`) state event that became current, in the
   * order they applied (a sync may carry a leave and a join of one user, a join and a refresh of one
   * membership: the order tells when a stay or a membership began). Redacted events come again.
   * Also the sticky memberships that arrived (no `state_key`) and the slot's `rtc.slot` state event.
   */
  events: readonly StateEventLike[];
}

/**
 * What a source knows about one room at one moment. Read it when it is emitted: the sources in this
 * package read the room lazily, so a snapshot kept for later may show later state.
 */
export interface RoomStateSnapshot {
  /**
   * False until the source has the room's state (first sync, the host's first `update_state`):
   * before that, "no members" only means "not known yet", and `callMembers$` stays silent.
   */
  synced: boolean;
  /** The room's current `org.matrix.msc3401.call.member` state events, every state key. */
  callMemberEvents: readonly StateEventLike[];
  /**
   * The room's current sticky memberships (MatrixRTC 2.0: `org.matrix.msc4143.rtc.member` events made
   * sticky by MSC4354), when the source reads them. An event may carry `expiresAt` (our clock) when the
   * source computed when it stops being sticky (js-sdk does on receipt).
   */
  stickyMemberEvents?: readonly unknown[];
  /** The room's `org.matrix.msc4143.rtc.slot` state event for a slot id (`m.call#ROOM`), when any. */
  slotEventOf?: (slotId: string) => unknown;
  /** A user's `m.room.member` membership, or undefined when the source does not know it. */
  membershipOf: MembershipLookup;
  /**
   * A user's current `m.room.member` event, when the source has it: its timestamp and `unsigned` say
   * when the user's current stay in the room began (memberships written before it do not count).
   */
  memberEventOf?: (userId: string) => StateEventLike | undefined;
  /**
   * What changed since this subscription's previous snapshot; absent when anything may have changed.
   * The first snapshot a subscriber receives is always read in full.
   */
  changes?: RoomStateChanges;
}

/** Anything that emits a room's state: `roomStateSource`, `widgetStateSource`, `eventsStateSource`. */
export type RoomStateSource = Observable<RoomStateSnapshot>;

/** Every `m.room.member` event among `events`, last one per user winning. */
export function roomMembersFrom(events: Iterable<unknown>): {
  membershipOf: MembershipLookup;
  memberEventOf: (userId: string) => StateEventLike | undefined;
} {
  const byUser = new Map<string, StateEventLike>();
  try {
    for (const event of events) {
      if (typeof event !== "object" || event === null) continue;
      const e = event as Partial<StateEventLike>;
      if (e.type !== "m.room.member" || typeof e.state_key !== "string") continue;
      byUser.set(e.state_key, e as StateEventLike);
    }
  } catch {
    // A throwing iterable: use what was read.
  }
  const membershipOf: MembershipLookup = (userId) => {
    const content = byUser.get(userId)?.content as { membership?: unknown } | null | undefined;
    return typeof content?.membership === "string" ? content.membership : undefined;
  };
  return { membershipOf, memberEventOf: (userId) => byUser.get(userId) };
}
