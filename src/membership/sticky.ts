/**
 * Reading sticky memberships (MatrixRTC 2.0): `org.matrix.msc4143.rtc.member` events made sticky by
 * MSC4354, in both content dialects:
 * - js-sdk 43 / Element Call 0.26 (`matrix_2_0`): `{ slot_id, application, transports, member: { user_id,
 *   device_id, id }, versions, msc4354_sticky_key }`; "left" is `{ slot_id, msc4354_sticky_key }`.
 * - MSC4143's current text: `{ slot_id, member: { id, membership: "join" | "leave" }, application,
 *   transports, leave_reason?, sticky_key }`, no user or device id (the member id, fresh per join, stands
 *   for the device).
 * A sticky event is current until it expires: `unsigned.msc4354_sticky_duration_ttl_ms` after we received
 * it when the server says so, else `msc4354_sticky.duration_ms` (at most 1 h) after its timestamp (or
 * after now, when the timestamp is in the future), as js-sdk computes it. Pure, never throws.
 */
import type { Slot, Transport } from "./content.js";
import type { CallMember, StaticParse } from "./parse.js";

/** The event type of a MatrixRTC 2.0 membership (MSC4143, unstable prefix). */
export const RTC_MEMBER_EVENT_TYPE = "org.matrix.msc4143.rtc.member";
/** The state event that opens or closes a slot (MSC4143, unstable prefix); its state key is the slot id. */
export const RTC_SLOT_EVENT_TYPE = "org.matrix.msc4143.rtc.slot";
/** MSC4354: no event stays sticky longer than this (servers cap it; readers cap it too). */
export const MAX_STICKY_DURATION_MS = 3_600_000;

