/**
 * Orphans: delayed leaves of ours nobody tracks. A schedule answered after our timeout (its id is
 * cancelled), and one whose outcome we never learned (where the backend can list our delayed events, a
 * sweep finds and cancels it; elsewhere our membership is re-asserted once it could have fired; until
 * something found it, doubt.ts says we probably left from the moment it could fire).
 */
import { lateIdDeadlines } from "../decisions.js";
import { MAX_TIMER_MS } from "../limits.js";
import {
  delayedTimeoutMs,
  log,
  rejoinRetryCapMs,
  setOwnMembership,
  setProbablyLeft,
  setState,
  type Ctx,
} from "./context.js";
import { observeLink } from "./resources.js";
import { askOnce, startTask } from "./tasks.js";
import { resumeWrites, writeMembership } from "./writes.js";
import { adoptLateSchedule, resumeAfterOpen } from "./schedule.js";
import { isSticky, ownsListed, predecessorsCanHurt } from "./format.js";
import type { PendingDelayedEvent } from "../../backends/types.js";
import type { OpenSchedule, Outcome, ScheduleDoubt, Task, UnknownSchedule } from "./types.js";
import { onListedAll } from "./doubt.js";

const LEARNED_IDS_KEPT = 64;

function forget(c: Ctx, open: OpenSchedule): void {
  const i = c.s.open.indexOf(open);
  if (i >= 0) c.s.open.splice(i, 1);
  onOpenSettled(c);
  resumeAfterOpen(c, open);
}

/** A schedule answered (in time, or after our timeout: `open.late`); `value` is its delay id. */
export function onScheduleSettled(c: Ctx, open: OpenSchedule, ok: boolean, value: unknown): void {
  if (!ok) {
    // A late error (a mangled success, a proxy's 5xx) may come after the server created the delayed
    // leave, later than the listing of the sweep its timeout started: list once more (as at its abort).
    // Found by the randomized invariants (sticky format, a 900 ms link that healed while the schedule was
    // on its way): the listing came back before the schedule reached the server, the late malformed
    // answer closed the orphan window, and the delayed leave it had made fired over our membership.
    if (open.late && !c.s.disposed && c.env.canList) {
      c.s.orphanWindowUntil = Math.max(c.s.orphanWindowUntil, c.now + open.delayMs + delayedTimeoutMs(c.s));
      sweepOrphans(c, c.s.call?.delayId);
    }
    return forget(c, open);
  }
  const id = value as string;
  // Its outcome is known now: whatever a sweep lists that we do not know is not its.
  const doubted = resolveUnknownOutcome(c, open.reqId);
  // Only while a sweep may run (an orphan window): outside one, no listing can race this answer.
  if (c.now < c.s.orphanWindowUntil || c.s.sweep) {
    const learned = (c.s.learnedIds ??= []);
    learned.push(id);
    if (learned.length > LEARNED_IDS_KEPT) learned.shift();
  }
  // The answer crossed the link: the round trip is a measurement even when it came too late.
  if (!c.s.disposed) observeLink(c, open.sentAt);
  // The call is still waiting for a delayed leave, and this one has time left: it is ours now (before
  // the lane, woken by forget(), would send another).
  // One a sweep took for foreign and cancelled is gone (or going): adopting it would leave the membership
  // with nothing pending (counterexample L2 in test/unit/invariants.test.ts).
  const swept = c.s.sweptIds?.includes(id) ?? false;
  const adopted = open.late && !c.s.disposed && !swept && adoptLateSchedule(c, open, id);
  // Its outcome is known now: adopted (our heartbeat keeps it), or cancelled below with a deadline (an
  // orphan we fail to cancel in time says so itself), so the blind re-asserts its timeout asked for
  // would only write a membership nothing may protect any more (found by the randomized invariants with
  // the adaptive heartbeat's latency steps: a re-assert sent while a restart was about to say "gone"
  // landed with nothing pending: counterexample L5). One a sweep cancels has no deadline of its own: they stay.
  if (adopted || (open.late && !swept)) dropReasserts(c, open.reasserts);
  forget(c, open);
  // Writes its doubt held go (doubt.ts): what it made is adopted, cancelled with a deadline of its own,
  // or swept.
  if (doubted) resumeWrites(c, c.s.call);
  if (!open.late || adopted || swept) return;
  if (c.s.disposed) return cancelAfterDispose(c, id);
  cancelOrphan(c, id, open.sentAt + open.delayMs, true, open.delayMs);
}

