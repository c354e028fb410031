/**
 * The two per-manager resources every request draws on: the request budget (core/budget.ts: no hot loop,
 * whatever the server answers) and the link's adaptive timeout (core/linkTiming.ts), with the heartbeat
 * timing that follows from it (core/heartbeatTiming.ts).
 */
import { MembershipError } from "../../errors.js";
import {
  budgetLimits,
  fullBudget,
  INTENT_LIMITS,
  refundToken,
  takeToken,
  type BudgetLimits,
} from "../budget.js";
import { heartbeatTiming, type HeartbeatTiming } from "../heartbeatTiming.js";
import {
  initialLink,
  linkBounds,
  onAnswered,
  onLocalTimeout,
  onRestartAnswered,
  onSilentRestart,
  type LinkBounds,
} from "../linkTiming.js";
import { callById, delayedTimeoutMs, log, emitError, setState, type Ctx } from "./context.js";
import type { MachineState, Task } from "./types.js";

/**
 * Which bucket a request draws on: `own` for what the manager does by itself (heartbeats, retries,
 * recoveries, reads, cancels), `intent` for the first attempt of what the app asked for.
 */
export type BudgetKind = "own" | "intent";

function limitsOf(c: Ctx, kind: BudgetKind): BudgetLimits {
  // A delegated leave's slow heartbeat (delegation.ts) does not shrink the budget of everything else.
  return kind === "own" ? budgetLimits((c.s.normalTiming ?? c.s.timing).heartbeatIntervalMs) : INTENT_LIMITS;
}

/** Take a token: 0 to send now, else how long to wait for it (the token is reserved meanwhile). */
export function spend(c: Ctx, kind: BudgetKind = "own"): number {
  const limits = limitsOf(c, kind);
  const current = kind === "own" ? c.s.budget : c.s.intentBudget;
  const { budget, waitMs } = takeToken(current ?? fullBudget(limits, c.now), limits, c.now);
  if (kind === "own") c.s.budget = budget;
  else c.s.intentBudget = budget;
  if (waitMs > 0) log(c, "debug", `request budget (${kind}) spent; waiting ${waitMs} ms`);
  return Math.max(0, waitMs);
}

/**
 * A request waiting for its token was abandoned (leave() ended its call, dispose): the token goes back.
 * Kept, a toggling app's abandoned reservations added up to minutes of debt for its next join.
 */
export function refund(c: Ctx, kind: BudgetKind): void {
  const current = kind === "own" ? c.s.budget : c.s.intentBudget;
  if (!current) return;
  const next = refundToken(current, limitsOf(c, kind));
  if (kind === "own") c.s.budget = next;
  else c.s.intentBudget = next;
}

export function currentLinkBounds(c: Pick<Ctx, "s">): LinkBounds {
  const t = c.s.timing;
  return linkBounds(t.requestTimeoutMs, t.delayMs, t.heartbeatIntervalMs);
}

/**
 * The heartbeat's interval, restart timeout and margin in force at `now` (core/heartbeatTiming.ts): the
 * timeout of a retry depends on how far the current call's predicted leave is.
 */
export function heartbeatTimingOf(
  s: MachineState,
  now?: number,
  deadline: number | undefined = s.call?.leaveDeadline,
): HeartbeatTiming {
  const msLeft = now === undefined || deadline === undefined ? Infinity : deadline - now;
  return heartbeatTiming(s.timing, s.link, currentLinkBounds({ s }), msLeft);
}

/**
 * The local timeout of a task's next attempt: its own fixed one, else a heartbeat restart's (adaptive
 * with the heartbeat), else the link's timeout for delayed-event requests.
 */
export function taskTimeoutMs(c: Ctx, task: Pick<Task, "timeoutMs" | "purpose" | "callId">): number {
  if (task.timeoutMs !== undefined) return task.timeoutMs;
  if (task.purpose.kind !== "restart") return delayedTimeoutMs(c.s);
  return heartbeatTimingOf(c.s, c.now, callById(c, task.callId)?.leaveDeadline).timeoutMs;
}

/**
 * Feed one request's round trip (or local timeout) to the link timing; reports a link too slow.
 * `restart`: it was a heartbeat's restart (with an adaptive heartbeat, its silence backs off the next).
 */
export function observeLink(c: Ctx, sentAt: number, timedOut = false, restart = false): void {
  const bounds = currentLinkBounds(c);
  const link = c.s.link ?? initialLink(bounds);
  const before = link.tooSlow;
  const adaptive = c.s.timing.adaptiveHeartbeat;
  const next = !timedOut
    ? restart
      ? onRestartAnswered(onAnswered(link, bounds, c.now - sentAt), c.now - sentAt)
      : onAnswered(link, bounds, c.now - sentAt)
    : adaptive && restart
      ? onSilentRestart(link, bounds)
      : onLocalTimeout(link, bounds);
  // A fast link needs no state (the configured timeout): keep none, managers are many. The adaptive
  // heartbeat keeps its measurements.
  const idle =
    !adaptive && !next.tooSlow && next.timeoutMs === bounds.baseMs && (next.srttMs ?? 0) * 2 <= bounds.baseMs;
  c.s.link = idle ? undefined : next;
  if (!next.tooSlow || before) return;
  const delayMs = c.s.timing.delayMs;
  log(c, "warn", `the link is too slow for a ${delayMs} ms delay`);
  emitError(
    c,
    new MembershipError(
      `the link's round trip does not fit the ${delayMs} ms delay (timeout at its ceiling ${bounds.maxMs} ms)`,
      "link-too-slow",
      "schedule-leave",
      { kind: "network" },
    ),
  );
  const call = c.s.call;
  // (Degraded, there is no delayed leave whose heartbeat the link could fail to keep: `joined` with
  // delayedLeave false stays true, and nothing there would ever say `joined` again. Found by the
  // randomized invariants: a delay lowered to its floor and refused, then one listing that timed out.)
  if (call && !call.ended && call.delayed !== "none")
    setState(c, { kind: "reconnecting", reason: "link-too-slow", probablyLeft: c.s.out.probablyLeft });
}

/** The timing changed (the delay was lowered): the link's bounds follow it. */
export function retimeLink(c: Ctx): void {
  const bounds = currentLinkBounds(c);
  if (c.s.link)
    c.s.link = {
      ...c.s.link,
      timeoutMs: Math.min(bounds.maxMs, Math.max(bounds.baseMs, c.s.link.timeoutMs)),
    };
}
