/**
 * The delayed-leave lane of a call: schedule the delayed leave (first, before any membership), restart
 * it every heartbeat interval, and recover when the server says it is gone; degraded mode when the
 * server has no delayed events. See README "How it works".
 */
import { classifyError, MembershipError, type ErrorClass } from "../../errors.js";
import { sameContent } from "../../membership/content.js";
import type { DelayedEventStatus } from "../../backends/types.js";
import { MIN_DELAY_MS, resolveTiming } from "../config.js";
import { goneCause, recoveryPauseMs } from "../decisions.js";
import { lostDelayedLeaveCause } from "../lostDelayedLeave.js";
import {
  isUnrecognised,
  laneWaitLimits,
  onRestartFailure,
  onScheduleFailure,
  retryWaitMs,
} from "../policy.js";
import {
  delayedTimeoutMs,
  emitError,
  log,
  nextId,
  rejoinRetryCapMs,
  setDelayId,
  setOwnMembership,
  setProbablyLeft,
  setState,
  toError,
  updateSupport,
  type Ctx,
} from "./context.js";
import { checkExpiry, endCall, failCall } from "./calls.js";
import { onScheduleSettled, sweepOrphans } from "./orphans.js";
import { observeLink, retimeLink, spend } from "./resources.js";
import { startTask, waitBeforeRetry } from "./tasks.js";
import { resumeWrites, wantWrite, writeMembership } from "./writes.js";
import type { CallState, OpenSchedule, Outcome, Task } from "./types.js";

const MAX_DELAY_LOWERINGS = 8;

/** Start the lane of a new call: first cancel a failed leave's delayed leave, then schedule ours. */
export function startDelayedLane(c: Ctx, call: CallState): void {
  const stale = c.s.staleDelayId;
  if (!stale) return startSchedule(c, call, "join");
  // It fires within a delay from now at the latest: after that a cancel is moot.
  c.s.staleDelayId = undefined;
  call.lane = { k: "cancel-stale" };
  startTask(c, {
    purpose: { kind: "cancel-stale" },
    request: { kind: "delayed", delayId: stale, action: "cancel" },
    op: "cancel",
    scope: "call",
    callId: call.id,
    retry: "not-gone",
    capMs: rejoinRetryCapMs(c.s),
    until: c.now + c.s.timing.delayMs + c.s.timing.requestTimeoutMs,
  });
}

export function onStaleCancelled(c: Ctx, call: CallState | undefined): void {
  if (!call || call.ended || call.lane.k !== "cancel-stale") return;
  startSchedule(c, call, "join");
}

// ---------------------------------------------------------------------------------------------------
// Scheduling
// ---------------------------------------------------------------------------------------------------

function startSchedule(c: Ctx, call: CallState, after: "join" | "rearm" | "recover"): void {
  call.lane = { k: "schedule", after, step: 0 };
  scheduleAttempt(c, call);
}

/** Take a budget token and send one schedule request (or wait for the token). */
function scheduleAttempt(c: Ctx, call: CallState): void {
  const lane = call.lane;
  if (lane.k !== "schedule") return;
  if (call.ended) {
    call.lane = { k: "stopped" };
    return;
  }
  const waitMs = spend(c);
  if (waitMs > 0) {
    lane.wakeAt = c.now + waitMs;
    lane.reqId = -1; // marks "waiting for the budget": the wake sends without another token
    return;
  }
  sendSchedule(c, call);
}

/**
 * One schedule request. It is not idempotent (every PUT creates a new delayed event), so it is not
 * aborted at our local timeout: the driver keeps listening, an id that arrives late is cancelled, and
 * an attempt whose outcome we never learn gets our membership re-asserted after it could have fired.
 */
function sendSchedule(c: Ctx, call: CallState): void {
  const lane = call.lane;
  if (lane.k !== "schedule") return;
  const reqId = nextId(c.s);
  const delayMs = c.s.timing.delayMs;
  lane.reqId = reqId;
  lane.wakeAt = undefined;
  call.scheduling = true;
  c.s.open.push({ reqId, callId: call.id, sentAt: c.now, delayMs, late: false });
  c.out.push({
    type: "send",
    reqId,
    request: { kind: "schedule", delayMs },
    timeoutMs: delayedTimeoutMs(c.s),
    keepLate: true,
  });
}

