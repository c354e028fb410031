/**
 * MSC4354 sticky events as Synapse 1.163.2 serves them (`stickyEvents: true`), or with the merged MSC
 * text's names (`stickyEventsShape: "merged"`): the query parameter, the top-level event field, the
 * remaining TTL in `unsigned`, Synapse's `sticky_events` table and what /sync takes from it.
 *
 * Read in Synapse 1.163.2: `rest/client/room.py` (the parameter, `/send` only), `api/constants.py`
 * (names, 1 h cap, 100 per sync), the Rust `Event.sticky_duration` and `serialize.rs` (the TTL),
 * `storage/databases/main/sticky_events.py` (expiry), `handlers/sync.py` (the sync section).
 */
import { badRequest, type JsonObject } from "./errors.js";
import type { ResolvedOptions } from "./options.js";
import type { StoredEvent } from "./rooms.js";

/** Every name that differs between Synapse's unstable MSC4354 and the merged text. */
export interface StickyNames {
  /** Query parameter on `/send` (and `/state` where `onState`). */
  query: string;
  /** Top-level event field holding `{ duration_ms }`. */
  field: string;
  /** `unsigned` field with the remaining stickiness in ms. */
  ttl: string;
  /** Key of the section in `rooms.join.{roomId}` of /sync. */
  syncSection: string;
  /** `/versions` `unstable_features` flag. */
  versionsFlag: string;
  /** Whether `PUT …/state/…` honours the parameter (Synapse 1.163 ignores it there). */
  onState: boolean;
}

export const UNSTABLE_STICKY_NAMES: StickyNames = {
  query: "org.matrix.msc4354.sticky_duration_ms",
  field: "msc4354_sticky",
  ttl: "msc4354_sticky_duration_ttl_ms",
  syncSection: "msc4354_sticky",
  versionsFlag: "org.matrix.msc4354",
  onState: false,
};

/**
 * The merged MSC4354 text (PR head 74fc75e1, 2026-05-20: no later text was readable here). The MSC
 * names no stable `/versions` flag; `.stable` follows the convention MSCs use until a spec release
 * contains them (as `org.matrix.msc4140.stable`).
 */
export const MERGED_STICKY_NAMES: StickyNames = {
  query: "sticky_duration_ms",
  field: "sticky",
  ttl: "sticky_duration_ttl_ms",
  syncSection: "sticky",
  versionsFlag: "org.matrix.msc4354.stable",
  onState: true,
};

/** Stickiness is capped at 1 h (Synapse's `StickyEvent.MAX_DURATION`, the MSC's 3600000). */
export const MAX_STICKY_DURATION_MS = 3_600_000;

/** At most this many sticky events per /sync (Synapse's `MAX_EVENTS_IN_SYNC`); not for a newly joined room. */
export const MAX_STICKY_EVENTS_IN_SYNC = 100;

/** Room versions from 6 on refuse integers outside ±(2^53−1) anywhere in the event. */
const STRICT_CANONICAL_JSON_FROM_VERSION = 6;

export const stickyNames = (options: ResolvedOptions): StickyNames =>
  options.stickyEventsShape === "merged" ? MERGED_STICKY_NAMES : UNSTABLE_STICKY_NAMES;

/** The names in force, or undefined when the feature is off. */
export const activeStickyNames = (options: ResolvedOptions): StickyNames | undefined =>
  options.stickyEvents ? stickyNames(options) : undefined;

/**
 * The sticky duration a request asks for, or undefined for a plain event. Off, or on an endpoint the
 * names do not cover, the parameter is not even parsed (Synapse: a bad value then sends a plain event).
 * On, it is Synapse's `parse_integer`: 400 `M_INVALID_PARAM` for a non-integer or a negative value; any
 * size is accepted (the cap applies to the expiry, not to the field).
 */
export function stickyDurationParam(
  options: ResolvedOptions,
  query: URLSearchParams,
  endpoint: "send" | "state",
  parseInteger: (query: URLSearchParams, name: string) => number | undefined,
): number | undefined {
  const names = activeStickyNames(options);
  if (!names || (endpoint === "state" && !names.onState)) return undefined;
  return parseInteger(query, names.query);
}

/** The top-level event fields that make an event sticky (`{ msc4354_sticky: { duration_ms } }`). */
export const stickyTopLevel = (names: StickyNames, durationMs: number): JsonObject => ({
  [names.field]: { duration_ms: durationMs },
});

