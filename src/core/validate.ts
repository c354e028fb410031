/**
 * Pure validators, one place for every rule we apply to what comes in: the answers we read from the
 * server or the widget host (a wrong shape must be a typed error, never `undefined` used as a delay id)
 * and the identity options of a manager (a wrong id must fail at construction, naming the field and the
 * rule, instead of producing requests the server refuses or, worse, accepts for someone else's key).
 * Timing options are checked by `resolveTiming` (core/config.ts); the leave timeout by `leaveTimeoutMs`.
 */
import type { PendingDelayedEvent, StateEventSnapshot } from "../backends/types.js";
import { MalformedResponseError, MembershipConfigError } from "../errors.js";
import { DEFAULT_SLOT, membershipStateKey, type Slot } from "../membership/content.js";
import { stickyKeyOf } from "../membership/rtcMember.js";
import { MAX_ID_BYTES, MAX_TIMER_MS } from "./limits.js";

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined) return "missing";
  if (v === null) return "null";
  if (typeof v === "string") return v === "" ? "an empty string" : "an unusable string";
  if (Array.isArray(v)) return "an array";
  return `a ${typeof v}`;
}

// Control characters and any Unicode whitespace: they make ids ambiguous in state keys, capability
// strings and logs, and no server hands them out.
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\s]/u;

const utf8Bytes = (s: string): number => new TextEncoder().encode(s).length;

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

/**
 * The delay ids we accept from a server (and put into a URL path): 1 to 255 characters from RFC 3986's
 * unreserved set (`A-Z a-z 0-9 - . _ ~`) and `+ = : @ !`, and not `.` or `..` (path segments a URL
 * resolves away). MSC4140 calls ids opaque; Synapse mints `syd_` + 20 letters (`_generate_delay_id`, all
 * versions since 1.116), the test homeserver the same. The rest of the set leaves room for base64, UUIDs
 * and Matrix-style ids; nothing in it needs escaping to stay one path segment.
 */
const DELAY_ID = /^[A-Za-z0-9._~+=:@!-]{1,255}$/;

/** Whether `id` is a delay id we would put into a path (see `DELAY_ID`). */
export function isDelayId(id: unknown): id is string {
  return typeof id === "string" && DELAY_ID.test(id) && id !== "." && id !== "..";
}

/**
 * The delay id of a schedule answer (`{delay_id}`): see `isDelayId`. Anything else (missing, a number,
 * null, "", an object, `../../rooms`, whitespace, over 255 characters) throws a MalformedResponseError: a
 * delay id we cannot restart, send or cancel is no delayed leave.
 */
export function readDelayId(answer: unknown, request = "schedule-leave"): string {
  if (!isRecord(answer))
    throw new MalformedResponseError(request, `the answer is ${describe(answer)}, not an object`);
  const id = answer.delay_id;
  if (!isDelayId(id)) throw new MalformedResponseError(request, `delay_id is ${describe(id)}`);
  return id;
}

/**
 * Checked before a delay id goes into a management URL: ids reach us only from server answers already
 * read by `readDelayId`, so one that fails here is a bad answer that got past a reader (a listing, a
 * replay), never sent on.
 */
export function delayIdForPath(id: unknown, request: string): string {
  if (!isDelayId(id))
    throw new MalformedResponseError(request, `delay_id is ${describe(id)}, not an id we put in a URL`);
  return id;
}

/**
 * A delayed-event listing: Synapse answers `{delayed_events: [...]}`, newer MSC4140 drafts (and
 * matrix-js-sdk 43's types) `{scheduled: [...]}`. The list must be an array; entries without a usable
 * `delay_id` (`isDelayId`) and a string `room_id` are skipped (they name nothing we could cancel).
 */
export function readDelayedEventList(answer: unknown): PendingDelayedEvent[] {
  if (!isRecord(answer))
    throw new MalformedResponseError(
      "list-delayed-events",
      `the answer is ${describe(answer)}, not an object`,
    );
  const list = answer.delayed_events ?? answer.scheduled;
  if (!Array.isArray(list))
    throw new MalformedResponseError(
      "list-delayed-events",
      `delayed_events is ${describe(list)}, not a list`,
    );
  const out: PendingDelayedEvent[] = [];
  for (const e of list) {
    // An id outside the grammar names nothing we would put into a URL to cancel it.
    if (!isRecord(e) || !isDelayId(e.delay_id) || typeof e.room_id !== "string") continue;
    // When its delay last (re)started: `delayed_since_ts` (Synapse >=1.161, the MSC), `running_since` (older).
    const since = [e.delayed_since_ts, e.running_since].find(
      (v) => typeof v === "number" && Number.isFinite(v),
    );
    out.push({
      delayId: e.delay_id,
      roomId: e.room_id,
      stateKey: typeof e.state_key === "string" ? e.state_key : undefined,
      ...(since !== undefined ? { delayedSinceTs: since as number } : {}),
      // The sticky format's delayed leaves are told apart by the sticky key their content carries.
      ...(typeof e.type === "string" ? { type: e.type } : {}),
      ...(stickyKeyOf(e.content) !== undefined ? { stickyKey: stickyKeyOf(e.content) } : {}),
    });
  }
  return out;
}