/**
 * A schedule of ours whose outcome we do not know, until `until` (when what it may have made surely
 * fired): while one is open, an unknown delayed event at our key may be its orphan. `doubt`: the
 * heartbeat lane's, whose possible fire over our membership doubt.ts watches.
 */
export function noteUnknownOutcome(c: Ctx, open: OpenSchedule, until: number, doubt?: ScheduleDoubt): void {
  const list = (c.s.unknownSchedules ??= []).filter((u) => stillKept(c, u) && u.reqId !== open.reqId);
  list.push(doubt ? { reqId: open.reqId, until, doubt } : { reqId: open.reqId, until });
  c.s.unknownSchedules = list;
}

/** Its answer came: forgotten. True if it had a doubt (writes it held may go). */
function resolveUnknownOutcome(c: Ctx, reqId: number): boolean {
  const doubted = c.s.unknownSchedules?.some((u) => u.reqId === reqId && u.doubt) ?? false;
  const list = c.s.unknownSchedules?.filter((u) => stillKept(c, u) && u.reqId !== reqId);
  c.s.unknownSchedules = list?.length ? list : undefined;
  return doubted;
}

/** Open, or a doubt past its end that doubt.ts has not let go of yet (the writes it held go then). */
function stillKept(c: Ctx, u: UnknownSchedule): boolean {
  return u.until > c.now || u.doubt !== undefined;
}

/** Could a schedule of ours have made a delayed leave at our key that we never learned of? */
function unknownOutcomeOpen(c: Ctx): boolean {
  return c.s.unknownSchedules?.some((u) => u.until > c.now) ?? false;
}

function dropReasserts(c: Ctx, ats: number[] | undefined): void {
  if (!ats) return;
  const drop = (list: number[] | undefined) => {
    if (!list) return undefined;
    for (const at of ats) {
      const i = list.indexOf(at);
      if (i >= 0) list.splice(i, 1);
    }
    return list.length > 0 ? list : undefined;
  };
  c.s.reassertAt = drop(c.s.reassertAt);
  c.s.probableFiresAt = drop(c.s.probableFiresAt);
}

/**
 * A delay id that arrived after dispose(): nobody else will ever cancel it, and it would fire `{}`
 * into the next manager's membership (a remount). One cancel, bounded by one request timeout.
 */
function cancelAfterDispose(c: Ctx, delayId: string): void {
  log(c, "debug", "cancelling a delayed leave that arrived after dispose()");
  askOnce(c, { kind: "cancel-after-dispose" }, { kind: "delayed", delayId, action: "cancel" }, "cancel", {
    scope: "detached",
    timeoutMs: c.s.timing.requestTimeoutMs,
    budgeted: false,
  });
}

/**
 * A delayed leave nobody tracks any more would fire later and wipe a membership: cancel it. `delayMs`
 * is its own delay when known (a schedule sent before the server made us lower the delay has the
 * longer one; with the lowered delay the cancel gave up while it could still fire: found by the model
 * test, test/unit/machine.model.test.ts).
 */
function cancelOrphan(
  c: Ctx,
  delayId: string,
  firesAt: number | undefined,
  late: boolean,
  delayMs = c.s.timing.delayMs,
): void {
  if (c.s.disposed) return;
  log(c, "debug", "cancelling orphaned delayed leave", delayId);
  // If the cancel is not confirmed by the time the orphan is surely due, it probably wiped our
  // membership. The server created it before its id reached us (now), so it fires a delay from now
  // at the latest (`firesAt`, a delay after the send, is the earliest).
  const { latestFire, cancelUntil } = lateIdDeadlines(
    firesAt === undefined ? undefined : firesAt - delayMs,
    c.now,
    delayMs,
    c.s.timing.requestTimeoutMs,
  );
  if (firesAt !== undefined)
    (c.s.orphanDeadlines ??= []).push({ delayId, at: Math.max(firesAt, latestFire) });
  // Quick retries, but only while the orphan can still fire: after that a cancel is moot.
  startTask(c, {
    purpose: { kind: "cancel-orphan", delayId, late },
    request: { kind: "delayed", delayId, action: "cancel" },
    op: "cancel",
    scope: "manager",
    retry: "not-gone",
    capMs: rejoinRetryCapMs(c.s),
    until: cancelUntil,
  });
}

