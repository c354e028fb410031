/** Room endpoints: create, membership, state and message sends (delayed or not), reads. */
import { auth, integerQueryParam, jsonBody, ok, stringField } from "./api-common.js";
import { scheduleDelayed } from "./api-delayed.js";
import { delayParamFor } from "./api-delayed-merged.js";
import type { HomeserverCore } from "./core.js";
import { badRequest, forbidden, notFound, type JsonObject } from "./errors.js";
import { joinContent, type CreateRoomSpec, type RoomRecord, type StoredEvent } from "./rooms.js";
import type { HandlerResult, RequestContext } from "./router.js";
import { serializeEvent, type Viewer } from "./serialize.js";
import { stickyDurationParam, stickyNames, stickyTopLevel } from "./sticky-events.js";
import type { Requester } from "./users.js";

const PRESETS = ["private_chat", "public_chat", "trusted_private_chat"] as const;

const objectOrUndefined = (value: unknown, name: string): JsonObject | undefined => {
  if (value === undefined) return undefined;
  if (!value || typeof value !== "object" || Array.isArray(value))
    throw badRequest(`'${name}' must be an object`, "M_BAD_JSON");
  return value as JsonObject;
};

const stringOrUndefined = (value: unknown, name: string): string | undefined => {
  if (value === undefined) return undefined;
  if (typeof value !== "string") throw badRequest(`'${name}' must be a string`, "M_BAD_JSON");
  return value;
};

export function createRoom(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx, { allowGuest: false });
  const body = jsonBody(ctx, { allowEmpty: true });
  core.rateLimit("message", requester.userId, requester.userId);
  const preset = body.preset ?? (body.visibility === "public" ? "public_chat" : "private_chat");
  if (!PRESETS.includes(preset as (typeof PRESETS)[number]))
    throw badRequest(`Unknown preset: ${String(preset)}`, "M_INVALID_PARAM");
  const invite = body.invite ?? [];
  if (!Array.isArray(invite) || invite.some((u) => typeof u !== "string"))
    throw badRequest("'invite' must be a list of user ids", "M_BAD_JSON");
  const initialState = body.initial_state ?? [];
  if (!Array.isArray(initialState)) throw badRequest("'initial_state' must be a list", "M_BAD_JSON");
  const spec: CreateRoomSpec = {
    creator: requester.userId,
    roomVersion: stringOrUndefined(body.room_version, "room_version"),
    preset: preset as CreateRoomSpec["preset"],
    name: stringOrUndefined(body.name, "name"),
    topic: stringOrUndefined(body.topic, "topic"),
    invite: invite as string[],
    powerLevelContentOverride: objectOrUndefined(
      body.power_level_content_override,
      "power_level_content_override",
    ),
    creationContent: objectOrUndefined(body.creation_content, "creation_content"),
    initialState: initialState.map((s: unknown) => {
      const e = objectOrUndefined(s, "initial_state") ?? {};
      return {
        type: stringField(e, "type"),
        state_key: stringOrUndefined(e.state_key, "state_key"),
        content: objectOrUndefined(e.content, "content") ?? {},
      };
    }),
  };
  return ok({ room_id: core.rooms.createRoom(spec) });
}

function changeMembership(
  core: HomeserverCore,
  requester: Requester,
  roomId: string,
  target: string,
  membership: string,
  reason?: unknown,
): void {
  const content: JsonObject = membership === "join" ? joinContent(target) : { membership };
  if (typeof reason === "string") content.reason = reason;
  core.sendEvent(
    {
      roomId,
      sender: requester.userId,
      type: "m.room.member",
      stateKey: target,
      content,
      deviceId: requester.deviceId,
    },
    { ratelimit: true },
  );
}

/** `POST /join/{roomIdOrAlias}` and `POST /rooms/{roomId}/join`. */
export function join(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx);
  jsonBody(ctx, { allowEmpty: true });
  const roomId = ctx.params[0];
  if (roomId.startsWith("#")) throw notFound(`Room alias ${roomId} not found`);
  if (!roomId.startsWith("!"))
    throw badRequest(`${roomId} was not legal room ID or room alias`, "M_INVALID_PARAM");
  // A local room id we do not know: Synapse would try a remote join via the room's server and fail.
  if (!core.rooms.get(roomId)) throw notFound("No known servers");
  if (core.rooms.membership(roomId, requester.userId) !== "join") {
    changeMembership(core, requester, roomId, requester.userId, "join");
  }
  return ok({ room_id: roomId });
}

