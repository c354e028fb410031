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
import type { StateEventSnapshot } from "../../backends/types.js";
import { delayedTimeoutMs, log, type Ctx } from "./context.js";
import { startTask } from "./tasks.js";
import { isSticky, leaveContent, scheduleRequest, stickyDurationMs, writeRequest } from "./format.js";
import { canReadKey } from "./watch.js";
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
  // On servers before Synapse 1.127 our own state write cancels our pending delayed state at that key:
  // a late write that lands cancels the very guard that was to take it down, and stands for its whole
  // `expires` (hours; found by the randomized invariants with that rule set: a write held 10.5 s landed
  // after `left` and stayed). So once no write can land any more (`checkAt`), we look: we read our key
  // and take a late write of ours down with `{}`; where we cannot read, we send the guard ourselves
  // (it is due then anyway, a moment later), and if it is gone, a write at our key cancelled it: `{}`.
  // (The sticky format's events are not state: nothing cancels its guard.)
  const checkAt = Math.max(c.now + 1000, until);
  const delayMs = Math.ceil(checkAt - c.now) + (isSticky(c) ? 0 : delayedTimeoutMs(c.s));
  log(c, "debug", `a membership write may still land: a delayed {} stays pending for ${delayMs} ms`);
  if (!isSticky(c) && c.s.lateWrites)
    c.s.guardCheck = { at: checkAt, contents: c.s.lateWrites.map((w) => w.content) };
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

/** When the check after the guard is due (undefined: none). */
export function guardCheckWakeAt(c: Ctx): number | undefined {
  return c.s.guardCheck?.at;
}

/**
 * No write of ours can land any more: unless a new call writes our key by now, read what it holds, or
 * (where we cannot read) send the guard, or (where it could not be scheduled) write `{}`.
 */
export function onGuardCheckWake(c: Ctx): void {
  const check = c.s.guardCheck;
  if (!check || check.at > c.now) return;
  c.s.guardCheck = undefined;
  if (c.s.call || c.s.leave) return;
  const guard = c.s.guardDelayId;
  if (!canReadKey(c) && !guard) return cleanUp(c);
  startTask(c, {
    purpose: canReadKey(c)
      ? { kind: "guard-check", contents: check.contents }
      : { kind: "guard-send", delayId: guard! },
    request: canReadKey(c) ? { kind: "read" } : { kind: "delayed", delayId: guard!, action: "send" },
    op: canReadKey(c) ? "send-state" : "send-leave",
    scope: "manager",
    retry: "retryable",
    capMs: c.s.timing.retryMaxMs,
    timeoutMs: c.s.timing.stateRequestTimeoutMs,
    until: c.now + 2 * c.s.timing.stateRequestTimeoutMs,
    measures: false,
  });
}

/** What our key holds after the guard: a late write of ours (the guard was cancelled) goes with `{}`. */
export function onGuardCheckDone(c: Ctx, task: Task, outcome: Outcome): void {
  if (task.purpose.kind === "guard-cleanup") {
    if (!outcome.ok) log(c, "warn", "could not take down a late membership write of ours", outcome.error);
    return;
  }
  // A call started since writes our key itself (and its eyes re-assert over a late write of ours).
  if (c.s.call || c.s.leave || c.s.disposed) return;
  if (task.purpose.kind === "guard-send") {
    if (c.s.guardDelayId === task.purpose.delayId) c.s.guardDelayId = undefined;
    // Sent: its `{}` took down whatever landed. Gone: a write at our key cancelled it (before Synapse
    // 1.127, a late one of ours does).
    if (outcome.ok || outcome.cls.kind !== "gone") return;
    return cleanUp(c);
  }
  if (task.purpose.kind !== "guard-check") return;
  if (!outcome.ok) return log(c, "debug", "could not read our key after the guard", outcome.error);
  const held = (outcome.value as StateEventSnapshot | undefined)?.content;
  if (!held || !task.purpose.contents.some((w) => sameContent(w, held))) return;
  cleanUp(c);
}

function cleanUp(c: Ctx): void {
  log(c, "warn", "a membership write of ours may have landed after we left, with no guard left: writing {}");
  startTask(c, {
    purpose: { kind: "guard-cleanup" },
    request: writeRequest(c, undefined, leaveContent(c, undefined), stickyDurationMs(c)),
    op: "send-state",
    scope: "manager",
    retry: "retryable",
    capMs: c.s.timing.retryMaxMs,
    timeoutMs: c.s.timing.stateRequestTimeoutMs,
    until: c.now + LATE_WRITE_HORIZON_MS,
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