/** The schedule request `open` answered in time, or our local timeout passed (`timedOut`). */
export function onScheduleAnswer(
  c: Ctx,
  open: OpenSchedule,
  ok: boolean,
  value: unknown,
  error: unknown,
  timedOut: boolean,
): void {
  const call =
    c.s.call?.id === open.callId ? c.s.call : c.s.leaveCall?.id === open.callId ? c.s.leaveCall : undefined;
  if (call && call.lane.k === "schedule" && call.lane.reqId === open.reqId) call.lane.reqId = undefined;
  if (call) call.scheduling = false;
  let result: Outcome;
  if (ok) {
    onScheduleSettled(c, open, true, value);
    result = { ok: true, value, sentAt: open.sentAt };
  } else {
    const cls = classifyError(error, "schedule-leave", c.now);
    if (timedOut) {
      observeLink(c, open.sentAt, true);
      // A delay after the send, its delayed leave (if any) has fired: stop waiting for the answer then.
      open.late = true;
      open.abortAt = open.sentAt + open.delayMs;
    } else onScheduleSettled(c, open, false, undefined);
    // The request may have reached the server and its delayed leave may fire: re-assert whatever
    // membership is current then (possibly a later call's), and look for the orphan.
    if (cls.kind === "network" || cls.kind === "server" || cls.kind === "unknown") {
      const window = open.sentAt + open.delayMs + delayedTimeoutMs(c.s);
      c.s.orphanWindowUntil = Math.max(c.s.orphanWindowUntil, window);
      sweepOrphans(c, c.s.call?.delayId);
      const reasserts = (c.s.reassertAt ??= []);
      reasserts.push(c.now + open.delayMs + delayedTimeoutMs(c.s));
      // After our timeout the request may still reach the server, up to its abort (`abortAt`): a delayed
      // leave it creates then fires up to a delay later, after the re-assert above. Re-assert once more
      // after that (found by the model test, test/unit/machine.model.test.ts: a schedule processed late
      // with its answer lost wiped our membership for good while we reported joined).
      if (timedOut) reasserts.push(open.abortAt! + open.delayMs + delayedTimeoutMs(c.s));
    }
    result = { ok: false, cls, error, timedOut };
  }
  if (call) onScheduleResult(c, call, result);
}

function onScheduleResult(c: Ctx, call: CallState, result: Outcome): void {
  const lane = call.lane;
  // Record an id even when the call ended meanwhile: the leave job must send or cancel it.
  if (result.ok) call.delayId = result.value as string;
  if (lane.k !== "schedule") return;
  if (call.ended) {
    call.lane = { k: "stopped" };
    return;
  }
  if (result.ok) {
    call.unrecognisedSchedules = 0;
    setDelayId(c, result.value as string);
    markArmed(c, call, result.sentAt);
    updateSupport(c, { delayedEvents: true });
    sweepOrphans(c, result.value as string);
    return afterArmed(c, call, lane.after);
  }
  const { cls } = result;
  const action = onScheduleFailure(cls, call.unrecognisedSchedules);
  if (isUnrecognised(cls)) call.unrecognisedSchedules++;
  if (action === "lower-delay" && lowerDelay(c, call, cls.kind === "max-delay" ? cls.maxDelayMs : undefined))
    return scheduleAttempt(c, call);
  if (action === "lower-delay" || action === "degrade") {
    if (isUnrecognised(cls)) emitError(c, toError(cls, result.error, "schedule-leave"));
    enterDegraded(
      c,
      call,
      cls.kind === "unsupported"
        ? cls.reason
        : isUnrecognised(cls)
          ? `unrecognised answers to scheduling the delayed leave (${call.unrecognisedSchedules} in a row)`
          : "no usable delay",
      isUnrecognised(cls),
    );
    return afterArmed(c, call, lane.after);
  }
  if (action === "fail") {
    call.lane = { k: "stopped" };
    return failCall(c, call, toError(cls, result.error, "schedule-leave"));
  }
  // As in tasks: only answered failures grow the backoff exponent.
  const timedOut = !!result.timedOut && !c.s.link?.tooSlow;
  const step = timedOut ? lane.step : lane.step++;
  const waitMs = waitBeforeRetry(
    c,
    call,
    "delayed",
    cls,
    result.error,
    step,
    "schedule-leave",
    rejoinRetryCapMs(c.s),
    !!result.timedOut,
  );
  if (waitMs === undefined || call.ended) {
    if (call.lane === lane) call.lane = { k: "stopped" };
    return;
  }
  if (waitMs <= 0) return scheduleAttempt(c, call);
  lane.wakeAt = c.now + waitMs;
}