/** leave / invite / kick / ban. */
export function membershipAction(
  core: HomeserverCore,
  ctx: RequestContext,
  action: "leave" | "invite" | "kick" | "ban",
): HandlerResult {
  const requester = auth(core, ctx);
  const body = jsonBody(ctx, { allowEmpty: action === "leave" });
  const roomId = ctx.params[0];
  if (!core.rooms.get(roomId))
    throw action === "leave" ? notFound("Unknown room") : forbidden("Unknown room");
  const target = action === "leave" ? requester.userId : stringField(body, "user_id");
  const membership = action === "kick" ? "leave" : action;
  changeMembership(core, requester, roomId, target, membership, body.reason);
  return ok();
}

/**
 * PUT state: a delayed event with the delay parameter, a normal state event otherwise. Synapse 1.163
 * ignores the sticky parameter here; the merged MSC4354 text makes state events sticky too.
 */
export function putState(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx);
  const content = jsonBody(ctx);
  const [roomId, type, stateKey = ""] = ctx.params;
  const sticky = stickyDurationParam(core.options, ctx.query, "state", integerQueryParam);
  const delay = delayParamFor(core, ctx.query);
  if (delay !== undefined)
    return scheduleDelayed(
      core,
      requester,
      { roomId, type, stateKey, content, ...(sticky !== undefined ? { stickyDurationMs: sticky } : {}) },
      delay,
    );
  const { event } = core.sendEvent(
    {
      roomId,
      sender: requester.userId,
      type,
      stateKey,
      content,
      deviceId: requester.deviceId,
      ...stickyRequest(core, sticky),
    },
    { ratelimit: true },
  );
  return ok({ event_id: event.event_id });
}

/** The sticky top-level field of a send, if the request asked for one. */
const stickyRequest = (core: HomeserverCore, durationMs: number | undefined) =>
  durationMs === undefined ? {} : { topLevel: stickyTopLevel(stickyNames(core.options), durationMs) };

/**
 * PUT send/{type}/{txnId} (and POST send/{type}): Synapse's transaction cache makes a retried txn id
 * (same path, user, device) return the first answer, delayed sends included. With MSC4354 on, the sticky
 * parameter is parsed after the body and before the delay (so its error wins over a bad delay).
 */
export function sendMessage(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx);
  const [roomId, type, txnId] = ctx.params;
  const txnKey =
    txnId === undefined ? undefined : `${ctx.path}\u0000${requester.userId}\u0000${requester.deviceId}`;
  const cached = txnKey === undefined ? undefined : core.transactions.get(txnKey);
  if (cached) return cached;
  const content = jsonBody(ctx);
  const sticky = stickyDurationParam(core.options, ctx.query, "send", integerQueryParam);
  const delay = delayParamFor(core, ctx.query);
  let result: HandlerResult;
  if (delay !== undefined) {
    const target = { roomId, type, content, ...(sticky !== undefined ? { stickyDurationMs: sticky } : {}) };
    result = scheduleDelayed(core, requester, target, delay);
  } else {
    const { event } = core.sendEvent(
      {
        roomId,
        sender: requester.userId,
        type,
        content,
        deviceId: requester.deviceId,
        txnId,
        ...stickyRequest(core, sticky),
      },
      { ratelimit: true },
    );
    result = ok({ event_id: event.event_id });
  }
  if (txnKey !== undefined) core.transactions.set(txnKey, result);
  return result;
}

/**
 * What state a user may read: current state while joined, the state when they left otherwise;
 * never-members get Synapse's 403 (also for unknown rooms, which it cannot tell apart).
 */
function readableState(core: HomeserverCore, requester: Requester, roomId: string): Map<string, StoredEvent> {
  const room = core.rooms.get(roomId);
  const own = room ? core.rooms.stateEvent(roomId, "m.room.member", requester.userId) : undefined;
  if (!room || !own || own.content.membership === "invite") {
    throw forbidden(`User ${requester.userId} not in room ${roomId}, and room previews are disabled`);
  }
  return own.content.membership === "join" ? room.state : core.rooms.stateAt(room, own.pos);
}

