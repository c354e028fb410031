/**
 * Scheduling the delayed leave: first (before any membership), with retries, lowering the delay to the
 * server's maximum, falling back to degraded mode when the server has none (and trying again later when
 * its answers made no sense); and what follows once one is armed.
 */
import { classifyError, MembershipError } from "../../errors.js";
import { MIN_DELAY_MS, resolveTiming } from "../config.js";
import { isUnrecognised, onScheduleFailure } from "../policy.js";
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
import { failCall } from "./calls.js";
import { noteUnknownOutcome, onScheduleSettled, sweepOrphans, sweepPredecessors } from "./orphans.js";
import { observeLink, refund, retimeLink, spend } from "./resources.js";
import { startTask, waitBeforeRetry } from "./tasks.js";
import { resumeWrites, wantWrite, writeMembership } from "./writes.js";
import type { CallState, OpenSchedule, Outcome } from "./types.js";
import { enterBeat } from "./heartbeat.js";
import { isSticky, scheduleRequest } from "./format.js";
import { joinedState } from "./watch.js";

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
    // In the sticky format it is at the failed call's own key, which this call's fresh one never is: it
    // cannot fire into the new membership, and it is what removes the old one, so it is sent, not
    // cancelled (cancelled, the failed call's membership stood for its whole stickiness: found by the
    // randomized invariants, a leave whose `{}` was refused, then a rejoin).
    request: { kind: "delayed", delayId: stale, action: isSticky(c) ? "send" : "cancel" },
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

