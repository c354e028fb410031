/**
 * Membership writes that may still land. A write whose answer never came (our local timeout, a broken
 * connection) may be held in the network and processed later: after a clean leave it would put a full
 * membership back, with no delayed leave behind it, for as long as its `expires` (hours). So a leave
 * that finds such a write younger than LATE_WRITE_HORIZON_MS keeps a delayed `{}` pending until the write
 * can no longer land (the guard): whatever lands meanwhile is taken down by it. A later join() cancels
 * the guard first. (Found by an outside review: a PUT held 12 s landed 1.5 s after `left`.)
 */
import { LATE_WRITE_HORIZON_MS } from "../limits.js";
import type { LeaveResult } from "../../manager/state.js";
import { sameContent } from "../../membership/content.js";
import { log, type Ctx } from "./context.js";
import { startTask } from "./tasks.js";
import { scheduleRequest } from "./format.js";
import type { Outcome, Task } from "./types.js";

/**
 * A membership write's attempt ended without an answer: it may land later, also after a newer write of
 * ours (out of order). Once it can no longer land, our current membership is written again (the server
 * drops it as a duplicate if nothing changed); a read that shows it landed re-asserts at once.
 */
export function noteUnansweredWrite(c: Ctx, sentAt: number, content: Record<string, unknown>): void {
  const list = (c.s.lateWrites ??= []);
  list.push({ sentAt, content });
  prune(c);
  if (c.s.call && !c.s.call.ended) (c.s.reassertAt ??= []).push(sentAt + LATE_WRITE_HORIZON_MS);
}

function prune(c: Ctx): void {
  const list = c.s.lateWrites;
  if (!list) return;
  const alive = list.filter((w) => w.sentAt + LATE_WRITE_HORIZON_MS > c.now).slice(-16);
  c.s.lateWrites = alive.length > 0 ? alive : undefined;
}

/** Until when a write of ours may still land (undefined: none may). */
export function lateWritesUntil(c: Ctx): number | undefined {
  prune(c);
  const list = c.s.lateWrites;
  return list ? Math.max(...list.map((w) => w.sentAt)) + LATE_WRITE_HORIZON_MS : undefined;
}

/** Is `content` what one of our writes in doubt carried (an older membership of ours, landed late)? */
export function isLateWriteOf(c: Ctx, content: Record<string, unknown>): boolean {
  prune(c);
  return !!c.s.lateWrites?.some((w) => sameContent(w.content, content));
}

/** Schedule the guard; the leave resolves with `result` once it is in place (or could not be). */
export function startGuard(c: Ctx, until: number, result: LeaveResult): void {
  const delayMs = Math.max(1000, Math.ceil(until - c.now));
  log(c, "debug", `a membership write may still land: a delayed {} stays pending for ${delayMs} ms`);
  startTask(c, {
    purpose: { kind: "late-write-guard", result },
    // The delayed leave of the call that left (its sticky key, in the sticky format).
    request: scheduleRequest(c, c.s.leaveCall, delayMs),
    op: "schedule-leave",
    scope: "manager",
    retry: "retryable",
    capMs: c.s.timing.retryMaxMs,
    // Retrying past the horizon is moot.
    until,
  });
}

/** The guard's schedule ended: remember its id (join() cancels it), and let the leave resolve. */
export function onGuardDone(c: Ctx, task: Task, outcome: Outcome): LeaveResult | undefined {
  if (task.purpose.kind !== "late-write-guard") return undefined;
  if (outcome.ok && typeof outcome.value === "string") {
    c.s.guardDelayId = outcome.value;
    c.s.guardMemberId = c.s.leaveCall?.memberId;
  } else if (!outcome.ok)
    log(c, "warn", "could not keep a guard against a late membership write", outcome.error);
  return task.purpose.result;
}
