/**
 * Restarts whose outcome we never learned. A restart that got no answer in time (or an error that may
 * have come after the server acted) may still be processed later, up to LATE_REQUEST_HORIZON_MS after
 * its send, and start its delayed leave's delay again then: that leave can fire later than its last
 * answered restart says. Only the bound on a delayed leave we stop restarting (replaced, replacedLeaves.ts)
 * needs this: the heartbeat's own predictions may come early, never late.
 *
 * Found by the randomized invariants with the delegation service (D10 in test/unit/invariants.test.ts): a
 * restart held in the network reached the server 441 ms after its local timeout; the leave a delegation
 * then replaced fired 441 ms past the machine's bound, over the membership it had just written back.
 */
import type { ErrorClass } from "../../errors.js";
import { LATE_REQUEST_HORIZON_MS } from "../limits.js";
import { callById, type Ctx } from "./context.js";
import type { CallState, Task } from "./types.js";

/** The answer (or its absence) says nothing of whether the server processed the request. */
function outcomeUnknown(timedOut: boolean, cls: ErrorClass): boolean {
  return timedOut || cls.kind === "network" || cls.kind === "server" || cls.kind === "unknown";
}

/** One attempt of a restart failed: note it if it may still be processed later. */
export function noteRestartAttempt(
  c: Ctx,
  task: Task,
  sentAt: number,
  timedOut: boolean,
  cls: ErrorClass,
): void {
  const request = task.request;
  if (task.purpose.kind !== "restart" || request.kind !== "delayed" || !outcomeUnknown(timedOut, cls)) return;
  const call = callById(c, task.callId);
  if (!call) return;
  // Only the latest matters (the one processed last starts the delay last); another id's is moot.
  const prev = call.unansweredRestart;
  if (prev?.delayId === request.delayId && prev.sentAt >= sentAt) return;
  call.unansweredRestart = { delayId: request.delayId, sentAt };
}

/**
 * The latest moment `delayId` (of `delayMs`) can fire because of a restart of ours that may still reach
 * the server; undefined if none may.
 */
export function lateRestartFiresBy(call: CallState, delayId: string, delayMs: number): number | undefined {
  const r = call.unansweredRestart;
  return r?.delayId === delayId ? r.sentAt + LATE_REQUEST_HORIZON_MS + delayMs : undefined;
}
