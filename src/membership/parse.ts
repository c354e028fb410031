/**
 * Reading others' legacy MatrixRTC memberships (`org.matrix.msc3401.call.member` state events) the way
 * matrix-js-sdk's MatrixRTCSession does, and stricter where that is safer:
 *
 * - js-sdk's rules: required `device_id`, `call_id`, `application` (strings) and `focus_active` with a
 *   string `type`; optional `foci_preferred` (transports), `created_ts` (number), `scope` and
 *   `m.call.intent` (strings); not expired (`created_ts ?? origin_server_ts` + `expires ?? 4 h` > now,
 *   local clock); the sender's `m.room.member` is `join`; oldest first.
 * - Stricter: the slot compares the application too (js-sdk compares only the id); the state key must
 *   be the sender's own key for the content's device and slot (js-sdk never looks at it); `expires`
 *   must be a positive number when present (js-sdk lets a non-number keep a membership forever); a
 *   sender whose room membership is unknown does not count.
 * - Judged on the server's facts (`facts.ts`): expiry counts from `created_ts` only as far as it is not
 *   later than the event's `origin_server_ts`; the order follows `orderTs`, the writer's `created_ts` kept
 *   within what the server's timestamps allow; a membership written before its sender's current stay in
 *   the room began does not count.
 *
 * Two steps: `parseMembershipEvent` reads one event on its own (schema, slot, key: cached per event by
 * the store), `judgeMember` adds what changes without the event changing (time, room membership).
 * Nothing here throws, whatever the input: bad events come back as rejections with a reason.
 */
import type { StickyMembershipContent } from "./sticky.js";
import { followRun, isJoinContent, orderTsOf } from "./facts.js";
import {
  CALL_MEMBER_EVENT_TYPE,
  DEFAULT_SLOT,
  isLeftContent,
  type CallIntent,
  type MembershipContent,
  type Slot,
  type Transport,
} from "./content.js";

/** js-sdk's `DEFAULT_EXPIRE_DURATION`: a membership without `expires` is valid this long. */
export const DEFAULT_MEMBERSHIP_EXPIRES_MS = 4 * 60 * 60 * 1000;

/** A room state event as any source delivers it (sync, `/state`, the widget API). */
export interface StateEventLike {
  /** The event type. */
  type: string;
  /** The state key. */
  state_key: string;
  /** Who sent it. */
  sender: string;
  /** The content, unchecked. */
  content: unknown;
  /** The server's timestamp (ms since the epoch). */
  origin_server_ts: number;
  /** The event id, when the source gives it. */
  event_id?: string;
  /** The room id, when the source gives it. */
  room_id?: string;
  /**
   * The server's notes: `replaces_state` and `prev_content` tell whether a membership (or a room join)
   * began with this event or continues an earlier one (see `facts.ts`).
   */
  unsigned?: Record<string, unknown>;
}

/** One device in the call, from a valid membership event. */
export interface CallMember {
  /** The sender (js-sdk's `CallMembership.userId`/`sender`). */
  userId: string;
  /** The content's `device_id`. */
  deviceId: string;
  /** The event's state key; for a sticky membership, its sticky key. */
  stateKey: string;
  /**
   * Present for a sticky membership (MatrixRTC 2.0, `org.matrix.msc4143.rtc.member` made sticky by
   * MSC4354): its sticky key. Absent for a state membership.
   */
  stickyKey?: string;
  /**
   * The whole content, as sent (application data included): a legacy state membership's, or, when
   * `stickyKey` is set, a sticky membership's (`StickyMembershipContent`).
   */
  content: MembershipContent | StickyMembershipContent;
  /** `created_ts` or else the event's `origin_server_ts` (js-sdk's `createdTs()`): the writer's claim. */
  createdTs: number;
  /**
   * Where the member sorts (the list is oldest first by it): `createdTs` kept within what the server
   * vouches for, i.e. not after the first event of the membership's run (or its own event), not more
   * than `CREATED_TS_LEEWAY_MS` before that first event when it is known, and not before the sender's
   * current stay in the room began. Equal to `createdTs` for honest writers.
   */
  orderTs: number;
  /**
   * `min(createdTs, originServerTs) + (expires ?? 4 h)`; the member counts until then. js-sdk's
   * `getAbsoluteExpiry()` for every writer whose `created_ts` is not after its event's timestamp.
   */
  expiresAt: number;
  /** `focus_active`. */
  focusActive: Transport;
  /** `foci_preferred`, `[]` when absent (js-sdk's `transports`). */
  fociPreferred: Transport[];
  /** `m.call.intent`, when set. */
  callIntent?: CallIntent;
  /** `membershipID` or else `sender:device_id` (js-sdk's `memberId`, the LiveKit identity). */
  memberId: string;
  /** The slot, from `application` and `call_id`. */
  slot: Slot;
  /** The event id, when the source gave it. */
  eventId?: string;
  /** The event's `origin_server_ts`. */
  originServerTs: number;
  /**
   * Set only on our own device's entry in a list asked for with `manager`, while the room view has not
   * shown our membership yet: the server confirmed it to the manager (`connected`). `eventId` is the
   * one the server answered (when it gave one); `originServerTs` and `createdTs` are this device's clock
   * at that answer, unless `created_ts` says otherwise (see `own.ts`).
   */
  fromManager?: true;
}

