/**
 * Our own device in the list an app reads (issue 23 item 7). `connected` means the server answered our
 * membership write; a synced client (or a widget host's pushes) shows that write one sync later, and a
 * clean leave likewise. A list read in between would lack us after `connected`, and still show us after
 * `leave()`. The manager knows better than the view in both windows: it reports what the server
 * confirmed to it (`OwnMembershipReport`), and a list asked for with `manager` merges that in:
 *
 * - **held** (the manager says `connected`): if the view lists no membership at our place (our state key;
 *   in the sticky format, our sender and this call's member id), our confirmed membership is added, built
 *   from the content the server accepted and the event id it answered, and marked `fromManager`. As soon
 *   as the view lists anything at our place, the view's entry is the one listed (it is the server's event,
 *   with the server's timestamps), whatever its content: we cannot tell whether a different one there is
 *   older or newer than ours (another tab of this device writes the same key).
 * - **gone** (the manager learnt from the server that a membership of ours is no longer held: a confirmed
 *   leave, a fired delayed leave, a removal): a view entry at that place that is one of the writes the
 *   server accepted for it (by event id; by content where no id was given) is left out. Anything else
 *   there (another writer's event, a write of ours we never heard the answer to) is listed: the view
 *   knows something we do not. Gone records are ignored at the place a held one occupies.
 * - Neither (joining, reconnecting, leaving, failed, a disposed manager): the view as it is.
 *
 * Order: the observer's rule stays (the server's timestamps). A membership the view does not show yet was
 * written after everything the view shows (a sync delivers the room's events in the server's order), so
 * it goes last, unless its place is known from the server: `created_ts` in its content, or the first
 * event's `origin_server_ts` the manager read back. This device's clock never moves it ahead of anyone.
 *
 * Pure: no I/O, no time. Cost: one pass over the list when the list or the report changed (the list is
 * rebuilt then anyway), nothing when neither did, and the view's own array when nothing is merged.
 */
import type { Observable } from "rxjs";
import { CALL_MEMBER_EVENT_TYPE, sameContent, type Slot } from "./content.js";
import { parseMembershipEvent, type CallMember } from "./parse.js";
import { parseStickyMembershipEvent, RTC_MEMBER_EVENT_TYPE } from "./sticky.js";

/** One membership write the server accepted. */
export interface OwnWrite {
  /** The content written. */
  readonly content: Record<string, unknown>;
  /** The event id the server answered, when it gave one. */
  readonly eventId?: string;
}

/** One membership of ours, as the server confirmed it to the manager. */
export interface OwnMembershipRecord {
  /** `"state"`: the state event at `key` (our state key); `"sticky"`: the sticky event keyed `key` (the member id). */
  readonly format: "state" | "sticky";
  /** Our state key, or the call's member id (the sticky key). */
  readonly key: string;
  /** The last few writes the server accepted for it, oldest first (the last one is what it holds). */
  readonly writes: readonly OwnWrite[];
  /** When the server answered the last write: the manager's wall clock (ms since the epoch). */
  readonly confirmedAt: number;
  /** When others stop listing it unless it is written again (the manager's reckoning, wall clock ms). */
  readonly expiresAt?: number;
  /** The server's `origin_server_ts` of this membership's first event, when the manager read it back. */
  readonly firstEventTs?: number;
}

/**
 * What a manager vouches for about its own membership, from the server's answers to its requests (not from
 * any view of the room): `held` while it is `connected`; `gone`, the memberships the server told it are
 * no longer held (newest last, a few).
 */
export interface OwnMembershipReport {
  readonly roomId: string;
  readonly userId: string;
  readonly deviceId: string;
  readonly slot: Slot;
  /** The membership the server holds for us, while the manager says `connected`. */
  readonly held?: OwnMembershipRecord;
  /** Memberships of ours the server no longer holds (a view may still show them until it syncs). */
  readonly gone: readonly OwnMembershipRecord[];
}

/**
 * Anything that reports its own membership: a `MembershipManager`. Passed as `manager` to `callMembers$`
 * and everything built on it (`currentCallMembers`, `watchCallMembers`, `waitForCallMembers`).
 */
