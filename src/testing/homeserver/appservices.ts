/**
 * Application services, as far as a MatrixRTC token service needs them: the registration (Synapse's
 * `app_service_config_files` entries, as objects), acting as a user with the `as_token` and
 * `?user_id=` (Synapse's identity assertion), and the MSC4512 proxy keys. Checked against Synapse
 * 1.163.2 (`synapse/config/appservice.py`, `synapse/appservice/__init__.py`, `synapse/api/auth/base.py`).
 */
import type { HomeserverCore } from "./core.js";
import { badRequest, forbidden } from "./errors.js";
import type { RequestContext } from "./router.js";
import type { Requester } from "./users.js";

/** MSC4512's unstable registration keys (Synapse ≥1.161, `experimental_features.msc4512_enabled`). */
export const MSC4512_PROXY_PREFIX = "io.element.msc4512.proxy_prefix";
export const MSC4512_PROXY_URL = "io.element.msc4512.proxy_url";

/** One regex of a registration's `namespaces` (Python `re.match`: anchored at the start only). */
export interface AppServiceNamespace {
  exclusive: boolean;
  regex: string;
}

/**
 * An application service registration as Synapse reads it from YAML. `url: null` means the server
 * pushes no transactions to the service (all a MatrixRTC token service needs).
 */
export interface AppServiceRegistration {
  id: string;
  as_token: string;
  hs_token: string;
  sender_localpart: string;
  url?: string | null;
  namespaces?: {
    users?: AppServiceNamespace[];
    aliases?: AppServiceNamespace[];
    rooms?: AppServiceNamespace[];
  };
  rate_limited?: boolean;
  /** MSC4512: the C-S path prefix proxied to `proxy_url`. Synapse 1.163 allows only `rtc/livekit` (or below). */
  [MSC4512_PROXY_PREFIX]?: string;
  /** MSC4512: where proxied requests go (same path, appended to this URL). Set together with the prefix. */
  [MSC4512_PROXY_URL]?: string;
  [key: string]: unknown;
}

/** Synapse 1.163's `ApplicationService.ALLOWED_PROXY_PREFIXES`. */
const ALLOWED_PROXY_PREFIXES = ["rtc/livekit"];

const trimSlashes = (s: string): string => s.replace(/\/+$/, "");

/** The prefix a registration claims (trailing slashes dropped, as Synapse does), if any. */
export function proxyPrefixOf(reg: AppServiceRegistration): string | undefined {
  const prefix = reg[MSC4512_PROXY_PREFIX];
  return typeof prefix === "string" ? trimSlashes(prefix) : undefined;
}

/**
 * What Synapse refuses at start-up (it then does not start): a missing token or id, a reused id or
 * `as_token`, a proxy prefix without a URL (or the other way round), a prefix outside the allowed
 * ones, overlapping prefixes. Throws an Error naming the problem.
 */
export function validateAppServices(list: readonly AppServiceRegistration[]): void {
  const ids = new Set<string>();
  const tokens = new Set<string>();
  const prefixes: string[] = [];
  for (const reg of list) {
    for (const key of ["id", "as_token", "hs_token", "sender_localpart"] as const) {
      if (typeof reg[key] !== "string" || reg[key] === "") {
        throw new Error(`app service registration: '${key}' must be a non-empty string`);
      }
    }
    if (ids.has(reg.id)) throw new Error(`app service registration: id '${reg.id}' used twice`);
    if (tokens.has(reg.as_token)) throw new Error(`app service registration: as_token reused (${reg.id})`);
    ids.add(reg.id);
    tokens.add(reg.as_token);
    const prefix = reg[MSC4512_PROXY_PREFIX];
    const url = reg[MSC4512_PROXY_URL];
    if ((prefix === undefined) !== (url === undefined)) {
      throw new Error(`app service ${reg.id}: proxy_url and proxy_prefix must always be set together`);
    }
    if (prefix === undefined) continue;
    if (typeof prefix !== "string" || !prefix || typeof url !== "string" || !url) {
      throw new Error(`app service ${reg.id}: proxy_prefix and proxy_url must be non-empty strings`);
    }
    const p = trimSlashes(prefix);
    if (!ALLOWED_PROXY_PREFIXES.some((a) => p === a || p.startsWith(`${a}/`))) {
      throw new Error(`app service ${reg.id}: cannot claim reserved proxy prefix '${prefix}'`);
    }
    if (prefixes.some((q) => q === p || q.startsWith(`${p}/`) || p.startsWith(`${q}/`))) {
      throw new Error(`app service ${reg.id}: proxy_prefix '${prefix}' overlaps another service's`);
    }
    prefixes.push(p);
  }
}

function matchesUserNamespace(reg: AppServiceRegistration, userId: string): boolean {
  return (reg.namespaces?.users ?? []).some((ns) => {
    try {
      return new RegExp(`^(?:${ns.regex})`).test(userId);
    } catch {
      return false;
    }
  });
}

/** The registration whose `as_token` this is, if any. */
export function appServiceByToken(
  core: HomeserverCore,
  accessToken: string | undefined,
): AppServiceRegistration | undefined {
  if (accessToken === undefined) return undefined;
  return core.options.appServices.find((reg) => reg.as_token === accessToken);
}

/**
 * Synapse's `get_appservice_user`: a request with an `as_token` acts as `?user_id=` (which must be the
 * sender or in the service's user namespace, and registered: 403 M_FORBIDDEN otherwise) or, without
 * it, as the service's sender. `?device_id=` must be a device of that user (400 M_UNKNOWN_DEVICE).
 * Undefined when the token is not an `as_token`.
 */
export function appServiceRequester(core: HomeserverCore, ctx: RequestContext): Requester | undefined {
  const reg = appServiceByToken(core, ctx.accessToken);
  if (!reg || ctx.accessToken === undefined) return undefined;
  const sender = core.users.userIdFor(reg.sender_localpart);
  const asserted = ctx.query.get("user_id");
  const userId = asserted ?? sender;
  if (userId !== sender) {
    if (!matchesUserNamespace(reg, userId)) {
      throw forbidden(`Application service cannot masquerade as this user (${userId}).`);
    }
    if (!core.users.exists(userId)) {
      throw forbidden(`Application service has not registered this user (${userId})`);
    }
  }
  const deviceId = ctx.query.get("device_id");
  if (deviceId !== null && !core.users.devices(userId).includes(deviceId)) {
    throw badRequest(
      `Application service trying to use a device that doesn't exist ('${deviceId}' for ${userId})`,
      "M_UNKNOWN_DEVICE",
    );
  }
  // No device unless asserted: what Synapse's requester has.
  return { userId, deviceId: deviceId ?? "", isGuest: false, accessToken: ctx.accessToken };
}

/** For the request log: the user an `as_token` request acts as, without throwing. */
export function peekAppServiceUser(
  core: HomeserverCore,
  accessToken: string | undefined,
  query: URLSearchParams,
): string | undefined {
  const reg = appServiceByToken(core, accessToken);
  if (!reg) return undefined;
  return query.get("user_id") ?? core.users.userIdFor(reg.sender_localpart);
}
