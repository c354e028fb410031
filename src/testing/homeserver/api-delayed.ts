/**
 * MSC4140 over HTTP exactly as Synapse serves it: scheduling through the
 * `org.matrix.msc4140.delay` query parameter, per-action and legacy management, and the listing.
 */
import { auth, integerQueryParam, jsonBody, ok } from "./api-common.js";
import type { BucketName, HomeserverCore } from "./core.js";
import {
  badRequest,
  delayedEventNotFound,
  forbidden,
  limitExceeded,
  notFound,
  type JsonObject,
} from "./errors.js";
import type { DelayedEventRecord } from "./delayed-events.js";
import type { HandlerResult, RequestContext } from "./router.js";
import type { Requester } from "./users.js";

export const DELAY_PARAM = "org.matrix.msc4140.delay";

export type DelayedAction = "cancel" | "restart" | "send";
const ACTIONS: DelayedAction[] = ["cancel", "restart", "send"];

/** The delay in ms, or undefined for a normal send. Validated even when the feature is off (step 3). */
export function parseDelayParam(query: URLSearchParams): number | undefined {
  return integerQueryParam(query, DELAY_PARAM);
}

export interface DelayedTarget {
  roomId: string;
  type: string;
  stateKey?: string;
  content: JsonObject;
  /** MSC4354: the sticky duration the event gets when it is sent (Synapse stores it with the row). */
  stickyDurationMs?: number;
}

/** Steps 4–9 of the scheduling check order (auth, JSON and delay parsing are done by the caller). */
export function scheduleDelayed(
  core: HomeserverCore,
  requester: Requester,
  target: DelayedTarget,
  delay: number,
): HandlerResult {
  const { options } = core;
  const enabled = core.delayedEventsEnabled;
  if (options.errorDialect === "legacy") {
    // ≤1.156 checked these in the servlet, right after parsing and before rc_message.
    if (!enabled) {
      throw badRequest("Delayed events are not supported on this server", "M_UNKNOWN", {
        "org.matrix.msc4140.errcode": "M_MAX_DELAY_UNSUPPORTED",
      });
    }
    if (delay > options.maxDelayMs) {
      throw badRequest("The requested delay exceeds the allowed maximum.", "M_UNKNOWN", {
        "org.matrix.msc4140.errcode": "M_MAX_DELAY_EXCEEDED",
        "org.matrix.msc4140.max_delay": options.maxDelayMs,
      });
    }
  }
  core.rateLimit("message", requester.userId, requester.userId);
  if (options.errorDialect !== "legacy") {
    if (!enabled) throw forbidden("Sending delayed events has been disallowed");
    if (delay > options.maxDelayMs) {
      const message = `The requested delay (${delay}ms) exceeds the allowed maximum (${options.maxDelayMs}ms)`;
      // ≥1.161 answers 400 with the MSC's (unstable) errcode instead of 403 M_FORBIDDEN.
      if (options.errorDialect === "1.161") throw badRequest(message, "ORG.MATRIX.MSC4140_DELAY_TOO_LARGE");
      throw forbidden(message);
    }
  }
  if (!core.rooms.get(target.roomId)) throw notFound(`Could not find room_version for ${target.roomId}`);
  core.rooms.validateShape({ ...target, sender: requester.userId }, { checkSize: false });
  if (options.errorDialect !== "legacy") {
    const limit = options.maxScheduledPerUser;
    if (core.delayed.countFor(requester.userId) >= limit) {
      const retryAfterMs = core.delayed.retryAfterForLimit(requester.userId, limit, core.now());
      throw limitExceeded(retryAfterMs, "The maximum number of delayed events has been reached.");
    }
  }
  const delayId = core.ids.delayId();
  core.delayed.add({
    delayId,
    userId: requester.userId,
    deviceId: requester.deviceId,
    roomId: target.roomId,
    type: target.type,
    ...(target.stateKey !== undefined ? { stateKey: target.stateKey } : {}),
    content: target.content,
    ...(target.stickyDurationMs !== undefined ? { stickyDurationMs: target.stickyDurationMs } : {}),
    delayMs: delay,
    sendTs: core.now() + delay,
  });
  return ok({ delay_id: delayId });
}

/**
 * Rate limit for management (A.6), before the lookup so unknown ids can get 429 too. Returns the
 * authenticated requester when there is one (needed for the owner check in `required` mode).
 */
