/**
 * Tasks: one request with its retries, as data. A task waits for a token of the request budget, sends,
 * and on a failure its retry rule accepts, backs off (core/policy.ts) and goes again; otherwise it ends
 * and its outcome is queued for its owner (step.ts dispatches it). Nothing here waits: a wait is a
 * `wakeAt` the driver's one timer brings back as a tick.
 */
import { classifyError, MembershipError, type ErrorClass, type Operation } from "../../errors.js";
import { isRetryable, isUnrecognised, laneWaitLimits, onLeaveSendFailure, retryWaitMs } from "../policy.js";
import { callById, emitError, log, nextId, toError, type Ctx } from "./context.js";
import { checkExpiry, failCall, writeIsProtected } from "./calls.js";
import { observeLink, refund, spend, taskTimeoutMs } from "./resources.js";
import { noteUnansweredWrite } from "./lateWrites.js";
import { noteRestartAttempt } from "./lateRestarts.js";
import type { CallState, Outcome, Purpose, Request, RetryRule, Task, TaskScope } from "./types.js";

export interface TaskSpec {
  purpose: Purpose;
  request: Request;
  op: Operation;
  scope: TaskScope;
  retry: RetryRule;
  timeoutMs?: number;
  capMs: number;
  until?: number;
  guardWrite?: boolean;
  lane?: "state" | "delayed";
  budgeted?: boolean;
  /** The first attempt is what the app asked for (the app's bucket). */
  intent?: boolean;
  measures?: boolean;
  callId?: number;
}

/** Start a task; its first attempt goes now (or when the budget allows). */
export function startTask(c: Ctx, spec: TaskSpec): Task {
  const task: Task = {
    id: nextId(c.s),
    purpose: spec.purpose,
    request: spec.request,
    op: spec.op,
    scope: spec.scope,
    retry: spec.retry,
    timeoutMs: spec.timeoutMs,
    capMs: spec.capMs,
    until: spec.until,
    guardWrite: spec.guardWrite,
    lane: spec.lane,
    budgeted: spec.budgeted ?? true,
    intent: spec.intent,
    measures: spec.measures ?? spec.timeoutMs === undefined,
    callId: spec.callId,
    phase: "budget",
    attempt: 0,
  };
  c.s.tasks.push(task);
  attempt(c, task);
  return task;
}

/**
 * One question to the server, without retries (a lookup, a read, the support probe, a best-effort
 * cancel): its answer, or its failure, goes to the owner as it is.
 */
export function askOnce(
  c: Ctx,
  purpose: Purpose,
  request: Request,
  op: Operation,
  more: Partial<Pick<TaskSpec, "scope" | "callId" | "timeoutMs" | "budgeted">> = {},
): Task {
  return startTask(c, {
    purpose,
    request,
    op,
    scope: "manager",
    retry: "once",
    capMs: 0,
    measures: false,
    ...more,
  });
}

/** Is the task's scope over (its call ended, its heartbeat stopped, the manager disposed)? */
export function scopeEnded(c: Ctx, task: Task): boolean {
  if (task.scope === "detached") return false;
  if (c.s.disposed) return true;
  if (task.scope === "manager") return false;
  const call = callById(c, task.callId);
  if (!call) return true;
  return task.scope === "call" ? call.ended : call.heartbeatStopped;
}

function guardFails(c: Ctx, task: Task): boolean {
  if (task.until !== undefined && c.now >= task.until) return true;
  if (task.guardWrite) {
    const call = callById(c, task.callId);
    return !call || !writeIsProtected(c, call);
  }
  return false;
}

/** End a task: remove it and queue its outcome for its owner. */
export function finishTask(c: Ctx, task: Task, outcome: Outcome): void {
  const i = c.s.tasks.indexOf(task);
  if (i >= 0) c.s.tasks.splice(i, 1);
  // Ended while waiting for its token: the reservation goes back.
  if (task.phase === "budget" && task.reserved) refund(c, task.reserved);
  task.reserved = undefined;
  c.done.push({ task, outcome });
}

const ABORTED = (error?: unknown): Extract<Outcome, { ok: false }> => ({
  ok: false,
  cls: { kind: "network" },
  error,
  aborted: true,
});
const DEFERRED: Outcome = {
  ok: false,
  cls: { kind: "network" },
  error: new Error("deferred"),
  aborted: true,
  deferred: true,
};

/** One attempt: check the scope and the guard, take a budget token, send. */
function attempt(c: Ctx, task: Task): void {
  if (scopeEnded(c, task)) return finishTask(c, task, ABORTED());
  if (guardFails(c, task)) return finishTask(c, task, DEFERRED);
  // Only the first send of what the app asked for is the app's; its retries are the manager's own.
  const kind = task.intent && task.sentAt === undefined ? "intent" : "own";
  const waitMs = task.budgeted ? spend(c, kind) : 0;
  if (waitMs > 0) {
    task.phase = "budget";
    task.reserved = kind;
    task.wakeAt = c.now + waitMs;
    return;
  }
  send(c, task);
}

function send(c: Ctx, task: Task): void {
  if (guardFails(c, task)) return finishTask(c, task, DEFERRED);
  task.phase = "sent";
  task.reserved = undefined;
  task.wakeAt = undefined;
  task.reqId = nextId(c.s);
  task.sentAt = c.now;
  const timeoutMs = taskTimeoutMs(c, task);
  c.out.push({ type: "send", reqId: task.reqId, request: task.request, timeoutMs, keepLate: false });
}

/** The budget wait or the backoff is over. */
export function wakeTask(c: Ctx, task: Task): void {
  task.wakeAt = undefined;
  if (task.phase === "budget") {
    if (scopeEnded(c, task)) return finishTask(c, task, ABORTED());
    return send(c, task);
  }
  attempt(c, task);
}

