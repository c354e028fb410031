/**
 * Where the host driver reads a room from: the client's synced view of it when the client syncs (a started
 * MatrixClient that has joined the room: what Element Web reads, and what it pushes updates from), the
 * server otherwise (a bare client has no rooms: answering from its empty store would tell a widget that
 * the room is empty, and a widget watching its own membership would think it was removed).
 */

/** The part of a matrix-js-sdk `MatrixEvent` the host reads. */
export interface HostEventLike {
  /** The event as the widget API sends it (decrypted content where the client decrypted it). */
  getEffectiveEvent(): object;
  /** The event type. */
  getType(): string;
  /** The state key (undefined for a timeline event). */
  getStateKey(): string | undefined;
  /** The event id. */
  getId(): string | undefined;
  /** The room id. */
  getRoomId(): string | undefined;
  /** The content (for `msgtype`). */
  getContent(): object;
}

/** The part of a matrix-js-sdk `Room` the host reads. */
export interface HostRoomLike {
  /** "join", "invite", "leave", ... for the client's own user. */
  getMyMembership(): string;
  /** The room's current state. */
  readonly currentState: {
    /** Every state event of one type. */
    getStateEvents(eventType: string): HostEventLike[];
  };
  /** The live timeline (the newest events the client has). */
  getLiveTimeline(): {
    /** Its events, oldest first. */
    getEvents(): HostEventLike[];
  };
}

/** What the driver needs of a client to know whether it has a synced view (all optional: a bare client). */
export interface SyncedViewClient {
  /** The room, once the client has synced it. */
  getRoom?(roomId: string): HostRoomLike | null;
  /** The sync state (`"PREPARED"`, `"SYNCING"`, ... or null before `startClient()`). */
  getSyncState?(): string | null;
}

/** Sync states in which the client's view of a joined room is current. */
const LIVE_SYNC_STATES = new Set(["PREPARED", "SYNCING"]);

/** The client's synced view of `roomId`, when it has one it can vouch for; undefined otherwise. */
export function syncedRoom(client: SyncedViewClient, roomId: string): HostRoomLike | undefined {
  if (typeof client.getRoom !== "function" || typeof client.getSyncState !== "function") return undefined;
  const state = client.getSyncState();
  if (state === null || !LIVE_SYNC_STATES.has(state)) return undefined;
  const room = client.getRoom(roomId);
  if (!room || room.getMyMembership() !== "join") return undefined;
  return room;
}

/** An event as the widget API carries it, with its room id. */
export function toWidgetEvent(event: HostEventLike, roomId: string): Record<string, unknown> {
  return { ...(event.getEffectiveEvent() as Record<string, unknown>), room_id: roomId };
}

/** The part of a client the server reads need (`roomState`: `/rooms/{roomId}/state`; `http`: `/messages`). */
export interface ServerReadClient extends SyncedViewClient {
  /** The room's current state events, from the server. */
  roomState(roomId: string): Promise<object[]>;
}

interface AuthedHttp {
  authedRequest<T>(method: string, path: string, query?: Record<string, string>): Promise<T>;
}

function httpOf(client: object): AuthedHttp | undefined {
  const http = (client as { http?: Partial<AuthedHttp> }).http;
  return typeof http?.authedRequest === "function" ? (http as AuthedHttp) : undefined;
}

/**
 * The current state entries of one type (and key), from the client's synced view of the room, or from the
 * server (`/rooms/{roomId}/state`) when it has none.
 */
export async function readCurrentState(
  client: ServerReadClient,
  roomId: string,
  eventType: string,
  stateKey: string | undefined,
): Promise<Record<string, unknown>[]> {
  const room = syncedRoom(client, roomId);
  if (room)
    return room.currentState
      .getStateEvents(eventType)
      .filter((e) => stateKey === undefined || e.getStateKey() === stateKey)
      .map((e) => toWidgetEvent(e, roomId));
  const events = (await client.roomState(roomId)) as { type?: unknown; state_key?: unknown }[];
  return events
    .filter((e) => e.type === eventType && (stateKey === undefined || e.state_key === stateKey))
    .map((e) => ({ ...e, room_id: roomId }));
}

/** Most timeline events a server read asks for when the widget sets no limit. */
const DEFAULT_TIMELINE_LIMIT = 50;

/**
 * Timeline events of one type (and `msgtype`), newest first, at most `limit` (0: all the host has, or 50
 * from the server), stopping at the event `since`: from the client's live timeline, or from the server
 * (`/rooms/{roomId}/messages`) when it has no synced view. Without either it refuses: an empty list would
 * say "nothing happened". State events of that type are included: matrix-widget-api asks this both for
 * room events and for `read_events` with `state_key: true` (any key), which it reads from the timeline.
 */
export async function readTimeline(
  client: ServerReadClient,
  roomId: string,
  eventType: string,
  msgtype: string | undefined,
  limit: number,
  since: string | undefined,
): Promise<Record<string, unknown>[]> {
  const matches = (type: unknown, content: unknown): boolean =>
    type === eventType &&
    (msgtype === undefined || (content as { msgtype?: unknown } | undefined)?.msgtype === msgtype);
  let newestFirst: { id: unknown; event: Record<string, unknown> }[];
  const room = syncedRoom(client, roomId);
  if (room) {
    newestFirst = room
      .getLiveTimeline()
      .getEvents()
      .map((e) => ({
        id: e.getId(),
        event: toWidgetEvent(e, roomId),
        content: e.getContent(),
        type: e.getType(),
      }))
      .filter((e) => matches(e.type, e.content))
      .reverse();
  } else {
    const http = httpOf(client);
    if (!http)
      throw new Error("this host has no synced view of the room and no HTTP API to read its timeline");
    const answer = await http.authedRequest<{ chunk?: unknown }>(
      "GET",
      `/rooms/${encodeURIComponent(roomId)}/messages`,
      {
        dir: "b",
        limit: String(limit > 0 ? limit : DEFAULT_TIMELINE_LIMIT),
        filter: JSON.stringify({ types: [eventType] }),
      },
    );
    const chunk = Array.isArray(answer?.chunk) ? (answer.chunk as Record<string, unknown>[]) : [];
    newestFirst = chunk
      .filter((e) => matches(e.type, e.content))
      .map((e) => ({ id: e.event_id, event: { ...e, room_id: roomId } }));
  }
  const out: Record<string, unknown>[] = [];
  for (const { id, event } of newestFirst) {
    if (since !== undefined && id === since) break;
    if (limit > 0 && out.length >= limit) break;
    out.push(event);
  }
  return out;
}
