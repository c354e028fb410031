/**
 * Delegated delayed leave (MSC4195): the SFU's token service restarts our delayed leave while the SFU
 * has us and sends it the moment the SFU loses us, so we need only a long delay (1 h) and a slow
 * heartbeat (every 5 min), and a device that dies leaves as soon as the SFU notices.
 *
 * The delegation lane of a call (`CallState.delegation`, types.ts `DelegationLane`) decides; the
 * heartbeat lane (heartbeat.ts) keeps restarting whichever delayed leave it holds. A delayed leave's
 * delay cannot change, so a change of holder is a change of delayed leave, in the one order that
 * keeps one always pending:
 *
 * 1. schedule the new one (the long one to delegate, or a normal one to fall back to) beside the old;
 * 2. to delegate: ask the service to take the new one, and go on only once it said yes;
 * 3. at the heartbeat lane's next idle moment (no restart in flight), swap the new one in (and the
 *    timing with it), and only then cancel the old one.
 *
 * Until step 3 the old one is restarted as before; a switch that fails (refused, no answer, the new one
 * not scheduled) cancels the new one and leaves the old one where it was. While delegated, every
 * `checkEvery`-th restart is followed by delegating the same delayed leave again: the only way to learn
 * that the service still answers. A check refused or unanswered falls back (a switch to "self"); a
 * restart answered "gone" (the service sent our leave, or it is lost) falls back at once (recovery.ts
 * schedules the replacement with the normal timing). No I/O here: the driver sends `delegate` requests.
 */
import { classifyError, httpFacts } from "../../errors.js";
import { MIN_TIMING_STEP_MS, type Timing } from "../config.js";
import { delayedTimeoutMs, log, nextId, setDelayId, updateSupport, type Ctx } from "./context.js";
import { refund, retimeLink, spend } from "./resources.js";
import { beat } from "./heartbeat.js";
import { wantWrite } from "./writes.js";
import { askOnce } from "./tasks.js";
import { cancelReplaced } from "./replacedLeaves.js";
import { scheduleRequest } from "./format.js";
import { noteUnknownOutcome } from "./orphans.js";
import type { CallState, DelegationLane, DelegationTiming, OpenSchedule, Outcome, Task } from "./types.js";

/** The timing of a delegated leave: the long delay and slow heartbeat, the rest as normal. */
export function delegatedTiming(normal: Timing, d: DelegationTiming): Timing {
  return {
    ...normal,
    delayMs: d.delayMs,
    heartbeatIntervalMs: d.heartbeatIntervalMs,
    adaptiveHeartbeat: false,
    heartbeatMarginMs: d.delayMs - d.heartbeatIntervalMs - normal.requestTimeoutMs,
  };
}

/**
 * The heartbeat lane holds no request of the delayed leave it tracks: it waits for its next beat, or
 * backs off before probing it again. A swap then changes nothing in flight (and a new one waiting for a
 * long backoff would fire: the new one is the one to restart from now on).
 */
function laneIdle(call: CallState): boolean {
  const k = call.lane.k;
  return k === "beat" || k === "refused" || k === "pending-pause";
}

function laneOf(call: CallState): DelegationLane {
  return (call.delegation ??= { holder: "self", step: "idle", failures: 0, beats: 0 });
}

export function delegationOn(c: Ctx): boolean {
  return c.env.delegation !== undefined && !c.s.delegationUnsupported;
}

/**
 * The heartbeat lane is idle and armed (heartbeat.ts enterBeat): the moment to swap a ready switch in,
 * to start delegating, or to check a delegation.
 */