/** The schedule lane's wait (budget or backoff) is over. */
function onScheduleWake(c: Ctx, call: CallState): void {
  const lane = call.lane;
  if (lane.k !== "schedule") return;
  const budgetWait = lane.reqId === -1;
  lane.wakeAt = undefined;
  lane.reqId = undefined;
  if (call.ended) {
    call.lane = { k: "stopped" };
    return;
  }
  if (budgetWait) sendSchedule(c, call);
  else scheduleAttempt(c, call);
}

/** A delayed leave is armed (or we are degraded): what the caller of the schedule does next. */
function afterArmed(c: Ctx, call: CallState, after: "join" | "rearm" | "recover"): void {
  if (after === "join") {
    setState(c, { kind: "joining", step: "membership" });
    writeMembership(c, call, "fresh");
  } else if (after === "rearm") {
    call.rearming = false;
    if (call.delayed !== "armed" || call.ended) return;
    log(c, "info", "a delayed leave is armed again; leaving degraded mode");
    // The normal expiry window from now on.
    writeMembership(c, call, "refresh");
  } else {
    // Never wait for the state send here: the new delayed leave needs its heartbeat.
    resumeWrites(c, call);
  }
  if (call.delayed === "armed" && !call.ended) enterBeat(c, call, 0);
}

function lowerDelay(c: Ctx, call: CallState, serverMaxMs: number | undefined): boolean {
  const current = c.s.timing.delayMs;
  const candidate = serverMaxMs ?? c.s.knownMaxDelayMs;
  const next = candidate !== undefined && candidate < current ? candidate : Math.floor(current / 2);
  if (next < MIN_DELAY_MS || ++call.lowerings > MAX_DELAY_LOWERINGS) return false;
  c.s.timing = resolveTiming(c.env.timingOptions, next);
  retimeLink(c);
  log(c, "warn", `server refused a ${current} ms delay; using ${next} ms`);
  updateSupport(c, { delayMs: next, maxDelayMs: candidate ?? c.s.out.support.maxDelayMs });
  emitError(c, new MembershipError(`delay lowered to ${next} ms`, "max-delay-lowered", "schedule-leave"));
  return true;
}

export function markArmed(c: Ctx, call: CallState, sentAt: number): void {
  call.delayed = "armed";
  call.armedAt = sentAt;
  call.failingDelayedSince = undefined;
  call.leaveDeadline = sentAt + c.s.timing.delayMs;
  if (call.ended) return; // leaving: just keep the delayed leave alive
  call.watchLeave = true;
  // A schedule or restart that succeeds after our membership landed proves we are in the call
  // (unless that membership has expired for others: only a write repairs that).
  if (call.lastSent && !call.expired) {
    setProbablyLeft(c, false);
    setState(c, { kind: "joined", delayedLeave: true });
  }
  // Writes deferred while the delayed leave was not known to be alive can go now.
  resumeWrites(c, call);
}

// ---------------------------------------------------------------------------------------------------
// Degraded mode
// ---------------------------------------------------------------------------------------------------

function enterDegraded(c: Ctx, call: CallState, reason: string, retryLater = false): void {
  log(c, "warn", `joining without a delayed leave: ${reason}`);
  call.delayed = "none";
  call.rearming = false;
  updateSupport(c, { delayedEvents: false, reason });
  emitError(c, new MembershipError(reason, "delayed-events-unsupported", "schedule-leave"));
  // Answers we did not recognise say nothing about support: try again later, as a heartbeat would.
  call.lane = retryLater ? { k: "degraded", rearmAt: c.now + c.s.timing.retryMaxMs } : { k: "degraded" };
  resumeWrites(c, call);
}

/**
 * Degraded after unrecognised answers: schedule a delayed leave again. Meanwhile the membership keeps
 * its short degraded expiry and its refreshes (`rearming`); once armed, the heartbeat takes over.
 */
function rearm(c: Ctx, call: CallState): void {
  if (call.ended || call.delayed !== "none") return;
  call.delayed = "pending";
  call.rearming = true;
  call.unrecognisedSchedules = 0;
  startSchedule(c, call, "rearm");
}

// ---------------------------------------------------------------------------------------------------
// Heartbeat: restart the delayed leave every interval, counted from the send of the last success.
// ---------------------------------------------------------------------------------------------------