function dropDeadline(c: Ctx, delayId: string): boolean {
  const list = c.s.orphanDeadlines;
  const i = list?.findIndex((d) => d.delayId === delayId) ?? -1;
  if (i < 0) return false;
  list!.splice(i, 1);
  if (list!.length === 0) c.s.orphanDeadlines = undefined;
  return true;
}

export function onCancelOrphanDone(c: Ctx, task: Task, outcome: Outcome): void {
  if (task.purpose.kind !== "cancel-orphan") return;
  const { delayId } = task.purpose;
  const sweep = c.s.sweep;
  if (outcome.ok) dropDeadline(c, delayId);
  else if (!outcome.deferred && !outcome.aborted) {
    // "gone": it has fired already (or someone removed it): our membership may be wiped.
    dropDeadline(c, delayId);
    probablyFiredUncancelled(c);
  } else if (sweep?.step === "cancel" && !task.purpose.late) sweep.unconfirmed = true;
  // deferred (no longer worth cancelling): the deadline decides.
  if (sweep && sweep.step === "cancel" && !task.purpose.late && --sweep.cancelling === 0) finishSweep(c);
}

/**
 * A delayed leave of ours we could not cancel in time fired (an orphan, or one we replaced): others see
 * us gone; rejoin like after a fired leave.
 */
export function probablyFiredUncancelled(
  c: Ctx,
  what = "an orphaned delayed leave",
  why = "was due before we could cancel it",
): void {
  const call = c.s.call;
  if (!call || call.ended || !call.lastSent) return;
  log(c, "warn", `${what} ${why}: probably left`);
  call.lastSent = undefined;
  setOwnMembership(c, undefined);
  setProbablyLeft(c, true);
  setState(c, { kind: "reconnecting", reason: "delayed-leave-fired", probablyLeft: true });
  writeMembership(c, call, "fresh");
}

/**
 * Where the backend can list our pending delayed events, cancel every one at our key except `keep`:
 * it is an orphan from a schedule whose answer we never got. Only runs while such an orphan may exist.
 */
export function sweepOrphans(c: Ctx, keep: string | undefined, predecessors = false): void {
  // (A switch of holder's schedule of unknown outcome opens no orphan window, which would hold our writes
  // for its whole long delay, but what it made is an orphan all the same: a leave's sweep looks for it.
  // Found by the randomized invariants with the delegation service: a leave said left with one pending.)
  const orphanMayBe = c.now < c.s.orphanWindowUntil || (c.s.leave !== undefined && unknownOutcomeOpen(c));
  if (!c.env.canList || (!predecessors && !orphanMayBe)) return;
  // One sweep at a time; a request for another while one runs makes it run once more (a predecessor
  // sweep while one runs already looks at what this one would).
  if (c.s.sweep) {
    if (!predecessors) c.s.sweepAgain = true;
    return;
  }
  // A sweep for a dead predecessor's delayed leaves opens no orphan window of ours (writes go on).
  const windowUntil = predecessors
    ? Math.max(c.s.orphanWindowUntil, c.now + c.s.timing.delayMs)
    : c.s.orphanWindowUntil;
  c.s.sweep = predecessors
    ? { step: "list", keep, windowUntil, cancelling: 0, predecessors }
    : { step: "list", keep, windowUntil, cancelling: 0 };
  // Retried quickly, but only while an orphan could still fire (a switch's too).
  const unknownUntil = Math.max(0, ...(c.s.unknownSchedules ?? []).map((u) => u.until));
  startTask(c, {
    purpose: { kind: "list", windowUntil },
    request: { kind: "list" },
    op: "cancel",
    scope: "manager",
    retry: "retryable",
    capMs: rejoinRetryCapMs(c.s),
    until: Math.max(windowUntil, unknownUntil),
  });
}

export function onListDone(c: Ctx, outcome: Outcome): void {
  const sweep = c.s.sweep;
  if (!sweep || sweep.step !== "list") return;
  if (!outcome.ok) {
    log(c, "debug", "could not list delayed events to find orphans", outcome.error);
    return endSweep(c);
  }
  sweep.orphans = outcome.value as PendingDelayedEvent[];
  sweep.listedAt = outcome.sentAt;
  // A schedule still open may have created a listed id whose answer has not reached us yet: give open
  // schedules one request timeout to answer before judging what is an orphan.
  if (c.s.open.length > 0) {
    sweep.step = "wait-open";
    sweep.wakeAt = c.now + delayedTimeoutMs(c.s);
    return;
  }
  cancelListedOrphans(c);
}