/** Why a membership-looking event is not counted. */
export type RejectionReason =
  /** Not a usable state event at all (no string sender/state key, no timestamp). */
  | "malformed-event"
  /** The content fails js-sdk's schema, or ours (`expires`). */
  | "invalid-content"
  /** The state key names another user or device than the sender and `device_id`, or is not a membership key. */
  | "state-key-mismatch"
  /** Valid, but `createdTs + expires` has passed. */
  | "expired"
  /** The sender's `m.room.member` is not `join`. */
  | "sender-not-joined"
  /** Written before the sender's current stay in the room began: left behind when they left. */
  | "sender-left-since"
  /** The source does not know the sender's room membership (e.g. no `m.room.member` capability). */
  | "sender-membership-unknown";

/** A membership-looking event that is not counted, and why. */
export interface RejectedMembership {
  /** Why it is not counted. */
  reason: RejectionReason;
  /** The event's state key. */
  stateKey: string;
  /** The event's sender. */
  sender: string;
  /** The event id, when the source gave it. */
  eventId?: string;
  /** Human-readable details (schema errors, the key expected). */
  details: string[];
}

/** Events that are not memberships of this slot at all; never reported. */
export type IgnoredReason = "not-a-call-member" | "left" | "deprecated-format" | "other-slot";

/** What `parseCallMemberEvent` made of one event: a member, a rejection, or not a membership at all. */
export type ParsedMembership =
  | {
      /** A valid membership of the slot. */
      kind: "member";
      /** The member it describes. */
      member: CallMember;
    }
  | {
      /** A membership-looking event that does not count. */
      kind: "rejected";
      /** Why. */
      rejection: RejectedMembership;
    }
  | {
      /** Not a membership of this slot. */
      kind: "ignored";
      /** Why it was skipped. */
      reason: IgnoredReason;
    };

/** The sender's `m.room.member` membership (`"join"`, `"leave"`, …), or undefined when unknown. */
export type MembershipLookup = (userId: string) => string | undefined;

