/**
 * What goes on the wire: the legacy MatrixRTC membership state event that matrix-js-sdk's
 * MatrixRTCSession writes and parses, so that Element Call, Element Web
 * and Element X list our device as a call member.
 */

/** State event type of a legacy (state-event based) MatrixRTC membership. */
export const CALL_MEMBER_EVENT_TYPE = "org.matrix.msc3401.call.member";

/** A MatrixRTC slot: which application and which call in the room. */
export interface Slot {
  /** Application type, e.g. "m.call". */
  application: string;
  /** Slot id; "ROOM" is the one room-wide call (written as `call_id: ""` on the wire). */
  id: string;
}

/** The room-wide call (`m.call`, `ROOM`): what Element Call joins. */
export const DEFAULT_SLOT: Slot = { application: "m.call", id: "ROOM" };

/** A transport (focus) a member can be reached through, e.g. a LiveKit SFU. */
export interface Transport {
  /** The transport kind, e.g. "livekit"; the other fields depend on it (e.g. `livekit_service_url`). */
  type: string;
  [key: string]: unknown;
}

/** What the member intends the call to be (`m.call.intent`): "audio", "video", or another string. */
export type CallIntent = "audio" | "video" | (string & {});

/** The membership content our device writes (and the fields others' content may carry). */
export interface MembershipContent {
  /** The slot's application, e.g. "m.call". */
  application: string;
  /** The slot's wire call id ("" for the room-wide call). */
  call_id: string;
  /** Who the call is for: "m.room" (everyone in the room). */
  scope: "m.room" | (string & {});
  /** The member's device id. */
  device_id: string;
  /** A per-join id some clients write (js-sdk reads it when present). */
  membershipID?: string;
  /** Milliseconds after `created_ts` (or the event's timestamp) when the membership stops counting. */
  expires: number;
  /** When this membership was first created (ms since the epoch); kept across refreshes. */
  created_ts?: number;
  /** The transport in use, usually `{ type: "livekit", focus_selection: "oldest_membership" }`. */
  focus_active: Transport;
  /** The transports this member offers, in order of preference. */
  foci_preferred: Transport[];
  /** The call's intent (audio or video). */
  "m.call.intent"?: CallIntent;
  [key: string]: unknown;
}

/** Rooms whose auth rules own state keys by user id (MSC3757/MSC3779) drop the leading underscore. */
function roomVersionOwnsStateKeys(roomVersion?: string): boolean {
  return roomVersion !== undefined && /^org\.matrix\.msc(3757|3779)\b/.test(roomVersion);
}

/** The wire call id of a slot: the room-wide "m.call" slot is the empty string. */
export function wireCallId(slot: Slot): string {
  return slot.application === "m.call" && slot.id === "ROOM" ? "" : slot.id;
}

/**
 * State key for one device in one slot: `_@user:server_DEVICE_m.call` for the room call,
 * `_@user:server_DEVICE_<application><slotId>` otherwise (application and slot concatenated, as js-sdk does).
 */
export function membershipStateKey(
  userId: string,
  deviceId: string,
  slot: Slot,
  roomVersion?: string,
): string {
  const prefix = roomVersionOwnsStateKeys(roomVersion) ? "" : "_";
  return `${prefix}${userId}_${deviceId}_${slot.application}${wireCallId(slot)}`;
}

/** Inputs to one membership content: the device, the slot and the app's choices. */
export interface MembershipFields {
  /** Our user id (part of the state key). */
  userId: string;
  /** Our device id (part of the state key, and `device_id`). */
  deviceId: string;
  /** Which call in the room. */
  slot: Slot;
  /** Written as `focus_active`. */
  focusActive: Transport;
  /** Written as `foci_preferred`. */
  fociPreferred: Transport[];
  /** Written as `m.call.intent` when set. */
  callIntent?: CallIntent;
  /** Extra app data; session fields win over colliding keys, as in js-sdk. */
  applicationData?: Record<string, unknown>;
}

/**
 * The content of our membership. `createdTs` undefined: no `created_ts` is written, so readers take the
 * event's `origin_server_ts` (the server's clock, never a device clock that may be wrong), and `expires`
 * is the window itself; matrix-js-sdk writes its first membership so too. With `createdTs` (a time on
 * the same clock as `now`), `expires` is set so that the membership is valid until `now + expiryWindowMs`,
 * which keeps a crashed device from lingering longer than one window (unlike js-sdk's growing multiples
 * of 4 h).
 */
export function makeMembershipContent(
  fields: MembershipFields,
  createdTs: number | undefined,
  now: number,
  expiryWindowMs: number,
): MembershipContent {
  const content: MembershipContent = {
    ...fields.applicationData,
    application: fields.slot.application,
    call_id: wireCallId(fields.slot),
    scope: "m.room",
    device_id: fields.deviceId,
    membershipID: `${fields.userId}:${fields.deviceId}`,
    expires: Math.max(
      1,
      Math.round(createdTs === undefined ? expiryWindowMs : now - createdTs + expiryWindowMs),
    ),
    focus_active: fields.focusActive,
    foci_preferred: fields.fociPreferred,
  };
  if (createdTs !== undefined) content.created_ts = createdTs;
  if (fields.callIntent !== undefined) content["m.call.intent"] = fields.callIntent;
  return content;
}

/** The content of a left membership (delayed leave and explicit leave alike). */
export const LEFT_CONTENT: Record<string, never> = Object.freeze({}) as Record<string, never>;

/** js-sdk counts content with no keys (or only sticky bookkeeping keys) as "left". */
export function isLeftContent(content: Record<string, unknown> | undefined): boolean {
  if (!content) return true;
  // Runs for every membership event read: no array of keys.
  for (const k in content)
    if (Object.prototype.hasOwnProperty.call(content, k) && k !== "slot_id" && k !== "msc4354_sticky_key")
      return false;
  return true;
}

/** Deep equality of two JSON contents, independent of key order (servers may reorder keys). */
export function sameContent(a: unknown, b: unknown): boolean {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canonical)
      : v && typeof v === "object"
        ? Object.fromEntries(
            Object.keys(v as object)
              .sort()
              .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
          )
        : v;
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}
