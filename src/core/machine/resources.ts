/**
 * The two per-manager resources every request draws on: the request budget (core/budget.ts: no hot loop,
 * whatever the server answers) and the link's adaptive timeout (core/linkTiming.ts).
 */
import { MembershipError } from "../../errors.js";
import { budgetLimits, fullBudget, takeToken } from "../budget.js";
import { initialLink, linkBounds, onAnswered, onLocalTimeout, type LinkBounds } from "../linkTiming.js";
import { log, emitError, setState, type Ctx } from "./context.js";

/** Take a token: 0 to send now, else how long to wait for it. */
export function spend(c: Ctx): number {
  const limits = budgetLimits(c.s.timing.heartbeatIntervalMs);
  const { budget, waitMs } = takeToken(c.s.budget ?? fullBudget(limits, c.now), limits, c.now);
  c.s.budget = budget;
  if (waitMs > 0) log(c, "debug", `request budget spent; waiting ${waitMs} ms`);
  return Math.max(0, waitMs);
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
