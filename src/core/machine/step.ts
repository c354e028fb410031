/**
 * The membership state machine's entry: `step(state, env, event, now, random)` feeds one event and
 * returns the commands to run, in order; `nextWakeAt(state)` says when to feed the next `tick`.
 *
 * No promises, timers, I/O or clock reads in here or in any module it uses: time is an input. The
 * driver (src/manager/MembershipManager.ts) runs the commands through the backend and feeds the
 * answers back. The whole policy, by module:
 *
 * - join.ts: app intents (join, leave, update) and the room view's "our membership is missing";
 * - the delayed-leave lane (delayedLeave.ts): schedule.ts schedules it (and degraded mode), heartbeat.ts
 *   restarts it every interval, recovery.ts acts when the server says it is gone;
 * - writes.ts: membership writes, one at a time, never without a live delayed leave, refreshes;
 * - leave.ts: the leave job (settle, fire the delayed leave or write {});
 * - orphans.ts: late delay ids, sweeps for orphaned delayed leaves, re-asserts; doubt.ts: what a
 *   schedule of unknown outcome may have fired over our membership while nothing could look;
 *   replacedLeaves.ts: cancelling delayed leaves we replaced (lateRestarts.ts: until they surely fired);
 * - pageExit.ts: the page goes away (fire the delayed leave at once, park) and comes back (rejoin);
 * - tasks.ts: one request with its retries (budget, backoff, give-up);
 * - calls.ts: a call's start and end, the write guard, predicted leave, expiry;
 * - resources.ts: the request budget and the link's adaptive timeout;
 * - and the pure rules they ask: core/policy.ts, decisions.ts, budget.ts, linkTiming.ts,
 *   lostDelayedLeave.ts, config.ts.
 */
import { MembershipError } from "../../errors.js";
import type { MembershipFields } from "../../membership/content.js";
import type { Support } from "../../manager/state.js";
import type { Timing } from "../config.js";
import { callById, log, type Ctx } from "./context.js";
import { checkExpiry, endCall, onPredictedLeave, rejectUpdates } from "./calls.js";
import { laneWakeAt, onLaneWake } from "./delayedLeave.js";
import { onRestartDone } from "./heartbeat.js";
import { onLookupDone, onReadReplacedDone } from "./recovery.js";
import { onReplacedCancelDone, onReplacedWake, replacedWakeAt } from "./replacedLeaves.js";
import { onScheduleAnswer, onStaleCancelled } from "./schedule.js";
import { join, leave, membershipMissing, onProbeDone, onReadHoldsDone, update } from "./join.js";
import {
  checkWakeAt,
  onCheckWake,
  onRoomMembership,
  onRoomMembershipRead,
  onStampDone,
  onView,
} from "./watch.js";
import { abortLeave, leaveWakeAt, onLeaveTaskDone, progressLeave } from "./leave.js";
import { guardCheckWakeAt, onGuardCheckDone, onGuardCheckWake } from "./lateWrites.js";
import {
  onCancelOrphanDone,
  onListDone,
  onOrphanWake,
  onScheduleSettled,
  onSweepWake,
  orphanWakeAt,
} from "./orphans.js";
import { abortAllTasks, answerTask, taskByReq, wakeTask } from "./tasks.js";
import { writeMembership, onWriteDone, refreshMembership } from "./writes.js";
import { onPageHide, onPageShow } from "./pageExit.js";
import { onDelegateDone, onSwitchScheduleAnswer } from "./delegation.js";
import { doubtWakeAt, onDoubtWake } from "./doubt.js";
import type { CallState, Command, MachineEnv, MachineEvent, MachineState, Outcome, Task } from "./types.js";

/** A fresh machine: idle, nothing sent. */
export function initialState(timing: Timing, fields: MembershipFields, support: Support): MachineState {
  return {
    timing,
    fields,
    fieldsVersion: 0,
    wantJoined: false,
    disposed: false,
    leaveReason: "user",
    orphanWindowUntil: 0,
    sweepAgain: false,
    tasks: [],
    open: [],
    out: { state: { kind: "idle" }, probablyLeft: false, support },
    nextId: 1,
    viewLive: false,
    readable: true,
  };
}

/**
 * Feed one event at `now` (elapsed time); returns the commands to run, in order. Mutates `s` (the driver
 * owns it). `wallNow` is the device's wall clock, only compared with the server's (default: `now`, as on
 * virtual time).
 */