function managementRateLimit(
  core: HomeserverCore,
  ctx: RequestContext,
  action: DelayedAction | "list",
  requester: Requester | undefined,
): Requester | undefined {
  const { options } = core;
  const bucket: BucketName =
    options.managementBucket === "message" || (action === "send" && options.sendUsesMessageLimit)
      ? "message"
      : "delayedEventMgmt";
  let who = requester;
  if (!who && options.managementAuth === "optional" && ctx.accessToken !== undefined) {
    who = auth(core, ctx, { allowGuest: false });
  }
  if (who) {
    // 1.126–1.142 keyed the management bucket on (user, device); rc_message is always per user.
    const perDevice = options.managementAuth === "required" && bucket === "delayedEventMgmt";
    core.rateLimit(bucket, perDevice ? `${who.userId}|${who.deviceId}` : who.userId, who.userId);
  } else {
    core.rateLimit(bucket, `ip:${ctx.ip}`);
  }
  return who;
}

function perform(
  core: HomeserverCore,
  delayId: string,
  action: DelayedAction,
  owner: Requester | undefined,
): HandlerResult {
  const ownerCheck = core.options.managementAuth === "required" ? owner?.userId : undefined;
  if (!core.delayed.pending(delayId, ownerCheck)) throw delayedEventNotFound();
  if (action === "cancel") core.delayed.cancel(delayId);
  else if (action === "restart") core.delayed.restart(delayId);
  else core.delayed.sendNow(delayId);
  return ok();
}

/** `POST …/delayed_events/{id}/{cancel|restart|send}` (≥1.143): body ignored, auth per `managementAuth`. */
export function manageAction(
  core: HomeserverCore,
  ctx: RequestContext,
  action: DelayedAction,
): HandlerResult {
  const delayId = ctx.params[0];
  const requester = managementRateLimit(core, ctx, action, undefined);
  return perform(core, delayId, action, requester);
}

/** `POST …/delayed_events/{id}` with `{"action"}`: the body is checked before anything else (HEAD). */
export function manageLegacy(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const delayId = ctx.params[0];
  // ≤1.142 authenticated first (401 M_MISSING_TOKEN makes matrix-js-sdk retry with a token).
  const requester =
    core.options.managementAuth === "required" ? auth(core, ctx, { allowGuest: false }) : undefined;
  const body = jsonBody(ctx);
  if (!("action" in body)) throw badRequest("'action' is missing", "M_MISSING_PARAM");
  const action = String(body.action);
  if (!ACTIONS.includes(action as DelayedAction)) {
    throw badRequest("'action' is not one of 'cancel', 'restart', 'send'", "M_INVALID_PARAM");
  }
  const who = managementRateLimit(core, ctx, action as DelayedAction, requester);
  return perform(core, delayId, action as DelayedAction, who);
}

/** A pending row in the MSC's field names (≥1.161: the GET-one answer and, with the old names, list items). */
function mscItem(row: DelayedEventRecord): JsonObject {
  return {
    delay_id: row.delayId,
    room_id: row.roomId,
    type: row.type,
    ...(row.stateKey !== undefined ? { state_key: row.stateKey } : {}),
    delay_ms: row.delayMs,
    delayed_since_ts: row.sendTs - row.delayMs,
    content: row.content,
  };
}

/** `GET …/delayed_events`: the requester's pending rows, due soonest first; query params ignored. */
export function listDelayed(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx, { allowGuest: false });
  managementRateLimit(core, ctx, "list", requester);
  const withMscFields = core.options.listingMscFields;
  const delayed_events = core.delayed.listFor(requester.userId).map((row) => ({
    ...(withMscFields ? mscItem(row) : {}),
    delay_id: row.delayId,
    room_id: row.roomId,
    type: row.type,
    ...(row.stateKey !== undefined ? { state_key: row.stateKey } : {}),
    delay: row.delayMs,
    running_since: row.sendTs - row.delayMs,
    content: row.content,
  }));
  return ok({ delayed_events });
}

/**
 * `GET …/delayed_events/{id}` (≥1.161): the requester's own pending event (by localpart, any device);
 * unknown, another user's, or already being sent → 404. Spends the management bucket, keyed on the user.
 */
export function getDelayed(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx, { allowGuest: false });
  managementRateLimit(core, ctx, "list", requester);
  const row = core.delayed.pending(ctx.params[0], requester.userId);
  if (!row) throw delayedEventNotFound();
  return ok(mscItem(row));
}
