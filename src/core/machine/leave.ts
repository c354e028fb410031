/**
 * The leave job: stop the call, let requests in flight settle (so our leave lands after them), learn any
 * delay id still on its way, then fire the delayed leave (one request) or, if it is gone, write `{}`.
 */
import { resetDelegation } from "./delegation.js";
import type { LeaveResult } from "../../manager/state.js";
import {
  emitError,
  rejoinRetryCapMs,
  setDelayId,
  setOwnMembership,
  setProbablyLeft,
  setState,
  toError,
  type Ctx,
} from "./context.js";
import { endCall, stopIdleLane } from "./calls.js";
import { lateCancelsRunning, sweepOrphans } from "./orphans.js";
import { abortIdleTasks, startTask } from "./tasks.js";
import type { CallState, Outcome, Task } from "./types.js";
import { startCall } from "./join.js";
import { lateWritesUntil, onGuardDone, startGuard } from "./lateWrites.js";
import { isSticky, leaveContent, stickyDurationMs, writeRequest } from "./format.js";

export function startLeaveJob(c: Ctx, call: CallState, quiet = false): void {
  const wasFailed = c.s.out.state.kind === "failed";
  endCall(c, call, true);
  if (!quiet && (!wasFailed || !c.s.wantJoined)) setState(c, { kind: "leaving" });
  c.s.leave = quiet ? { step: "settle", quiet } : { step: "settle" };
  c.s.leaveCall = call;
  progressLeave(c);
}

/** Move the leave job on as far as it can go now; called after anything it may be waiting for. */
export function progressLeave(c: Ctx): void {
  const job = c.s.leave;
  const call = c.s.leaveCall;
  if (!job || !call) return;
  for (;;) {
    switch (job.step) {
      case "settle":
        // Requests in flight settle first (each has a local timeout); the heartbeat goes on meanwhile,
        // or a slow write could land after our delayed leave fired.
        if (call.scheduling || call.writer !== undefined) return;
        job.step = "late-cancels";
        // Schedules answered after their timeout are being cancelled: wait for that, within bounds.
        job.wakeAt = lateCancelsRunning(c) ? c.now + c.s.timing.stateRequestTimeoutMs : undefined;
        continue;
      case "late-cancels":
        if (job.wakeAt !== undefined && c.now < job.wakeAt && lateCancelsRunning(c)) return;
        job.wakeAt = undefined;
        job.step = "heartbeat";
        call.heartbeatStopped = true;
        stopIdleLane(call);
        abortIdleTasks(c);
        continue;
      case "heartbeat":
        // Wait for a restart (or a lookup after one) in flight.
        if (call.lane.k === "restart" || call.lane.k === "lookup" || call.lane.k === "read-replaced") return;
        if (call.lane.k === "schedule" && call.lane.reqId !== undefined) return;
        job.step = "sweep";
        sweepOrphans(c, call.membershipAttempted ? call.delayId : undefined);
        continue;
      case "sweep":
        // A sweep asked for while one ran runs once more: wait for that one too, or an orphan found by
        // it would still be pending when we say we left.
        // (A sweep only for a dead predecessor's leftovers is not ours to wait for.)
        if (c.s.sweep && (!c.s.sweep.predecessors || c.s.sweepAgain)) return;
        return decide(c, call);
      case "orphans":
        // Until the window's end, or a sweep that listed closes it.
        if (job.wakeAt !== undefined && c.now < c.s.orphanWindowUntil) return;
        job.wakeAt = undefined;
        return finish(c, job.result!);
      default:
        return;
    }
  }
}

/** Everything settled: cancel (nothing written), fire the delayed leave, or write {}. */
function decide(c: Ctx, call: CallState): void {
  const job = c.s.leave!;
  const delayId = call.delayId;
  job.delayId = delayId;
  if (!call.membershipAttempted) {
    if (!delayId) return finish(c, { status: "left", via: "nothing-to-leave" });
    // Only success or a real "gone" ends this: a refused cancel (a proxy's 404, a 403) leaves the
    // delayed leave pending, to fire into our next membership. Retried with backoff.
    job.step = "cancel";
    startTask(c, {
      intent: true,
      purpose: { kind: "leave-cancel" },
      request: { kind: "delayed", delayId, action: "cancel" },
      op: "cancel",
      scope: "manager",
      retry: "not-gone",
      capMs: c.s.timing.retryMaxMs,
    });
    return;
  }
  if (!delayId) return writeEmpty(c);
  // Retry only answers of a busy or unreachable server; anything else (gone, refused, an answer we do
  // not recognise) falls back to writing {} at once (core/policy.ts).
  job.step = "send";
  startTask(c, {
    intent: true,
    purpose: { kind: "leave-send" },
    request: { kind: "delayed", delayId, action: "send" },
    op: "send-leave",
    scope: "manager",
    retry: "leave-send",
    capMs: c.s.timing.retryMaxMs,
  });
}

function writeEmpty(c: Ctx): void {
  c.s.leave!.step = "empty";
  const call = c.s.leaveCall;
  startTask(c, {
    intent: !c.s.leave?.quiet,
    purpose: { kind: "leave-empty" },
    // `{}` at our key, or a sticky event with only our slot and sticky key (format.ts).
    request: writeRequest(c, call, leaveContent(c, call), stickyDurationMs(c)),
    op: "send-state",
    scope: "manager",
    retry: "retryable",
    capMs: c.s.timing.retryMaxMs,
    timeoutMs: c.s.timing.stateRequestTimeoutMs,
  });
}