export function onBeatIdle(c: Ctx, call: CallState): void {
  const d = c.env.delegation;
  if (!d || call.ended || call.hidden || call.heartbeatStopped || call.delayed !== "armed") return;
  const lane = laneOf(call);
  if (lane.step === "ready") return swap(c, call, lane);
  if (lane.step !== "idle") return;
  if (lane.holder === "delegated") {
    // A check came to nothing and the fallback's schedule failed: try the fallback again.
    if (lane.fallBack) return startSwitch(c, call, lane, "self");
    if (lane.beats >= d.checkEvery) {
      lane.beats = 0;
      lane.step = "check";
      delegate(c, call, call.delayId!, "check");
    }
    return;
  }
  // Delegate once the membership is on the server (the service acts for a member of the call).
  if (!delegationOn(c) || lane.refused || !call.lastSent) return;
  if (lane.retryAt !== undefined && c.now < lane.retryAt) return;
  startSwitch(c, call, lane, "delegated");
}

/** The heartbeat lane went idle without a beat (a refused restart backs off): a ready switch swaps now. */
export function swapIfReady(c: Ctx, call: CallState): void {
  const lane = call.delegation;
  if (lane?.step === "ready" && laneIdle(call) && !call.ended && call.delayed === "armed")
    swap(c, call, lane);
}

/** A delegated restart went through (heartbeat.ts): counts towards the next check. */
export function onDelegatedRestart(call: CallState): void {
  if (call.delegation?.holder === "delegated") call.delegation.beats++;
}

function startSwitch(c: Ctx, call: CallState, lane: DelegationLane, target: "self" | "delegated"): void {
  // Its schedule takes a token of the request budget like every request (core/budget.ts; it went out
  // beside it: 13 requests in a second on a server before 1.127, found by the randomized invariants with
  // the delegation service). None left now: the next idle beat tries again.
  if (spend(c, "own") > 0) {
    refund(c, "own");
    return;
  }
  const delayMs =
    target === "delegated" ? c.env.delegation!.delayMs : (c.s.normalTiming ?? c.s.timing).delayMs;
  lane.step = "schedule";
  lane.target = target;
  lane.newId = lane.newSentAt = lane.newDelayMs = undefined;
  const reqId = nextId(c.s);
  c.s.open.push({ reqId, callId: call.id, sentAt: c.now, delayMs, late: false, switchTo: target });
  log(c, "debug", `scheduling a ${delayMs} ms delayed leave to switch its holder to "${target}"`);
  c.out.push({
    type: "send",
    reqId,
    // In the sticky format, a delayed sticky leave at the call's key like the heartbeat lane's own.
    request: scheduleRequest(c, call, delayMs, true),
    timeoutMs: delayedTimeoutMs(c.s),
    keepLate: true,
  });
}

/**
 * A switch's schedule answered (or our local timeout passed): `value` is its delay id, or the error. Not adopted by the heartbeat lane ever: an
 * id arriving late is cancelled as an orphan (orphans.ts), and one we never learn gets our membership
 * re-asserted after it could have fired, as for the heartbeat lane's own schedules.
 */
