/** The route table: which path + method reaches which handler, under which route id. */
import * as core from "./api-core.js";
import { getDelayed, listDelayed, manageAction, manageLegacy, DELAY_PARAM } from "./api-delayed.js";
import { addMergedRoutes, manageMerged, speaksMerged, speaksUnstable } from "./api-delayed-merged.js";
import { RTC_PROXY_PATTERN, rtcProxy, rtcProxyEnabled } from "./api-rtc-proxy.js";
import * as misc from "./api-misc.js";
import * as rooms from "./api-rooms.js";
import { sync } from "./api-sync.js";
import type { HomeserverCore } from "./core.js";
import { openIdUserInfo } from "./openid.js";
import { pattern, type HandlerResult, type RequestContext, type RouteDef } from "./router.js";

/** Route ids used by the request log and by fault matching. */
export type RouteId =
  | "versions"
  | "wellKnown"
  | "capabilities"
  | "login"
  | "register"
  | "logout"
  | "whoami"
  | "sync"
  | "filter"
  | "pushrules"
  | "profile"
  | "createRoom"
  | "join"
  | "leave"
  | "invite"
  | "kick"
  | "ban"
  | "joinedRooms"
  | "state.get"
  | "state.put"
  | "state.put.delayed"
  | "send"
  | "send.delayed"
  | "members"
  | "messages"
  | "event"
  | "delayed.cancel"
  | "delayed.restart"
  | "delayed.send"
  | "delayed.legacy"
  | "delayed.list"
  | "delayed.schedule"
  | "delayed.get"
  | "accountData"
  | "openid"
  | "openid.userinfo"
  | "rtc.proxy"
  | "misc"
  | "options"
  | "unknown";

const DELAYED_PREFIX = "/_matrix/client/unstable/org.matrix.msc4140";

type H = (hs: HomeserverCore, ctx: RequestContext) => HandlerResult | Promise<HandlerResult>;

