/**
 * A per-manager request budget (a token bucket), pure: the caller keeps the state and passes the time.
 * Every request the manager sends takes a token; when none is left it waits. Whatever the server
 * answers and however a retry path is written, a manager cannot send more than `capacity` requests at
 * once plus `perSecond` a second: the "no hot loop" bound is a property of this one function.
 */
export interface Budget {
  readonly tokens: number;
  readonly at: number;
}

export interface BudgetLimits {
  capacity: number;
  perSecond: number;
}

/** A full bucket at `now`. */
export function fullBudget(limits: BudgetLimits, now: number): Budget {
  return { tokens: limits.capacity, at: now };
}

/** Take one token: the new state and how long to wait before sending (0: send now). */
export function takeToken(
  budget: Budget,
  limits: BudgetLimits,
  now: number,
): { budget: Budget; waitMs: number } {
  const elapsed = Math.max(0, now - budget.at);
  const tokens = Math.min(limits.capacity, budget.tokens + (elapsed * limits.perSecond) / 1000);
  if (tokens >= 1) return { budget: { tokens: tokens - 1, at: now }, waitMs: 0 };
  // Reserve the token that accrues next; the request goes when it is there.
  const waitMs = Math.ceil(((1 - tokens) * 1000) / limits.perSecond);
  return { budget: { tokens: tokens - 1, at: now }, waitMs };
}

/** Give back a token reserved for a request that was never sent (its wait was abandoned). */
export function refundToken(budget: Budget, limits: BudgetLimits): Budget {
  return { tokens: Math.min(limits.capacity, budget.tokens + 1), at: budget.at };
}

/**
 * What the app asks for (a join's first schedule and write, a leave's request, an update's write) draws
 * on its own bucket, so the manager's retries never delay it: generous enough that an app joining and
 * leaving back to back is never held back, and still a bound on an app stuck in its own loop.
 */
export const INTENT_LIMITS: BudgetLimits = { capacity: 20, perSecond: 20 };

/**
 * The budget for a heartbeat interval: room for a whole recovery at once (restart, read, schedule,
 * write, cancel, restart), and at least three requests per heartbeat interval over time.
 */
export function budgetLimits(heartbeatIntervalMs: number): BudgetLimits {
  return { capacity: 8, perSecond: Math.max(3, 3000 / Math.max(1, heartbeatIntervalMs)) };
}