/** How to read membership events. */
export interface ParseOptions {
  /** Default `{application: "m.call", id: "ROOM"}`. */
  slot?: Slot;
  /** Local time (ms since the epoch) to check expiry against. */
  now: number;
  /** Without it, the sender check is skipped (say so only when the source guarantees joined senders). */
  membershipOf?: MembershipLookup;
  /**
   * The sender's current `m.room.member` event, when the source has it: with its `unsigned`, it tells
   * when the sender's current stay in the room began (a membership from before does not count). Also
   * used for the sender check when `membershipOf` is absent.
   */
  memberEventOf?: (userId: string) => StateEventLike | undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const isTransport = (t: unknown): t is Transport => isRecord(t) && typeof t.type === "string";

/**
 * The slot a legacy content belongs to: js-sdk reads `m.call` with `call_id ""` as the room call
 * (`ROOM`), and `call_id` as the slot id otherwise.
 */
export function slotOfContent(application: string, callId: string): Slot {
  return { application, id: application === "m.call" && callId === "" ? "ROOM" : callId };
}

/** js-sdk's legacy schema (`checkSessionsMembershipData`) plus our `expires` check; empty when valid. */
export function membershipContentErrors(content: Record<string, unknown>): string[] {
  const errors: string[] = [];
  if (typeof content.device_id !== "string") errors.push("device_id must be a string");
  if (typeof content.call_id !== "string") errors.push("call_id must be a string");
  if (typeof content.application !== "string") errors.push("application must be a string");
  if (!isTransport(content.focus_active)) errors.push("focus_active must be an object with a string type");
  const foci = content.foci_preferred;
  if (foci !== undefined && !(Array.isArray(foci) && foci.every(isTransport)))
    errors.push("foci_preferred must be an array of transports (objects with a string type)");
  if (content.created_ts !== undefined && !Number.isFinite(content.created_ts))
    errors.push("created_ts must be a number");
  if (content.scope !== undefined && typeof content.scope !== "string") errors.push("scope must be a string");
  if (content["m.call.intent"] !== undefined && typeof content["m.call.intent"] !== "string")
    errors.push("m.call.intent must be a string");
  // Stricter than js-sdk, where a non-number `expires` makes the membership never expire.
  const expires = content.expires;
  if (expires !== undefined && !(typeof expires === "number" && Number.isFinite(expires) && expires > 0))
    errors.push("expires must be a positive number");
  return errors;
}

/** `membershipContentErrors(content).length === 0`, without building the list (the common case). */
function hasValidShape(content: Record<string, unknown>): boolean {
  if (
    typeof content.device_id !== "string" ||
    typeof content.call_id !== "string" ||
    typeof content.application !== "string" ||
    !isTransport(content.focus_active)
  )
    return false;
  const foci = content.foci_preferred;
  if (foci !== undefined && !(Array.isArray(foci) && foci.every(isTransport))) return false;
  if (content.created_ts !== undefined && !Number.isFinite(content.created_ts)) return false;
  if (content.scope !== undefined && typeof content.scope !== "string") return false;
  const intent = content["m.call.intent"];
  if (intent !== undefined && typeof intent !== "string") return false;
  const expires = content.expires;
  return expires === undefined || (typeof expires === "number" && Number.isFinite(expires) && expires > 0);
}

/**
 * The state keys a sender may publish this content under: `_@user:hs_DEVICE_<application><call_id>`
 * (current js-sdk), `_@user:hs_DEVICE` (js-sdk before slots), each also without the leading `_`
 * (MSC3757/MSC3779 rooms, where the server enforces ownership).
 */
export function acceptedStateKeys(
  sender: string,
  deviceId: string,
  application: string,
  callId: string,
): string[] {
  const keys = [`${sender}_${deviceId}_${application}${callId}`, `${sender}_${deviceId}`];
  return keys.flatMap((k) => [`_${k}`, k]);
}

/** Why a state key does not belong to this sender and device (undefined when it does). */
function stateKeyProblem(
  stateKey: string,
  sender: string,
  deviceId: string,
  application: string,
  callId: string,
): string | undefined {
  // The keys `acceptedStateKeys` lists, checked without building them (this runs for every event):
  // [_]<sender>_<device>[_<application><call_id>]
  const start = stateKey.startsWith("_") ? 1 : 0;
  const deviceAt = start + sender.length + 1;
  const deviceEnd = deviceAt + deviceId.length;
  if (
    stateKey.startsWith(sender, start) &&
    stateKey.charCodeAt(deviceAt - 1) === 95 /* _ */ &&
    stateKey.startsWith(deviceId, deviceAt) &&
    (stateKey.length === deviceEnd ||
      (stateKey.charCodeAt(deviceEnd) === 95 &&
        stateKey.length === deviceEnd + 1 + application.length + callId.length &&
        stateKey.startsWith(application, deviceEnd + 1) &&
        stateKey.endsWith(callId)))
  )
    return undefined;
  const bare = start ? stateKey.slice(1) : stateKey;
  if (bare.startsWith("@") && !bare.startsWith(`${sender}_`))
    return `the state key ${JSON.stringify(stateKey)} claims another user than the sender ${sender}`;
  if (bare.startsWith(`${sender}_`))
    return (
      `the state key ${JSON.stringify(stateKey)} does not match device_id ${JSON.stringify(deviceId)} ` +
      `and slot ${application}${callId} (expected ${JSON.stringify(`_${sender}_${deviceId}_${application}${callId}`)})`
    );
  return `the state key ${JSON.stringify(stateKey)} is not a membership key of ${sender}`;
}

/**
 * One event read on its own: a member candidate (valid for this slot, time and room membership not yet
 * checked), a rejection, or not a membership of this slot. Never throws.
 */
export type StaticParse =
  | {
      /** Valid content under the sender's own key for this slot. */
      kind: "candidate";
      /** The member it describes (`orderTs` provisional: `judgeMember` sets it). */
      member: CallMember;
    }
  | Extract<ParsedMembership, { kind: "rejected" | "ignored" }>;

/** The default slot, frozen: members share their slot object (see `parseMembershipEvent`). */
const FROZEN_DEFAULT_SLOT: Slot = Object.freeze({ ...DEFAULT_SLOT });

/**
 * Read one event against one slot, without time or room membership. Never throws. Every member it
 * returns shares one frozen copy of the slot (a call of thousands need not hold thousands of them).
 */
export function parseMembershipEvent(event: unknown, slot?: Slot): StaticParse {
  const frozen =
    slot === undefined || slot === DEFAULT_SLOT
      ? FROZEN_DEFAULT_SLOT
      : Object.isFrozen(slot)
        ? slot
        : Object.freeze({ ...slot });
  try {
    return parseUnsafe(event, frozen);
  } catch (error) {
    // Only exotic inputs get here (throwing getters, proxies): treat them as malformed.
    const e = isRecord(event) ? event : {};
    let stateKey = "";
    let sender = "";
    try {
      if (typeof e.state_key === "string") stateKey = e.state_key;
      if (typeof e.sender === "string") sender = e.sender;
    } catch {
      // as malformed as it gets
    }
    return {
      kind: "rejected",
      rejection: {
        reason: "malformed-event",
        stateKey,
        sender,
        details: [`could not read the event: ${String(error)}`],
      },
    };
  }
}

/** A membership content that is not "left" (for following a membership's run across events). */
export function isActiveMembershipContent(content: unknown): boolean {
  return isRecord(content) && !isLeftContent(content);
}

/** What `judgeMember` needs besides the candidate. */
export interface JudgeContext {
  /** Local time (ms since the epoch) to check expiry against. */
  now: number;
  /** Check the sender's room membership (false: the source guarantees joined senders). */
  requireJoined: boolean;
  /** The sender's `m.room.member` membership, undefined when unknown. */
  membership: string | undefined;
  /** When the sender's current stay in the room began, when known. */
  presenceSince: number | undefined;
  /** When this membership's run began, when known. */
  runSince: number | undefined;
}

/** Time and room membership on top of a candidate: the member as listed, or why it is not. */
export function judgeMember(candidate: CallMember, ctx: JudgeContext): ParsedMembership {
  const { userId: sender, stateKey, eventId } = candidate;
  if (!(candidate.expiresAt > ctx.now))
    return reject("expired", stateKey, sender, eventId, [
      `expired at ${isoTime(candidate.expiresAt)} (created ${isoTime(candidate.createdTs)})`,
    ]);
  if (ctx.requireJoined) {
    if (ctx.membership === undefined)
      return reject("sender-membership-unknown", stateKey, sender, eventId, [
        `no m.room.member event for ${sender}`,
      ]);
    if (ctx.membership !== "join")
      return reject("sender-not-joined", stateKey, sender, eventId, [
        `${sender}'s membership is ${ctx.membership}`,
      ]);
    if (ctx.presenceSince !== undefined && candidate.originServerTs < ctx.presenceSince)
      return reject("sender-left-since", stateKey, sender, eventId, [
        `written at ${isoTime(candidate.originServerTs)}, before ${sender} joined the room again at ` +
          isoTime(ctx.presenceSince),
      ]);
  }
  const orderTs = orderTsOf(candidate, ctx.runSince, ctx.requireJoined ? ctx.presenceSince : undefined);
  const member = orderTs === candidate.orderTs ? candidate : { ...candidate, orderTs };
  return { kind: "member", member };
}

function isoTime(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}

/**
 * Parse one state event against one slot, on its own: run and presence facts come only from the
 * event's and the sender's `unsigned` (the store also follows them across events). Never throws.
 */
export function parseCallMemberEvent(event: unknown, options: ParseOptions): ParsedMembership {
  const parsed = parseMembershipEvent(event, options.slot);
  if (parsed.kind !== "candidate") return parsed;
  const candidate = parsed.member;
  try {
    const run = followRun(event as StateEventLike, true, isActiveMembershipContent, undefined);
    const requireJoined = options.membershipOf !== undefined || options.memberEventOf !== undefined;
    const memberEvent = options.memberEventOf?.(candidate.userId);
    const membership = options.membershipOf
      ? options.membershipOf(candidate.userId)
      : membershipOfEvent(memberEvent);
    const presence =
      memberEvent && isJoinContent(memberEvent.content)
        ? followRun(memberEvent, true, isJoinContent, undefined)
        : undefined;
    return judgeMember(candidate, {
      now: options.now,
      requireJoined,
      membership,
      presenceSince: presence?.since,
      runSince: run.since,
    });
  } catch (error) {
    return reject("malformed-event", candidate.stateKey, candidate.userId, candidate.eventId, [
      `could not read the event: ${String(error)}`,
    ]);
  }
}

/** `content.membership` of an `m.room.member` event, when it is a string. */
export function membershipOfEvent(event: unknown): string | undefined {
  if (!isRecord(event) || !isRecord(event.content)) return undefined;
  return typeof event.content.membership === "string" ? event.content.membership : undefined;
}

function parseUnsafe(event: unknown, slot: Slot): StaticParse {
  if (!isRecord(event) || event.type !== CALL_MEMBER_EVENT_TYPE)
    return { kind: "ignored", reason: "not-a-call-member" };
  const stateKey = typeof event.state_key === "string" ? event.state_key : undefined;
  const sender = typeof event.sender === "string" ? event.sender : undefined;
  const eventId = typeof event.event_id === "string" ? event.event_id : undefined;
  const content = event.content;
  // A missing content is a left membership, as in js-sdk (getContent() is then {}).
  if (content === undefined || content === null) return { kind: "ignored", reason: "left" };
  if (!isRecord(content))
    return reject("invalid-content", stateKey ?? "", sender ?? "", eventId, ["content must be an object"]);
  if (isLeftContent(content)) return { kind: "ignored", reason: "left" };
  if ("memberships" in content && Object.keys(content).filter((k) => k !== "msc4354_sticky_key").length === 1)
    return { kind: "ignored", reason: "deprecated-format" };

  const ts = event.origin_server_ts;
  if (stateKey === undefined || sender === undefined || !Number.isFinite(ts))
    return reject("malformed-event", stateKey ?? "", sender ?? "", eventId, [
      "a state event needs a string state_key, a string sender and a numeric origin_server_ts",
    ]);

  // Memberships of another slot are none of our business, valid or not.
  if (typeof content.application === "string" && typeof content.call_id === "string") {
    const theirs = slotOfContent(content.application, content.call_id);
    if (theirs.application !== slot.application || theirs.id !== slot.id)
      return { kind: "ignored", reason: "other-slot" };
  }

  if (!hasValidShape(content))
    return reject("invalid-content", stateKey, sender, eventId, membershipContentErrors(content));
  const valid = content as MembershipContent;

  const keyProblem = stateKeyProblem(stateKey, sender, valid.device_id, valid.application, valid.call_id);
  if (keyProblem) return reject("state-key-mismatch", stateKey, sender, eventId, [keyProblem]);

  const originServerTs = ts as number;
  const createdTs = valid.created_ts ?? originServerTs;
  // A membership cannot have been created after the server received it: a later claim does not
  // lengthen its life (js-sdk would count from the claim).
  const expiresAt = Math.min(createdTs, originServerTs) + (valid.expires ?? DEFAULT_MEMBERSHIP_EXPIRES_MS);
  const member: CallMember = {
    userId: sender,
    deviceId: valid.device_id,
    stateKey,
    content: valid,
    createdTs,
    orderTs: Math.min(createdTs, originServerTs),
    expiresAt,
    focusActive: valid.focus_active,
    fociPreferred: valid.foci_preferred ?? [],
    memberId: typeof valid.membershipID === "string" ? valid.membershipID : `${sender}:${valid.device_id}`,
    // Memberships of other slots were ignored above: this one is the slot asked for.
    slot,
    originServerTs,
  };
  if (valid["m.call.intent"] !== undefined) member.callIntent = valid["m.call.intent"];
  if (eventId !== undefined) member.eventId = eventId;
  return { kind: "candidate", member };
}

function reject(
  reason: RejectionReason,
  stateKey: string,
  sender: string,
  eventId: string | undefined,
  details: string[],
): Extract<ParsedMembership, { kind: "rejected" }> {
  const rejection: RejectedMembership = { reason, stateKey, sender, details };
  if (eventId !== undefined) rejection.eventId = eventId;
  return { kind: "rejected", rejection };
}

/** The room memberships (`m.room.member`) among state events, last one per user winning. */
export function membershipLookupFrom(events: Iterable<unknown>): MembershipLookup {
  const memberships = new Map<string, string>();
  try {
    for (const event of events) {
      if (!isRecord(event) || event.type !== "m.room.member" || typeof event.state_key !== "string") continue;
      const membership = isRecord(event.content) ? event.content.membership : undefined;
      if (typeof membership === "string") memberships.set(event.state_key, membership);
      else memberships.delete(event.state_key);
    }
  } catch {
    // A throwing iterable: use what was read.
  }
  return (userId) => memberships.get(userId);
}

/** Our own device's membership among the members, if the server (still) holds a valid one. */
export function ownMembership(
  members: readonly CallMember[],
  userId: string,
  deviceId: string,
): CallMember | undefined {
  return members.find((m) => m.userId === userId && m.deviceId === deviceId);
}