const viewerOf = (r: Requester): Viewer => ({ userId: r.userId, deviceId: r.deviceId });

export function getState(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx);
  const state = readableState(core, requester, ctx.params[0]);
  const ser = core.serializeOptions();
  return { status: 200, body: [...state.values()].map((e) => serializeEvent(e, viewerOf(requester), ser)) };
}

export function getStateEvent(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx);
  const [roomId, type, stateKey = ""] = ctx.params;
  const state = readableState(core, requester, roomId);
  const event = state.get(`${type}\u0000${stateKey}`);
  if (!event) throw notFound("Event not found.");
  if (ctx.query.get("format") === "event") {
    return ok(serializeEvent(event, viewerOf(requester), core.serializeOptions()));
  }
  return ok(event.content);
}

function joinedRoom(core: HomeserverCore, requester: Requester, roomId: string): RoomRecord {
  const room = core.rooms.get(roomId);
  if (!room || core.rooms.membership(roomId, requester.userId) !== "join") {
    throw forbidden(`User ${requester.userId} not in room ${roomId}, and room previews are disabled`);
  }
  return room;
}

export function members(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx);
  const room = joinedRoom(core, requester, ctx.params[0]);
  const ser = core.serializeOptions();
  const chunk = [...room.state.values()]
    .filter((e) => e.type === "m.room.member")
    .map((e) => serializeEvent(e, viewerOf(requester), ser));
  return ok({ chunk });
}

export function joinedMembers(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx);
  const room = joinedRoom(core, requester, ctx.params[0]);
  const joined: JsonObject = {};
  for (const e of room.state.values()) {
    if (e.type === "m.room.member" && e.content.membership === "join" && e.state_key) {
      joined[e.state_key] = {
        display_name: e.state_key.slice(1, e.state_key.indexOf(":")),
        avatar_url: null,
      };
    }
  }
  return ok({ joined });
}

/** `/messages` with `t<pos>` tokens (the `prev_batch` /sync hands out). */
export function messages(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx);
  const room = joinedRoom(core, requester, ctx.params[0]);
  const dir = ctx.query.get("dir") ?? "b";
  if (dir !== "b" && dir !== "f") throw badRequest("Unknown dir", "M_INVALID_PARAM");
  const limit = Math.min(Math.max(Number(ctx.query.get("limit") ?? "10") || 10, 1), 1000);
  const from = ctx.query.get("from");
  const parsed = from === null ? undefined : /^[ts](\d+)$/.exec(from);
  if (from !== null && !parsed) throw badRequest("Invalid stream token", "M_INVALID_PARAM");
  const fromPos = parsed ? Number(parsed[1]) : dir === "b" ? core.rooms.streamPos : 0;
  const chunkEvents =
    dir === "b"
      ? room.events
          .filter((e) => e.pos <= fromPos)
          .slice(-limit)
          .reverse()
      : room.events.filter((e) => e.pos > fromPos).slice(0, limit);
  const ser = core.serializeOptions();
  const body: JsonObject = {
    chunk: chunkEvents.map((e) => serializeEvent(e, viewerOf(requester), ser)),
    start: `t${fromPos}`,
  };
  const last = chunkEvents[chunkEvents.length - 1];
  if (last && chunkEvents.length === limit) body.end = `t${dir === "b" ? last.pos - 1 : last.pos}`;
  return ok(body);
}

export function getEvent(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx);
  const room = joinedRoom(core, requester, ctx.params[0]);
  const event = room.events.find((e) => e.event_id === ctx.params[1]);
  if (!event) throw notFound("Could not find event");
  return ok(serializeEvent(event, viewerOf(requester), core.serializeOptions()));
}

export function joinedRooms(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx);
  const joined_rooms = core.rooms
    .roomsOf(requester.userId)
    .filter((room) => core.rooms.membership(room.roomId, requester.userId) === "join")
    .map((room) => room.roomId);
  return ok({ joined_rooms });
}