/** Open schedules settled, or the sweep's wait for them is over. */
export function onOpenSettled(c: Ctx): void {
  const sweep = c.s.sweep;
  if (sweep?.step === "wait-open" && c.s.open.length === 0) cancelListedOrphans(c);
}

export function onSweepWake(c: Ctx): void {
  const sweep = c.s.sweep;
  if (sweep?.step === "wait-open") cancelListedOrphans(c);
}

/** Of listed delayed events, those at our key we cannot name (not ours as far as we know). */
function unnamed(c: Ctx, listed: PendingDelayedEvent[]): PendingDelayedEvent[] {
  const sweep = c.s.sweep!;
  const owner = c.s.leaveCall ?? c.s.call;
  return listed.filter(
    (e) =>
      ownsListed(c, e, owner) &&
      e.delayId !== sweep.keep &&
      e.delayId !== c.s.call?.delayId &&
      e.delayId !== c.s.call?.delegation?.newId &&
      !c.s.learnedIds?.includes(e.delayId),
  );
}

function cancelListedOrphans(c: Ctx): void {
  const sweep = c.s.sweep!;
  sweep.wakeAt = undefined;
  const foreign = unnamed(c, sweep.orphans ?? []);
  // A delayed event at our key we do not know is our orphan only while a schedule of ours of unknown
  // outcome could have made it. Otherwise (its answer came late and named its id) it is another live tab's
  // of this device, which shares our state key: cancelling it took the other tab's protection away, and
  // both tabs wrote their membership with nothing pending (found by the randomized invariants with a
  // second tab: two tabs joining at once on a slow link cancelled each other's delayed leaves). A dead
  // page's is judged by the predecessor sweep, by its restarts.
  const orphans = sweep.predecessors ? deadPredecessors(c, foreign) : unknownOutcomeOpen(c) ? foreign : [];
  // Even then it may be another tab's: the only thing that removes that tab's membership should the tab
  // die. Joining, or leaving a membership of ours, we cover our key ourselves (our own membership and
  // delayed leave, or our leave's `{}`). Leaving with nothing written, we do not, and what we cannot name
  // stays: our orphan, if it is one, fires `{}` over a membership that is not ours (a live tab puts it
  // back, a dead one should not keep it), and the leave waits for that (the orphan window stays open).
  // Reading the key first is no answer: another tab's write may still be on its way. Found by the
  // randomized invariants with a second tab: a leaving tab that never wrote took the delayed leave of a
  // second tab that crashed around its join for its own orphan, and the crashed tab's membership stood
  // with nothing to remove it.
  if (!sweep.predecessors && orphans.length > 0 && leavingWithNothingWritten(c)) {
    log(c, "debug", "what we cannot name at our key may be another tab's delayed leave: it stays");
    sweep.orphans = undefined;
    sweep.step = "cancel";
    sweep.cancelling = 0;
    return endSweep(c);
  }
  cancelOrphans(c, orphans);
}

/** State format: the app does not want to be in the call, and the call wrote no membership of ours. */
function leavingWithNothingWritten(c: Ctx): boolean {
  const owner = c.s.leaveCall ?? c.s.call;
  return !isSticky(c) && !c.s.wantJoined && !owner?.lastSent && !owner?.membershipAttempted;
}

function cancelOrphans(c: Ctx, orphans: PendingDelayedEvent[]): void {
  const sweep = c.s.sweep!;
  sweep.orphans = undefined;
  sweep.step = "cancel";
  sweep.cancelling = orphans.length;
  if (orphans.length === 0) return finishSweep(c);
  for (const e of orphans) {
    const swept = (c.s.sweptIds ??= []);
    swept.push(e.delayId);
    if (swept.length > LEARNED_IDS_KEPT) swept.shift();
    cancelOrphan(c, e.delayId, undefined, false);
  }
}

function finishSweep(c: Ctx): void {
  const sweep = c.s.sweep!;
  if (c.s.orphanWindowUntil === sweep.windowUntil) c.s.orphanWindowUntil = 0;
  // Everything of ours at our key it did not know, pending when it listed, is cancelled: schedules of
  // unknown outcome that reached the server before then made nothing that can still fire (doubt.ts). (A
  // predecessor sweep cancels only a dead page's.)
  if (!sweep.predecessors && sweep.listedAt !== undefined && !sweep.unconfirmed)
    onListedAll(c, sweep.listedAt);
  endSweep(c);
  resumeWrites(c, c.s.call);
}

