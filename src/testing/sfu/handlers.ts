/**
 * The test token service's routes: `POST /sfu/get` and `POST /get_token` answer `{url, jwt}` (and,
 * with `delay_id`/`delay_timeout`, take a delegation as Element Call 0.26 asks for one), `POST
 * /delegate_delayed_leave` (lk-jwt-service's own endpoint) and MSC4195's homeserver endpoint
 * `POST /_matrix/client/(unstable/io.element.msc4195|v1)/rtc/livekit/delegate_delayed_leave` (as the
 * homeserver's MSC4512 proxy forwards it: `Bearer <hs_token>`, `X-Matrix-User-Identifier`).
 * OpenID tokens are checked at the homeserver's federation userinfo endpoint when the service has a
 * homeserver; without one, token requests are taken on trust as before and delegations are refused.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { DelegationService } from "./delegation.js";
import type { ServiceHomeserver } from "./homeserver.js";
import {
  field,
  homeserverDelegation,
  isError,
  matrixError,
  openIdToken,
  parseBody,
  serviceDelegation,
  tokenRequestDelay,
  type DelegationAsk,
  type ErrorAnswer,
} from "./requests.js";
import type { RefusalAnswer } from "./types.js";

export interface Answer {
  status: number;
  body: object;
}

export interface RouteContext {
  /** The LiveKit URL handed out (and the only `url` a homeserver-shape delegation may name). */
  livekitUrl: string;
  /** Undefined when delegation is off: its endpoints are 404. */
  delegation: DelegationService | undefined;
  refusal: () => RefusalAnswer | undefined;
  homeserver: ServiceHomeserver;
  hasHomeserver: () => boolean;
  hsToken: string;
}

/** MSC4195's client-server endpoint, stable and unstable (lk-jwt-service 0.7 serves the unstable one only). */
export const HOMESERVER_DELEGATE_PATH =
  /^\/_matrix\/client\/(?:unstable\/io\.element\.msc4195|v1)\/rtc\/livekit\/delegate_delayed_leave$/;

const NOT_FOUND: Answer = { status: 404, body: { errcode: "M_NOT_FOUND", error: "Not found" } };
const UNAUTHORISED = matrixError(401, "M_UNAUTHORIZED", "The request could not be authorised.");
const NO_HOMESERVER = matrixError(503, "M_UNKNOWN", "The service has no homeserver to act on");

const b64url = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString("base64url");

/** An unsigned JWT with the claims a widget reads: `sub` (the participant) and `video.room`. */
function jwtFor(identity: string, room: string): string {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: "matrixrtc-membership-test-sfu-auth",
    sub: identity,
    nbf: now,
    exp: now + 3600,
    video: { room, roomJoin: true, canPublish: true, canSubscribe: true },
  };
  return `${b64url({ alg: "none", typ: "JWT" })}.${b64url(claims)}.`;
}

function refused(r: RefusalAnswer): ErrorAnswer {
  return matrixError(r.status ?? 400, r.errcode ?? "M_INVALID_PARAM", r.error ?? "Delegation refused");
}

/**
 * Who the OpenID token belongs to: checked at the homeserver when there is one (401 M_UNAUTHORIZED if
 * it does not vouch for it, or names someone else than `claimedUserId`); `claimedUserId` on trust when
 * there is none (undefined if there is no claim either).
 */
async function tokenUser(
  ctx: RouteContext,
  token: string,
  claimedUserId: string | undefined,
): Promise<string | undefined | ErrorAnswer> {
  if (!ctx.hasHomeserver()) return claimedUserId;
  const sub = await ctx.homeserver.userInfo(token);
  if (sub === undefined || (claimedUserId !== undefined && claimedUserId !== sub)) return UNAUTHORISED;
  return sub;
}

/** A delegation riding on a token request (Element Call 0.26): refused, taken, or an error. */
async function delegateAlongside(ctx: RouteContext, ask: DelegationAsk): Promise<ErrorAnswer | undefined> {
  const refusal = ctx.refusal();
  if (refusal) return refused(refusal);
  if (!ctx.delegation) {
    // What lk-jwt-service answers a user it will not delegate for; Element Call's /sfu/get then retries without.
    return matrixError(400, "M_BAD_JSON", "Delegation of delayed events is not supported by this service");
  }
  const answer = await ctx.delegation.delegate(ask);
  return isError(answer) ? answer : undefined;
}

async function sfuGet(ctx: RouteContext, raw: string): Promise<Answer> {
  const body = parseBody(raw);
  if (isError(body)) return body;
  const room = field(body, "room");
  const device = field(body, "device_id");
  if (!room || !device || field(body, "openid_token", "access_token") === undefined) {
    return matrixError(400, "M_BAD_JSON", "room, device_id and openid_token needed");
  }
  const delay = tokenRequestDelay(body);
  if (isError(delay)) return delay;
  const token = openIdToken(body);
  if (isError(token) && ctx.hasHomeserver()) return token;
  const user = isError(token) ? undefined : await tokenUser(ctx, token, undefined);
  if (isError(user)) return user;
  if (delay) {
    if (!ctx.hasHomeserver() || user === undefined) return NO_HOMESERVER;
    const error = await delegateAlongside(ctx, {
      via: "sfu/get",
      userId: user,
      roomId: room,
      slotId: "m.call#ROOM",
      deviceId: device,
      delayId: delay.delayId,
      claimedDelayMs: delay.delayMs,
    });
    if (error) return error;
  }
  // lk-jwt-service names the participant user:device here; the stub keeps the device alone, as before.
  return { status: 200, body: { url: ctx.livekitUrl, jwt: jwtFor(device, room) } };
}