export function startSchedule(c: Ctx, call: CallState, after: "join" | "rearm" | "recover"): void {
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
  // An earlier schedule of this call is still on its way and could still create a live delayed leave
  // (a slow link): wait for it (its answer is adopted) rather than send another. At most two of ours
  // are then ever pending at once: that one, and a replacement once it has surely fired or failed.
  const earlier = stillOpen(c, call);
  if (earlier) {
    lane.waitingFor = "open";
    lane.wakeAt = (earlier.abortAt ?? earlier.sentAt + earlier.delayMs) + delayedTimeoutMs(c.s);
    return;
  }
  // A join's first schedule is what the app asked for; everything after is the manager's own.
  const kind = lane.after === "join" && !lane.sentOnce ? "intent" : "own";
  const waitMs = spend(c, kind);
  if (waitMs > 0) {
    lane.wakeAt = c.now + waitMs;
    lane.waitingFor = "budget"; // the wake sends without taking another token
    lane.reserved = kind;
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
  lane.wakeAt = lane.waitingFor = lane.reserved = undefined;
  lane.sentOnce = true;
  call.scheduling = true;
  c.s.open.push({ reqId, callId: call.id, sentAt: c.now, delayMs, late: false });
  const overMembership = !!call.lastSent && !call.ended;
  c.out.push({
    type: "send",
    reqId,
    request: scheduleRequest(c, call, delayMs, overMembership),
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
      // (After a timeout it may reach the server until its abort, and fire a delay after that.)
      // What it made fires a delay after it reached the server: from a delay after its send on, our
      // membership may be gone unless something found it first (doubt.ts).
      noteUnknownOutcome(c, open, timedOut ? open.abortAt! + open.delayMs + delayedTimeoutMs(c.s) : window, {
        callId: open.callId,
        delayMs: open.delayMs,
        arrivesBy: timedOut ? open.abortAt! : c.now,
        firesFrom: open.sentAt + open.delayMs,
      });
      sweepOrphans(c, c.s.call?.delayId);
      const reasserts = [c.now + open.delayMs + delayedTimeoutMs(c.s)];
      // After our timeout the request may still reach the server, up to its abort (`abortAt`): a delayed
      // leave it creates then fires up to a delay later, after the re-assert above. Re-assert once more
      // after that (found by the model test, test/unit/machine.model.test.ts: a schedule processed late
      // with its answer lost wiped our membership for good while we reported joined).
      if (timedOut) reasserts.push(open.abortAt! + open.delayMs + delayedTimeoutMs(c.s));
      (c.s.reassertAt ??= []).push(...reasserts);
      // A late answer names the delayed leave, which is then adopted or cancelled (orphans.ts): these
      // blind writes are moot then.
      if (timedOut) open.reasserts = reasserts;
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
    call.ignoredSchedules = 0;
    setDelayId(c, result.value as string);
    markArmed(c, call, result.sentAt);
    updateSupport(c, { delayedEvents: true });
    sweepOrphans(c, result.value as string);
    if (call.sweepPredecessors) {
      call.sweepPredecessors = undefined;
      sweepPredecessors(c);
    }
    return afterArmed(c, call, lane.after);
  }
  const { cls } = result;
  // No sticky events here, and nothing of this call written yet: the state format, where the app chose it.
  if (cls.kind === "sticky-unsupported" && isSticky(c) && c.env.stickyFallback && !call.membershipAttempted) {
    fallBackToState(c, cls.reason);
    return scheduleAttempt(c, call);
  }
  const action = onScheduleFailure(cls, call.unrecognisedSchedules, call.ignoredSchedules);
  if (isUnrecognised(cls)) call.unrecognisedSchedules++;
  if (cls.kind === "delay-ignored") {
    call.ignoredSchedules = (call.ignoredSchedules ?? 0) + 1;
    delayIgnored(c, call, result.error);
  }
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
          : cls.kind === "delay-ignored"
            ? "the server ignores the delay of delayed events (it wrote our delayed leave at once)"
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
  lane.waitingFor = "backoff";
}

/** An earlier schedule of `call` answered late (past our timeout) whose delayed leave would still live. */
function stillOpen(c: Ctx, call: CallState): OpenSchedule | undefined {
  return c.s.open.find(
    (o) =>
      o.callId === call.id && o.late && !o.switchTo && c.now + delayedTimeoutMs(c.s) < o.sentAt + o.delayMs,
  );
}

/**
 * A late schedule's delay id arrived while its call still waits for a delayed leave: adopt it when it
 * leaves time for a heartbeat (it fires a delay after its send at the earliest), instead of cancelling it
 * and scheduling yet another over a slow link.
 */
export function adoptLateSchedule(c: Ctx, open: OpenSchedule, delayId: string): boolean {
  const call = c.s.call;
  if (!call || call.id !== open.callId || call.ended || open.switchTo) return false;
  const lane = call.lane;
  if (lane.k !== "schedule" || lane.reqId !== undefined) return false;
  if (!(c.now + delayedTimeoutMs(c.s) < open.sentAt + open.delayMs)) return false;
  log(c, "debug", "adopting a delayed leave whose answer came after our timeout");
  if (lane.waitingFor === "budget" && lane.reserved) refund(c, lane.reserved);
  call.delayId = delayId;
  call.unrecognisedSchedules = 0;
  call.ignoredSchedules = 0;
  setDelayId(c, delayId);
  markArmed(c, call, open.sentAt);
  updateSupport(c, { delayedEvents: true });
  if (call.sweepPredecessors) {
    call.sweepPredecessors = undefined;
    sweepPredecessors(c);
  }
  afterArmed(c, call, lane.after);
  return true;
}

/** A schedule of this call settled: a lane waiting for it goes on. */
export function resumeAfterOpen(c: Ctx, open: OpenSchedule): void {
  const call = c.s.call;
  if (!call || call.id !== open.callId || call.lane.k !== "schedule" || call.lane.waitingFor !== "open")
    return;
  call.lane.wakeAt = call.lane.waitingFor = undefined;
  scheduleAttempt(c, call);
}

/** The call ended while its schedule waited for a token: the reservation goes back. */
export function dropScheduleWait(c: Ctx, call: CallState): void {
  const lane = call.lane;
  if (lane.k === "schedule" && lane.waitingFor === "budget" && lane.reserved) refund(c, lane.reserved);
  if (lane.k === "schedule") lane.reserved = undefined;
}

/** The schedule lane's wait (budget or backoff) is over. */
export function onScheduleWake(c: Ctx, call: CallState): void {
  const lane = call.lane;
  if (lane.k !== "schedule") return;
  const budgetWait = lane.waitingFor === "budget";
  // ("open": the earlier schedule is past its abort; scheduleAttempt looks again.)
  lane.wakeAt = lane.waitingFor = undefined;
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

/**
 * A schedule's answer proved the server ignored the delay: it wrote our delayed leave, `{}`, at our key at
 * once. Whatever membership of ours was there is gone (others see us leave); a fresh one follows the next
 * schedule, which the backend sends only after asking the server's dialect again.
 */
function delayIgnored(c: Ctx, call: CallState, error: unknown): void {
  log(c, "warn", "the server ignored our delayed leave's delay and wrote it at once", error);
  if (!call.membershipAttempted || call.ended) return;
  if (call.lastSent) {
    call.lastSent = undefined;
    setOwnMembership(c, undefined);
    setProbablyLeft(c, true);
    setState(c, { kind: "reconnecting", reason: "delayed-leave-fired", probablyLeft: true });
  }
  wantWrite(call, "fresh");
}

/**
 * The sticky format cannot be spoken here (no MSC4354, or the widget host refused it) and the app
 * allowed a fallback: from now on the manager writes the state format, and says so (`errors$`,
 * `support$.membershipFormat`).
 */
function fallBackToState(c: Ctx, reason: string): void {
  log(c, "warn", `sticky memberships unavailable (${reason}): using the state format`);
  c.s.format = "state";
  updateSupport(c, { membershipFormat: "state" });
  emitError(
    c,
    new MembershipError(
      `sticky memberships unavailable, falling back to the state format: ${reason}`,
      "sticky-events-unsupported",
      "schedule-leave",
      { kind: "sticky-unsupported", reason },
    ),
  );
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
    setState(c, joinedState(c, true));
  }
  // Writes deferred while the delayed leave was not known to be alive can go now.
  resumeWrites(c, call);
}

export function enterDegraded(c: Ctx, call: CallState, reason: string, retryLater = false): void {
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
export function rearm(c: Ctx, call: CallState): void {
  if (call.ended || call.delayed !== "none") return;
  call.delayed = "pending";
  call.rearming = true;
  call.unrecognisedSchedules = 0;
  startSchedule(c, call, "rearm");
}