/**
 * The server's maximum delay from `/capabilities` (`org.matrix.msc4140.delayed_events.max_delay_ms`):
 * a number ≤ 0 means disabled; a usable number is returned (values past MAX_TIMER_MS mean "no limit we
 * could reach"); anything else (absent, a string, NaN, not an object) is advisory noise: undefined.
 */
export function readMaxDelayMs(capabilities: unknown): { maxDelayMs?: number; disabled?: true } {
  if (!isRecord(capabilities)) return {};
  const cap = capabilities["org.matrix.msc4140.delayed_events"];
  if (!isRecord(cap)) return {};
  const max = cap.max_delay_ms;
  if (typeof max !== "number" || Number.isNaN(max)) return {};
  if (max <= 0) return { disabled: true };
  if (max > MAX_TIMER_MS) return {};
  return { maxDelayMs: Math.floor(max) };
}

/** A state event's content as read back: must be a JSON object. */
export function readStateContent(answer: unknown): Record<string, unknown> {
  if (!isRecord(answer))
    throw new MalformedResponseError("read-state", `the content is ${describe(answer)}, not an object`);
  return answer;
}

/**
 * A whole state event (`?format=event`, or the widget API's `read_events`) as a snapshot: its content
 * (required, an object) and the server's timestamp, sender and event id where they are well-formed.
 */
export function readStateSnapshot(answer: unknown): StateEventSnapshot {
  if (!isRecord(answer))
    throw new MalformedResponseError("read-state", `the event is ${describe(answer)}, not an object`);
  const snapshot: StateEventSnapshot = { content: readStateContent(answer.content) };
  const ts = answer.origin_server_ts;
  if (typeof ts === "number" && Number.isFinite(ts) && ts >= 0) snapshot.originServerTs = ts;
  if (typeof answer.sender === "string") snapshot.sender = answer.sender;
  if (typeof answer.event_id === "string") snapshot.eventId = answer.event_id;
  return snapshot;
}

// ---------------------------------------------------------------------------------------------
// Identity options
// ---------------------------------------------------------------------------------------------

/** `host[:port]` as Synapse accepts it: a DNS name, IPv4, or a bracketed IPv6 literal. */
const SERVER_NAME = /^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/** One rule: the field it checks, the rule in words (used in the error), and the check. */
export interface IdentityRule {
  /** The option the rule is about (`stateKey` is built from userId, deviceId and slot). */
  field: "userId" | "roomId" | "deviceId" | "stateKey";
  /** The rule in words, quoted in the MembershipConfigError. */
  rule: string;
  /** True when `v` passes. */
  ok: (v: IdentityInput) => boolean;
}

/**
 * The identity options `validateIdentity` checks: the same fields as in MembershipManagerOptions, so
 * an app can check them before constructing a manager.
 */
export interface IdentityInput {
  /** Our Matrix user id, `@localpart:server`. */
  userId: string;
  /** The call's room, `!opaque:server` (or `!opaque` from room v12). */
  roomId: string;
  /** Our device id (part of the membership's state key). */
  deviceId: string;
  /** The call slot; default DEFAULT_SLOT (the room call). Part of the state key, so of its length. */
  slot?: Slot;
  /** The room's version; MSC3757/MSC3779 rooms use state keys without the leading underscore. */
  roomVersion?: string;
}

function userIdOk(u: string): boolean {
  if (!u.startsWith("@")) return false;
  const colon = u.indexOf(":");
  if (colon < 2) return false;
  return !UNPRINTABLE.test(u) && SERVER_NAME.test(u.slice(colon + 1));
}

function roomIdOk(r: string): boolean {
  if (!r.startsWith("!") || UNPRINTABLE.test(r)) return false;
  const colon = r.indexOf(":");
  // Room v12 (MSC4291) ids are `!` + the create event's hash, without a server part.
  if (colon === -1) return r.length > 1;
  return colon > 1 && SERVER_NAME.test(r.slice(colon + 1));
}

