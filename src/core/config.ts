import { MembershipConfigError } from "../errors.js";
import { MAX_TIMER_MS } from "./limits.js";

export { MAX_TIMER_MS } from "./limits.js";

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
  /**
   * Without a live room view (a client that does not sync, a widget host that does not push state), how
   * often the manager reads its own key back to notice another writer removing it. Default: the
   * heartbeat interval (one read per heartbeat; none at all with a synced client).
   */
  membershipCheckIntervalMs?: number;
}

/**
 * TimingOptions resolved by `resolveTiming`: every default filled in and validated, so that
 * heartbeatIntervalMs + requestTimeoutMs < delayMs. What `effectiveTiming` reports.
 */
export interface Timing {
  /** Delay of the delayed leave in use: the configured one, or the server's lower maximum. */
  delayMs: number;
  /** Time between heartbeat (restart) attempts; scaled down with a lowered delay. */
  heartbeatIntervalMs: number;
  /** Configured local timeout of one delayed-event request (the manager may adapt it to the link). */
  requestTimeoutMs: number;
  /** Local timeout of one state send (membership, explicit leave). */
  stateRequestTimeoutMs: number;
  /** Membership validity window after each refresh, with delayed events. */
  membershipExpiryMs: number;
  /** Membership validity window without delayed events (degraded mode). */
  degradedMembershipExpiryMs: number;
  /** First retry step after a failure. */
  retryBaseMs: number;
  /** Largest retry step for membership and leave requests. */
  retryMaxMs: number;
  /** Continuous failure after which the manager gives up; Infinity (the default) never does. */
  giveUpAfterMs: number;
  /** Period of the reads of our own key when no room view watches it. */
  membershipCheckIntervalMs: number;
}

/** The smallest delay we will lower to when the server says ours is too long (and the smallest we accept). */
export const MIN_DELAY_MS = 500;

/**
 * The smallest membership expiry window we accept (both the normal and the degraded one). A refresh is
 * written every half window, so this bounds membership writes to one a second; `membershipExpiryMs: 1`
 * used to write hundreds a second.
 */
export const MIN_EXPIRY_MS = 2000;

/**
 * The smallest heartbeat interval, request timeout and retry cap we accept. A local timeout retries at
 * once, so `requestTimeoutMs: 1` (or `heartbeatIntervalMs: 1`) was a request loop; from 100 ms up a
 * manager sends at most about ten requests a second whatever its options.
 */
export const MIN_TIMING_STEP_MS = 100;

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
  // A timer set past 2^31 - 1 ms fires after 1 ms: a huge timeout or delay became a hot loop.
  if (!allowInfinity && value > MAX_TIMER_MS)
    throw new MembershipConfigError(
      `${name} must be at most ${MAX_TIMER_MS} ms (the largest timer JavaScript honours), got ${String(value)}`,
    );
}

function atLeast(name: string, value: number | undefined, min: number, why: string): void {
  if (value !== undefined && value < min)
    throw new MembershipConfigError(`${name} must be at least ${min} ms (${why}), got ${value}`);
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
    "membershipCheckIntervalMs",
  ] as const)
    check(key, opts[key]);
  check("giveUpAfterMs", opts.giveUpAfterMs, { allowInfinity: true });
  atLeast(
    "delayedLeaveDelayMs",
    opts.delayedLeaveDelayMs,
    MIN_DELAY_MS,
    "shorter delays cannot be kept alive",
  );
  if (opts.delayedLeaveDelayMs !== undefined && !Number.isInteger(opts.delayedLeaveDelayMs))
    throw new MembershipConfigError(
      `delayedLeaveDelayMs must be a whole number of milliseconds (servers parse it as an integer), got ${opts.delayedLeaveDelayMs}`,
    );
  for (const key of [
    "heartbeatIntervalMs",
    "requestTimeoutMs",
    "stateRequestTimeoutMs",
    "membershipCheckIntervalMs",
  ] as const)
    atLeast(key, opts[key], MIN_TIMING_STEP_MS, "smaller steps make a request loop");
  atLeast("membershipExpiryMs", opts.membershipExpiryMs, MIN_EXPIRY_MS, "it is refreshed every half window");
  atLeast(
    "degradedMembershipExpiryMs",
    opts.degradedMembershipExpiryMs,
    MIN_EXPIRY_MS,
    "it is refreshed every half window",
  );

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
  atLeast("retryMaxMs", opts.retryMaxMs, MIN_TIMING_STEP_MS, "smaller steps make a request loop");
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
    membershipCheckIntervalMs: opts.membershipCheckIntervalMs ?? heartbeatIntervalMs,
  };
}

/** Refresh a membership when half its window has passed (at most hourly, like js-sdk's cadence). */
export function refreshIntervalMs(expiryWindowMs: number): number {
  return Math.min(expiryWindowMs / 2, 3600_000);
}

/** Exponential backoff with "equal jitter": between half and all of base·2^attempt, capped. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const step = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(0, attempt), 30));
  return Math.round(step / 2 + (random() * step) / 2);
}

/** `value` within [floorMs, ceilingMs] and never past MAX_TIMER_MS; the ceiling wins over the floor; NaN gives the floor. */
export function clampWaitMs(value: number, floorMs: number, ceilingMs: number): number {
  const ceiling = Math.max(0, Math.min(ceilingMs, MAX_TIMER_MS));
  const floor = Math.min(Math.max(0, floorMs), ceiling);
  if (Number.isNaN(value)) return floor;
  return Math.min(ceiling, Math.max(floor, value));
}
