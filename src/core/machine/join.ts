/**
 * App intents: join, leave, update; and what the room's synced view reports (our membership missing).
 */
import { rejoinAfterDelegatedRemoval, startDelegation } from "./delegation.js";
import { MembershipError } from "../../errors.js";
import type { SupportHint } from "../../backends/types.js";
import type { StateEventSnapshot } from "../../backends/types.js";
import { isLeftContent, sameContent } from "../../membership/content.js";
import { isLateWriteOf } from "./lateWrites.js";
import { changedKeys } from "../decisions.js";
import {
  emitError,
  log,
  setOwnMembership,
  setProbablyLeft,
  setState,
  updateSupport,
  type Ctx,
} from "./context.js";
import { failCall, newCall } from "./calls.js";
import { startDelayedLane } from "./schedule.js";
import { endOrphanWait, startLeaveJob } from "./leave.js";
import { askOnce } from "./tasks.js";
import { writeMembership } from "./writes.js";
import { canReadKey, onUnreadable, scheduleCheck } from "./watch.js";
import { isSticky, predecessorsCanHurt, readRequest } from "./format.js";
import type { CallState, MachineEvent, Outcome, Task } from "./types.js";

export function join(c: Ctx, memberId?: string): void {
  if (c.s.wantJoined) return;
  c.s.wantJoined = true;
  if (memberId !== undefined) c.s.nextMemberId = memberId;
  if (endOrphanWait(c)) return;
  // A call that failed or was left may still hold a delayed leave: clean it up before joining again.
  // The leave job starts the new call when it is done (wantJoined), which may be at once: a second
  // startCall here would orphan the first call's delayed leave (found by the randomized invariants).
  if (!c.s.leave && c.s.call) return startLeaveJob(c, c.s.call);
  if (!c.s.leave) startCall(c);
}

export function startCall(c: Ctx): void {
  // A guard against a late write of the last call (lateWrites.ts) would fire into this one: it is
  // cancelled first, like a failed leave's delayed leave. In the sticky format it writes the last
  // call's own key, never this call's fresh one: it stays pending and takes down whatever of that call
  // lands late (cancelling it left such a write up for its whole stickiness; found by the model test).
  if (c.s.guardDelayId && !c.s.staleDelayId && !isSticky(c)) {
    c.s.staleDelayId = c.s.guardDelayId;
    c.s.staleMemberId = c.s.guardMemberId;
  }
  c.s.guardDelayId = c.s.guardMemberId = undefined;
  // This call's writes replace whatever of the last one lands late (and its eyes re-assert over it).
  c.s.guardCheck = undefined;
  startDelegation(c);
  const call = newCall(c);
  c.s.call = call;
  setState(c, { kind: "joining", step: "delayed-leave" });
  if (c.env.canProbe)
    askOnce(c, { kind: "probe" }, { kind: "probe" }, "schedule-leave", {
      callId: call.id,
      timeoutMs: c.s.timing.stateRequestTimeoutMs,
      budgeted: false,
    });
  // The first call of this manager looks for a dead predecessor's leftovers once its own delayed leave
  // is armed (orphans.ts sweepPredecessors): it knows its own id then, and that delayed events work.
  if (!c.s.joinedBefore && predecessorsCanHurt(c)) call.sweepPredecessors = true;
  c.s.joinedBefore = true;
  startDelayedLane(c, call);
}

export function onProbeDone(c: Ctx, call: CallState | undefined, outcome: Outcome): void {
  if (c.s.disposed) return;
  if (!outcome.ok) return log(c, "debug", "support probe failed", outcome.error);
  const hint = outcome.value as SupportHint;
  if (hint.maxDelayMs !== undefined && hint.maxDelayMs > 0) {
    c.s.knownMaxDelayMs = hint.maxDelayMs;
    updateSupport(c, { maxDelayMs: hint.maxDelayMs });
  }
  if (hint.canSendState === false) {
    if (call && !call.ended)
      failCall(
        c,
        call,
        new MembershipError(
          "the widget host refused to let us send our membership",
          "forbidden",
          "send-state",
        ),
      );
  } else if (hint.delayedEvents === false && c.s.out.support.delayedEvents === undefined)
    updateSupport(c, { delayedEvents: false, reason: hint.reason });
  if (hint.canReadState === false) onUnreadable(c);
}

/** leave(): false when there is nothing to leave (the driver resolves at once). */
export function leave(c: Ctx): boolean {
  c.s.wantJoined = false;
  c.s.leaveReason = "user";
  if (c.s.leave?.quiet) {
    // The app now leaves what a failed call was cleaning up: say so.
    c.s.leave.quiet = undefined;
    setState(c, { kind: "leaving" });
  }
  if (c.s.leave) return true;
  if (!c.s.call && c.s.staleDelayId) {
    // A leave that failed left its delayed leave pending: this leave fires it.
    const call = newCall(c);
    call.delayId = c.s.staleDelayId;
    // (Sticky format: the key of the call that left it, for a fallback leave.)
    if (c.s.staleMemberId !== undefined) call.memberId = c.s.staleMemberId;
    call.membershipAttempted = true;
    c.s.staleDelayId = c.s.staleMemberId = undefined;
    c.s.call = call;
  }
  if (!c.s.call) return false;
  startLeaveJob(c, c.s.call);
  return true;
}