function enterBeat(c: Ctx, call: CallState, refusals: number): void {
  if (call.heartbeatStopped || call.delayed !== "armed") {
    call.lane = { k: "stopped" };
    return;
  }
  const dueAt = call.armedAt! + c.s.timing.heartbeatIntervalMs;
  call.lane = { k: "beat", refusals, wakeAt: dueAt };
  if (dueAt <= c.now) beat(c, call);
}

/** Restart now (after a membership write: servers before Synapse 1.127 cancel on our own writes). */
export function wakeHeartbeat(c: Ctx, call: CallState): void {
  if (call.lane.k === "beat") beat(c, call);
}

function beat(c: Ctx, call: CallState): void {
  const lane = call.lane;
  if (lane.k !== "beat") return;
  if (call.heartbeatStopped) {
    call.lane = { k: "stopped" };
    return;
  }
  checkExpiry(c, call);
  const task = startTask(c, {
    purpose: { kind: "restart" },
    request: { kind: "delayed", delayId: call.delayId!, action: "restart" },
    op: "restart",
    scope: "heartbeat",
    callId: call.id,
    retry: "restart",
    capMs: rejoinRetryCapMs(c.s),
    lane: "delayed",
  });
  call.lane = { k: "restart", refusals: lane.refusals, taskId: task.id };
}

export function onRestartDone(c: Ctx, call: CallState | undefined, task: Task, outcome: Outcome): void {
  if (!call || call.lane.k !== "restart" || call.lane.taskId !== task.id) return;
  const refusals = call.lane.refusals;
  if (call.heartbeatStopped) {
    call.lane = { k: "stopped" };
    return;
  }
  if (outcome.ok) {
    markArmed(c, call, outcome.sentAt);
    return enterBeat(c, call, 0);
  }
  if (outcome.aborted) {
    call.lane = { k: "stopped" };
    return;
  }
  if (call.ended) {
    // Leaving: the delayed leave is gone, so the leave job will write {} itself.
    if (outcome.cls.kind === "gone") call.delayId = undefined;
    call.lane = { k: "stopped" };
    return;
  }
  const { cls } = outcome;
  if (cls.kind === "unsupported") {
    // The delayed leave we armed can no longer be restarted and will fire: keep the membership (short
    // expiry from now on) and write it again once that leave is past.
    const firesBy = call.armedAt! + c.s.timing.delayMs + delayedTimeoutMs(c.s);
    call.watchLeave = false;
    enterDegraded(c, call, cls.reason);
    setProbablyLeft(c, false);
    writeMembership(c, call, "refresh");
    call.refreshAfterFireAt = firesBy;
    return;
  }
  if (onRestartFailure(cls) === "back-off") {
    // Not a real "gone": our delayed leave may well be alive, and a new one plus a rewrite would only
    // abandon it. Report, wait (up to a heartbeat interval), and probe again.
    emitError(c, toError(cls, outcome.error, "restart"));
    const waitMs = retryWaitMs({
      cls,
      localTimeout: false,
      attempt: refusals,
      baseMs: c.s.timing.retryBaseMs,
      ...laneWaitLimits("refusal", c.s.timing),
      random: c.random,
    });
    call.lane = { k: "refused", refusals: refusals + 1, wakeAt: c.now + waitMs };
    return;
  }
  // gone (404 M_NOT_FOUND, 409): the server no longer holds our delayed leave, or says it is done.
  recover(c, call, cls);
}

// ---------------------------------------------------------------------------------------------------
// Recovery of a delayed leave the server says is gone.
// ---------------------------------------------------------------------------------------------------

function recover(c: Ctx, call: CallState, cls: ErrorClass): void {
  // Where the server can say what became of it (MSC4140 as merged: the 409's lookup, or `GET` one),
  // believe the server. Otherwise judge by time, not by the probablyLeft flag: after a rejoin the flag
  // stays up until a restart succeeds, and on Synapse < 1.127 our own fresh write cancels the new
  // delayed leave. Past the due time the verdict is "fired" anyway, so only a "gone" before it costs
  // a lookup: a recovery after an outage must not wait a round trip for it.
  const byTime = goneCause(c.now, call.armedAt!, c.s.timing.delayMs);
  if (cls.kind === "gone" && cls.finalised) return judge(c, call, cls.finalised, byTime);
  if (byTime !== "lost" || !c.env.canLookUp || !call.delayId) return judge(c, call, undefined, byTime);
  call.lane = { k: "lookup", byTime };
  startTask(c, {
    purpose: { kind: "lookup" },
    request: { kind: "lookup", delayId: call.delayId },
    op: "restart",
    scope: "manager",
    callId: call.id,
    retry: "once",
    capMs: 0,
    measures: false,
  });
}

