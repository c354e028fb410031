/**
 * Path matching with Synapse's answers for misses: no route → 404 M_UNRECOGNIZED, a route that exists
 * for another method → 405 M_UNRECOGNIZED. matrix-js-sdk's delayed-event fallback depends on both.
 */
import type { JsonObject } from "./errors.js";

export interface RequestContext {
  method: string;
  /** Decoded path parameters in pattern order. */
  params: string[];
  path: string;
  query: URLSearchParams;
  headers: Record<string, string | string[] | undefined>;
  ip: string;
  accessToken: string | undefined;
  rawBody: Buffer;
  /** Aborts when the client goes away (long-polls stop waiting). */
  signal: AbortSignal;
}

export interface HandlerResult {
  status?: number;
  body: JsonObject | unknown[];
  headers?: Record<string, string>;
}

export type Handler<Id extends string> = (
  ctx: RequestContext,
  route: Id,
) => HandlerResult | Promise<HandlerResult>;

export interface RouteDef<Id extends string> {
  /** Fixed id, or chosen from the query (e.g. `state.put` vs `state.put.delayed`). */
  id: Id | ((query: URLSearchParams) => Id);
  method: string;
  pattern: RegExp;
  handler: Handler<Id>;
  /** Routes a configuration switch removes (e.g. per-action management routes before Synapse 1.143). */
  enabled?: () => boolean;
}

/** All Client-Server prefixes Synapse serves the classic endpoints under. */
const CLIENT_PREFIX = "/_matrix/client/(?:v3|r0|unstable|api/v1)";

/**
 * `{name}` matches one non-empty segment, `{name*}` a possibly empty one. `prefix` defaults to the
 * client prefixes; pass "" for absolute paths.
 */
export function pattern(path: string, prefix = CLIENT_PREFIX): RegExp {
  const body = path
    .split(/(\{[a-zA-Z]+\*?\})/)
    .map((part) => {
      if (/^\{[a-zA-Z]+\}$/.test(part)) return "([^/]+)";
      if (/^\{[a-zA-Z]+\*\}$/.test(part)) return "([^/]*)";
      return part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    })
    .join("");
  return new RegExp(`^${prefix}${body}$`);
}

export type MatchResult<Id extends string> =
  | { kind: "route"; id: Id; def: RouteDef<Id>; params: string[] }
  | { kind: "not-found" }
  | { kind: "bad-method" };

export class Router<Id extends string> {
  public constructor(private readonly routes: RouteDef<Id>[]) {}

  public match(method: string, path: string, query: URLSearchParams): MatchResult<Id> {
    let pathMatched = false;
    for (const def of this.routes) {
      if (def.enabled && !def.enabled()) continue;
      const m = def.pattern.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (def.method !== method) continue;
      let params: string[];
      try {
        params = m.slice(1).map((p) => decodeURIComponent(p));
      } catch {
        return { kind: "not-found" };
      }
      return { kind: "route", id: typeof def.id === "function" ? def.id(query) : def.id, def, params };
    }
    return pathMatched ? { kind: "bad-method" } : { kind: "not-found" };
  }
}