/**
 * Synapse's event validation for a strict room version: an integer beyond ±(2^53−1) anywhere in the
 * event (here: the sticky duration) is 400 `M_BAD_JSON`. A delayed event is not checked until it fires.
 */
export function checkTopLevelIntegers(roomVersion: string, topLevel: JsonObject | undefined): void {
  if (!topLevel || Number(roomVersion) < STRICT_CANONICAL_JSON_FROM_VERSION) return;
  const tooBig = (value: unknown): boolean => {
    if (typeof value === "number") return Number.isInteger(value) && !Number.isSafeInteger(value);
    if (value && typeof value === "object") return Object.values(value).some(tooBig);
    return false;
  };
  if (tooBig(topLevel)) throw badRequest("JSON integer out of range", "M_BAD_JSON");
}

/**
 * The effective sticky duration of an event (Synapse's `Event.sticky_duration`): the field must be an
 * object whose `duration_ms` is a non-negative integer, else the event is not sticky; capped at 1 h.
 */
export function stickyDurationOf(event: Pick<StoredEvent, "topLevel">, field: string): number | undefined {
  const sticky = event.topLevel?.[field];
  if (!sticky || typeof sticky !== "object" || Array.isArray(sticky)) return undefined;
  const duration = (sticky as JsonObject).duration_ms;
  if (typeof duration !== "number" || !Number.isInteger(duration) || duration < 0) return undefined;
  return Math.min(duration, MAX_STICKY_DURATION_MS);
}

/** When the stickiness ends: `min(origin_server_ts, now) + duration` (a future timestamp buys nothing). */
export function stickyExpiresAt(
  event: Pick<StoredEvent, "topLevel" | "origin_server_ts">,
  field: string,
  now: number,
): number | undefined {
  const duration = stickyDurationOf(event, field);
  return duration === undefined ? undefined : Math.min(event.origin_server_ts, now) + duration;
}

/** `unsigned[…sticky_duration_ttl_ms]`: what remains, absent once expired (Synapse's serializer). */
export function stickyTtl(
  event: Pick<StoredEvent, "topLevel" | "origin_server_ts">,
  field: string,
  now: number,
): number | undefined {
  const expiresAt = stickyExpiresAt(event, field, now);
  return expiresAt !== undefined && expiresAt > now ? expiresAt - now : undefined;
}

interface StickyRow {
  /** The event's stream position (Synapse keeps a stream of its own, in the same order for local events). */
  pos: number;
  roomId: string;
  event: StoredEvent;
  expiresAt: number;
}

/** What one /sync takes from the table. */
export interface StickySelection {
  byRoom: Map<string, StoredEvent[]>;
  /** Stream position read up to: behind the requested end when the limit cut the read short. */
  readUpTo: number;
}

/**
 * Synapse's `sticky_events` table: an event enters when it is persisted with the feature on, is
 * sticky (valid field) and not already expired; readers skip expired rows.
 */
export class StickyEventTable {
  private rows: StickyRow[] = [];

  public record(event: StoredEvent, field: string, now: number): void {
    const expiresAt = stickyExpiresAt(event, field, now);
    if (expiresAt === undefined || expiresAt <= now) return;
    // Synapse deletes expired rows hourly; dropping them here is invisible to readers and keeps this small.
    if (this.rows.length > 0 && this.rows[0].expiresAt <= now)
      this.rows = this.rows.filter((r) => r.expiresAt > now);
    this.rows.push({ pos: event.pos, roomId: event.room_id, event, expiresAt });
  }

  /**
   * Unexpired sticky events of `roomIds` with `fromPos < pos ≤ toPos`, in stream order, at most `limit`
   * (counted before the timeline is taken out, as Synapse does).
   */
  public select(
    roomIds: ReadonlySet<string>,
    fromPos: number,
    toPos: number,
    now: number,
    limit?: number,
  ): StickySelection {
    const byRoom = new Map<string, StoredEvent[]>();
    let taken = 0;
    for (const row of this.rows) {
      if (row.pos <= fromPos || row.pos > toPos || row.expiresAt <= now || !roomIds.has(row.roomId)) continue;
      if (limit !== undefined && taken === limit) return { byRoom, readUpTo: row.pos - 1 };
      taken += 1;
      const list = byRoom.get(row.roomId) ?? [];
      list.push(row.event);
      byRoom.set(row.roomId, list);
    }
    return { byRoom, readUpTo: toPos };
  }
}
