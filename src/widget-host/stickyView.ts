/**
 * A room's unexpired sticky events (MSC4354), as the widget API hands them to a widget (MSC4407): for
 * `readStickyEvents` (matrix-widget-api pushes them when it grants `receive.sticky_event`: a widget that
 * starts mid-call learns who is in it) and for the live feed. From the client's synced view of the room
 * when it has one (matrix-js-sdk's sticky map), from the server's /sync otherwise (a bare client has no
 * rooms: answering [] would tell a call widget that nobody is in the call).
 *
 * Each event keeps its sticky field; its `unsigned` remaining time (TTL) is the one that holds when it is
 * handed over (matrix-js-sdk takes the expiry from it), not the one the server said when it arrived.
 */
import { syncedRoom, toWidgetEvent, type HostEventLike, type SyncedViewClient } from "./roomView.js";

/** The sticky-event names a server may use: Synapse 1.163's unstable ones, and the merged MSC text's. */
const NAMES = [
  { field: "msc4354_sticky", ttl: "msc4354_sticky_duration_ttl_ms", section: "msc4354_sticky" },
  { field: "sticky", ttl: "sticky_duration_ttl_ms", section: "sticky" },
] as const;

/** A matrix-js-sdk `MatrixEvent` in a room's sticky map. */
export interface StickyEventLike extends HostEventLike {
  /** When its stickiness ends, on this device's clock (js-sdk: arrival + the server's TTL). */
  readonly unstableStickyExpiresAt?: number;
}

