/**
 * A host whose client syncs hands its widgets every sticky event that becomes current in their rooms
 * (`ClientWidgetApi.feedEvent`), with its sticky field intact: a MatrixRTC widget in sticky mode lists the
 * call's members from them (its own membership included), as it lists state members from state pushes.
 * Taken from matrix-js-sdk's sticky map of each room, which gets them from the timeline and from /sync's
 * sticky section alike, decrypted. Only to a widget granted `org.matrix.msc4407.receive.sticky_event`
 * (and the event type: matrix-widget-api checks that). `createClientWidgetApi` wires it; it stops with
 * the api. A bare client (no sync) feeds nothing.
 */
import { MatrixCapabilities, type ClientWidgetApi, type IRoomEvent } from "matrix-widget-api";
import type { FeedClient } from "./stateFeed.js";
import { stickyWidgetEvent, type StickyEventLike } from "./stickyView.js";

/** matrix-js-sdk's `RoomStickyEventsEvent.Update`, emitted by a Room. */
const STICKY_UPDATE = "RoomStickyEvents.Update";
/** matrix-js-sdk's `ClientEvent.Room`: a room the client did not know yet. */
const NEW_ROOM = "Room";

/** The part of a matrix-js-sdk `Room` the feed listens to. */
interface ListenableRoom {
  readonly roomId: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- js-sdk's listeners take typed args
  on(event: string, listener: (...args: any[]) => void): unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as for `on`
  off(event: string, listener: (...args: any[]) => void): unknown;
}

function isListenable(room: unknown): room is ListenableRoom {
  const r = room as Partial<ListenableRoom> | null;
  return typeof r?.roomId === "string" && typeof r.on === "function" && typeof r.off === "function";
}

/**
 * Feeds `api` the sticky events that become current in `roomIds` (added, or replacing an older one of the
 * same key); returns the function that stops it.
 */
export function feedStickyEvents(
  api: ClientWidgetApi,
  client: FeedClient,
  roomIds: readonly string[],
  now: () => number = Date.now,
): () => void {
  if (typeof client.on !== "function" || typeof client.off !== "function") return () => undefined;
  const rooms = new Set(roomIds);
  const attached = new Map<string, { room: ListenableRoom; listener: (...args: unknown[]) => void }>();

  const attach = (room: unknown): void => {
    if (!isListenable(room) || !rooms.has(room.roomId) || attached.has(room.roomId)) return;
    const roomId = room.roomId;
    const listener = (added: unknown, updated: unknown): void => {
      if (!api.hasCapability(MatrixCapabilities.MSC4407ReceiveStickyEvent)) return;
      const current = [
        ...(Array.isArray(added) ? (added as StickyEventLike[]) : []),
        ...(Array.isArray(updated)
          ? (updated as { current?: StickyEventLike }[]).map((u) => u?.current)
          : []),
      ];
      const at = now();
      for (const event of current) {
        if (!event) continue;
        const raw = stickyWidgetEvent(event, roomId, at);
        // The library checks the widget's capabilities; a widget that went away just does not answer.
        if (raw) api.feedEvent(raw as unknown as IRoomEvent).catch(() => undefined);
      }
    };
    room.on(STICKY_UPDATE, listener);
    attached.set(roomId, { room, listener });
  };

  for (const roomId of rooms) attach(client.getRoom?.(roomId));
  client.on(NEW_ROOM, attach);
  return () => {
    client.off?.(NEW_ROOM, attach);
    for (const { room, listener } of attached.values()) room.off(STICKY_UPDATE, listener);
    attached.clear();
  };
}
