/**
 * Delayed leaves of ours that another replaced: the one a "gone" we may have been wrong about left behind
 * (recovery.ts), the old one of a change of holder and a switch's new one nobody will hold
 * (delegation.ts). Each is cancelled, and the cancel is retried until it surely fired: after that a cancel
 * is moot.
 *
 * Not confirmed by `sayAt` (it could fire from `firesFrom`), it probably fired `{}` over the membership:
 * we say so (others saw us leave) and ask for a fresh write. That write waits until the cancel ends
 * (confirmed, "gone", or the replaced leave surely fired): written at once, it landed 41 ms before the
 * replaced leave really fired over it, because a restart of ours held in the network had started its
 * delay again after our last answered one (lateRestarts.ts; D10 in test/unit/invariants.test.ts, with the
 * sticky format, whose eyes cannot see a new `{}`). With no such restart it surely fired by `sayAt`
 * already: the cancel ends then, and the write goes at once, as before.
 */
import { rejoinRetryCapMs, log, callById, type Ctx } from "./context.js";
import { startTask } from "./tasks.js";
import { isSticky } from "./format.js";
import { probablyFiredUncancelled } from "./orphans.js";
import { resumeWrites } from "./writes.js";
import { lateRestartFiresBy } from "./lateRestarts.js";
import type { CallState, MachineState, Outcome, Purpose, Task } from "./types.js";

type Replaced = Extract<Purpose, { kind: "cancel-replaced" }>;

/**
 * Cancel `delayId` (of `delayMs`, written by call `callId`), which could fire from `firesFrom`; not
 * confirmed by `sayAt`, it probably did.
 */
export function cancelReplaced(
  c: Ctx,
  callId: number,
  delayId: string,
  firesFrom: number,
  sayAt: number,
  delayMs: number,
): void {
  const call = callById(c, callId);
  const late = call ? lateRestartFiresBy(call, delayId, delayMs) : undefined;
  startTask(c, {
    purpose: { kind: "cancel-replaced", firesFrom, sayAt, callId },
    request: { kind: "delayed", delayId, action: "cancel" },
    op: "cancel",
    scope: "manager",
    retry: "not-gone",
    capMs: rejoinRetryCapMs(c.s),
    until: Math.max(sayAt, late ?? sayAt),
    measures: false,
  });
}

function replacedOf(task: Task): Replaced | undefined {
  return task.purpose.kind === "cancel-replaced" ? task.purpose : undefined;
}

/** Can it take down this call's membership? In the sticky format only its own call's (its own key). */
function reaches(c: Ctx, p: Replaced, call: CallState): boolean {
  return !isSticky(c) || p.callId === call.id;
}

/** A replaced leave we said probably fired may still fire over a membership written now: none goes. */
export function replacedHoldsWrites(c: Ctx, call: CallState): boolean {
  return c.s.tasks.some((t) => {
    const p = replacedOf(t);
    return p?.said === true && reaches(c, p, call);
  });
}

/** When a replaced leave's probable fire is to be said. */
export function replacedWakeAt(s: MachineState): number | undefined {
  let at: number | undefined;
  for (const t of s.tasks) {
    const p = replacedOf(t);
    if (p && !p.said && (at === undefined || p.sayAt < at)) at = p.sayAt;
  }
  return at;
}

export function onReplacedWake(c: Ctx): void {
  for (const t of c.s.tasks) {
    const p = replacedOf(t);
    if (!p || p.said || c.now < p.sayAt) continue;
    p.said = true;
    const call = c.s.call;
    // (Its fresh write waits: replacedHoldsWrites.)
    if (call && reaches(c, p, call))
      probablyFiredUncancelled(c, "a delayed leave we replaced", "may have fired before we could cancel it");
  }
}

/**
 * The cancel ended. Said already: it can no longer fire (confirmed, gone) or surely fired: the fresh
 * write goes. Otherwise: confirmed, or "gone" before it could fire: it never fires. Else (not confirmed
 * within its window, or "gone" once it could have fired) it may have fired `{}` over the membership
 * written since: write it again (found by the model test, test/unit/machine.model.test.ts: a 429 held the
 * cancel back past the replaced one's due time), and say so meanwhile, as for an orphan: others saw us
 * leave (found by the randomized invariants with the delegation service: the normal leave a delegation
 * replaced fired over our membership while its cancel waited out a 429, and the membership went back with
 * probablyLeft never raised).
 */
export function onReplacedCancelDone(c: Ctx, task: Task, outcome: Outcome): void {
  const p = replacedOf(task);
  if (!p) return;
  if (p.said) return resumeWrites(c, c.s.call);
  if (outcome.ok) return;
  log(c, "debug", "the replaced delayed leave could not be cancelled (probably gone)", outcome.error);
  if (outcome.aborted && !outcome.deferred) return;
  if (!outcome.deferred && c.now < p.firesFrom) return;
  const call = c.s.call;
  if (call && reaches(c, p, call)) probablyFiredUncancelled(c, "a delayed leave we replaced");
}