export function buildRoutes(hs: HomeserverCore, baseUrl: () => string): RouteDef<RouteId>[] {
  const routes: RouteDef<RouteId>[] = [];
  const add = (
    id: RouteDef<RouteId>["id"],
    method: string,
    re: RegExp,
    handler: H,
    enabled?: () => boolean,
  ): void => {
    routes.push({ id, method, pattern: re, handler: (ctx) => handler(hs, ctx), enabled });
  };
  const delayedOr = (plain: RouteId, delayed: RouteId) => (q: URLSearchParams) =>
    q.has(DELAY_PARAM) ? delayed : plain;

  add("versions", "GET", pattern("/_matrix/client/versions", ""), (h) => core.versions(h));
  add("wellKnown", "GET", pattern("/.well-known/matrix/client", ""), () => core.wellKnown(baseUrl));
  add("capabilities", "GET", pattern("/capabilities"), core.capabilities);
  add("login", "GET", pattern("/login"), () => core.loginFlows());
  add("login", "POST", pattern("/login"), core.login);
  add("register", "POST", pattern("/register"), core.register);
  add("logout", "POST", pattern("/logout"), core.logout);
  add("whoami", "GET", pattern("/account/whoami"), core.whoami);
  add("sync", "GET", pattern("/sync"), sync);
  add("filter", "POST", pattern("/user/{userId}/filter"), core.createFilter);
  add("filter", "GET", pattern("/user/{userId}/filter/{filterId}"), core.getFilter);
  add("pushrules", "GET", pattern("/pushrules/"), core.pushRules);
  add("pushrules", "GET", pattern("/pushrules"), core.pushRules);
  add("profile", "GET", pattern("/profile/{userId}"), core.profile);
  add("profile", "GET", pattern("/profile/{userId}/{field}"), core.profile);

  add("createRoom", "POST", pattern("/createRoom"), rooms.createRoom);
  add("join", "POST", pattern("/join/{roomIdOrAlias}"), rooms.join);
  add("join", "POST", pattern("/rooms/{roomId}/join"), rooms.join);
  add("leave", "POST", pattern("/rooms/{roomId}/leave"), (h, c) => rooms.membershipAction(h, c, "leave"));
  add("invite", "POST", pattern("/rooms/{roomId}/invite"), (h, c) => rooms.membershipAction(h, c, "invite"));
  add("kick", "POST", pattern("/rooms/{roomId}/kick"), (h, c) => rooms.membershipAction(h, c, "kick"));
  add("ban", "POST", pattern("/rooms/{roomId}/ban"), (h, c) => rooms.membershipAction(h, c, "ban"));
  add("joinedRooms", "GET", pattern("/joined_rooms"), rooms.joinedRooms);
  add("state.get", "GET", pattern("/rooms/{roomId}/state"), rooms.getState);
  // `/state/{type}` and `/state/{type}/` both mean the empty state key.
  for (const p of ["/rooms/{roomId}/state/{type}", "/rooms/{roomId}/state/{type}/{stateKey*}"]) {
    add("state.get", "GET", pattern(p), rooms.getStateEvent);
    add(delayedOr("state.put", "state.put.delayed"), "PUT", pattern(p), rooms.putState);
  }
  add(
    delayedOr("send", "send.delayed"),
    "PUT",
    pattern("/rooms/{roomId}/send/{type}/{txnId}"),
    rooms.sendMessage,
  );
  add(delayedOr("send", "send.delayed"), "POST", pattern("/rooms/{roomId}/send/{type}"), rooms.sendMessage);
  add("members", "GET", pattern("/rooms/{roomId}/members"), rooms.members);
  add("members", "GET", pattern("/rooms/{roomId}/joined_members"), rooms.joinedMembers);
  add("messages", "GET", pattern("/rooms/{roomId}/messages"), rooms.messages);
  add("event", "GET", pattern("/rooms/{roomId}/event/{eventId}"), rooms.getEvent);

  // MSC4140 management lives only under the unstable prefix. The per-action routes appeared in 1.143.
  const perAction = (): boolean => hs.options.managementAuth !== "required";
  // A merged-only server has neither the listing (now MSC4486) nor the body-form management.
  add("delayed.list", "GET", pattern("/delayed_events", DELAYED_PREFIX), listDelayed, () =>
    speaksUnstable(hs),
  );
  add("delayed.legacy", "POST", pattern("/delayed_events/{delayId}", DELAYED_PREFIX), manageLegacy, () =>
    speaksUnstable(hs),
  );
  // Synapse ≥1.161's lookup (pending events only). A server speaking the merged shape answers it with
  // the merged rules instead (finalised events kept), registered by addMergedRoutes below.
  add(
    "delayed.get",
    "GET",
    pattern("/delayed_events/{delayId}", DELAYED_PREFIX),
    getDelayed,
    () => hs.options.getDelayedEvent && !speaksMerged(hs),
  );
  for (const action of ["cancel", "restart", "send"] as const) {
    add(
      `delayed.${action}`,
      "POST",
      pattern(`/delayed_events/{delayId}/${action}`, DELAYED_PREFIX),
      // The merged MSC's unstable prefix: same rules (finalised events, 409) as the v1 routes.
      (h, c) => (speaksMerged(h) ? manageMerged(h, c, action) : manageAction(h, c, action)),
      () => speaksMerged(hs) || perAction(),
    );
  }
  addMergedRoutes(hs, add);

  for (const p of [
    "/user/{userId}/account_data/{type}",
    "/user/{userId}/rooms/{roomId}/account_data/{type}",
  ]) {
    add("accountData", "GET", pattern(p), (h, c) => misc.accountData(h, c, false));
    add("accountData", "PUT", pattern(p), (h, c) => misc.accountData(h, c, true));
  }
  add("openid", "POST", pattern("/user/{userId}/openid/request_token"), misc.openIdToken);
  add("openid.userinfo", "GET", pattern("/openid/userinfo", "/_matrix/federation/v1"), openIdUserInfo);
  // MSC4512: `…/rtc/livekit/…` goes to the application service that claims it (see api-rtc-proxy.ts).
  for (const method of ["GET", "POST", "PUT", "DELETE"]) {
    add("rtc.proxy", method, RTC_PROXY_PATTERN, rtcProxy, () => rtcProxyEnabled(hs));
  }
  add("misc", "GET", pattern("/devices"), misc.devices);
  add("misc", "GET", pattern("/room_keys/version"), misc.roomKeysVersion);
  add("misc", "POST", pattern("/keys/upload"), misc.stub({ one_time_key_counts: {} }));
  add("misc", "POST", pattern("/keys/query"), misc.stub({ device_keys: {}, failures: {} }));
  add("misc", "POST", pattern("/keys/claim"), misc.stub({ one_time_keys: {}, failures: {} }));
  add("misc", "GET", pattern("/keys/changes"), misc.stub({ changed: [], left: [] }));
  add("misc", "PUT", pattern("/sendToDevice/{type}/{txnId}"), misc.stub({}));
  add("misc", "GET", pattern("/presence/{userId}/status"), misc.stub({ presence: "online" }));
  add("misc", "PUT", pattern("/presence/{userId}/status"), misc.stub({}));
  add("misc", "POST", pattern("/rooms/{roomId}/receipt/{type}/{eventId}"), misc.stub({}));
  add("misc", "POST", pattern("/rooms/{roomId}/read_markers"), misc.stub({}));
  add("misc", "PUT", pattern("/rooms/{roomId}/typing/{userId}"), misc.stub({}));
  add("misc", "GET", pattern("/voip/turnServer"), misc.stub({}));
  add("misc", "GET", pattern("/pushers"), misc.stub({ pushers: [] }));
  add("misc", "GET", pattern("/thirdparty/protocols"), misc.stub({}));
  return routes;
}
