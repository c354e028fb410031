/** Small helpers every API module uses: body parsing with Synapse's errors, authentication, results. */
import { appServiceRequester } from "./appservices.js";
import type { HomeserverCore } from "./core.js";
import { badRequest, notJson, type JsonObject } from "./errors.js";
import type { HandlerResult, RequestContext } from "./router.js";
import type { Requester } from "./users.js";

export const ok = (body: JsonObject = {}, status = 200): HandlerResult => ({ status, body });

/** Synapse's `parse_json_object_from_request`: 400 M_NOT_JSON for no/invalid JSON, M_BAD_JSON for non-objects. */
export function jsonBody(ctx: RequestContext, opts: { allowEmpty?: boolean } = {}): JsonObject {
  if (ctx.rawBody.length === 0) {
    if (opts.allowEmpty) return {};
    throw notJson();
  }
  let value: unknown;
  try {
    value = JSON.parse(ctx.rawBody.toString("utf8"));
  } catch {
    throw notJson();
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw badRequest("Content must be a JSON object.", "M_BAD_JSON");
  }
  return value as JsonObject;
}

/** The requester: a user's access token, or an application service's `as_token` acting as `?user_id=`. */
export function auth(
  core: HomeserverCore,
  ctx: RequestContext,
  opts: { allowGuest?: boolean } = {},
): Requester {
  return (
    appServiceRequester(core, ctx) ??
    core.users.authenticate(ctx.accessToken, { allowGuest: opts.allowGuest ?? true })
  );
}

/** A required string field of a JSON body (400 M_MISSING_PARAM / M_INVALID_PARAM otherwise). */
export function stringField(body: JsonObject, key: string): string {
  if (!(key in body)) throw badRequest(`Missing params: ['${key}']`, "M_MISSING_PARAM");
  const value = body[key];
  if (typeof value !== "string") throw badRequest(`Param '${key}' must be a string`, "M_INVALID_PARAM");
  return value;
}

/**
 * Synapse's `parse_integer` for a query parameter: undefined when absent; Python's `int()` syntax
 * (surrounding whitespace, a sign, single underscores between digits); 400 `M_INVALID_PARAM` for
 * anything else or a negative value.
 */
export function integerQueryParam(query: URLSearchParams, name: string): number | undefined {
  const raw = query.get(name);
  if (raw === null) return undefined;
  if (!/^[+-]?\d+(?:_\d+)*$/.test(raw.trim())) {
    throw badRequest(`Query parameter ${name} must be an integer`, "M_INVALID_PARAM");
  }
  const value = Number(raw.trim().replace(/_/g, ""));
  if (value < 0) throw badRequest(`Query parameter ${name} must be a positive integer.`, "M_INVALID_PARAM");
  return value;
}
