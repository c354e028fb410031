/**
 * One call's life outside its two lanes: starting and ending it, failing it, the write guard, the
 * predicted leave and the expiry check.
 */
import { MembershipError } from "../../errors.js";
import { mayWriteMembership } from "../decisions.js";
import { delayedTimeoutMs, emitError, log, nextId, setProbablyLeft, setState, type Ctx } from "./context.js";
import { abortIdleTasks } from "./tasks.js";
import { dropScheduleWait } from "./schedule.js";
import { endDelegation } from "./delegation.js";
import { doubtHoldsWrites } from "./doubt.js";
import { replacedHoldsWrites } from "./replacedLeaves.js";
import type { CallState } from "./types.js";

export function newCall(c: Ctx): CallState {
  const id = nextId(c.s);
  // The sticky format's member id: the driver's fresh one for this join (a plain fallback for tests
  // that drive the machine directly), taken once.
  const memberId = c.s.nextMemberId ?? `member-${id}`;
  c.s.nextMemberId = undefined;
  return {
    id,
    memberId,
    ended: false,
    heartbeatStopped: false,
    lane: { k: "stopped" },
    delayed: "pending",
    scheduling: false,
    membershipAttempted: false,
    confirmedVersion: -1,
    unrecognisedSchedules: 0,
    expired: false,
    rearming: false,
    watchLeave: false,
    lowerings: 0,
  };
}

/** Stop the call's writes, refreshes and retries (and its heartbeat unless `keepHeartbeat`). */
export function endCall(c: Ctx, call: CallState, keepHeartbeat = false): void {
  call.ended = true;
  // The second sweep for a predecessor's leftovers belongs to this call's start.
  if (c.s.call === call) c.s.predecessorSweepAt = undefined;
  if (!keepHeartbeat) call.heartbeatStopped = true;
  call.watchLeave = false;
  call.refreshAt = undefined;
  call.refreshAfterFireAt = undefined;
  call.wantedWrite = undefined;
  endDelegation(c, call);
  if (call.lane.k === "schedule" && call.lane.reqId === undefined) dropScheduleWait(c, call);
  stopIdleLane(call);
  abortIdleTasks(c);
  rejectUpdates(c, new MembershipError("the call ended before the update was sent", "gave-up", "send-state"));
}

/**
 * The lane's waits end with the call (or its heartbeat); what waits for an answer ends when it comes.
 */
export function stopIdleLane(call: CallState): void {
  const lane = call.lane;
  switch (lane.k) {
    case "schedule":
      if (call.ended && lane.reqId === undefined) call.lane = { k: "stopped" };
      return;
    case "recover-pause":
      if (call.ended) call.lane = { k: "stopped" };
      return;
    case "degraded":
      if (call.ended) call.lane = { k: "degraded" };
      return;
    case "beat":
    case "refused":
    case "pending-pause":
      if (call.heartbeatStopped) call.lane = { k: "stopped" };
      return;
    default:
      return;
  }
}

export function failCall(c: Ctx, call: CallState, error: MembershipError): void {
  if (call.ended) return;
  log(c, "error", `membership failed: ${error.message}`);
  c.s.wantJoined = false;
  endCall(c, call);
  emitError(c, error);
  setState(c, { kind: "failed", error });
}

export function rejectUpdates(c: Ctx, error: MembershipError): void {
  c.out.push({ type: "updates-rejected", error });
}

const RESTART_IN_FLIGHT = new Set<CallState["lane"]["k"]>(["restart", "lookup", "read-replaced"]);

/** A membership write is safe only while a delayed leave is known to be pending long enough. */
export function writeIsProtected(c: Ctx, call: CallState): boolean {
  // A restart (or the lookup or read that follows its "gone") is on its way: its answer may say the
  // delayed leave is gone, and a write sent now would land with nothing to remove it (found by the
  // randomized invariants with the adaptive heartbeat's latency steps: a write sent 6 ms before a
  // restart's 404 arrived landed 4 ms after it: counterexample L4 in test/unit/invariants.test.ts). The
  // write waits for that answer (resumeWrites).
  if (call.delayed === "armed" && RESTART_IN_FLIGHT.has(call.lane.k)) return false;
  if (unseenLeaveMayFire(c, call)) return false;
  return mayWriteMembership({
    now: c.now,
    delayed: call.delayed,
    rearming: call.rearming,
    armedAt: call.armedAt,
    delayMs: c.s.timing.delayMs,
    timeoutMs: delayedTimeoutMs(c.s),
    orphanWindowUntil: c.s.orphanWindowUntil,
    canListDelayed: c.env.canList,
  });
}

/**
 * A delayed leave of ours that nothing tracks may still fire over a membership written now: one a
 * schedule of unknown outcome made (doubt.ts), or one we replaced and said probably fired while its
 * cancel runs (replacedLeaves.ts). Writes wait; one that lands meanwhile is not `joined`.
 */
export function unseenLeaveMayFire(c: Ctx, call: CallState): boolean {
  return doubtHoldsWrites(c, call) || replacedHoldsWrites(c, call);
}

/** No heartbeat got through before the server was due to fire our leave. */
export function onPredictedLeave(c: Ctx, call: CallState): void {
  call.watchLeave = false;
  if (call.ended) return;
  log(c, "warn", "no heartbeat got through before the delayed leave was due: probably left");
  setProbablyLeft(c, true);
  setState(c, { kind: "reconnecting", reason: "heartbeat-failing", probablyLeft: true });
}

/**
 * If writes kept failing until our membership's `expires` (while heartbeats may still work), others no
 * longer list us: we must not go on saying `connected`.
 */
export function checkExpiry(c: Ctx, call: CallState): void {
  if (call.expired || call.expiresAt === undefined || call.ended) return;
  if (c.now < call.expiresAt) return;
  log(c, "warn", "our membership expired for others before a refresh got through");
  call.expired = true;
  setProbablyLeft(c, true);
  setState(c, { kind: "reconnecting", reason: "membership-expired", probablyLeft: true });
  emitError(
    c,
    new MembershipError(
      "our membership expired for others: no membership write got through before `expires`",
      "membership-expired",
      "send-state",
    ),
  );
}
