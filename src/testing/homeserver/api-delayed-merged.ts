/**
 * MSC4140 as merged (2026-09-08) over HTTP: the dedicated scheduling endpoint, authenticated `v1`
 * management with finalised-event rules (200 for a repeated outcome, 409 for a conflicting one,
 * MSC4542's `restart` after `send` included), the single lookup, and the discovery flags. Active when
 * `delayedEventsShape` is `merged` or `both`; field sources are listed in docs/compatibility.md.
 */
import { auth, jsonBody, ok } from "./api-common.js";
import { scheduleDelayed, parseDelayParam, type DelayedAction } from "./api-delayed.js";
import type { HomeserverCore } from "./core.js";
import type { DelayedEventRecord } from "./delayed-events.js";
import type { FinalisedDelayedEvent } from "./delayed-finalised.js";
import { badRequest, delayedEventNotFound, MatrixHttpError, type JsonObject } from "./errors.js";
import { pattern, type HandlerResult, type RequestContext } from "./router.js";

export const MERGED_FEATURE_FLAG = "org.matrix.msc4140.stable";
export const MERGED_CAPABILITY = "m.delayed_events";
const STABLE_V1 = "/_matrix/client/v1";
const STABLE_V3 = "/_matrix/client/v3";
const UNSTABLE = "/_matrix/client/unstable/org.matrix.msc4140";

export const speaksMerged = (core: HomeserverCore): boolean => core.options.delayedEventsShape !== "unstable";
export const speaksUnstable = (core: HomeserverCore): boolean => core.options.delayedEventsShape !== "merged";

/**
 * The `org.matrix.msc4140.delay` query parameter, or undefined. A merged-only server does not know the
 * parameter and ignores it, so the event is sent at once: the hazard Synapse's tracking epic describes.
 */
export function delayParamFor(core: HomeserverCore, query: URLSearchParams): number | undefined {
  return speaksUnstable(core) ? parseDelayParam(query) : undefined;
}

/** `/versions` unstable features added by the merged shape. */
export function mergedVersionFlags(core: HomeserverCore): JsonObject {
  return speaksMerged(core) ? { [MERGED_FEATURE_FLAG]: core.delayedEventsEnabled } : {};
}

/** `/capabilities` entries added by the merged shape (stable name; the unstable one stays as it was). */
export function mergedCapabilities(core: HomeserverCore): JsonObject {
  if (!speaksMerged(core)) return {};
  return {
    [MERGED_CAPABILITY]: {
      max_delay_ms: core.delayedEventsEnabled ? core.options.maxDelayMs : 0,
      max_scheduled: core.options.maxScheduledPerUser,
    },
  };
}

const txnKey = (ctx: RequestContext, userId: string, deviceId: string): string =>
  `delayed_event\u0000${ctx.path}\u0000${userId}\u0000${deviceId}`;

/** `PUT …/rooms/{roomId}/delayed_event/{eventType}/{txnId}` with `{delay_ms, state_key?, content}`. */
export function scheduleMerged(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const requester = auth(core, ctx);
  const [roomId, type] = ctx.params;
  // Transaction ids make a retried schedule safe: the same answer, no second delayed event.
  const key = txnKey(ctx, requester.userId, requester.deviceId);
  const cached = core.transactions.get(key);
  if (cached) return cached;
  const body = jsonBody(ctx);
  if (!("delay_ms" in body)) throw badRequest("Missing params: ['delay_ms']", "M_MISSING_PARAM");
  const delay = body.delay_ms;
  if (typeof delay !== "number" || !Number.isInteger(delay) || delay <= 0)
    throw badRequest("'delay_ms' must be a positive non-zero integer", "M_INVALID_PARAM");
  if (!("content" in body)) throw badRequest("Missing params: ['content']", "M_MISSING_PARAM");
  const content = body.content;
  if (content === null || typeof content !== "object" || Array.isArray(content))
    throw badRequest("'content' must be a JSON object", "M_INVALID_PARAM");
  const stateKey = body.state_key;
  if (stateKey !== undefined && typeof stateKey !== "string")
    throw badRequest("'state_key' must be a string", "M_INVALID_PARAM");
  const result = scheduleDelayed(
    core,
    requester,
    { roomId, type, content: content as JsonObject, ...(stateKey !== undefined ? { stateKey } : {}) },
    delay,
  );
  core.transactions.set(key, result);
  return result;
}