export function onSwitchScheduleAnswer(
  c: Ctx,
  open: OpenSchedule,
  ok: boolean,
  value: unknown,
  timedOut: boolean,
): void {
  if (ok || !timedOut) c.s.open.splice(c.s.open.indexOf(open), 1);
  else {
    open.late = true;
    open.abortAt = open.sentAt + Math.min(open.delayMs, 4 * delayedTimeoutMs(c.s));
  }
  const cls = ok ? undefined : classifyError(value, "schedule-leave", c.now);
  if (cls && (timedOut || cls.kind === "network" || cls.kind === "server" || cls.kind === "unknown")) {
    // It may have reached the server, and no sweep looks for what it made (an orphan window would hold
    // our writes for the whole long delay): once that could have fired, it probably wiped our membership;
    // say so and write it again (moot if its answer comes after all: orphans.ts drops it then and cancels
    // the id). A plain re-assert put the membership back saying nothing (found by the randomized
    // invariants with the delegation service, in the sticky format, whose eyes cannot see a new `{}`).
    const at = (open.abortAt ?? c.now) + open.delayMs + delayedTimeoutMs(c.s);
    (c.s.probableFiresAt ??= []).push(at);
    noteUnknownOutcome(c, open, at);
    if (timedOut) open.reasserts = [at];
  }
  const call = c.s.call?.id === open.callId ? c.s.call : undefined;
  const lane = call?.delegation;
  const current = !!call && !!lane && lane.step === "schedule" && lane.target === open.switchTo;
  if (!ok) {
    if (!current) return;
    // A server that cannot hold a delayed leave that long (its maximum delay is shorter) never will.
    const kind = cls!.kind;
    if (lane!.target === "delegated" && (kind === "max-delay" || kind === "unsupported")) {
      c.s.delegationUnsupported = true;
      updateSupport(c, { delegation: "unsupported" });
    } else if (lane!.target === "delegated") noteRefusal(c, lane!, "unanswered");
    switchFailed(c, call!, lane!, "the new delayed leave could not be scheduled");
    return;
  }
  const delayId = value as string;
  if (!current || call!.ended)
    return cancelNew(c, open.callId, delayId, open.sentAt + open.delayMs, open.delayMs);
  lane!.newId = delayId;
  lane!.newSentAt = open.sentAt;
  lane!.newDelayMs = open.delayMs;
  if (lane!.target === "delegated") {
    lane!.step = "delegate";
    return delegate(c, call!, delayId, "switch");
  }
  lane!.step = "ready";
  if (laneIdle(call!)) swap(c, call!, lane!);
}

function delegate(c: Ctx, call: CallState, delayId: string, why: "switch" | "check"): void {
  askOnce(c, { kind: "delegate", delayId, why }, { kind: "delegate", delayId }, "delegate", {
    scope: "call",
    callId: call.id,
    timeoutMs: delegateTimeoutMs(c, call, why),
  });
}

/**
 * How long to wait for the service's answer. It looks the delay id up at the homeserver before it
 * answers: two round trips and more, a state request's timeout. But nothing restarts a switch's new
 * delayed leave until the service has taken it, so the wait ends while its cancel can still land before
 * it fires (its delay from its send, less two delayed-event requests' time): waiting a whole state
 * request's timeout with a delegated delay no longer than that let it fire `{}` over our membership just
 * before we gave up (found by the randomized invariants with the delegation service in the world: a
 * 10 s delegated delay, a service that never answered). A check delegates the leave we restart
 * ourselves: nothing fires while we wait.
 */
function delegateTimeoutMs(c: Ctx, call: CallState, why: "switch" | "check"): number {
  const wait = c.s.timing.stateRequestTimeoutMs;
  const lane = call.delegation;
  if (why !== "switch" || lane?.newSentAt === undefined || lane.newDelayMs === undefined) return wait;
  const left = lane.newSentAt + lane.newDelayMs - c.now - 2 * delayedTimeoutMs(c.s);
  return Math.round(Math.max(MIN_TIMING_STEP_MS, Math.min(wait, left)));
}

/** How a delegation request ended, from the service's answer. */
function verdictOf(outcome: Outcome): "confirmed" | "refused" | "unsupported" | "unanswered" {
  if (outcome.ok) return "confirmed";
  const { status } = httpFacts(outcome.error);
  if (status === 404) return "unsupported";
  if (status !== undefined && status >= 400 && status < 500 && status !== 429 && status !== 408)
    return "refused";
  return "unanswered";
}