export function step(
  s: MachineState,
  env: MachineEnv,
  event: MachineEvent,
  now: number,
  random: () => number,
  wallNow: number = now,
): Command[] {
  const c: Ctx = { s, env, now, wallNow, random, out: [], done: [] };
  if (s.disposed && event.type !== "answer" && event.type !== "late-answer" && event.type !== "tick")
    return c.out;
  switch (event.type) {
    case "join":
      join(c, event.memberId);
      break;
    case "leave":
      if (!leave(c)) c.out.push({ type: "leave-done", result: { status: "left", via: "nothing-to-leave" } });
      break;
    case "update":
      c.out.push({ type: "update-accepted", version: update(c, event.patch) });
      break;
    case "dispose":
      dispose(c);
      break;
    case "answer":
      onAnswer(c, event);
      break;
    case "late-answer": {
      const open = s.open.find((o) => o.reqId === event.reqId);
      if (open) onScheduleSettled(c, open, event.ok, event.ok ? event.value : undefined);
      break;
    }
    case "tick":
      onTick(c);
      break;
    case "membership-missing":
      membershipMissing(c);
      break;
    case "view":
      onView(c, event.live);
      break;
    case "room-membership":
      onRoomMembership(c, event.membership);
      break;
    case "page-hide":
      onPageHide(c);
      break;
    case "page-show":
      onPageShow(c);
      break;
  }
  settle(c);
  return c.out;
}

function onAnswer(c: Ctx, event: Extract<MachineEvent, { type: "answer" }>): void {
  const open = c.s.open.find((o) => o.reqId === event.reqId);
  // A schedule that was still in time when dispose() made it late answers as a late one.
  if (open?.late) return onScheduleSettled(c, open, event.ok, event.ok ? event.value : undefined);
  if (open?.switchTo)
    return onSwitchScheduleAnswer(
      c,
      open,
      event.ok,
      event.ok ? event.value : event.error,
      !event.ok && !!event.timedOut,
    );
  if (open) {
    if (event.ok) return onScheduleAnswer(c, open, true, event.value, undefined, false);
    return onScheduleAnswer(c, open, false, undefined, event.error, !!event.timedOut);
  }
  const task = taskByReq(c, event.reqId);
  if (!task) return;
  if (event.ok) answerTask(c, task, true, event.value, undefined, false);
  else answerTask(c, task, false, undefined, event.error, !!event.timedOut);
}

/** Hand every ended task to its owner, and move the leave job on, until nothing more happens. */
function settle(c: Ctx): void {
  for (let round = 0; round < 1000; round++) {
    while (c.done.length > 0) {
      const { task, outcome } = c.done.shift()!;
      dispatch(c, task, outcome);
    }
    progressLeave(c);
    if (c.done.length === 0) return;
  }
}

function dispatch(c: Ctx, task: Task, outcome: Outcome): void {
  const call = callById(c, task.callId);
  switch (task.purpose.kind) {
    case "probe":
      return onProbeDone(c, call, outcome);
    case "cancel-stale":
      return onStaleCancelled(c, call);
    case "restart":
      return onRestartDone(c, call, task, outcome);
    case "write":
      return onWriteDone(c, call, task, outcome);
    case "lookup":
      return onLookupDone(c, call, outcome);
    case "read-replaced":
      return onReadReplacedDone(c, call, outcome);
    case "read-holds":
      return onReadHoldsDone(c, call, task, outcome);
    case "stamp":
      return onStampDone(c, call, task, outcome);
    case "read-room-membership":
      return onRoomMembershipRead(c, outcome);
    case "cancel-replaced":
      return onReplacedCancelDone(c, task, outcome);
    case "list":
      return onListDone(c, outcome);
    case "delegate":
      return onDelegateDone(c, call, task, outcome);
    case "cancel-orphan":
      return onCancelOrphanDone(c, task, outcome);
    case "cancel-after-dispose":
      if (!outcome.ok) log(c, "debug", "could not cancel a delayed leave after dispose()", outcome.error);
      return;
    case "leave-cancel":
    case "leave-send":
    case "leave-empty":
    case "leave-cancel-after-empty":
    case "late-write-guard":
      return onLeaveTaskDone(c, task, outcome);
    case "guard-check":
    case "guard-send":
    case "guard-cleanup":
      return onGuardCheckDone(c, task, outcome);
  }
}

function calls(s: MachineState): CallState[] {
  const list: CallState[] = [];
  if (s.call) list.push(s.call);
  if (s.leaveCall && s.leaveCall !== s.call) list.push(s.leaveCall);
  return list;
}

/** Everything whose time has come, in one go (waits of 0 included). */
function onTick(c: Ctx): void {
  for (let round = 0; round < 100; round++) {
    const at = nextWakeAt(c.s);
    if (at === undefined || at > c.now) return;
    for (const task of c.s.tasks.filter((t) => t.wakeAt !== undefined && t.wakeAt <= c.now))
      wakeTask(c, task);
    for (const call of calls(c.s)) wakeCall(c, call);
    if (c.s.sweep?.wakeAt !== undefined && c.s.sweep.wakeAt <= c.now) onSweepWake(c);
    const orphanAt = orphanWakeAt(c);
    if (orphanAt !== undefined && orphanAt <= c.now) onOrphanWake(c);
    const doubtAt = doubtWakeAt(c.s);
    if (doubtAt !== undefined && doubtAt <= c.now) onDoubtWake(c);
    const replacedAt = replacedWakeAt(c.s);
    if (replacedAt !== undefined && replacedAt <= c.now) onReplacedWake(c);
    const leaveAt = leaveWakeAt(c);
    if (leaveAt !== undefined && leaveAt <= c.now) c.s.leave!.wakeAt = undefined;
    const guardCheckAt = guardCheckWakeAt(c);
    if (guardCheckAt !== undefined && guardCheckAt <= c.now) onGuardCheckWake(c);
    settle(c);
  }
}