/** A task of the leave job ended. */
export function onLeaveTaskDone(c: Ctx, task: Task, outcome: Outcome): void {
  const job = c.s.leave;
  if (!job) return;
  if (!outcome.ok && outcome.aborted && !outcome.deferred) return finish(c, { status: "disposed" });
  switch (task.purpose.kind) {
    case "leave-cancel":
      return finish(c, { status: "left", via: "delayed-event-cancelled" });
    case "leave-send":
      if (outcome.ok) return finish(c, { status: "left", via: "delayed-event-sent" });
      if (outcome.cls.kind !== "gone") emitError(c, toError(outcome.cls, outcome.error, "send-leave"));
      return writeEmpty(c);
    case "leave-empty": {
      if (!outcome.ok && job.quiet) {
        // Cleaning up after a failure: the call already says `failed`; report, leave it at that.
        const error = toError(outcome.cls, outcome.error, "send-state");
        emitError(c, error);
        return finish(c, { status: "failed", error });
      }
      if (!outcome.ok) {
        // Refused (403: no longer in the room) or rejected: say so, with the error.
        const error = toError(outcome.cls, outcome.error, "send-state");
        emitError(c, error);
        setState(c, { kind: "failed", error });
        // The delayed leave stays: its firing is now the only way our membership goes. But a later
        // join() must cancel it first, or it fires into the new membership.
        if (job.delayId) {
          c.s.staleDelayId = job.delayId;
          c.s.staleMemberId = c.s.leaveCall?.memberId;
        }
        return finish(c, { status: "failed", error });
      }
      if (!job.delayId) return finish(c, { status: "left", via: "state-written" });
      // The send failed without a "gone": our delayed leave may still be pending. It would only write
      // {} again, but nothing of ours should stay behind: cancel it while it can still fire.
      job.step = "cancel-after-empty";
      startTask(c, {
        purpose: { kind: "leave-cancel-after-empty" },
        request: { kind: "delayed", delayId: job.delayId, action: "cancel" },
        op: "cancel",
        scope: "manager",
        retry: "not-gone",
        capMs: rejoinRetryCapMs(c.s),
        until: c.now + c.s.timing.delayMs + c.s.timing.requestTimeoutMs,
      });
      return;
    }
    case "leave-cancel-after-empty":
      return finish(c, { status: "left", via: "state-written" });
    case "late-write-guard": {
      const result = onGuardDone(c, task, outcome);
      return result ? finish(c, result) : undefined;
    }
    default:
      return;
  }
}

function finish(c: Ctx, result: LeaveResult): void {
  const job = c.s.leave;
  // Our sweep could not list our delayed events (refused, failing) while a schedule of unknown outcome
  // may have left one we cannot name: it fires `{}` at our key (over our own `{}`, or over nothing)
  // by the orphan window's end. Say `left` once that is past, not while something of ours is pending
  // (found by the randomized invariants: a schedule answered with an unusable body, listings refused,
  // and "nothing-to-leave" with the delayed leave it created still pending: counterexample L6 in
  // test/unit/invariants.test.ts). A join() ends the wait:
  // the new call's writes wait for the window themselves (writeIsProtected).
  if (
    result.status === "left" &&
    job &&
    job.step !== "guard" &&
    job.step !== "orphans" &&
    !c.s.wantJoined &&
    !c.s.disposed &&
    c.env.canList &&
    c.now < c.s.orphanWindowUntil
  ) {
    job.step = "orphans";
    job.wakeAt = c.s.orphanWindowUntil;
    job.result = result;
    return;
  }
  // A membership write of ours may still land after this leave: keep a delayed {} pending until it can
  // no longer (lateWrites.ts); the leave resolves once that guard is in place.
  // (Not when the app already joins again in the state format: our next membership replaces whatever
  // lands at our key. In the sticky format the next call has a fresh key: a late write of this one would
  // stay up for its whole stickiness, found by the model test.)
  const guardUntil =
    result.status === "left" && job && job.step !== "guard" && (!c.s.wantJoined || isSticky(c))
      ? lateWritesUntil(c)
      : undefined;
  if (job && guardUntil !== undefined && guardUntil > c.now && !c.s.disposed) {
    job.step = "guard";
    return startGuard(c, guardUntil, result);
  }
  if (result.status === "left") {
    setDelayId(c, undefined);
    setOwnMembership(c, undefined);
    setProbablyLeft(c, false);
    if (!c.s.wantJoined && !c.s.leave?.quiet) setState(c, { kind: "left", reason: c.s.leaveReason });
  }
  const call = c.s.leaveCall;
  // The leave is done: nothing holds a delegated leave any more (the normal timing, for the next call).
  if (call) resetDelegation(c, call);
  c.s.leave = undefined;
  c.s.leaveCall = undefined;
  if (call && c.s.call === call) c.s.call = undefined;
  c.out.push({ type: "leave-done", result });
  if (c.s.disposed) return;
  if (c.s.wantJoined) startCall(c);
}

/** join() while a leave waits out an orphan window: the leave is done; the new call starts then. */
export function endOrphanWait(c: Ctx): boolean {
  const job = c.s.leave;
  if (job?.step !== "orphans") return false;
  job.wakeAt = undefined;
  // A sweep of a leave with nothing written spares what it cannot name (it may be another tab's delayed
  // leave, orphans.ts); joining again, we cover our key ourselves: list once more, and cancel them, before
  // saying left (said at once, with one still pending: found by the randomized invariants).
  if (c.env.canList && c.now < c.s.orphanWindowUntil && !c.s.sweep) {
    job.step = "sweep";
    sweepOrphans(c, undefined);
    progressLeave(c);
    return true;
  }
  finish(c, job.result!);
  return true;
}

/** dispose(): a leave job still running ends as "disposed". */
export function abortLeave(c: Ctx): void {
  if (c.s.leave) finish(c, { status: "disposed" });
}

/** When the leave job wants to be woken. */
export function leaveWakeAt(c: Ctx): number | undefined {
  return c.s.leave?.wakeAt;
}