export function onDelegateDone(c: Ctx, call: CallState | undefined, task: Task, outcome: Outcome): void {
  if (task.purpose.kind !== "delegate") return;
  const { delayId, why } = task.purpose;
  const lane = call?.delegation;
  if (!call || !lane) return;
  if (outcome.ok === false && outcome.aborted) {
    // The call ended (its tasks are aborted): endDelegation cleans up.
    if (lane.step === "delegate" || lane.step === "check") lane.step = "idle";
    return;
  }
  const verdict = verdictOf(outcome);
  updateSupport(c, { delegation: verdict });
  if (verdict === "confirmed") lane.failures = 0;
  else noteRefusal(c, lane, verdict);
  if (why === "check") {
    if (lane.step !== "check" || call.delayId !== delayId) return;
    lane.step = "idle";
    if (verdict === "confirmed") return;
    log(c, "warn", `the delegation check came to "${verdict}": falling back to our own heartbeat`);
    if (!outcome.ok) log(c, "debug", "delegation check failed", outcome.error);
    lane.fallBack = true;
    return startSwitch(c, call, lane, "self");
  }
  if (lane.step !== "delegate" || lane.newId !== delayId) return;
  if (verdict !== "confirmed") {
    if (!outcome.ok) log(c, "info", `delegation came to "${verdict}"`, outcome.error);
    return switchFailed(c, call, lane, `delegation ${verdict}`);
  }
  log(c, "info", "the delayed leave is delegated (MSC4195)");
  lane.step = "ready";
  if (laneIdle(call)) swap(c, call, lane);
}

function noteRefusal(c: Ctx, lane: DelegationLane, verdict: "refused" | "unsupported" | "unanswered"): void {
  if (verdict === "unsupported") c.s.delegationUnsupported = true;
  else if (verdict === "refused") lane.refused = true;
  else {
    const d = c.env.delegation!;
    lane.retryAt = c.now + Math.min(d.maxRetryMs, d.retryMs * 2 ** lane.failures);
    lane.failures++;
  }
}

/** A switch failed before its swap: the old delayed leave stays; the new one (if any) is cancelled. */
function switchFailed(c: Ctx, call: CallState, lane: DelegationLane, why: string): void {
  log(c, "info", `switching the delayed leave's holder to "${lane.target}" failed: ${why}`);
  const target = lane.target;
  if (lane.newId) cancelNew(c, call.id, lane.newId, lane.newSentAt! + lane.newDelayMs!, lane.newDelayMs!);
  lane.step = "idle";
  lane.target = lane.newId = lane.newSentAt = lane.newDelayMs = undefined;
  // (A failed fallback is tried again at the next beat: `fallBack` stays set, the long one still holds.)
  void target;
}

/** Swap the switch's new delayed leave into the heartbeat lane, then cancel the old one. */
function swap(c: Ctx, call: CallState, lane: DelegationLane): void {
  const target = lane.target!;
  const old = call.delayId;
  const oldDelayMs = c.s.timing.delayMs;
  const oldFiresFrom = call.armedAt! + oldDelayMs;
  if (target === "delegated") {
    c.s.normalTiming ??= c.s.timing;
    c.s.timing = delegatedTiming(c.s.normalTiming, c.env.delegation!);
  } else if (c.s.normalTiming) {
    c.s.timing = c.s.normalTiming;
    c.s.normalTiming = undefined;
  }
  retimeLink(c);
  lane.holder = target;
  lane.step = "idle";
  lane.beats = 0;
  lane.fallBack = undefined;
  call.delayId = lane.newId;
  call.armedAt = lane.newSentAt;
  call.leaveDeadline = lane.newSentAt! + lane.newDelayMs!;
  lane.target = lane.newId = lane.newSentAt = lane.newDelayMs = undefined;
  setDelayId(c, call.delayId);
  updateSupport(c, { delayedLeaveHolder: target, delayMs: c.s.timing.delayMs });
  log(c, "info", `the delayed leave is now held by "${target}" (${c.s.timing.delayMs} ms delay)`);
  if (old) cancelOld(c, call.id, old, oldFiresFrom, oldDelayMs);
  // The heartbeat lane picks the new timing up at its next beat (heartbeat.ts enterBeat).
  call.lane = { k: "beat", refusals: 0, wakeAt: call.armedAt! + c.s.timing.heartbeatIntervalMs };
}

