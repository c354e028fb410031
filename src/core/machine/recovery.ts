/**
 * A restart said our delayed leave is gone: find out what became of it (the server's lookup, or the
 * time), tell a fired leave from a lost one and from a membership someone else replaced, then schedule a
 * replacement, at most once per heartbeat interval.
 */
import { MembershipError, type ErrorClass } from "../../errors.js";
import type { DelayedEventStatus, StateEventSnapshot } from "../../backends/types.js";
import { goneCause, recoveryPauseMs } from "../decisions.js";
import { lostDelayedLeaveCause } from "../lostDelayedLeave.js";
import {
  emitError,
  log,
  setDelayId,
  setOwnMembership,
  setProbablyLeft,
  setState,
  type Ctx,
} from "./context.js";
import { endCall } from "./calls.js";
import { askOnce } from "./tasks.js";
import { resumeWrites, wantWrite } from "./writes.js";
import type { CallState, Outcome } from "./types.js";
import { startSchedule } from "./schedule.js";
import { readRequest, removedByOthers } from "./format.js";
import { onHeldLeaveGone } from "./delegation.js";
import { isLeftContent } from "../../membership/content.js";
import { cancelReplaced } from "./replacedLeaves.js";

export function recover(c: Ctx, call: CallState, cls: ErrorClass): void {
  // Where the server can say what became of it (MSC4140 as merged: the 409's lookup, or `GET` one),
  // believe the server. Otherwise judge by time, not by the probablyLeft flag: after a rejoin the flag
  // stays up until a restart succeeds, and on Synapse < 1.127 our own fresh write cancels the new
  // delayed leave. Past the due time the verdict is "fired" anyway, so only a "gone" before it costs
  // a lookup: a recovery after an outage must not wait a round trip for it.
  // A delegated leave (MSC4195) is removed early only by the service, which sends it when the SFU lost us
  // (our restarts of it are minutes apart, so by time it is rarely due): "gone" means it most likely fired.
  // Judged "lost", a client that cannot read its key put the membership back saying nothing, although
  // others had seen us leave (found by the randomized invariants with the delegation service: the SFU
  // lost a tab, and probablyLeft never turned true). A lookup, where there is one, still decides.
  const delegated = call.delegation?.holder === "delegated";
  const byTime = delegated ? "fired" : goneCause(c.now, call.armedAt!, c.s.timing.delayMs);
  // A delegated leave gone (the service sent it, or it is lost): the normal timing from now on.
  onHeldLeaveGone(c, call);
  if (cls.kind === "gone" && cls.finalised) return judge(c, call, cls.finalised, byTime);
  if ((byTime !== "lost" && !delegated) || !c.env.canLookUp || !call.delayId)
    return judge(c, call, undefined, byTime);
  call.lane = { k: "lookup", byTime };
  askOnce(c, { kind: "lookup" }, { kind: "lookup", delayId: call.delayId }, "restart", { callId: call.id });
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
    // Writes held while the restart and its lookup were on their way may go (writeIsProtected).
    resumeWrites(c, call);
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
  const read = readRequest(c, call);
  if (!c.env.canRead || !call.lastSent || !read) return lostNotReplaced(c, call, replaced);
  // Another user may have written our key (Synapse then cancels our delayed leave): read it.
  call.lane = { k: "read-replaced", replaced };
  // Without a budget token: it only reads, and while it waits we would go on saying `connected` with no
  // delayed leave behind us (found by the randomized invariants: a budget spent by failed schedules
  // held the read back for 650 ms).
  askOnce(c, { kind: "read-replaced" }, read, "restart", { callId: call.id, budgeted: false });
}

export function onReadReplacedDone(c: Ctx, call: CallState | undefined, outcome: Outcome): void {
  if (!call || call.lane.k !== "read-replaced") return;
  const { replaced } = call.lane;
  if (call.ended || call.heartbeatStopped) {
    call.lane = { k: "stopped" };
    return;
  }
  const current = outcome.ok ? ((outcome.value as StateEventSnapshot | undefined)?.content ?? {}) : undefined;
  const byOthers =
    current !== undefined && call.lastSent !== undefined && removedByOthers(c, current, call.lastSent);
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
  // Our key holds no membership at all (`{}` written by someone else, or by the service for us): others
  // no longer list us until we write again.
  const gone = isLeftContent(current);
  if (gone) setProbablyLeft(c, true);
  setState(c, { kind: "reconnecting", reason: "membership-removed", probablyLeft: gone });
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

export function afterRecoverPause(
  c: Ctx,
  call: CallState,
  replaced: string | undefined,
  fired: boolean,
): void {
  // A "gone" we were wrong about would leave the replaced delayed leave to fire later: cancel it.
  // Retried (as the stale delayed leave's cancel) until it has surely fired: one cancel lost on the way
  // let it fire `{}` over the membership we write next, while we reported joined (found by the model
  // test, test/unit/machine.model.test.ts). Only a "gone" ends it early.
  // (Said to have probably fired a delay and a request after now: the "gone" may have been a lie about a
  // restart the server did process.)
  if (!fired && replaced) {
    const { delayMs, requestTimeoutMs } = c.s.timing;
    cancelReplaced(
      c,
      call.id,
      replaced,
      call.armedAt! + delayMs,
      c.now + delayMs + requestTimeoutMs,
      delayMs,
    );
  }
  if (call.ended) {
    call.lane = { k: "stopped" };
    return;
  }
  startSchedule(c, call, "recover");
}
