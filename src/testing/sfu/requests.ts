/**
 * The delegation requests a token service receives, in each shape they exist in, read into one
 * `DelegationAsk` or refused with the service's error. Verified against their sources:
 * - lk-jwt-service `POST /delegate_delayed_leave` (Go 0.5–0.6 `requests.go`, Rust 0.7 `requests.rs`):
 *   `{room_id, slot_id, openid_token{access_token, matrix_server_name,…}, member{id, claimed_user_id,
 *   claimed_device_id}, delay_id, delay_timeout, delay_cs_api_url?}`; missing fields 400 M_BAD_JSON,
 *   no JSON 400 M_NOT_JSON. (The Go version also required `delay_cs_api_url`; 0.7 ignores it, and so
 *   does this service: it acts on its own homeserver, never on a URL a client names.)
 * - Element Call 0.26.1 re-sends `/get_token` (`{room_id, slot_id, openid_token, member{…}}`) or
 *   `/sfu/get` (`{room, openid_token, device_id}`) with `delay_id`, `delay_timeout` (its
 *   `delegated_delayed_leave.delay_ms`, 1 h) and `delay_cs_api_url` (its homeserver); some but not
 *   all of `delay_id`/`delay_timeout` is 400 M_BAD_JSON.
 * - MSC4195's homeserver endpoint, reaching the service through MSC4512: `{url, room_id, slot_id,
 *   member_id, delay_id}` (MSC4195, ruma-client-api), or `member: {id, claimed_device_id?}` instead of
 *   `member_id` (matrix-js-sdk 43's `_unstable_delegateDelayedLeave`); the user is the homeserver's
 *   `X-Matrix-User-Identifier`. A `url` that is not this service's SFU is 400 M_INVALID_PARAM.
 */
import type { DelegationVia } from "./types.js";

export interface ErrorAnswer {
  status: number;
  body: { errcode: string; error: string };
}

/** A delegation as the service acts on it (the user is authenticated by the caller). */
export interface DelegationAsk {
  via: DelegationVia;
  userId: string;
  roomId: string;
  slotId: string;
  memberId?: string;
  deviceId?: string;
  delayId: string;
  /** The request's `delay_timeout`, when it has one. */
  claimedDelayMs?: number;
}

export const matrixError = (status: number, errcode: string, error: string): ErrorAnswer => ({
  status,
  body: { errcode, error },
});

/** An error answer (a Matrix error body), as opposed to a parsed body or a success. */
export const isError = (v: unknown): v is ErrorAnswer =>
  typeof v === "object" &&
  v !== null &&
  "status" in v &&
  typeof (v as { body?: { errcode?: unknown } }).body?.errcode === "string";

type Json = Record<string, unknown>;

/** A string at `path`, or undefined (absent, empty or not a string). */
export function field(body: unknown, ...path: string[]): string | undefined {
  let v: unknown = body;
  for (const key of path) v = typeof v === "object" && v !== null ? (v as Json)[key] : undefined;
  return typeof v === "string" && v !== "" ? v : undefined;
}

function numberField(body: unknown, key: string): number | undefined {
  const v = typeof body === "object" && body !== null ? (body as Json)[key] : undefined;
  return typeof v === "number" && Number.isFinite(v) && v > 0 ? v : undefined;
}

/** The JSON object of a body, or lk-jwt-service's 400 M_NOT_JSON. */
export function parseBody(raw: string): Json | ErrorAnswer {
  try {
    const value: unknown = JSON.parse(raw);
    if (value !== null && typeof value === "object" && !Array.isArray(value)) return value as Json;
  } catch {
    // fall through
  }
  return matrixError(400, "M_NOT_JSON", "Error reading request");
}

/** The OpenID token fields every token-service request carries (400 M_BAD_JSON without them). */
export function openIdToken(body: Json): string | ErrorAnswer {
  const token = field(body, "openid_token", "access_token");
  if (!token || !field(body, "openid_token", "matrix_server_name")) {
    return matrixError(
      400,
      "M_BAD_JSON",
      "The request body `openid_token` is missing `access_token` or `matrix_server_name`",
    );
  }
  return token;
}

/** `delay_id` + `delay_timeout` on a token request: both, neither, or 400 M_BAD_JSON. */
export function tokenRequestDelay(
  body: Json,
): { delayId: string; delayMs: number } | undefined | ErrorAnswer {
  const delayId = field(body, "delay_id");
  const delayMs = numberField(body, "delay_timeout");
  if (delayId === undefined && delayMs === undefined) return undefined;
  if (delayId === undefined || delayMs === undefined) {
    return matrixError(400, "M_BAD_JSON", "The request body is missing `delay_id` or `delay_timeout`");
  }
  return { delayId, delayMs };
}

/** lk-jwt-service's `/delegate_delayed_leave` body, before the OpenID check fills in the user. */
export function serviceDelegation(
  body: Json,
): { ask: Omit<DelegationAsk, "userId">; claimedUserId: string; openIdToken: string } | ErrorAnswer {
  const roomId = field(body, "room_id");
  const slotId = field(body, "slot_id");
  if (!roomId || !slotId)
    return matrixError(400, "M_BAD_JSON", "The request body is missing `room_id` or `slot_id`");
  const memberId = field(body, "member", "id");
  const claimedUserId = field(body, "member", "claimed_user_id");
  const deviceId = field(body, "member", "claimed_device_id");
  if (!memberId || !claimedUserId || !deviceId) {
    return matrixError(
      400,
      "M_BAD_JSON",
      "The request body `member` is missing `id`, `claimed_user_id` or `claimed_device_id`",
    );
  }
  const token = openIdToken(body);
  if (isError(token)) return token;
  const delayId = field(body, "delay_id");
  const delayMs = numberField(body, "delay_timeout");
  if (!delayId || delayMs === undefined) {
    return matrixError(400, "M_BAD_JSON", "The request body is missing `delay_id` or `delay_timeout`");
  }
  return {
    ask: {
      via: "delegate_delayed_leave",
      roomId,
      slotId,
      memberId,
      deviceId,
      delayId,
      claimedDelayMs: delayMs,
    },
    claimedUserId,
    openIdToken: token,
  };
}

/** MSC4195's homeserver endpoint body; `userId` is the homeserver's `X-Matrix-User-Identifier`. */
export function homeserverDelegation(
  body: Json,
  userId: string,
  sfuUrl: string,
): DelegationAsk | ErrorAnswer {
  const url = field(body, "url");
  const roomId = field(body, "room_id");
  const slotId = field(body, "slot_id");
  const delayId = field(body, "delay_id");
  // MSC4195 / ruma: member_id; matrix-js-sdk 43: member {id, claimed_device_id?}.
  const memberId = field(body, "member_id") ?? field(body, "member", "id");
  if (!url || !roomId || !slotId || !delayId || !memberId) {
    return matrixError(
      400,
      "M_BAD_JSON",
      "The request body is missing `url`, `room_id`, `slot_id`, `member_id` (or `member.id`) or `delay_id`",
    );
  }
  if (url !== sfuUrl)
    return matrixError(400, "M_INVALID_PARAM", "The request `url` does not match this service's LiveKit URL");
  const deviceId = field(body, "member", "claimed_device_id");
  const claimedDelayMs = numberField(body, "delay_timeout");
  return {
    via: "homeserver",
    userId,
    roomId,
    slotId,
    memberId,
    ...(deviceId ? { deviceId } : {}),
    delayId,
    ...(claimedDelayMs !== undefined ? { claimedDelayMs } : {}),
  };
}