export interface OwnMembershipReporter {
  /** The current report (its room and slot are the list's defaults). */
  readonly ownMembershipReport: OwnMembershipReport;
  /** Every report, the current one first; completes when the reporter is disposed. */
  readonly ownMembershipReport$: Observable<OwnMembershipReport>;
}

/** Is `member` the view's entry at the place of `own` (our state key; our sender and sticky key)? */
function isAt(member: CallMember, own: OwnMembershipRecord, userId: string): boolean {
  return own.format === "sticky"
    ? member.stickyKey === own.key && member.userId === userId
    : member.stickyKey === undefined && member.stateKey === own.key;
}

/** Is `member` one of the writes the server accepted for `own`? By event id where both have one. */
function isOneOf(member: CallMember, own: OwnMembershipRecord): boolean {
  for (const write of own.writes) {
    if (write.eventId !== undefined && member.eventId !== undefined) {
      if (write.eventId === member.eventId) return true;
    } else if (sameContent(member.content, write.content)) return true;
  }
  return false;
}

/**
 * Our held membership as a list entry, placed at `orderTs`, or undefined when its content does not read
 * as a membership of `slot` (then nothing is added: we never list what others would not).
 */
export function heldMember(
  report: OwnMembershipReport,
  held: OwnMembershipRecord,
  slot: Slot,
  orderTs: number,
): CallMember | undefined {
  const write = held.writes.at(-1);
  if (!write) return undefined;
  // The event as the server will deliver it, as far as we know it: its timestamp is our estimate (the
  // moment its answer came), used only where the server's own is not known.
  const event: Record<string, unknown> = {
    type: held.format === "sticky" ? RTC_MEMBER_EVENT_TYPE : CALL_MEMBER_EVENT_TYPE,
    sender: report.userId,
    content: write.content,
    origin_server_ts: held.confirmedAt,
  };
  if (held.format === "state") event.state_key = held.key;
  if (write.eventId !== undefined) event.event_id = write.eventId;
  const parsed =
    held.format === "sticky"
      ? parseStickyMembershipEvent(event, slot, held.expiresAt ?? held.confirmedAt)
      : parseMembershipEvent(event, slot);
  if (parsed.kind !== "candidate") return undefined;
  return { ...parsed.member, orderTs, fromManager: true };
}

/** Where our held membership sorts: known from the server, or after everyone the view lists. */
function orderOf(held: OwnMembershipRecord, listed: readonly CallMember[]): { at: number; known: boolean } {
  const created = held.format === "state" ? held.writes.at(-1)?.content.created_ts : undefined;
  const known =
    held.firstEventTs ?? (typeof created === "number" && Number.isFinite(created) ? created : undefined);
  if (known !== undefined) return { at: known, known: true };
  const last = listed.at(-1)?.orderTs ?? -Infinity;
  return { at: Math.max(held.confirmedAt, last), known: false };
}

/**
 * The list with our own membership merged in (see the file's comment). Returns `members` itself when
 * nothing changes, so callers can compare by identity.
 */
export function mergeOwnMembership(
  members: CallMember[],
  report: OwnMembershipReport | undefined,
  slot: Slot,
): CallMember[] {
  if (!report) return members;
  const held = report.held;
  const gone = held ? report.gone.filter((g) => g.format !== held.format || g.key !== held.key) : report.gone;
  if (!held && gone.length === 0) return members;
  let heldShown = false;
  let hidden: Set<CallMember> | undefined;
  for (const member of members) {
    if (member.userId !== report.userId) continue;
    if (held && isAt(member, held, report.userId)) heldShown = true;
    else if (gone.some((g) => isAt(member, g, report.userId) && isOneOf(member, g)))
      (hidden ??= new Set()).add(member);
  }
  const add = held && !heldShown;
  if (!hidden && !add) return members;
  const listed = hidden ? members.filter((m) => !hidden.has(m)) : [...members];
  if (!add) return listed;
  const order = orderOf(held, listed);
  const own = heldMember(report, held, slot, order.at);
  if (!own) return hidden ? listed : members;
  // Known: after every member at or before it (ties: the view's members were seen first). Else last.
  let index = listed.length;
  if (order.known) {
    index = listed.findIndex((m) => m.orderTs > order.at);
    if (index === -1) index = listed.length;
  }
  listed.splice(index, 0, own);
  return listed;
}