export function onLookupDone(c: Ctx, call: CallState | undefined, outcome: Outcome): void {
  if (!call || call.lane.k !== "lookup") return;
  const { byTime } = call.lane;
  if (call.ended || call.heartbeatStopped) {
    call.lane = { k: "stopped" };
    return;
  }
  if (!outcome.ok)
    log(c, "debug", "the delayed leave could not be looked up; judging by time", outcome.error);
  judge(c, call, outcome.ok ? (outcome.value as DelayedEventStatus) : undefined, byTime);
}

function judge(
  c: Ctx,
  call: CallState,
  lookup: DelayedEventStatus | undefined,
  byTime: "fired" | "lost",
): void {
  const cause = lostDelayedLeaveCause(lookup, byTime);
  if (cause === "pending") {
    // The server still holds it: that "gone" was wrong. Keep the id (a replacement would leave it to
    // fire) and probe it again after a pause: the heartbeat is overdue by now.
    log(c, "warn", "a restart said our delayed leave was gone, but the server still holds it");
    emitError(
      c,
      new MembershipError("the server answered 'gone' for a pending delayed leave", "unknown", "restart"),
    );
    const pause = Math.max(c.s.timing.retryBaseMs, c.s.timing.heartbeatIntervalMs / 4);
    call.lane = { k: "pending-pause", wakeAt: c.now + pause };
    return;
  }
  const fired = cause === "fired";
  const replaced = call.delayId;
  call.delayId = undefined;
  call.delayed = "pending";
  call.watchLeave = false;
  setDelayId(c, undefined);
  if (fired) {
    setProbablyLeft(c, true);
    // The membership is gone from the server; we are not joined until a fresh one lands.
    call.lastSent = undefined;
    setOwnMembership(c, undefined);
    if (!c.env.autoRejoin) {
      log(c, "warn", "the server fired our delayed leave; autoRejoin is off, so we stay out");
      return stayOut(c, call, "delayed-leave-fired");
    }
    setState(c, { kind: "reconnecting", reason: "delayed-leave-fired", probablyLeft: true });
    return recoverAfterVerdict(c, call, replaced, true);
  }
  if (!c.env.canRead || !call.lastSent) return lostNotReplaced(c, call, replaced);
  // Another user may have written our key (Synapse then cancels our delayed leave): read it.
  call.lane = { k: "read-replaced", replaced };
  startTask(c, {
    purpose: { kind: "read-replaced" },
    request: { kind: "read" },
    op: "restart",
    scope: "manager",
    callId: call.id,
    retry: "once",
    capMs: 0,
    measures: false,
  });
}

export function onReadReplacedDone(c: Ctx, call: CallState | undefined, outcome: Outcome): void {
  if (!call || call.lane.k !== "read-replaced") return;
  const { replaced } = call.lane;
  if (call.ended || call.heartbeatStopped) {
    call.lane = { k: "stopped" };
    return;
  }
  const current = outcome.ok ? ((outcome.value as Record<string, unknown> | undefined) ?? {}) : undefined;
  const byOthers =
    current !== undefined && call.lastSent !== undefined && !sameContent(current, call.lastSent);
  if (!byOthers) return lostNotReplaced(c, call, replaced);
  call.lastSent = undefined;
  setOwnMembership(c, undefined);
  emitError(
    c,
    new MembershipError(
      "our membership was removed or replaced by someone else",
      "membership-removed",
      "restart",
    ),
  );
  if (!c.env.autoRejoin) return stayOut(c, call, "membership-removed");
  setState(c, { kind: "reconnecting", reason: "membership-removed", probablyLeft: false });
  recoverAfterVerdict(c, call, replaced, false);
}

function lostNotReplaced(c: Ctx, call: CallState, replaced: string | undefined): void {
  emitError(
    c,
    new MembershipError("the delayed leave is gone; scheduling a new one", "delayed-leave-lost", "restart"),
  );
  setState(c, { kind: "reconnecting", reason: "delayed-leave-lost", probablyLeft: false });
  recoverAfterVerdict(c, call, replaced, false);
}

