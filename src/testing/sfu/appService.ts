/**
 * The test token service as an application service: its identity (generated tokens unless given) and
 * the registration a homeserver needs so that `/_matrix/client/…/rtc/livekit/…` reaches it (MSC4512)
 * and its `as_token` may act as the users (lk-jwt-service ≥0.7's deployment, its README's
 * registration: `url: null`, a non-exclusive user namespace, `io.element.msc4512.proxy_prefix:
 * "rtc/livekit"`, `io.element.msc4512.proxy_url`).
 */
import { randomBytes } from "node:crypto";
import type { AppServiceRegistration } from "../homeserver/appservices.js";
import type { SfuAppServiceOptions } from "./types.js";

export type ResolvedAppService = Required<SfuAppServiceOptions>;

export function resolveAppService(options: SfuAppServiceOptions = {}): ResolvedAppService {
  const token = () => randomBytes(24).toString("hex");
  return {
    id: options.id ?? "matrixrtc-test-sfu-auth",
    asToken: options.asToken ?? token(),
    hsToken: options.hsToken ?? token(),
    senderLocalpart: options.senderLocalpart ?? "_matrixrtc_test_sfu_auth",
    userRegex: options.userRegex ?? "@.*",
  };
}

/** The registration for `proxyUrl` (the service's own URL). */
export function appServiceRegistrationFor(as: ResolvedAppService, proxyUrl: string): AppServiceRegistration {
  return {
    id: as.id,
    url: null,
    as_token: as.asToken,
    hs_token: as.hsToken,
    sender_localpart: as.senderLocalpart,
    namespaces: { users: [{ exclusive: false, regex: as.userRegex }], aliases: [], rooms: [] },
    rate_limited: false,
    "io.element.msc4512.proxy_prefix": "rtc/livekit",
    "io.element.msc4512.proxy_url": proxyUrl,
  };
}
