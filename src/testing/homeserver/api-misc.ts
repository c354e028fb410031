/**
 * Endpoints a full client touches that have nothing to do with calls (crypto, receipts, typing,
 * presence, account data, devices). They answer minimal valid bodies so matrix-js-sdk stays quiet.
 */
import { auth, jsonBody, ok } from "./api-common.js";
import type { HomeserverCore } from "./core.js";
import { forbidden, notFound } from "./errors.js";
import { issueOpenIdToken, OPENID_TOKEN_LIFETIME_MS } from "./openid.js";
import type { HandlerResult, RequestContext } from "./router.js";

export function accountData(core: HomeserverCore, ctx: RequestContext, write: boolean): HandlerResult {
  const requester = auth(core, ctx);
  const [userId, ...rest] = ctx.params;
  if (userId !== requester.userId) throw forbidden("Cannot get account data for other users.");
  const [roomId, type] = rest.length === 2 ? rest : ["", rest[0]];
  const key = `${userId}\u0000${roomId}\u0000${type}`;
  if (write) {
    core.accountData.set(key, jsonBody(ctx));
    return ok();
  }
  const content = core.accountData.get(key);
  if (!content) throw notFound("Account data not found");
  return ok(content);
}

export function devices(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx);
  return ok({ devices: core.users.devices(requester.userId).map((device_id) => ({ device_id })) });
}

/** Authenticated no-op answering `body`. */
export function stub(body: Record<string, unknown>) {
  return (core: HomeserverCore, ctx: RequestContext): HandlerResult => {
    auth(core, ctx);
    return ok(body);
  };
}

export function roomKeysVersion(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  auth(core, ctx);
  throw notFound("No current backup version");
}

/**
 * `POST /user/{userId}/openid/request_token`: an OpenID token a widget hands to a third party (such as
 * a LiveKit token service). Synapse: only for oneself (403 otherwise), 1 h lifetime, body ignored. The
 * token is remembered so the federation `openid/userinfo` endpoint can answer for it (openid.ts).
 */
export function openIdToken(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx);
  if (ctx.params[0] !== requester.userId) throw forbidden("Cannot request tokens for other users.");
  return ok({
    access_token: issueOpenIdToken(core, requester.userId),
    token_type: "Bearer",
    matrix_server_name: core.options.serverName,
    expires_in: OPENID_TOKEN_LIFETIME_MS / 1000,
  });
}