/** A sticky membership's content, in either dialect (what `CallMember.content` holds for one). */
export interface StickyMembershipContent {
  /** `{application}#{id}`, e.g. `m.call#ROOM`. */
  slot_id: string;
  /** The member: js-sdk 43 writes `user_id`, `device_id`, `id`; MSC4143 now `id`, `membership`. */
  member?: { id?: string; user_id?: string; device_id?: string; membership?: string; [key: string]: unknown };
  /** The application (`type` and its own fields). */
  application?: { type: string; [key: string]: unknown };
  /** Where the member publishes and what it can subscribe to. */
  transports?: { published?: Transport[]; can_subscribe?: string[]; [key: string]: unknown };
  /** The sticky key: unstable (js-sdk 43) and stable names. */
  msc4354_sticky_key?: string;
  sticky_key?: string;
  [key: string]: unknown;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The slot id of a slot as it goes on the wire (`m.call#ROOM`). */
export function slotIdOf(slot: Slot): string {
  return `${slot.application}#${slot.id}`;
}

/** A sticky event's key (`sticky_key` or `msc4354_sticky_key`), or undefined when it has none. */
export function stickyKeyOf(content: unknown): string | undefined {
  if (!isRecord(content)) return undefined;
  const key = content.sticky_key ?? content.msc4354_sticky_key;
  return typeof key === "string" ? key : undefined;
}

/**
 * When a sticky event stops being current, by our clock: `receivedAt + ttl` when the server gave the
 * remaining time (`unsigned.msc4354_sticky_duration_ttl_ms`, or the stable name), else
 * `min(receivedAt, origin_server_ts) + min(duration_ms, 1 h)`. Undefined when the event is not sticky.
 */
export function stickyExpiresAt(event: Record<string, unknown>, receivedAt: number): number | undefined {
  const sticky = isRecord(event.msc4354_sticky)
    ? event.msc4354_sticky
    : isRecord(event.sticky)
      ? event.sticky
      : {};
  const duration = sticky.duration_ms;
  if (!(typeof duration === "number" && Number.isFinite(duration) && duration > 0)) return undefined;
  const unsigned = isRecord(event.unsigned) ? event.unsigned : {};
  const ttl = unsigned.msc4354_sticky_duration_ttl_ms ?? unsigned.sticky_duration_ttl_ms;
  if (typeof ttl === "number" && Number.isFinite(ttl) && ttl > 0)
    return receivedAt + Math.min(ttl, MAX_STICKY_DURATION_MS);
  const ts = typeof event.origin_server_ts === "number" ? event.origin_server_ts : receivedAt;
  return Math.min(receivedAt, ts) + Math.min(duration, MAX_STICKY_DURATION_MS);
}

/**
 * MSC4354's order between two events at one (sender, type, sticky key): the one that expires last wins,
 * then the highest event id. Expiry here is what the server vouches for (`origin_server_ts` + duration),
 * so every reader picks the same event. True when `a` wins over `b`.
 */
export function stickyWins(
  a: { serverExpiry: number; eventId: string | undefined },
  b: { serverExpiry: number; eventId: string | undefined },
): boolean {
  if (a.serverExpiry !== b.serverExpiry) return a.serverExpiry > b.serverExpiry;
  return (a.eventId ?? "") > (b.eventId ?? "");
}

/** `origin_server_ts + min(duration, 1 h)`: the expiry every reader agrees on (for `stickyWins`). */
export function stickyServerExpiry(event: Record<string, unknown>): number {
  const sticky = isRecord(event.msc4354_sticky)
    ? event.msc4354_sticky
    : isRecord(event.sticky)
      ? event.sticky
      : {};
  const duration =
    typeof sticky.duration_ms === "number" ? Math.min(sticky.duration_ms, MAX_STICKY_DURATION_MS) : 0;
  const ts = typeof event.origin_server_ts === "number" ? event.origin_server_ts : 0;
  return ts + duration;
}

/** A left sticky membership: no `member`/`application` (js-sdk 43's leave), or `member.membership: "leave"`. */
export function isLeftStickyContent(content: unknown): boolean {
  if (!isRecord(content)) return true;
  if (isRecord(content.member) && content.member.membership === "leave") return true;
  return !("member" in content) && !("application" in content);
}

const isTransport = (t: unknown): t is Transport => isRecord(t) && typeof t.type === "string";

/** Why a sticky membership content cannot be read (empty when it can). */
export function stickyContentErrors(content: Record<string, unknown>, sender: string): string[] {
  const errors: string[] = [];
  if (typeof content.slot_id !== "string") errors.push("slot_id must be a string");
  const member = content.member;
  if (!isRecord(member)) errors.push("member must be an object");
  else {
    if (typeof member.id !== "string" || member.id === "")
      errors.push("member.id must be a non-empty string");
    if (member.user_id !== undefined && member.user_id !== sender)
      errors.push(`member.user_id must be the sender ${sender}`);
    if (member.device_id !== undefined && typeof member.device_id !== "string")
      errors.push("member.device_id must be a string");
    if (member.membership !== undefined && member.membership !== "join" && member.membership !== "leave")
      errors.push('member.membership must be "join" or "leave"');
  }
  const application = content.application;
  if (!isRecord(application) || typeof application.type !== "string")
    errors.push("application must be an object with a string type");
  const transports = content.transports;
  if (
    !isRecord(transports) ||
    !Array.isArray(transports.published) ||
    !transports.published.every(isTransport)
  )
    errors.push("transports.published must be an array of transports (objects with a string type)");
  if (
    content.sticky_key !== undefined &&
    content.msc4354_sticky_key !== undefined &&
    content.sticky_key !== content.msc4354_sticky_key
  )
    errors.push("sticky_key and msc4354_sticky_key differ");
  return errors;
}

/**
 * Read one sticky membership event against one slot, without time or room membership (`judgeMember`
 * adds those). `expiresAt` is when it stops being sticky (see `stickyExpiresAt`). Never throws.
 */
export function parseStickyMembershipEvent(
  event: unknown,
  slot: Slot,
  expiresAt: number | undefined,
): StaticParse {
  try {
    return parseUnsafe(event, slot, expiresAt);
  } catch (error) {
    return malformed(event, [`could not read the event: ${String(error)}`]);
  }
}

function malformed(event: unknown, details: string[]): StaticParse {
  let sender = "";
  let stickyKey = "";
  let eventId: string | undefined;
  try {
    if (isRecord(event)) {
      if (typeof event.sender === "string") sender = event.sender;
      if (typeof event.event_id === "string") eventId = event.event_id;
      stickyKey = stickyKeyOf(event.content) ?? "";
    }
  } catch {
    // as malformed as it gets
  }
  const rejection = { reason: "malformed-event" as const, stateKey: stickyKey, sender, details };
  return { kind: "rejected", rejection: eventId === undefined ? rejection : { ...rejection, eventId } };
}

function parseUnsafe(event: unknown, slot: Slot, expiresAt: number | undefined): StaticParse {
  if (!isRecord(event) || event.type !== RTC_MEMBER_EVENT_TYPE)
    return { kind: "ignored", reason: "not-a-call-member" };
  const sender = typeof event.sender === "string" ? event.sender : undefined;
  const eventId = typeof event.event_id === "string" ? event.event_id : undefined;
  const ts = event.origin_server_ts;
  const content = event.content;
  if (sender === undefined || !Number.isFinite(ts) || expiresAt === undefined)
    return malformed(event, [
      "a sticky membership needs a string sender, a numeric origin_server_ts and msc4354_sticky.duration_ms",
    ]);
  const stickyKey = stickyKeyOf(content);
  if (!isRecord(content) || stickyKey === undefined)
    return malformed(event, ["content must be an object with a string sticky_key or msc4354_sticky_key"]);
  if (typeof content.slot_id === "string" && content.slot_id !== slotIdOf(slot))
    return { kind: "ignored", reason: "other-slot" };
  if (isLeftStickyContent(content)) return { kind: "ignored", reason: "left" };
  const errors = stickyContentErrors(content, sender);
  const reject = (details: string[]): StaticParse => ({
    kind: "rejected",
    rejection: {
      reason: "invalid-content",
      stateKey: stickyKey,
      sender,
      details,
      ...(eventId ? { eventId } : {}),
    },
  });
  if (errors.length > 0) return reject(errors);
  const valid = content as StickyMembershipContent & {
    member: { id: string; device_id?: string };
    application: { type: string };
    transports: { published: Transport[] };
  };
  if (valid.application.type !== slot.application)
    return reject([`application.type ${valid.application.type} does not match slot_id ${valid.slot_id}`]);
  const originServerTs = ts as number;
  const published = valid.transports.published;
  const member: CallMember = {
    userId: sender,
    // MSC4143's current dialect names no device: the per-join member id stands for it.
    deviceId: typeof valid.member.device_id === "string" ? valid.member.device_id : valid.member.id,
    stateKey: stickyKey,
    stickyKey,
    content: valid,
    // js-sdk 43's createdTs() for these: the event's timestamp, which the server vouches for.
    createdTs: originServerTs,
    orderTs: originServerTs,
    expiresAt,
    focusActive: published[0] ?? { type: "none" },
    fociPreferred: published,
    memberId: valid.member.id,
    slot,
    originServerTs,
  };
  const intent = valid.application["m.call.intent"];
  if (typeof intent === "string") member.callIntent = intent;
  if (eventId !== undefined) member.eventId = eventId;
  return { kind: "candidate", member };
}
