import { MembershipConfigError } from "../errors.js";
import { MAX_TIMER_MS } from "./limits.js";

export { MAX_TIMER_MS } from "./limits.js";

/** Timing knobs. Only `delayedLeaveDelayMs` needs setting; the rest derive from it. */
export interface TimingOptions {
  /** Delay of the delayed leave: how long after our last heartbeat the server removes us. Default 10 000 (Element Call's). */
  delayedLeaveDelayMs?: number;
  /**
   * Time between heartbeat (restart) attempts, counted from when the previous one was sent. Default:
   * adaptive (core/heartbeatTiming.ts): delay / 2 until the link is measured, then longer on a fast
   * link and shorter on a slow one, always keeping the margin delay / 2 − requestTimeoutMs (a lost
   * restart's time to be retried before the leave fires). Set it to fix the interval (and the restart
   * timeout to the link's conservative one): nothing adapts it then.
   */
  heartbeatIntervalMs?: number;
  /**
   * The adaptive heartbeat's margin: the time a lost restart leaves for its retries before the server
   * fires the leave (delay − interval − restart timeout; core/heartbeatTiming.ts). The interval is
   * delay − restart timeout − max(this, restart timeout). Default: delay / 2 − requestTimeoutMs (3 s at
   * a 10 s delay, which is matrix-js-sdk's margin with Element Call's settings plus one round trip). A
   * thinner margin costs fewer requests and rides out shorter outages. Not with `heartbeatIntervalMs`.
   */
  heartbeatMarginMs?: number;
  /**
   * Local timeout of one delayed-event request (restart, send, cancel). Default: min(2 000, delay / 5).
   * The manager may lengthen it for a slow link; the adaptive heartbeat's restarts use a shorter one on a
   * fast link (the measured round trip and its deviation, at least 250 ms), unless this is set: then
   * it is their floor too.
   */
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
  /**
   * Time between heartbeat (restart) attempts; scaled down with a lowered delay. With an adaptive
   * heartbeat this is the interval before the link is measured (and what the request budget and the
   * recovery pacing derive from); `effectiveTiming` reports the one in force.
   */
  heartbeatIntervalMs: number;
  /** Configured local timeout of one delayed-event request (the manager may adapt it to the link). */
  requestTimeoutMs: number;
  /** The app did not fix `heartbeatIntervalMs`: interval and restart timeout follow the link (core/heartbeatTiming.ts). */
  adaptiveHeartbeat: boolean;
  /**
   * The margin the adaptive heartbeat keeps (at least; `effectiveTiming` reports the one in force). With a
   * fixed interval: delay − interval − requestTimeoutMs, for information.
   */
  heartbeatMarginMs: number;
  /** The shortest local timeout an adaptive heartbeat's restart may have: the app's `requestTimeoutMs`, else min(250, it). */
  minRestartTimeoutMs: number;
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

/**
 * What `MembershipManager.effectiveTiming` reports: the resolved timing, with the heartbeat's values in
 * force now (`heartbeatIntervalMs` is the adaptive interval when the heartbeat adapts to the link).
 */
export interface EffectiveTiming extends Timing {
  /** The local timeout of the next heartbeat restart (doubled after each restart that got no answer). */
  restartTimeoutMs: number;
  /**
   * The heartbeat margin in force: delay − interval − restart timeout, the time a lost restart leaves
   * for its retries before the server fires the leave (core/heartbeatTiming.ts).
   */
  heartbeatMarginMs: number;
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

/**
 * The shortest local timeout the adaptive heartbeat gives a restart (unless the app set
 * `requestTimeoutMs`): a fast link's measured round trip and deviation would allow less, but a server's
 * pause (a garbage collection, a database commit) should not cost a spurious retry each time.
 * Measured (bench/restart-rtt.ts, bench/results/restart-rtt.json): restarts to Synapse 1.163.2 on
 * 127.0.0.1 on a 2-core machine at load average 15-18 took p50 13.5 / p99 41.7 / max 53.5 ms at
 * heartbeat pace (149) and p50 16.2 / p99 76.7 / p99.9 279 / max 296 ms with Synapse busy (1 752; 2 over
 * 250 ms). 250 ms covers all of the former and 99.9 % of the latter; each 50 ms less would lengthen the
 * interval by 50 ms (about 0.7 % fewer requests) for more spurious retries on a busy server.
 */
export const MIN_RESTART_TIMEOUT_MS = 250;

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
    "heartbeatMarginMs",
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
  if (opts.heartbeatIntervalMs !== undefined && opts.heartbeatMarginMs !== undefined)
    throw new MembershipConfigError(
      "set heartbeatIntervalMs (a fixed interval) or heartbeatMarginMs (an adaptive one), not both",
    );
  for (const key of [
    "heartbeatIntervalMs",
    "heartbeatMarginMs",
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
  // The adaptive interval stays above its floor (a quarter of the delay) at the configured timeout.
  const marginLimit = Math.floor(delayMs * 0.75) - requestTimeoutMs;
  const heartbeatMarginMs = fit(
    opts.heartbeatMarginMs,
    delayMs - heartbeatIntervalMs - requestTimeoutMs,
    marginLimit + 1,
  );
  if (opts.heartbeatIntervalMs === undefined && heartbeatMarginMs > marginLimit)
    throw new MembershipConfigError(
      `heartbeatMarginMs (${heartbeatMarginMs}) must be at most 3/4 of delayedLeaveDelayMs less requestTimeoutMs ` +
        `(${marginLimit}), or the adaptive heartbeat has no room left for its interval`,
    );
  const retryBaseMs = opts.retryBaseMs ?? 250;
  const retryMaxMs = opts.retryMaxMs ?? 30_000;
  if (retryBaseMs > retryMaxMs)
    throw new MembershipConfigError(
      `retryBaseMs (${retryBaseMs}) must not exceed retryMaxMs (${retryMaxMs})`,
    );
  atLeast("retryMaxMs", opts.retryMaxMs, MIN_TIMING_STEP_MS, "smaller steps make a request loop");
  const membershipExpiryMs = opts.membershipExpiryMs ?? 4 * 3600_000;
  // An explicit requestTimeoutMs that still fits is the app's word: restarts never time out sooner.
  const explicitTimeout = opts.requestTimeoutMs !== undefined && opts.requestTimeoutMs === requestTimeoutMs;
  const degradedMembershipExpiryMs = opts.degradedMembershipExpiryMs ?? 120_000;
  return {
    delayMs,
    heartbeatIntervalMs,
    requestTimeoutMs,
    adaptiveHeartbeat: opts.heartbeatIntervalMs === undefined,
    heartbeatMarginMs,
    minRestartTimeoutMs: explicitTimeout
      ? requestTimeoutMs
      : Math.min(requestTimeoutMs, MIN_RESTART_TIMEOUT_MS),
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
