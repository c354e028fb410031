/**
 * The heartbeat: restart the delayed leave every interval (fixed, or adaptive to the link: see
 * core/heartbeatTiming.ts), counted from the send of the last success;
 * on a refusal back off and probe the same delayed leave again; on a real "gone", recover (recovery.ts).
 */
import { laneWaitLimits, onRestartFailure, retryWaitMs } from "../policy.js";
import {
  delayedTimeoutMs,
  emitError,
  rejoinRetryCapMs,
  setProbablyLeft,
  toError,
  type Ctx,
} from "./context.js";
import { checkExpiry } from "./calls.js";
import { startTask } from "./tasks.js";
import { resumeWrites, writeMembership } from "./writes.js";
import type { CallState, Outcome, Task } from "./types.js";
import { enterDegraded, markArmed } from "./schedule.js";
import { recover } from "./recovery.js";
import { heartbeatTimingOf } from "./resources.js";
import { onBeatIdle, onDelegatedRestart, swapIfReady } from "./delegation.js";

export function enterBeat(c: Ctx, call: CallState, refusals: number): void {
  if (call.heartbeatStopped || call.delayed !== "armed") {
    call.lane = { k: "stopped" };
    return;
  }
  // Fixed, or adaptive to the link's round trip (core/heartbeatTiming.ts): from the last success's send.
  const dueAt = call.armedAt! + heartbeatTimingOf(c.s).intervalMs;
  call.lane = { k: "beat", refusals, wakeAt: dueAt };
  // The idle moment a change of holder waits for (delegation.ts); it may swap in another delayed leave.
  onBeatIdle(c, call);
  const lane = call.lane;
  if (lane.k === "beat" && lane.wakeAt !== undefined && lane.wakeAt <= c.now) beat(c, call);
}

/** Restart now (after a membership write: servers before Synapse 1.127 cancel on our own writes). */
export function wakeHeartbeat(c: Ctx, call: CallState): void {
  if (call.lane.k === "beat") beat(c, call);
}

export function beat(c: Ctx, call: CallState): void {
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
    onDelegatedRestart(call);
    enterBeat(c, call, 0);
    // Writes held while the restart was on its way go now (writeIsProtected; markArmed ran while the
    // lane still said "restart").
    return resumeWrites(c, call);
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
    // A change of holder that was waiting for this restart goes now (delegation.ts).
    swapIfReady(c, call);
    // Writes held while the restart was on its way may go (writeIsProtected).
    resumeWrites(c, call);
    return;
  }
  // gone (404 M_NOT_FOUND, 409): the server no longer holds our delayed leave, or says it is done.
  recover(c, call, cls);
}
