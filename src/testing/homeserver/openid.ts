/**
 * OpenID tokens a third party (a LiveKit token service) exchanges for the user's id: the tokens
 * `POST /user/{userId}/openid/request_token` hands out are remembered for their lifetime, and
 * `GET /_matrix/federation/v1/openid/userinfo?access_token=` answers `{ sub }` for them (Synapse's
 * `openid` listener resource; 401 M_MISSING_TOKEN / M_UNKNOWN_TOKEN otherwise, as Synapse 1.163.2).
 */
import { randomBytes } from "node:crypto";
import { ok } from "./api-common.js";
import type { HomeserverCore } from "./core.js";
import { MatrixHttpError } from "./errors.js";
import type { HandlerResult, RequestContext } from "./router.js";

/** Synapse's `openid_token` lifetime. */
export const OPENID_TOKEN_LIFETIME_MS = 3600_000;

interface IssuedToken {
  userId: string;
  validUntil: number;
}

// Kept beside the core rather than in it: only these two endpoints read it.
const issued = new WeakMap<HomeserverCore, Map<string, IssuedToken>>();

function tokensOf(core: HomeserverCore): Map<string, IssuedToken> {
  let map = issued.get(core);
  if (!map) {
    map = new Map();
    issued.set(core, map);
  }
  return map;
}

/** A fresh token for `userId`, valid for an hour of the server's clock. */
export function issueOpenIdToken(core: HomeserverCore, userId: string): string {
  const tokens = tokensOf(core);
  const now = core.now();
  for (const [token, entry] of tokens) if (entry.validUntil < now) tokens.delete(token);
  const token = randomBytes(18).toString("base64url");
  tokens.set(token, { userId, validUntil: now + OPENID_TOKEN_LIFETIME_MS });
  return token;
}

/** `GET /_matrix/federation/v1/openid/userinfo`: no authentication, the token is the query parameter. */
export function openIdUserInfo(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const token = ctx.query.get("access_token");
  if (token === null)
    return { status: 401, body: { errcode: "M_MISSING_TOKEN", error: "Access Token required" } };
  const entry = tokensOf(core).get(token);
  if (!entry || entry.validUntil < core.now()) {
    throw new MatrixHttpError(401, "M_UNKNOWN_TOKEN", "Access Token unknown or expired");
  }
  return ok({ sub: entry.userId });
}