/** The part of a matrix-js-sdk `Room` that holds sticky events (js-sdk ≥ 39). */
export interface StickyRoomLike {
  /** The current sticky event per (sender, type, sticky key), and the unkeyed ones. */
  _unstable_getStickyEvents?(): Iterable<StickyEventLike>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * An event of the client's sticky map as the widget gets it: its sticky field intact and `unsigned`'s
 * remaining time as of `now`. Undefined once expired.
 */
export function stickyWidgetEvent(
  event: StickyEventLike,
  roomId: string,
  now: number,
): Record<string, unknown> | undefined {
  const expiresAt = event.unstableStickyExpiresAt;
  if (typeof expiresAt !== "number" || !(expiresAt > now)) return undefined;
  const raw = toWidgetEvent(event, roomId);
  const unsigned = isRecord(raw.unsigned) ? raw.unsigned : {};
  // js-sdk keeps only the unstable names (its map holds nothing else).
  return { ...raw, unsigned: { ...unsigned, [NAMES[0].ttl]: expiresAt - now } };
}

/** The client's sticky map of a synced room, or undefined when it has none to vouch for. */
function fromSyncedRoom(
  client: SyncedViewClient,
  roomId: string,
  now: number,
): Record<string, unknown>[] | undefined {
  const room = syncedRoom(client, roomId) as (StickyRoomLike & object) | undefined;
  if (!room || typeof room._unstable_getStickyEvents !== "function") return undefined;
  const out: Record<string, unknown>[] = [];
  for (const event of room._unstable_getStickyEvents()) {
    const raw = stickyWidgetEvent(event, roomId, now);
    if (raw) out.push(raw);
  }
  return out;
}

/** matrix-js-sdk's HTTP API (the part used here). */
interface SyncHttp {
  authedRequest<T>(
    method: string,
    path: string,
    query?: Record<string, string>,
    body?: unknown,
    opts?: { localTimeoutMs?: number },
  ): Promise<T>;
}

function httpOf(client: object): SyncHttp | undefined {
  const http = (client as { http?: Partial<SyncHttp> }).http;
  return typeof http?.authedRequest === "function" ? (http as SyncHttp) : undefined;
}

let reads = 0;

/**
 * A /sync filter that carries little besides sticky events: no presence, account data, receipts or
 * state, one timeline event per room. No room filter on purpose: Synapse counts its 100 sticky events per
 * sync across every joined room, so telling whether more are waiting needs them all. Each read's filter
 * is its own (a field servers ignore): Synapse answers a repeated identical initial sync from its
 * response cache for 2 minutes, which would hand a widget loaded again the members of 2 minutes ago.
 */
function stickySyncFilter(): string {
  return JSON.stringify({
    presence: { types: [] },
    account_data: { types: [] },
    room: {
      timeline: { limit: 1 },
      state: { types: [], lazy_load_members: true },
      ephemeral: { types: [] },
      account_data: { types: [] },
    },
    "org.matrixrtc-membership.read": `${Date.now()}-${++reads}`,
  });
}
/** Synapse's `MAX_EVENTS_IN_SYNC`: a sync with this many sticky events may have left some for the next. */
const STICKY_EVENTS_PER_SYNC = 100;
/** At most this many syncs per read (500 sticky events), each bounded by its own timeout. */
const MAX_SYNCS = 5;
const SYNC_TIMEOUT_MS = 10_000;

function remainingTtl(event: Record<string, unknown>): number | undefined {
  if (!isRecord(event.unsigned)) return undefined;
  for (const names of NAMES) {
    const ttl = event.unsigned[names.ttl];
    if (isRecord(event[names.field]) && typeof ttl === "number" && ttl > 0) return ttl;
  }
  return undefined;
}

interface SyncBody {
  next_batch?: unknown;
  rooms?: { join?: Record<string, Record<string, unknown>> };
}

/** The sticky events of one joined room's sync entry: in the timeline (sticky field) or the sticky section. */
function stickyOf(entry: Record<string, unknown>): Record<string, unknown>[] {
  const lists: unknown[] = [];
  for (const names of NAMES) {
    const section = entry[names.section];
    if (isRecord(section) && Array.isArray(section.events)) lists.push(...section.events);
  }
  const timeline = entry.timeline;
  if (isRecord(timeline) && Array.isArray(timeline.events)) lists.push(...timeline.events);
  return lists.filter(
    (e): e is Record<string, unknown> => isRecord(e) && NAMES.some((n) => isRecord(e[n.field])),
  );
}

/**
 * The room's unexpired sticky events from the server: an initial /sync (every sticky event from the
 * start, 100 at most), then incremental ones while a sync may have stopped at that limit. Expiry is the
 * server's: an event counts while `unsigned` has a remaining time (Synapse drops it once expired). Every
 * unexpired event is kept, in the order the server sent them (the widget picks the current one per key).
 */
async function fromServer(client: object, roomId: string): Promise<Record<string, unknown>[]> {
  const http = httpOf(client);
  if (!http)
    throw new Error("this host has no synced view of the room and no HTTP API to read its sticky events");
  const byId = new Map<string, Record<string, unknown>>();
  let since: string | undefined;
  const filter = stickySyncFilter();
  for (let i = 0; i < MAX_SYNCS; i++) {
    const query: Record<string, string> = {
      filter,
      timeout: "0",
      set_presence: "offline",
      ...(since !== undefined ? { since } : {}),
    };
    const body = await http.authedRequest<SyncBody>("GET", "/sync", query, undefined, {
      localTimeoutMs: SYNC_TIMEOUT_MS,
    });
    let delivered = 0;
    for (const [id, entry] of Object.entries(body?.rooms?.join ?? {})) {
      if (!isRecord(entry)) continue;
      const events = stickyOf(entry);
      delivered += events.length;
      if (id !== roomId) continue;
      for (const event of events) {
        if (typeof event.event_id !== "string" || remainingTtl(event) === undefined) continue;
        byId.set(event.event_id, { ...event, room_id: roomId });
      }
    }
    if (delivered < STICKY_EVENTS_PER_SYNC || typeof body?.next_batch !== "string") break;
    since = body.next_batch;
  }
  return [...byId.values()];
}

/** The room's unexpired sticky events, from the client's synced room or from the server. */
export async function readStickyEvents(
  client: SyncedViewClient & object,
  roomId: string,
  now: () => number = Date.now,
): Promise<Record<string, unknown>[]> {
  return fromSyncedRoom(client, roomId, now()) ?? fromServer(client, roomId);
}