/** update(): the fields version to wait for, or undefined when there is nothing to wait for. */
export function update(
  c: Ctx,
  patch: Extract<MachineEvent, { type: "update" }>["patch"],
): number | undefined {
  const fields = c.s.fields;
  const keys = ["callIntent", "fociPreferred", "focusActive", "applicationData"] as const;
  // Only what differs from the fields in force counts: an unchanged update writes nothing.
  const changed = changedKeys(patch, fields, keys);
  if (changed.includes("callIntent")) fields.callIntent = patch.callIntent;
  if (changed.includes("fociPreferred")) fields.fociPreferred = patch.fociPreferred!;
  if (changed.includes("focusActive")) fields.focusActive = patch.focusActive!;
  if (changed.includes("applicationData")) fields.applicationData = patch.applicationData;
  const version = changed.length > 0 ? ++c.s.fieldsVersion : c.s.fieldsVersion;
  const call = c.s.call;
  // Not in a call (or not written yet): the next membership write carries the new fields.
  if (!call || call.ended || !call.membershipAttempted) return undefined;
  // Nothing new: done once the fields in force are on the server (now, unless a write is pending).
  if (changed.length === 0 && call.confirmedVersion >= version) return undefined;
  if (changed.length > 0) {
    call.updateAsked = true;
    writeMembership(c, call, "refresh");
  }
  return version;
}

/** The room has shown no membership of ours for the grace period although we wrote one. */
export function membershipMissing(c: Ctx): void {
  const call = c.s.call;
  if (!call || call.ended || call.checkingMissing) return;
  const sent = call.lastSent;
  const read = readRequest(c, call);
  if (!sent || !canReadKey(c) || !read) return onMissingConfirmed(c, call, sent);
  // The view may lag more than the grace period behind our own write (a slow sync): ask the server
  // before rewriting, or a lag alone would flicker probablyLeft and give us a new created_ts.
  call.checkingMissing = true;
  call.checkAt = undefined;
  askOnce(c, { kind: "read-holds", content: sent, why: "view" }, read, "send-state", {
    callId: call.id,
  });
}

/**
 * What the server holds at our key, asked because the view said our membership is missing, or as the
 * periodic check. Only a missing membership (none, or left content) counts: a different one at our
 * key is another tab of this very device, which others list as us (two tabs must not fight). One that
 * names another device is not ours at all (someone else wrote our key): missing too (found by the
 * randomized invariants with the delegation service: another user's write at our key cancelled our
 * normal delayed leave just as a delegated one took over, whose restarts kept succeeding, so only the
 * eyes could tell, and they took that content for another tab's).
 */
export function onReadHoldsDone(c: Ctx, call: CallState | undefined, task: Task, outcome: Outcome): void {
  if (task.purpose.kind !== "read-holds" || !call) return;
  call.checkingMissing = undefined;
  const { content: sent, why } = task.purpose;
  if (!outcome.ok) {
    log(c, "debug", "could not read our membership back", outcome.error);
    // The view said it is missing and the server cannot say otherwise: believe the view.
    if (why === "view") return onMissingConfirmed(c, call, sent);
    return scheduleCheck(c, call);
  }
  const read = outcome.value as StateEventSnapshot | undefined;
  // An older membership of ours that landed late (after a newer write): put ours back at once.
  if (read && !sameContent(read.content, sent) && isLateWriteOf(c, read.content)) {
    log(c, "debug", "an older write of ours landed late; writing our membership again");
    writeMembership(c, call, "reassert");
    return scheduleCheck(c, call);
  }
  if (read && !isLeftContent(read.content) && !namesAnotherDevice(c, read.content)) {
    if (why === "view")
      log(c, "debug", "the room view lags behind our write; the server holds our membership");
    return scheduleCheck(c, call);
  }
  onMissingConfirmed(c, call, sent);
}

/** State format: a membership content whose `device_id` is not ours (in the sticky format keys are per call). */
function namesAnotherDevice(c: Ctx, content: Record<string, unknown>): boolean {
  return !isSticky(c) && typeof content.device_id === "string" && content.device_id !== c.s.fields.deviceId;
}

function onMissingConfirmed(c: Ctx, call: CallState, sent: unknown): void {
  if (call.ended || call.lastSent !== sent || c.s.call !== call) return;
  log(c, "warn", "the room no longer holds our membership");
  call.lastSent = undefined;
  setOwnMembership(c, undefined);
  emitError(
    c,
    new MembershipError("our membership is gone from the room state", "membership-removed", "send-state"),
  );
  if (!c.env.autoRejoin) {
    // Clean up our delayed leave too; the app decides whether to join again.
    c.s.wantJoined = false;
    c.s.leaveReason = "membership-removed";
    if (!c.s.leave) startLeaveJob(c, call);
    return;
  }
  // Others see us gone until the write lands; "certainly joined" again after the restart that follows.
  setProbablyLeft(c, true);
  setState(c, { kind: "reconnecting", reason: "membership-removed", probablyLeft: true });
  // Delegated, the likeliest writer of that `{}` is the service, sending our leave: no write before a
  // restart says whether the delayed leave is still there (delegation.ts).
  if (rejoinAfterDelegatedRemoval(c, call)) return;
  writeMembership(c, call, "fresh");
}