/** Which finalised outcomes a repeated action accepts (200); any other finalised outcome is a 409. */
function sameOutcome(action: DelayedAction, row: FinalisedDelayedEvent): boolean {
  if (action === "send") return row.outcome.kind === "sent";
  if (action === "cancel") return row.outcome.kind === "cancelled" || row.outcome.kind === "error";
  return false; // restart: nothing finalised can restart (MSC4542 adds "after send" to the text)
}

/** `POST …/delayed_events/{delay_id}/{action}`: authenticated, only the owner's ids exist. */
export function manageMerged(
  core: HomeserverCore,
  ctx: RequestContext,
  action: DelayedAction,
): HandlerResult {
  const delayId = ctx.params[0];
  const requester = auth(core, ctx);
  const bucket = action === "send" && core.options.sendUsesMessageLimit ? "message" : "delayedEventMgmt";
  core.rateLimit(bucket, requester.userId, requester.userId);
  if (core.delayed.pending(delayId, requester.userId)) {
    if (action === "cancel") core.delayed.cancel(delayId);
    else if (action === "restart") core.delayed.restart(delayId);
    // A send that fails answers the send's error and stays scheduled (the cause may pass).
    else core.delayed.sendNow(delayId, { keepOnError: true });
    return ok();
  }
  const finalised = core.finalised.get(delayId, requester.userId);
  if (!finalised) throw delayedEventNotFound();
  if (sameOutcome(action, finalised)) return ok();
  throw new MatrixHttpError(
    409,
    "M_UNKNOWN",
    `The delayed event was already ${finalised.outcome.kind === "sent" ? "sent" : "cancelled"}`,
  );
}

function lookupBody(
  core: HomeserverCore,
  row: DelayedEventRecord,
  scheduledAt: number,
  finalised?: FinalisedDelayedEvent,
): JsonObject {
  const base: JsonObject = {
    delay_id: row.delayId,
    room_id: row.roomId,
    type: row.type,
    ...(row.stateKey !== undefined ? { state_key: row.stateKey } : {}),
    delay_ms: row.delayMs,
  };
  const outcome: JsonObject = {};
  if (finalised) {
    outcome.finalised_ts = finalised.finalisedTs;
    if (finalised.outcome.kind === "sent") outcome.event_id = finalised.outcome.eventId;
    if (finalised.outcome.kind === "error") outcome.error = finalised.outcome.error;
  }
  if (core.options.mergedLookupShape === "nested") {
    return {
      ...base,
      delayed_since_ts: scheduledAt,
      content: row.content,
      ...(finalised ? { finalised: outcome } : {}),
    };
  }
  return { ...base, scheduled_at: scheduledAt, content: row.content, ...outcome };
}

/** `GET …/delayed_events/{delay_id}`: a pending or a retained finalised event of the requester. */
export function getDelayed(core: HomeserverCore, ctx: RequestContext): HandlerResult {
  const delayId = ctx.params[0];
  const requester = auth(core, ctx);
  core.rateLimit("delayedEventMgmt", requester.userId, requester.userId);
  const pending = core.delayed.pending(delayId, requester.userId);
  if (pending) return ok(lookupBody(core, pending, pending.sendTs - pending.delayMs));
  const finalised = core.finalised.get(delayId, requester.userId);
  if (!finalised) throw delayedEventNotFound();
  return ok(lookupBody(core, finalised, finalised.scheduledAt, finalised));
}

type Handler = (core: HomeserverCore, ctx: RequestContext) => HandlerResult;
export type AddRoute = (
  id: "delayed.schedule" | "delayed.get" | "delayed.cancel" | "delayed.restart" | "delayed.send",
  method: string,
  re: RegExp,
  handler: Handler,
  enabled?: () => boolean,
) => void;

/** The merged shape's routes, stable prefixes and the MSC's unstable prefix alike. */
export function addMergedRoutes(core: HomeserverCore, add: AddRoute): void {
  const on = (): boolean => speaksMerged(core);
  for (const prefix of [STABLE_V3, UNSTABLE]) {
    add(
      "delayed.schedule",
      "PUT",
      pattern("/rooms/{roomId}/delayed_event/{type}/{txnId}", prefix),
      scheduleMerged,
      on,
    );
  }
  add("delayed.get", "GET", pattern("/delayed_events/{delayId}", STABLE_V1), getDelayed, on);
  add("delayed.get", "GET", pattern("/delayed_events/{delayId}", UNSTABLE), getDelayed, on);
  for (const action of ["cancel", "restart", "send"] as const) {
    add(
      `delayed.${action}`,
      "POST",
      pattern(`/delayed_events/{delayId}/${action}`, STABLE_V1),
      (h, c) => manageMerged(h, c, action),
      on,
    );
  }
}
