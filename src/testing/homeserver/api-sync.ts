/** `GET /sync` with long-polling: answers as soon as something changed for the user, or at `timeout`. */
import { auth } from "./api-common.js";
import type { HomeserverCore } from "./core.js";
import { badRequest, notFound, type JsonObject } from "./errors.js";
import type { HandlerResult, RequestContext } from "./router.js";
import { activeStickyNames } from "./sticky-events.js";
import { buildSync, timelineLimitOf } from "./sync.js";

/** Long-polls are capped so a forgotten client cannot pin a request forever. */
const MAX_TIMEOUT_MS = 60_000;

function filterFor(core: HomeserverCore, userId: string, param: string | null): JsonObject | undefined {
  if (param === null) return undefined;
  if (param.trimStart().startsWith("{")) {
    try {
      const parsed: unknown = JSON.parse(param);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return parsed as JsonObject;
    } catch {
      // fall through to the error below
    }
    throw badRequest("Invalid filter", "M_INVALID_PARAM");
  }
  const filter = core.filters.get(`${userId}\u0000${param}`);
  if (!filter) throw notFound("No such filter");
  return filter;
}

export async function sync(core: HomeserverCore, ctx: RequestContext): Promise<HandlerResult> {
  const requester = auth(core, ctx);
  const filter = filterFor(core, requester.userId, ctx.query.get("filter"));
  const timeoutRaw = Number(ctx.query.get("timeout") ?? "0");
  const timeout = Number.isFinite(timeoutRaw) ? Math.min(Math.max(timeoutRaw, 0), MAX_TIMEOUT_MS) : 0;
  const since = ctx.query.get("since") ?? undefined;
  const params = {
    since,
    timelineLimit: timelineLimitOf(filter),
    useStateAfter: ctx.query.get("org.matrix.msc4222.use_state_after") === "true",
  };
  const viewer = { userId: requester.userId, deviceId: requester.deviceId };
  const deadline = Date.now() + timeout;
  for (;;) {
    const ser = core.serializeOptions();
    const names = activeStickyNames(core.options);
    const sticky = names && { table: core.sticky, now: ser.now, section: names.syncSection };
    const result = buildSync(core.rooms, viewer, params, ser, sticky);
    const remaining = deadline - Date.now();
    if (result.hasChanges || since === undefined || remaining <= 0 || ctx.signal.aborted) {
      return { status: 200, body: result.body };
    }
    await core.notifier.wait(remaining, ctx.signal);
  }
}