function endSweep(c: Ctx): void {
  c.s.sweep = undefined;
  if (c.s.sweepAgain) {
    c.s.sweepAgain = false;
    sweepOrphans(c, c.s.call?.delayId);
  }
}

/**
 * A page that died without dispose() (a reload, a crash) may have left a delayed leave at our key, or
 * still have one on its way: it would fire `{}` over the membership we write. Where the backend can list
 * our delayed events, a new manager's first call lists our key at once and again after a live tab's
 * longest heartbeat (relistAfterMs), up to PREDECESSOR_SWEEPS times, and cancels what a dead page left:
 * a delayed event at our key that is not ours and was not restarted between two listings. Another live tab of this device restarts its own
 * (and keeps it). Elsewhere, and for one that fires first, our eyes (watch.ts) put the membership back.
 */
export function sweepPredecessors(c: Ctx): void {
  if (!c.env.canList || !predecessorsCanHurt(c)) return;
  c.s.predecessorSeen = undefined;
  c.s.predecessorSweepsLeft = PREDECESSOR_SWEEPS - 1;
  c.s.predecessorDeferrals = 0;
  sweepOrphans(c, c.s.call?.delayId, true);
}

const PREDECESSOR_SWEEPS = 3;

/**
 * How far apart the listings that judge a predecessor are: wider than the longest heartbeat a live tab
 * with our timing keeps (the fixed interval, or the adaptive one at its thinnest timeout) plus one
 * restart's flight, so a live tab has restarted in between. At half a delay, the adaptive heartbeat's
 * 6.75 s interval (10 s delay) let a second tab of the same device cancel the first tab's live delayed
 * leave, and the first tab wrote its membership back over the second's (test/synapse/two-tabs).
 *
 * Where the app delegates its delayed leave (MSC4195), a live tab may hold a delegated one, which it
 * restarts only every delegated heartbeat (5 min by default; the service's restarts are its own): the
 * listings are spaced wider than that too. A normal leave of a dead page then fires before the second
 * listing (our eyes put the membership back, as where nothing can list), and a delegated one is sent by
 * the service once the SFU lost that page. Spaced by the normal timing alone, a tab joining the call
 * took a second tab's delegated leave for a dead page's and cancelled it (found by the randomized
 * invariants with the delegation service and a second tab in the world).
 */
function relistAfterMs(c: Ctx): number {
  const t = c.s.normalTiming ?? c.s.timing;
  const longest = t.adaptiveHeartbeat
    ? Math.max(t.heartbeatIntervalMs, t.delayMs - t.minRestartTimeoutMs - t.heartbeatMarginMs)
    : t.heartbeatIntervalMs;
  const normal = Math.min(t.delayMs, Math.max(t.delayMs / 2, longest + t.requestTimeoutMs));
  const delegated = c.env.delegation ? c.env.delegation.heartbeatIntervalMs + t.requestTimeoutMs : 0;
  return Math.round(Math.min(MAX_TIMER_MS, Math.max(normal, delegated)));
}

/** Of the foreign delayed events at our key: those a previous listing saw, not restarted since. */
function deadPredecessors(c: Ctx, foreign: PendingDelayedEvent[]): PendingDelayedEvent[] {
  const seen = c.s.predecessorSeen;
  c.s.predecessorSeen = foreign.map((e) =>
    e.delayedSinceTs === undefined ? { delayId: e.delayId } : { delayId: e.delayId, since: e.delayedSinceTs },
  );
  // Another listing relistAfterMs from now, after the first (one may still be on its way) and while
  // something foreign is there, as long as rounds are left.
  if ((!seen || foreign.length > 0) && (c.s.predecessorSweepsLeft ?? 0) > 0) {
    c.s.predecessorSweepsLeft = (c.s.predecessorSweepsLeft ?? 0) - 1;
    c.s.predecessorSweepAt = c.now + relistAfterMs(c);
  }
  if (!seen) return [];
  // A schedule of ours still unanswered may have created one of these (its answer on a slow link): judge
  // nothing while one is open, and look again (bounded: the rounds left, and open schedules end).
  if (c.s.open.length > 0) {
    if (
      c.s.predecessorSweepAt === undefined &&
      foreign.length > 0 &&
      (c.s.predecessorDeferrals ?? 0) < PREDECESSOR_SWEEPS
    ) {
      c.s.predecessorDeferrals = (c.s.predecessorDeferrals ?? 0) + 1;
      c.s.predecessorSweepAt = c.now + relistAfterMs(c);
    }
    return [];
  }
  return foreign.filter((e) => {
    const before = seen.find((s) => s.delayId === e.delayId);
    return before?.since !== undefined && before.since === e.delayedSinceTs;
  });
}

