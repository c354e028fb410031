/**
 * A host whose client syncs tells its widgets about every change of room state they may see
 * (`ClientWidgetApi.feedStateUpdate`, MSC2762 `update_state`), as Element Web does. Without it a widget
 * has the state pushed at negotiation and nothing after: it sees no one join or leave, and a widget
 * watching its own membership sees its join never arrive. `createClientWidgetApi` wires it; it stops with
 * the api. A bare client (no sync) emits nothing; its widgets read from the server instead.
 */
import type { ClientWidgetApi, IRoomEvent } from "matrix-widget-api";
import { toWidgetEvent, type HostEventLike, type HostRoomLike } from "./roomView.js";

/** matrix-js-sdk's `RoomStateEvent.Events`: a state event was applied to a room's state. */
const ROOM_STATE_EVENTS = "RoomState.events";

/** The part of a client the feed listens to (a started MatrixClient). */
export interface FeedClient {
  /** The room the event belongs to (to tell live state from state being paginated in). */
  getRoom?(roomId: string): HostRoomLike | null;
  /** Subscribes to a client event. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- js-sdk's listeners take typed args
  on?(event: string, listener: (...args: any[]) => void): unknown;
  /** Unsubscribes. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as for `on`
  off?(event: string, listener: (...args: any[]) => void): unknown;
}

/** Each driver's client, registered by the driver (so the api wiring can reach it without a public getter). */
export const driverClients = new WeakMap<object, FeedClient>();

/**
 * Feeds `api` every live room-state change `client` applies; returns the function that stops it. A
 * client that cannot be listened to gets a no-op.
 */
export function feedStateUpdates(api: ClientWidgetApi, client: FeedClient): () => void {
  if (typeof client.on !== "function" || typeof client.off !== "function") return () => undefined;
  const listener = (event: HostEventLike, state: unknown): void => {
    const roomId = event.getRoomId();
    if (roomId === undefined || event.getStateKey() === undefined) return;
    // Only the room's live state (js-sdk also applies state to timelines being paginated backwards).
    const room = client.getRoom?.(roomId);
    if (room && state !== undefined && state !== room.currentState) return;
    // The library checks the widget's capabilities; a widget that went away just does not answer.
    api.feedStateUpdate(toWidgetEvent(event, roomId) as unknown as IRoomEvent).catch(() => undefined);
  };
  client.on(ROOM_STATE_EVENTS, listener);
  return () => void client.off?.(ROOM_STATE_EVENTS, listener);
}