/** With autoRejoin off: the call is over, and we stay out. */
function stayOut(c: Ctx, call: CallState, reason: "delayed-leave-fired" | "membership-removed"): void {
  c.s.wantJoined = false;
  call.lane = { k: "stopped" };
  endCall(c, call);
  if (c.s.call === call) c.s.call = undefined;
  setState(c, { kind: "left", reason });
}

function recoverAfterVerdict(c: Ctx, call: CallState, replaced: string | undefined, fired: boolean): void {
  // Whatever write was held back goes out as one write of the right kind once the new delayed leave
  // is armed (markArmed resumes it): never a held-back refresh with the old created_ts first.
  wantWrite(call, call.lastSent ? "reassert" : "fresh");
  // Recoveries are rate-bounded: a server that loses every delayed leave at once gets one new
  // schedule per heartbeat interval from us, not one per round trip.
  const pause = recoveryPauseMs(c.now, call.lastRecoveryAt, c.s.timing.heartbeatIntervalMs);
  call.lastRecoveryAt = c.now + pause;
  if (pause > 0) {
    call.lane = { k: "recover-pause", wakeAt: c.now + pause, replaced, fired };
    return;
  }
  afterRecoverPause(c, call, replaced, fired);
}

function afterRecoverPause(c: Ctx, call: CallState, replaced: string | undefined, fired: boolean): void {
  // A "gone" we were wrong about would leave the replaced delayed leave to fire later: cancel it.
  // Retried (as the stale delayed leave's cancel) until it has surely fired: one cancel lost on the way
  // let it fire `{}` over the membership we write next, while we reported joined (found by the model
  // test, test/unit/machine.model.test.ts). Only a "gone" ends it early.
  if (!fired && replaced)
    startTask(c, {
      purpose: { kind: "cancel-replaced", firesFrom: call.armedAt! + c.s.timing.delayMs },
      request: { kind: "delayed", delayId: replaced, action: "cancel" },
      op: "cancel",
      scope: "manager",
      retry: "not-gone",
      capMs: rejoinRetryCapMs(c.s),
      until: c.now + c.s.timing.delayMs + c.s.timing.requestTimeoutMs,
      measures: false,
    });
  if (call.ended) {
    call.lane = { k: "stopped" };
    return;
  }
  startSchedule(c, call, "recover");
}

/**
 * The cancel of a replaced delayed leave ended. Confirmed, or "gone" before it could fire: it never
 * fires. Otherwise (not confirmed within its window, or "gone" once it could have fired) it may have
 * fired `{}` over the membership written since: write it again (found by the model test,
 * test/unit/machine.model.test.ts: a 429 held the cancel back past the replaced one's due time).
 */
export function onReplacedCancelDone(c: Ctx, task: Task, outcome: Outcome): void {
  if (outcome.ok || task.purpose.kind !== "cancel-replaced") return;
  log(c, "debug", "the replaced delayed leave could not be cancelled (probably gone)", outcome.error);
  if (outcome.aborted && !outcome.deferred) return;
  if (!outcome.deferred && c.now < task.purpose.firesFrom) return;
  const call = c.s.call;
  if (call && !call.ended && call.lastSent) writeMembership(c, call, "reassert");
}

// ---------------------------------------------------------------------------------------------------
// Waking
// ---------------------------------------------------------------------------------------------------

/** When the lane wants to be woken (undefined: it waits for an answer, or nothing). */
export function laneWakeAt(call: CallState): number | undefined {
  const lane = call.lane;
  switch (lane.k) {
    case "schedule":
    case "beat":
    case "refused":
    case "pending-pause":
    case "recover-pause":
      return lane.wakeAt;
    case "degraded":
      return lane.rearmAt;
    default:
      return undefined;
  }
}

/** The lane's time has come. */
export function onLaneWake(c: Ctx, call: CallState): void {
  const lane = call.lane;
  switch (lane.k) {
    case "schedule":
      return onScheduleWake(c, call);
    case "beat":
      return beat(c, call);
    case "refused":
    case "pending-pause":
      return enterBeat(c, call, lane.k === "refused" ? lane.refusals : 0);
    case "recover-pause":
      if (call.ended) {
        call.lane = { k: "stopped" };
        return;
      }
      return afterRecoverPause(c, call, lane.replaced, lane.fired);
    case "degraded":
      call.lane = { k: "degraded" };
      return rearm(c, call);
    default:
      return;
  }
}
