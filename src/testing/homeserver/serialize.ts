/**
 * Client-format events as Synapse serves them: `unsigned.age`, `prev_content` for state, the
 * `transaction_id` echoed only to the sending device, the delayed-event id only to the sender, and
 * MSC4354's remaining stickiness to everyone.
 */
import type { JsonObject } from "./errors.js";
import type { StoredEvent } from "./rooms.js";
import { stickyTtl, type StickyNames } from "./sticky-events.js";

export const DELAY_ID_UNSIGNED_KEY = "org.matrix.msc4140.delay_id";

export interface Viewer {
  userId: string;
  deviceId?: string;
}

export interface SerializeOptions {
  now: number;
  /** ≥1.150 behaviour; `viewer: "server"` (test inspection) always sees it. */
  delayIdInUnsigned: boolean;
  /** MSC4354 on: the names of the sticky field and of the TTL it adds to `unsigned`. */
  sticky?: Pick<StickyNames, "field" | "ttl">;
}

export function serializeEvent(
  event: StoredEvent,
  viewer: Viewer | "server",
  opts: SerializeOptions,
): JsonObject {
  const unsigned: JsonObject = { age: Math.max(0, opts.now - event.origin_server_ts) };
  if (event.replaces) {
    unsigned.prev_content = event.replaces.content;
    unsigned.prev_sender = event.replaces.sender;
    unsigned.replaces_state = event.replaces.event_id;
  }
  const isSender = viewer === "server" || viewer.userId === event.sender;
  if (viewer !== "server" && event.txnId !== undefined && isSender && viewer.deviceId === event.deviceId) {
    unsigned.transaction_id = event.txnId;
  }
  if (event.delayId !== undefined && isSender && (viewer === "server" || opts.delayIdInUnsigned)) {
    unsigned[DELAY_ID_UNSIGNED_KEY] = event.delayId;
  }
  if (opts.sticky) {
    const ttl = stickyTtl(event, opts.sticky.field, opts.now);
    if (ttl !== undefined) unsigned[opts.sticky.ttl] = ttl;
  }
  return {
    event_id: event.event_id,
    room_id: event.room_id,
    type: event.type,
    sender: event.sender,
    ...(event.state_key !== undefined ? { state_key: event.state_key } : {}),
    content: event.content,
    origin_server_ts: event.origin_server_ts,
    ...event.topLevel,
    unsigned,
  };
}

/** The stripped state a user sees for a room they are invited to. */
export function strippedState(event: StoredEvent): JsonObject {
  return { type: event.type, state_key: event.state_key, sender: event.sender, content: event.content };
}