function wakeCall(c: Ctx, call: CallState): void {
  const laneAt = laneWakeAt(call);
  if (laneAt !== undefined && laneAt <= c.now) onLaneWake(c, call);
  if (call.watchLeave && call.leaveDeadline !== undefined && call.leaveDeadline <= c.now)
    onPredictedLeave(c, call);
  if (call.refreshAt !== undefined && call.refreshAt <= c.now) {
    call.refreshAt = undefined;
    if (!call.ended) refreshMembership(c, call);
  }
  if (call.refreshAfterFireAt !== undefined && call.refreshAfterFireAt <= c.now) {
    call.refreshAfterFireAt = undefined;
    if (!call.ended) writeMembership(c, call, "refresh");
  }
  const checkAt = checkWakeAt(call);
  if (checkAt !== undefined && checkAt <= c.now) onCheckWake(c, call);
  const expiryAt = expiryWakeAt(call);
  if (expiryAt !== undefined && expiryAt <= c.now) checkExpiry(c, call);
}

/**
 * When our membership's `expires` runs out for others, unless a refresh lands first. A heartbeat and a
 * failed write check it too, but without a delayed leave (degraded mode) there is no heartbeat, and a
 * refresh still on its way when the network comes back neither fails nor lands in time: others dropped
 * us meanwhile, and we must have said so (found under load by test/integration/interop/presets.test.ts).
 */
function expiryWakeAt(call: CallState): number | undefined {
  return call.expired || call.ended ? undefined : call.expiresAt;
}

/** The earlier of two times (undefined: no time). */
function earlier(at: number | undefined, t: number | undefined): number | undefined {
  return t !== undefined && (at === undefined || t < at) ? t : at;
}

/** When one call wants its next `tick`. */
function callWakeAt(call: CallState): number | undefined {
  let at = laneWakeAt(call);
  if (call.watchLeave) at = earlier(at, call.leaveDeadline);
  at = earlier(at, call.refreshAt);
  at = earlier(at, call.refreshAfterFireAt);
  at = earlier(at, checkWakeAt(call));
  return earlier(at, expiryWakeAt(call));
}

/**
 * When the machine wants its next `tick` (undefined: it waits only for answers or the app). Asked after
 * every step of every manager (thousands in one process heartbeat): it allocates nothing.
 */
export function nextWakeAt(s: MachineState): number | undefined {
  let at: number | undefined;
  for (const task of s.tasks) at = earlier(at, task.wakeAt);
  for (const o of s.open) at = earlier(at, o.abortAt);
  if (s.disposed) return at;
  if (s.call) at = earlier(at, callWakeAt(s.call));
  if (s.leaveCall && s.leaveCall !== s.call) at = earlier(at, callWakeAt(s.leaveCall));
  at = earlier(at, s.sweep?.wakeAt);
  if (s.orphanDeadlines) for (const d of s.orphanDeadlines) at = earlier(at, d.at);
  if (s.reassertAt) for (const r of s.reassertAt) at = earlier(at, r);
  if (s.probableFiresAt) for (const r of s.probableFiresAt) at = earlier(at, r);
  at = earlier(at, doubtWakeAt(s));
  at = earlier(at, replacedWakeAt(s));
  at = earlier(at, s.predecessorSweepAt);
  at = earlier(at, s.guardCheck?.at);
  at = earlier(at, s.leave?.wakeAt);
  return at;
}

function dispose(c: Ctx): void {
  const s = c.s;
  s.disposed = true;
  for (const call of calls(s)) endCall(c, call);
  abortAllTasks(c);
  // A schedule still open may yet answer with an id (cancelled then); give it one request timeout, then
  // abort it so a hung request does not keep the process alive.
  for (const open of s.open) {
    open.late = true;
    open.abortAt = c.now + s.timing.requestTimeoutMs;
  }
  s.orphanDeadlines = undefined;
  s.reassertAt = undefined;
  s.probableFiresAt = undefined;
  s.guardCheck = undefined;
  s.predecessorSweepAt = undefined;
  s.sweep = undefined;
  s.sweepAgain = false;
  settle(c);
  abortLeave(c);
  rejectUpdates(c, new MembershipError("disposed", "gave-up", "config"));
}

/** The membership we hold and since when (the driver's room view compares it with what it shows). */
export function heldMembership(
  s: MachineState,
): { since: number; content: Record<string, unknown> } | undefined {
  const call = s.call;
  return call && !call.ended && call.lastSent && call.lastWrittenAt !== undefined
    ? { since: call.lastWrittenAt, content: call.lastSent }
    : undefined;
}

/** Earliest time the server could fire our leave if no further heartbeat gets through. */
export function predictedLeaveAt(s: MachineState): number | undefined {
  const call = s.call;
  return call?.delayed === "armed" && call.armedAt !== undefined
    ? call.armedAt + s.timing.delayMs
    : undefined;
}