/** Deadlines of late delayed leaves, and re-asserts after schedules of unknown outcome. */
export function orphanWakeAt(c: Ctx): number | undefined {
  let at: number | undefined;
  for (const d of c.s.orphanDeadlines ?? []) if (at === undefined || d.at < at) at = d.at;
  for (const r of c.s.reassertAt ?? []) if (at === undefined || r < at) at = r;
  for (const r of c.s.probableFiresAt ?? []) if (at === undefined || r < at) at = r;
  const p = c.s.predecessorSweepAt;
  if (p !== undefined && (at === undefined || p < at)) at = p;
  for (const o of c.s.open)
    if (o.abortAt !== undefined && (at === undefined || o.abortAt < at)) at = o.abortAt;
  return at;
}

export function onOrphanWake(c: Ctx): void {
  if (c.s.predecessorSweepAt !== undefined && c.s.predecessorSweepAt <= c.now) {
    c.s.predecessorSweepAt = undefined;
    if (c.s.call && !c.s.call.ended) sweepOrphans(c, c.s.call.delayId, true);
  }
  const deadlines = c.s.orphanDeadlines;
  if (deadlines)
    for (const d of deadlines.filter((d) => d.at <= c.now)) {
      dropDeadline(c, d.delayId);
      probablyFiredUncancelled(c);
    }
  const fires = c.s.probableFiresAt;
  if (fires?.some((r) => r <= c.now)) {
    c.s.probableFiresAt = fires.filter((r) => r > c.now);
    if (c.s.probableFiresAt.length === 0) c.s.probableFiresAt = undefined;
    probablyFiredUncancelled(c, "a delayed leave whose schedule we never heard back from");
  }
  const reasserts = c.s.reassertAt;
  if (reasserts) {
    const due = reasserts.filter((r) => r <= c.now);
    c.s.reassertAt = reasserts.filter((r) => r > c.now);
    if (c.s.reassertAt.length === 0) c.s.reassertAt = undefined;
    for (let i = 0; i < due.length; i++) {
      const call = c.s.call;
      if (call && !call.ended && call.lastSent) writeMembership(c, call, "reassert");
    }
  }
  // Waiting for a schedule's answer is pointless now (its delayed leave fired, or we were disposed).
  // (An answer that still comes, from a backend that ignores the abort, is handled as a late one.)
  for (const open of c.s.open.filter((o) => o.abortAt !== undefined && o.abortAt <= c.now)) {
    open.abortAt = undefined;
    c.out.push({ type: "abort", reqId: open.reqId });
    // Its answer never came, so the sweep after its timeout may have listed before the request reached
    // the server: a delayed leave it created since would fire a delay later. List once more now that it
    // can no longer arrive (found by the randomized invariants with the adaptive heartbeat's latency
    // steps: a schedule processed after the sweep, its answer lost, fired `{}` over our membership:
    // counterexample L7 in test/unit/invariants.test.ts).
    if (open.late && !c.s.disposed && c.env.canList) {
      c.s.orphanWindowUntil = Math.max(c.s.orphanWindowUntil, c.now + open.delayMs + delayedTimeoutMs(c.s));
      sweepOrphans(c, c.s.call?.delayId);
    }
  }
}

/**
 * Delayed leaves of ours still being cancelled (or answered): late ones, and those a change of holder
 * made or replaced (delegation.ts: a switch the leave abandoned cancels its new one, or will once its
 * schedule answers). leave() waits for them, within bounds: it said `left` while the new delayed leave
 * of a delegation under way was still pending, its cancel waiting out a 429 (found by the randomized
 * invariants with the delegation service in the world).
 */
export function lateCancelsRunning(c: Ctx): boolean {
  return (
    c.s.open.some((o) => o.late || o.switchTo !== undefined) ||
    c.s.tasks.some(
      (t) => (t.purpose.kind === "cancel-orphan" && t.purpose.late) || t.purpose.kind === "cancel-replaced",
    )
  );
}
