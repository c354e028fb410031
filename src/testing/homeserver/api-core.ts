/** Server discovery, accounts and per-user settings: what `MatrixClient.startClient()` asks for first. */
import { speaksUnstable } from "./api-delayed-merged.js";
import { auth, jsonBody, ok, stringField } from "./api-common.js";
import { mergedCapabilities, mergedVersionFlags } from "./api-delayed-merged.js";
import type { HomeserverCore } from "./core.js";
import { badRequest, forbidden, MatrixHttpError, notFound, type JsonObject } from "./errors.js";
import { DEFAULT_ROOM_VERSION, SUPPORTED_ROOM_VERSIONS } from "./rooms.js";
import { stickyNames } from "./sticky-events.js";
import type { HandlerResult, RequestContext } from "./router.js";
import { MatrixUserInUse } from "./users.js";

const SPEC_VERSIONS = [
  "r0.0.1",
  "r0.1.0",
  "r0.2.0",
  "r0.3.0",
  "r0.4.0",
  "r0.5.0",
  "r0.6.0",
  "r0.6.1",
  "v1.1",
  "v1.2",
  "v1.3",
  "v1.4",
  "v1.5",
  "v1.6",
  "v1.7",
  "v1.8",
  "v1.9",
  "v1.10",
  "v1.11",
  "v1.12",
];

export function versions(core: HomeserverCore): HandlerResult {
  return ok({
    versions: SPEC_VERSIONS,
    unstable_features: {
      // ≥1.117: the flag says whether the feature is usable, not merely compiled in.
      // A server that speaks only MSC4140 as merged does not advertise the unstable shape.
      "org.matrix.msc4140":
        speaksUnstable(core) && (core.options.versionsFlag === "always" || core.delayedEventsEnabled),
      // Element Call's recommended config enables state_after.
      "org.matrix.msc4222": true,
      "org.matrix.msc3266": true,
      ...mergedVersionFlags(core),
      // MSC4354: Synapse 1.163 always names the flag (false while off); the merged names get `.stable`.
      [stickyNames(core.options).versionsFlag]: core.options.stickyEvents,
    },
  });
}

export function capabilities(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  auth(core, ctx);
  const caps: JsonObject = {
    "m.room_versions": {
      default: DEFAULT_ROOM_VERSION,
      available: Object.fromEntries(SUPPORTED_ROOM_VERSIONS.map((v) => [v, "stable"])),
    },
    "m.change_password": { enabled: true },
    "m.set_displayname": { enabled: true },
    "m.set_avatar_url": { enabled: true },
    "m.3pid_changes": { enabled: true },
    "m.get_login_token": { enabled: false },
  };
  if (core.options.advertiseCapability) {
    // Synapse ≥1.157 always includes both fields; max_delay_ms is 0 when the feature is off.
    caps["org.matrix.msc4140.delayed_events"] = {
      max_delay_ms: core.delayedEventsEnabled ? core.options.maxDelayMs : 0,
      max_scheduled: core.options.maxScheduledPerUser,
    };
  }
  return ok({ capabilities: { ...caps, ...mergedCapabilities(core) } });
}

export function loginFlows(): HandlerResult {
  return ok({ flows: [{ type: "m.login.password" }] });
}

/** Password login; any password is accepted for an existing user (test server). */
export function login(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const body = jsonBody(ctx);
  const type = stringField(body, "type");
  if (type !== "m.login.password") throw badRequest(`Unknown login type ${type}`);
  const identifier = body.identifier as JsonObject | undefined;
  const user =
    typeof identifier?.user === "string"
      ? identifier.user
      : typeof body.user === "string"
        ? body.user
        : undefined;
  if (user === undefined) throw badRequest("Invalid login submission", "M_INVALID_PARAM");
  const userId = core.users.userIdFor(user);
  if (!core.users.exists(userId)) throw forbidden("Invalid username or password");
  const deviceId = typeof body.device_id === "string" ? body.device_id : undefined;
  const creds = core.users.login(userId, deviceId);
  return ok({
    user_id: creds.userId,
    access_token: creds.accessToken,
    device_id: creds.deviceId,
    home_server: core.options.serverName,
  });
}

/** Registration with the dummy auth stage, or `kind=guest`. */
export function register(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const body = jsonBody(ctx, { allowEmpty: true });
  const guest = ctx.query.get("kind") === "guest";
  if (!guest && (body.auth as JsonObject | undefined)?.type !== "m.login.dummy") {
    throw new MatrixHttpError(401, "M_FORBIDDEN", "", {
      flows: [{ stages: ["m.login.dummy"] }],
      params: {},
      session: core.ids.filterId(),
    });
  }
  const localpart =
    !guest && typeof body.username === "string" ? body.username.toLowerCase() : `guest${core.ids.filterId()}`;
  try {
    const creds = core.users.register(localpart, {
      guest,
      deviceId: typeof body.device_id === "string" ? body.device_id : undefined,
    });
    return ok({
      user_id: creds.userId,
      access_token: creds.accessToken,
      device_id: creds.deviceId,
      home_server: core.options.serverName,
    });
  } catch (e) {
    if (e instanceof MatrixUserInUse) throw badRequest("User ID already taken.", "M_USER_IN_USE");
    throw badRequest("User ID can only contain characters a-z, 0-9, or '=_-./+'", "M_INVALID_USERNAME");
  }
}

export function logout(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx);
  core.users.logout(requester.accessToken);
  return ok();
}

export function whoami(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx);
  return ok({ user_id: requester.userId, device_id: requester.deviceId, is_guest: requester.isGuest });
}

/** An empty server-default ruleset; matrix-js-sdk fills in the defaults it knows. */
export function pushRules(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  auth(core, ctx);
  return ok({ global: { override: [], content: [], room: [], sender: [], underride: [] } });
}

export function createFilter(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx);
  if (ctx.params[0] !== requester.userId) throw forbidden("Can only create filters for local users");
  const filter = jsonBody(ctx);
  const filterId = core.ids.filterId();
  core.filters.set(`${requester.userId}\u0000${filterId}`, filter);
  return ok({ filter_id: filterId });
}

export function getFilter(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx);
  if (ctx.params[0] !== requester.userId) throw forbidden("Cannot get filters for other users");
  const filter = core.filters.get(`${requester.userId}\u0000${ctx.params[1]}`);
  if (!filter) throw notFound("No such filter");
  return ok(filter);
}

export function profile(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const userId = ctx.params[0];
  if (!core.users.exists(userId)) throw notFound("Profile was not found");
  const displayname = userId.slice(1, userId.indexOf(":"));
  const field = ctx.params[1];
  if (field === "displayname") return ok({ displayname });
  if (field === "avatar_url") return ok({});
  return ok({ displayname });
}

export function wellKnown(baseUrl: () => string): HandlerResult {
  return ok({ "m.homeserver": { base_url: baseUrl() } });
}
