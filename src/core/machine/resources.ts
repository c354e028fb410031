/**
 * The two per-manager resources every request draws on: the request budget (core/budget.ts: no hot loop,
 * whatever the server answers) and the link's adaptive timeout (core/linkTiming.ts).
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
import { initialLink, linkBounds, onAnswered, onLocalTimeout, type LinkBounds } from "../linkTiming.js";
import { log, emitError, setState, type Ctx } from "./context.js";

/**
 * Which bucket a request draws on: `own` for what the manager does by itself (heartbeats, retries,
 * recoveries, reads, cancels), `intent` for the first attempt of what the app asked for.
 */
export type BudgetKind = "own" | "intent";

function limitsOf(c: Ctx, kind: BudgetKind): BudgetLimits {
  return kind === "own" ? budgetLimits(c.s.timing.heartbeatIntervalMs) : INTENT_LIMITS;
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

export function currentLinkBounds(c: Ctx): LinkBounds {
  const t = c.s.timing;
  return linkBounds(t.requestTimeoutMs, t.delayMs, t.heartbeatIntervalMs);
}

/** Feed one request's round trip (or local timeout) to the link timing; reports a link too slow. */
export function observeLink(c: Ctx, sentAt: number, timedOut = false): void {
  const bounds = currentLinkBounds(c);
  const link = c.s.link ?? initialLink(bounds);
  const before = link.tooSlow;
  const next = timedOut ? onLocalTimeout(link, bounds) : onAnswered(link, bounds, c.now - sentAt);
  // A fast link needs no state (the configured timeout): keep none, managers are many.
  const idle = !next.tooSlow && next.timeoutMs === bounds.baseMs && (next.srttMs ?? 0) * 2 <= bounds.baseMs;
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
  if (call && !call.ended)
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
