/**
 * Judging a membership on what the server vouches for, not on what its writer claims.
 *
 * Anyone in the room can write anything into their own membership: a `created_ts` of 1970 to be "the
 * oldest member" (whose focus `oldest_membership` selection follows), a membership left behind from an
 * earlier stay in the room. What the server vouches for is each event's `origin_server_ts`, the room
 * membership (`m.room.member`), and, in `unsigned`, which state event each one replaced
 * (`replaces_state`, `prev_content`). From those, this file derives two facts:
 *
 * - **when a run began**: a membership key's run of active contents starts with the event that replaced
 *   an absent or left one. Seen live, or told by `unsigned.prev_content`, that start is exact; otherwise
 *   (a refresh whose run began before we looked) it is unknown.
 * - **when the sender's presence began**: the same for `m.room.member` (a `join` that replaced anything
 *   but a `join`). A membership written before that moment was left behind by an earlier stay: it does
 *   not count, even though the sender is joined again.
 *
 * A writer's `created_ts` is kept where it agrees with those facts (so honest members sort exactly as
 * matrix-js-sdk sorts them), and clamped where it does not. Pure functions; the store keeps the facts
 * from one event to the next.
 */
import type { CallMember } from "./parse.js";

/**
 * How far before the server stamped the first event of a run a writer's `created_ts` may lie: the time
 * between a client choosing `created_ts` and the server receiving the write (a slow link, a retried
 * request). An honest writer's claim stays within it; a claim further back is clamped to it.
 */
export const CREATED_TS_LEEWAY_MS = 2_000;

/** What an event's `unsigned` says about the state event it replaced. */
export type Predecessor =
  /** None: this is the first state event with this type and state key (no `replaces_state`). */
  | { kind: "none" }
  /** The replaced event's content (`prev_content`), and its id when given (`replaces_state`). */
  | { kind: "content"; content: unknown; eventId?: string }
  /** Only the replaced event's id (`replaces_state` without `prev_content`). */
  | { kind: "id"; eventId: string }
  /** The source gave no `unsigned` (matrix-js-sdk answers `{}` then): nothing is known. */
  | { kind: "unknown" };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isEmpty(o: Record<string, unknown>): boolean {
  for (const k in o) if (Object.prototype.hasOwnProperty.call(o, k)) return false;
  return true;
}

/** Read `unsigned.replaces_state` / `unsigned.prev_content` (Synapse sets both on replaced state). */
export function predecessorOf(event: unknown): Predecessor {
  const unsigned = isRecord(event) ? event.unsigned : undefined;
  if (!isRecord(unsigned) || isEmpty(unsigned)) return { kind: "unknown" };
  const replaces = typeof unsigned.replaces_state === "string" ? unsigned.replaces_state : undefined;
  if ("prev_content" in unsigned)
    return replaces === undefined
      ? { kind: "content", content: unsigned.prev_content }
      : { kind: "content", content: unsigned.prev_content, eventId: replaces };
  if (replaces !== undefined) return { kind: "id", eventId: replaces };
  return { kind: "none" };
}

/** What we carry from one event at a key to the next: enough to follow a continuous run. */
export interface RunFacts {
  /** The event these facts are about. */
  readonly eventId?: string;
  /** Its content was active (a membership, or a `join`). */
  readonly active: boolean;
  /** When its run began (`origin_server_ts` of the run's first event), when known. */
  readonly since?: number;
}

/**
 * The facts of a new event at a key, given whether its content is active, what `unsigned` says about
 * its predecessor, and what we held at that key before (`previous`, from the same source, if any).
 * `isActive` reads a predecessor's content the same way.
 */
export function followRun(
  event: { event_id?: unknown; origin_server_ts: number; unsigned?: unknown },
  active: boolean,
  isActive: (content: unknown) => boolean,
  previous: RunFacts | undefined,
): RunFacts {
  const eventId = typeof event.event_id === "string" ? event.event_id : undefined;
  const since = runSince(event.origin_server_ts, event.unsigned, active, isActive, previous);
  return since === undefined ? { eventId, active } : { eventId, active, since };
}

/**
 * `followRun`'s `since`, without objects (a full read calls it twice per member): when the run that an
 * event (stamped `ts`, with `unsigned`) belongs to began, or undefined when unknown or when its content
 * is not active. `previous` as in `followRun`.
 */
export function runSince(
  ts: number,
  unsigned: unknown,
  active: boolean,
  isActive: (content: unknown) => boolean,
  previous: RunFacts | undefined,
): number | undefined {
  if (!active) return undefined;
  // What `predecessorOf` says, read in place.
  let chained: boolean;
  let previousActive: boolean | undefined;
  if (!isRecord(unsigned) || isEmpty(unsigned)) {
    // Without unsigned we can only assume `previous` is what this replaced (a live source delivers
    // every state change; a gappy one may skip some, which can only make a start later).
    chained = previous !== undefined;
    previousActive = previous?.active;
  } else {
    const replaces = typeof unsigned.replaces_state === "string" ? unsigned.replaces_state : undefined;
    chained = previous !== undefined && replaces !== undefined && replaces === previous.eventId;
    if ("prev_content" in unsigned) previousActive = isActive(unsigned.prev_content);
    else if (replaces === undefined)
      previousActive = false; // the first state at this key
    else previousActive = chained ? previous!.active : undefined;
  }
  if (previousActive === false) return ts;
  if (previousActive === true && chained) return previous!.since;
  return undefined;
}

/** A room membership content is active when it is `join`. */
export function isJoinContent(content: unknown): boolean {
  return isRecord(content) && content.membership === "join";
}

/**
 * Where a member sorts: the writer's `created_ts` (or the event's timestamp), kept within what the server
 * vouches for:
 * - no later than the first event of its run (`runSince`), or, if that is unknown, its own event;
 * - no earlier than `CREATED_TS_LEEWAY_MS` before its run's first event, when known;
 * - no earlier than the sender's current presence in the room began (`presenceSince`), when known.
 * With neither start known, only the upper bound applies (as far as a fresh reader of the room can tell).
 * A run that began before the sender's current stay is not this stay's run (they left in between): its
 * start is not used, so a live reader and a fresh one agree.
 */
export function orderTsOf(
  member: Pick<CallMember, "createdTs" | "originServerTs">,
  runSince: number | undefined,
  presenceSince: number | undefined,
): number {
  const run =
    runSince !== undefined && presenceSince !== undefined && runSince < presenceSince ? undefined : runSince;
  let lower = -Infinity;
  if (run !== undefined) lower = run - CREATED_TS_LEEWAY_MS;
  if (presenceSince !== undefined && presenceSince > lower) lower = presenceSince;
  const upper = Math.max(run ?? member.originServerTs, lower);
  return Math.min(Math.max(member.createdTs, lower), upper);
}