async function getToken(ctx: RouteContext, raw: string): Promise<Answer> {
  const body = parseBody(raw);
  if (isError(body)) return body;
  const room = field(body, "room_id");
  const member = field(body, "member", "id");
  if (!room || !member || field(body, "openid_token", "access_token") === undefined) {
    return matrixError(400, "M_BAD_JSON", "room_id, member and openid_token needed");
  }
  const delay = tokenRequestDelay(body);
  if (isError(delay)) return delay;
  const token = openIdToken(body);
  if (isError(token) && ctx.hasHomeserver()) return token;
  const claimed = field(body, "member", "claimed_user_id");
  const user = isError(token) ? claimed : await tokenUser(ctx, token, claimed);
  if (isError(user)) return user;
  if (delay) {
    if (!ctx.hasHomeserver() || user === undefined) return NO_HOMESERVER;
    const deviceId = field(body, "member", "claimed_device_id");
    const error = await delegateAlongside(ctx, {
      via: "get_token",
      userId: user,
      roomId: room,
      slotId: field(body, "slot_id") ?? "m.call#ROOM",
      memberId: member,
      ...(deviceId ? { deviceId } : {}),
      delayId: delay.delayId,
      claimedDelayMs: delay.delayMs,
    });
    if (error) return error;
  }
  return { status: 200, body: { url: ctx.livekitUrl, jwt: jwtFor(member, room) } };
}

/** lk-jwt-service's `POST /delegate_delayed_leave`. */
async function serviceDelegate(
  ctx: RouteContext,
  delegation: DelegationService,
  raw: string,
): Promise<Answer> {
  const body = parseBody(raw);
  if (isError(body)) return body;
  const parsed = serviceDelegation(body);
  if (isError(parsed)) return parsed;
  if (!ctx.hasHomeserver()) return NO_HOMESERVER;
  const user = await tokenUser(ctx, parsed.openIdToken, parsed.claimedUserId);
  if (isError(user)) return user;
  return delegation.delegate({ ...parsed.ask, userId: user ?? parsed.claimedUserId });
}

function bearer(headers: IncomingHttpHeaders): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(headers.authorization?.trim() ?? "");
  return m?.[1];
}

/** MSC4195's homeserver endpoint, as the homeserver's MSC4512 proxy hands it over (lk-jwt-service 0.7's order). */
async function homeserverDelegate(
  ctx: RouteContext,
  delegation: DelegationService,
  headers: IncomingHttpHeaders,
  raw: string,
): Promise<Answer> {
  const token = bearer(headers);
  if (token === undefined) return matrixError(401, "M_MISSING_TOKEN", "Missing homeserver access token");
  if (token !== ctx.hsToken)
    return matrixError(401, "M_UNKNOWN_TOKEN", "Unrecognised homeserver access token");
  const body = parseBody(raw);
  if (isError(body)) return body;
  const userId = headers["x-matrix-user-identifier"];
  const ask = homeserverDelegation(body, typeof userId === "string" ? userId : "", ctx.livekitUrl);
  if (isError(ask) && ask.body.errcode === "M_BAD_JSON") return ask;
  if (typeof userId !== "string" || userId === "") {
    return matrixError(401, "M_UNAUTHORIZED", "Missing request authorization");
  }
  if (isError(ask)) return ask;
  if (!ctx.hasHomeserver()) return NO_HOMESERVER;
  return delegation.delegate(ask);
}

/** One request, already past CORS preflight handling. */
export async function route(
  ctx: RouteContext,
  method: string,
  path: string,
  headers: IncomingHttpHeaders,
  raw: string,
): Promise<Answer> {
  if (method === "POST" && path === "/sfu/get") return sfuGet(ctx, raw);
  if (method === "POST" && path === "/get_token") return getToken(ctx, raw);
  const service = path === "/delegate_delayed_leave";
  if (!service && !HOMESERVER_DELEGATE_PATH.test(path)) return NOT_FOUND;
  if (!ctx.delegation) return NOT_FOUND;
  // A refusing service refuses everything on these endpoints, Element Call's bare probe included.
  const refusal = ctx.refusal();
  if (refusal) return refused(refusal);
  if (method !== "POST") return matrixError(405, "M_UNRECOGNIZED", "Method not allowed");
  return service
    ? serviceDelegate(ctx, ctx.delegation, raw)
    : homeserverDelegate(ctx, ctx.delegation, headers, raw);
}