/** Cancel a delayed leave no longer held (replacedLeaves.ts): not confirmed a request after its due time, it probably fired. */
function cancelOld(c: Ctx, callId: number, delayId: string, firesFrom: number, delayMs: number): void {
  cancelReplaced(c, callId, delayId, firesFrom, firesFrom + c.s.timing.requestTimeoutMs, delayMs);
}

/** A switch's new delayed leave nobody will hold: cancel it (it would fire into a later membership). */
function cancelNew(c: Ctx, callId: number, delayId: string, firesFrom: number, delayMs: number): void {
  if (c.s.disposed) {
    askOnce(c, { kind: "cancel-after-dispose" }, { kind: "delayed", delayId, action: "cancel" }, "cancel", {
      scope: "detached",
      timeoutMs: c.s.timing.requestTimeoutMs,
      budgeted: false,
    });
    return;
  }
  cancelOld(c, callId, delayId, firesFrom, delayMs);
}

/**
 * The delegated delayed leave is gone (a restart said so: the service sent it when the SFU lost us, or
 * it is lost): back to the normal timing at once, before recovery.ts schedules the replacement.
 */
export function onHeldLeaveGone(c: Ctx, call: CallState): void {
  const lane = call.delegation;
  if (!lane) return;
  abandonSwitch(c, call.id, lane);
  if (lane.holder !== "delegated") return;
  lane.holder = "self";
  lane.beats = 0;
  lane.retryAt = c.now + c.env.delegation!.retryMs;
  restoreTiming(c);
  log(c, "info", "the delegated delayed leave is gone: back to our own heartbeat");
}

function abandonSwitch(c: Ctx, callId: number, lane: DelegationLane): void {
  if (lane.newId) cancelNew(c, callId, lane.newId, lane.newSentAt! + lane.newDelayMs!, lane.newDelayMs!);
  lane.step = "idle";
  lane.target = lane.newId = lane.newSentAt = lane.newDelayMs = undefined;
}

function restoreTiming(c: Ctx): void {
  if (!c.s.normalTiming) return;
  c.s.timing = c.s.normalTiming;
  c.s.normalTiming = undefined;
  retimeLink(c);
  updateSupport(c, { delayedLeaveHolder: "self", delayMs: c.s.timing.delayMs });
}

/**
 * The call ended: a switch under way is dropped (its new delayed leave cancelled). A leave keeps the
 * holder (and its timing) while its job sends the delegated leave; the next call starts afresh.
 */
export function endDelegation(c: Ctx, call: CallState): void {
  if (!call.delegation) return;
  abandonSwitch(c, call.id, call.delegation);
  if (call.heartbeatStopped) resetDelegation(c, call);
}

/** The page went away (pageExit.ts): the call starts over, with the normal timing, when it is back. */
export function resetDelegation(c: Ctx, call: CallState): void {
  const lane = call.delegation;
  if (!lane) return;
  abandonSwitch(c, call.id, lane);
  lane.holder = "self";
  lane.fallBack = undefined;
  lane.beats = 0;
  restoreTiming(c);
}

/**
 * Our membership is gone from the room while the service holds our leave: most likely it sent it (the
 * SFU lost us), so the delayed leave is gone too, and writing the membership back now would leave it
 * with nothing pending until our next delegated restart (minutes). Restart now instead and write only
 * once a delayed leave is known to be alive: the restart's success (someone else wrote `{}`), or the
 * recovery's new one after its "gone". True when it took over the rejoin.
 */
export function rejoinAfterDelegatedRemoval(c: Ctx, call: CallState): boolean {
  if (call.delegation?.holder !== "delegated" || call.delayed !== "armed") return false;
  wantWrite(call, "fresh");
  if (call.lane.k === "beat") beat(c, call);
  return true;
}

/** A new call starts with the normal timing (the last one may have ended delegated). */
export function startDelegation(c: Ctx): void {
  restoreTiming(c);
}