/** Which failures the task retries itself. */
function retries(rule: RetryRule, cls: ErrorClass): boolean {
  switch (rule) {
    case "once":
      return false;
    case "retryable":
      return isRetryable(cls);
    case "restart":
      // Quick retries for a busy or unreachable server; answers we do not recognise go to the
      // heartbeat's slower back-off (they are no sign of a quick recovery).
      return isRetryable(cls) && !isUnrecognised(cls);
    case "not-gone":
      return cls.kind !== "gone";
    case "leave-send":
      return onLeaveSendFailure(cls) === "back-off";
  }
}

/** The server answered a task's request (or our local timeout passed). */
export function answerTask(
  c: Ctx,
  task: Task,
  ok: boolean,
  value: unknown,
  error: unknown,
  timedOut: boolean,
): void {
  const sentAt = task.sentAt ?? c.now;
  task.reqId = undefined;
  if (c.s.disposed && task.scope !== "detached") return finishTask(c, task, ABORTED(error));
  if (ok) {
    if (task.measures) observeLink(c, sentAt, false, task.purpose.kind === "restart");
    const call = task.lane ? callById(c, task.callId) : undefined;
    if (call && task.lane === "state") call.failingStateSince = undefined;
    else if (call) call.failingDelayedSince = undefined;
    return finishTask(c, task, { ok: true, value, sentAt });
  }
  const cls = classifyError(error, task.op, c.now);
  // A membership write that got no answer may still be processed later (lateWrites.ts).
  if (task.purpose.kind === "write" && (timedOut || cls.kind === "network"))
    noteUnansweredWrite(c, sentAt, task.purpose.content);
  // A restart that got no answer may still start its delayed leave's delay later (lateRestarts.ts).
  noteRestartAttempt(c, task, sentAt, timedOut, cls);
  // Only our own timeouts and real answers (an HTTP status) measure the link: a connection reset after
  // a long cut is not a round trip.
  if (task.measures && (timedOut || (cls.kind !== "network" && cls.kind !== "unknown")))
    observeLink(c, sentAt, timedOut, task.purpose.kind === "restart");
  if (!retries(task.retry, cls)) return finishTask(c, task, { ok: false, cls, error, timedOut });
  // A local timeout already waited a whole timeout: it does not grow the backoff.
  const step = timedOut ? task.attempt : task.attempt++;
  const call = task.lane ? callById(c, task.callId) : undefined;
  const waitMs = waitBeforeRetry(c, call, task.lane, cls, error, step, task.op, task.capMs, timedOut);
  if (waitMs === undefined || scopeEnded(c, task)) return finishTask(c, task, { ...ABORTED(error), cls });
  if (waitMs <= 0) return attempt(c, task);
  task.phase = "backoff";
  // A task whose retries are moot after `until` ends then, not at a retry a server's hint put later:
  // its owner acts on the outcome (found by the randomized invariants with the delegation service: the
  // cancel of the leave a delegation replaced got a 429 with an hour's Retry-After, and the manager
  // learned that the replaced leave had fired over our membership only at that retry's wake, later than
  // one heartbeat after the fire).
  task.wakeAt = Math.min(c.now + waitMs, task.until ?? Infinity);
}

/**
 * Report a transient failure and say how long to wait before the next try; undefined when the call
 * just gave up (failing for `giveUpAfterMs` on this lane).
 */
export function waitBeforeRetry(
  c: Ctx,
  call: CallState | undefined,
  lane: "state" | "delayed" | undefined,
  cls: ErrorClass,
  error: unknown,
  attemptNo: number,
  op: Operation,
  capMs: number,
  timedOut: boolean,
): number | undefined {
  emitError(c, toError(cls, error, op));
  if (call && lane) {
    checkExpiry(c, call);
    const since =
      lane === "state" ? (call.failingStateSince ??= c.now) : (call.failingDelayedSince ??= c.now);
    if (c.now - since >= c.s.timing.giveUpAfterMs) {
      failCall(
        c,
        call,
        new MembershipError(`gave up after failing for ${c.now - since} ms`, "gave-up", op, cls, {
          cause: error,
        }),
      );
      return undefined;
    }
  }
  const waitMs = retryWaitMs({
    cls,
    localTimeout: timedOut && !c.s.link?.tooSlow,
    attempt: attemptNo,
    baseMs: c.s.timing.retryBaseMs,
    // A server's Retry-After is honoured in full (up to retryMaxMs) where waiting only costs time: state
    // sends, and schedules (no delayed leave of ours can fire meanwhile). Only the heartbeat's lane caps it,
    // where our armed delayed leave would fire first.
    ...laneWaitLimits(
      op === "send-state" || op === "schedule-leave" ? "state" : "delayed",
      c.s.timing,
      capMs,
    ),
    random: c.random,
  });
  log(c, "debug", `${op} failed (${cls.kind}); retrying in ${waitMs} ms`);
  return waitMs;
}

/**
 * End the tasks whose scope just ended and that are not waiting for an answer (those end when it
 * comes, as a request in flight may still land).
 */
export function abortIdleTasks(c: Ctx): void {
  for (const task of [...c.s.tasks])
    if (task.phase !== "sent" && scopeEnded(c, task)) finishTask(c, task, ABORTED());
}

/** Dispose: every task ends now; requests in flight are aborted (detached ones go on). */
export function abortAllTasks(c: Ctx): void {
  for (const task of [...c.s.tasks]) {
    if (task.scope === "detached") continue;
    if (task.reqId !== undefined) c.out.push({ type: "abort", reqId: task.reqId });
    finishTask(c, task, ABORTED());
  }
}

export function taskByReq(c: Ctx, reqId: number): Task | undefined {
  return c.s.tasks.find((t) => t.reqId === reqId);
}