/**
 * The identity rules, in the order they are checked. Device ids: `_`, `#` and `:` are allowed, because
 * no one splits a call-member state key: matrix-js-sdk (and our parser) rebuild the expected key from
 * the content's `device_id` and compare; Synapse's MSC3757 check takes the user id up to the first `_`
 * after the server name, which cannot contain `_`; matrix-widget-api reads a capability's state key as
 * everything after the event type's `#`, so a `#` in it is kept.
 */
export const IDENTITY_RULES: readonly IdentityRule[] = [
  {
    field: "userId",
    rule: "must be a Matrix user id, @localpart:server (no spaces or control characters)",
    ok: (v) => userIdOk(v.userId),
  },
  {
    field: "userId",
    rule: `must be at most ${MAX_ID_BYTES} bytes`,
    ok: (v) => utf8Bytes(v.userId) <= MAX_ID_BYTES,
  },
  {
    field: "roomId",
    rule: "must be a Matrix room id, !opaque:server (or !opaque for room v12 and later; no spaces or control characters)",
    ok: (v) => roomIdOk(v.roomId),
  },
  {
    field: "roomId",
    rule: `must be at most ${MAX_ID_BYTES} bytes`,
    ok: (v) => utf8Bytes(v.roomId) <= MAX_ID_BYTES,
  },
  {
    field: "deviceId",
    rule: "must be a non-empty device id without spaces or control characters",
    ok: (v) => v.deviceId.length > 0 && !UNPRINTABLE.test(v.deviceId),
  },
  {
    field: "stateKey",
    rule: `(built from userId, deviceId and slot) must be at most ${MAX_ID_BYTES} bytes, or the server refuses it`,
    ok: (v) =>
      utf8Bytes(membershipStateKey(v.userId, v.deviceId, v.slot ?? DEFAULT_SLOT, v.roomVersion)) <=
      MAX_ID_BYTES,
  },
];

/**
 * Throws a MembershipConfigError naming the first field that breaks a rule. `ownUserId`, when the
 * backend knows whose token it holds (ClientBackend: `client.getUserId()`), must equal `userId`: a
 * membership at someone else's key is refused by the server, or (underscore keys in stable rooms)
 * accepted and then ignored by every client. Widget mode cannot check this (the host does).
 */
export function validateIdentity(input: IdentityInput, ownUserId?: string | null): void {
  for (const key of ["roomId", "userId", "deviceId"] as const)
    if (typeof input[key] !== "string" || input[key].length === 0)
      throw new MembershipConfigError(`${key} must be a non-empty string`);
  for (const r of IDENTITY_RULES)
    if (!r.ok(input))
      throw new MembershipConfigError(
        r.field === "stateKey"
          ? `the state key ${r.rule}`
          : `${r.field} ${r.rule}, got ${JSON.stringify(input[r.field])}`,
      );
  if (typeof ownUserId === "string" && ownUserId !== "" && ownUserId !== input.userId)
    throw new MembershipConfigError(
      `userId ${JSON.stringify(input.userId)} must be the client's own user (${JSON.stringify(ownUserId)})`,
    );
}

/**
 * Everything the manager's constructor checks beyond the timing (which `resolveTiming` checks): the
 * identity rules above, and `membershipGraceMs` (a timer: 0 ≤ n ≤ MAX_TIMER_MS).
 */
export function validateManagerOptions(
  options: IdentityInput & { membershipGraceMs?: number },
  ownUserId?: string | null,
): void {
  validateIdentity(options, ownUserId);
  const grace = options.membershipGraceMs;
  if (
    grace !== undefined &&
    (typeof grace !== "number" || Number.isNaN(grace) || grace < 0 || grace > MAX_TIMER_MS)
  )
    throw new MembershipConfigError(
      `membershipGraceMs must be between 0 and ${MAX_TIMER_MS} ms, got ${String(grace)}`,
    );
}

/**
 * `leave({ timeoutMs })`: undefined or Infinity mean "no timeout" (the promise settles when the leave
 * does, or on dispose()); 0 ≤ n ≤ MAX_TIMER_MS is a timeout; anything else (negative, NaN, a finite
 * value past MAX_TIMER_MS that a timer would fire after 1 ms, not a number) is a MembershipConfigError,
 * returned rather than thrown so that leave() can reject its promise with it.
 */
export function leaveTimeoutMs(value: unknown): number | undefined | MembershipConfigError {
  if (value === undefined || value === Infinity) return undefined;
  if (typeof value !== "number" || Number.isNaN(value) || value < 0 || value > MAX_TIMER_MS)
    return new MembershipConfigError(
      `leave timeoutMs must be between 0 and ${MAX_TIMER_MS} ms, or Infinity for no timeout; got ${String(value)}`,
    );
  return value;
}
