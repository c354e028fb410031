import { MembershipConfigError } from "../errors.js";

/** Timing knobs. Only `delayedLeaveDelayMs` needs setting; the rest derive from it. */
export interface TimingOptions {
  /** Delay of the delayed leave: how long after our last heartbeat the server removes us. Default 10 000 (Element Call's). */
  delayedLeaveDelayMs?: number;
  /** Time between heartbeat (restart) attempts, counted from when the previous one was sent. Default: delay / 2. */
  heartbeatIntervalMs?: number;
  /** Local timeout of one delayed-event request (restart, send, cancel). Default: min(2 000, delay / 5). */
  requestTimeoutMs?: number;
  /** Local timeout of one state send (membership, explicit leave). Default 10 000. */
  stateRequestTimeoutMs?: number;
  /** A membership is valid for this long after each refresh. Default 4 h, as matrix-js-sdk. */
  membershipExpiryMs?: number;
  /** Expiry window when the server has no delayed events, so a crashed device goes soon. Default 2 min. */
  degradedMembershipExpiryMs?: number;
  /** First retry step after a failure; doubles with jitter. Default 250. */
  retryBaseMs?: number;
  /** Largest retry step for membership and leave requests. Default 30 000. */
  retryMaxMs?: number;
  /** Give up (state `failed`) after failing continuously for this long. Default: never. */
  giveUpAfterMs?: number;
}

export interface Timing {
  delayMs: number;
  heartbeatIntervalMs: number;
  requestTimeoutMs: number;
  stateRequestTimeoutMs: number;
  membershipExpiryMs: number;
  degradedMembershipExpiryMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  giveUpAfterMs: number;
}

/** The smallest delay we will lower to when the server says ours is too long. */
export const MIN_DELAY_MS = 500;

function check(name: string, value: number | undefined, { allowInfinity = false } = {}): void {
  if (value === undefined) return;
  if (
    typeof value !== "number" ||
    Number.isNaN(value) ||
    value <= 0 ||
    (!allowInfinity && !Number.isFinite(value))
  )
    throw new MembershipConfigError(
      `${name} must be a positive number of milliseconds, got ${String(value)}`,
    );
}

/**
 * Resolve and validate timing. The invariant that matters: a heartbeat that is lost and retried once
 * still reaches the server before the delayed leave fires, so interval + timeout < delay.
 */
export function resolveTiming(opts: TimingOptions, delayOverrideMs?: number): Timing {
  for (const key of [
    "delayedLeaveDelayMs",
    "heartbeatIntervalMs",
    "requestTimeoutMs",
    "stateRequestTimeoutMs",
    "membershipExpiryMs",
    "degradedMembershipExpiryMs",
    "retryBaseMs",
    "retryMaxMs",
  ] as const)
    check(key, opts[key]);
  check("giveUpAfterMs", opts.giveUpAfterMs, { allowInfinity: true });

  const delayMs = delayOverrideMs ?? opts.delayedLeaveDelayMs ?? 10_000;
  const lowered = delayOverrideMs !== undefined;
  // When the server lowered our delay, explicit knobs that no longer fit are scaled down instead of failing.
  const fit = (explicit: number | undefined, derived: number, limit: number) =>
    explicit === undefined || (lowered && explicit >= limit) ? derived : explicit;
  const heartbeatIntervalMs = fit(opts.heartbeatIntervalMs, Math.round(delayMs / 2), delayMs * 0.8);
  const requestTimeoutMs = fit(opts.requestTimeoutMs, Math.round(Math.min(2000, delayMs / 5)), delayMs / 2);

  if (heartbeatIntervalMs >= delayMs)
    throw new MembershipConfigError(
      `heartbeatIntervalMs (${heartbeatIntervalMs}) must be shorter than delayedLeaveDelayMs (${delayMs})`,
    );
  if (heartbeatIntervalMs + requestTimeoutMs >= delayMs)
    throw new MembershipConfigError(
      `heartbeatIntervalMs + requestTimeoutMs (${heartbeatIntervalMs} + ${requestTimeoutMs}) must be shorter than ` +
        `delayedLeaveDelayMs (${delayMs}), or one lost heartbeat lets the server fire the leave`,
    );
  const retryBaseMs = opts.retryBaseMs ?? 250;
  const retryMaxMs = opts.retryMaxMs ?? 30_000;
  if (retryBaseMs > retryMaxMs)
    throw new MembershipConfigError(
      `retryBaseMs (${retryBaseMs}) must not exceed retryMaxMs (${retryMaxMs})`,
    );
  const membershipExpiryMs = opts.membershipExpiryMs ?? 4 * 3600_000;
  const degradedMembershipExpiryMs = opts.degradedMembershipExpiryMs ?? 120_000;
  return {
    delayMs,
    heartbeatIntervalMs,
    requestTimeoutMs,
    stateRequestTimeoutMs: opts.stateRequestTimeoutMs ?? 10_000,
    membershipExpiryMs,
    degradedMembershipExpiryMs,
    retryBaseMs,
    retryMaxMs,
    giveUpAfterMs: opts.giveUpAfterMs ?? Infinity,
  };
}

/** Refresh a membership when half its window has passed (at most hourly, like js-sdk's cadence). */
export function refreshIntervalMs(expiryWindowMs: number): number {
  return Math.min(expiryWindowMs / 2, 3600_000);
}

/** Exponential backoff with "equal jitter": between half and all of base·2^attempt, capped. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const step = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(step / 2 + (random() * step) / 2);
}
