/**
 * MSC4512's client-server proxy, as Synapse 1.163.2 does it (`synapse/rest/client/appservice_proxy.py`,
 * `synapse/http/appservice_proxy.py`) with `experimental_features.msc4512_enabled`: a request under
 * `/_matrix/client/(unstable/<ns>|v<N>)/<proxy_prefix>(/…)` is authenticated like any other (401
 * without a token), rate limited in the `rc_message` bucket, then sent to the registration's
 * `proxy_url` with the same path and query (any `access_token` parameter removed), only the
 * `Content-Type`/`Accept`/`Accept-Language` headers, `Authorization: Bearer <hs_token>` and
 * `X-Matrix-User-Identifier: <user id>`; the service's status and body come back as they are. The
 * service gets 30 s; no answer is 500 M_UNKNOWN. This is how MSC4195's homeserver endpoints
 * (`…/rtc/livekit/get_token`, `…/rtc/livekit/delegate_delayed_leave`) reach lk-jwt-service ≥0.7.
 *
 * Unlike Synapse (which streams any body), a non-JSON answer from the service becomes
 * `{errcode: "M_UNKNOWN", error: <its text>}` with the service's status.
 */
import { auth } from "./api-common.js";
import { proxyPrefixOf, MSC4512_PROXY_URL, type AppServiceRegistration } from "./appservices.js";
import type { HomeserverCore } from "./core.js";
import { badRequest, unrecognized } from "./errors.js";
import type { HandlerResult, RequestContext } from "./router.js";

/** Every path a `rtc/livekit…` prefix can claim (Synapse allows no other prefix). */
export const RTC_PROXY_PATTERN = /^\/_matrix\/client\/(?:unstable\/[^/]+|v[^/]+)\/rtc\/livekit(?:\/.*)?$/;

const PROXY_TIMEOUT_MS = 30_000;
const FORWARDED_HEADERS = ["content-type", "accept", "accept-language"];

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The proxy routes exist only with `msc4512Enabled` and a registration claiming a prefix. */
export function rtcProxyEnabled(core: HomeserverCore): boolean {
  return core.options.msc4512Enabled && core.options.appServices.some((r) => proxyPrefixOf(r) !== undefined);
}

function serviceFor(core: HomeserverCore, path: string): AppServiceRegistration | undefined {
  return core.options.appServices.find((reg) => {
    const prefix = proxyPrefixOf(reg);
    if (prefix === undefined) return false;
    return new RegExp(`^/_matrix/client/(?:unstable/[^/]+|v[^/]+)/${escapeRe(prefix)}(?:/.*)?$`).test(path);
  });
}

/** Synapse's `has_dot_segments` (one percent-decode, then `.` or `..` segments). */
function hasDotSegments(path: string): boolean {
  let decoded = path;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    // Undecodable: judged as written.
  }
  return decoded.split("/").some((s) => s === "." || s === "..");
}

function queryWithoutToken(query: URLSearchParams): string {
  const kept = new URLSearchParams();
  for (const [key, value] of query) if (key.toLowerCase() !== "access_token") kept.append(key, value);
  const s = kept.toString();
  return s ? `?${s}` : "";
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(", ") : v;
}

export async function rtcProxy(core: HomeserverCore, ctx: RequestContext): Promise<HandlerResult> {
  const reg = serviceFor(core, ctx.path);
  // A path under rtc/livekit that no registration claims has no route at all in Synapse.
  if (!reg) throw unrecognized(404);
  const requester = auth(core, ctx);
  core.rateLimit("message", requester.userId, requester.userId);
  if (hasDotSegments(ctx.path)) throw badRequest("Request path is not allowed", "M_INVALID_PARAM");

  const headers: Record<string, string> = {};
  for (const name of FORWARDED_HEADERS) {
    const v = headerValue(ctx.headers[name]);
    if (v !== undefined) headers[name] = v;
  }
  headers.authorization = `Bearer ${reg.hs_token}`;
  headers["x-matrix-user-identifier"] = requester.userId;
  const target = `${String(reg[MSC4512_PROXY_URL]).replace(/\/+$/, "")}${ctx.path}${queryWithoutToken(ctx.query)}`;
  const hasBody = ctx.method !== "GET" && ctx.method !== "HEAD" && ctx.rawBody.length > 0;
  let status: number;
  let text: string;
  let retryAfter: string | null;
  try {
    const res = await fetch(target, {
      method: ctx.method,
      headers,
      body: hasBody ? new Uint8Array(ctx.rawBody) : undefined,
      signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(PROXY_TIMEOUT_MS)]),
    });
    status = res.status;
    retryAfter = res.headers.get("retry-after");
    text = await res.text();
  } catch {
    // Synapse's return_json_error for anything that is not a SynapseError.
    return { status: 500, body: { errcode: "M_UNKNOWN", error: "Internal server error" } };
  }
  let body: unknown;
  try {
    body = text === "" ? {} : JSON.parse(text);
  } catch {
    body = { errcode: "M_UNKNOWN", error: text.slice(0, 500) };
  }
  if (body === null || typeof body !== "object") body = { errcode: "M_UNKNOWN", error: text.slice(0, 500) };
  return {
    status,
    body: body as HandlerResult["body"],
    headers: retryAfter !== null ? { "Retry-After": retryAfter } : undefined,
  };
}
