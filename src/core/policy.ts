/**
 * What the manager does with each answer, and how long it waits before the next request. Pure: no
 * promises, timers, I/O or clock reads; the current time is always an argument. The manager asks these
 * functions and nothing else, so the whole error policy can be read (and tested) here in one sitting.
 */
import type { ErrorClass } from "../errors.js";
import { backoffMs, clampWaitMs, type Timing } from "./config.js";
import { MAX_TIMER_MS, RATE_LIMIT_FLOOR_MS } from "./limits.js";

export { MAX_TIMER_MS } from "./limits.js";
/** A 429 without a usable hint: js-sdk waits 5 s; we wait at least this long (core/limits.ts). */
export const BARE_RATE_LIMIT_FLOOR_MS = RATE_LIMIT_FLOOR_MS;
/** The shortest wait a server's explicit Retry-After may ask for (a hint of 0 counts as none). */
export const MIN_HINT_MS = 100;
/** Consecutive unrecognised answers to the first schedule before we join without a delayed leave. */
export const UNRECOGNISED_SCHEDULE_LIMIT = 3;

/**
 * Answers we cannot interpret: a host's untyped error, an HTTP status outside 100-599, or a 4xx that is
 * not a Matrix error (no errcode: a proxy's HTML page, a JSON body without errcode). A homeserver's
 * own refusals always carry an errcode; without one, the request probably never reached it.
 */
export function isUnrecognised(cls: ErrorClass): boolean {
  return (
    cls.kind === "unknown" ||
    (cls.kind === "server" && (cls.status < 100 || cls.status > 599)) ||
    (cls.kind === "rejected" && cls.errcode === undefined)
  );
}

/** Failures where the very same request may succeed later: wait, then try again. */
export function isRetryable(cls: ErrorClass): boolean {
  return (
    cls.kind === "rate-limited" ||
    cls.kind === "network" ||
    cls.kind === "server" ||
    cls.kind === "unknown" ||
    isUnrecognised(cls)
  );
}

/** What to do when a heartbeat (restart) fails. Only a real "gone" (404 M_NOT_FOUND, 409) means gone. */
export function onRestartFailure(cls: ErrorClass): "recover" | "degrade" | "back-off" {
  if (cls.kind === "gone") return "recover";
  if (cls.kind === "unsupported") return "degrade";
  // A proxy's HTML 404, a 404 without errcode, a 403, an odd status: the delayed leave may well be
  // alive; a new schedule plus a rewrite would only abandon it. Wait and probe again.
  return "back-off";
}

/** Schedules in a row whose delay the server ignored before we join without a delayed leave. */
export const IGNORED_SCHEDULE_LIMIT = 2;

/** What to do when scheduling the delayed leave fails. */
export function onScheduleFailure(
  cls: ErrorClass,
  unrecognisedSoFar: number,
  ignoredSoFar = 0,
): "lower-delay" | "degrade" | "back-off" | "redetect" | "fail" {
  if (cls.kind === "max-delay") return "lower-delay";
  // The server wrote our delayed leave at once: the backend asks its dialect again; never the same
  // request twice in a row without that, and degraded mode (said so) if it keeps happening.
  if (cls.kind === "delay-ignored")
    return ignoredSoFar + 1 >= IGNORED_SCHEDULE_LIMIT ? "degrade" : "redetect";
  if (cls.kind === "unsupported") return "degrade";
  // js-sdk joins without a delayed leave when it cannot make sense of the answer; so do we, after a
  // few tries, rather than stay `joining` in silence.
  if (isUnrecognised(cls))
    return unrecognisedSoFar + 1 >= UNRECOGNISED_SCHEDULE_LIMIT ? "degrade" : "back-off";
  if (isRetryable(cls)) return "back-off";
  return "fail";
}

/** What to do when firing our delayed leave on `leave()` fails. */
export function onLeaveSendFailure(cls: ErrorClass): "write-empty" | "back-off" {
  // Clear answers of a busy or unreachable server: the same request will work later.
  if (
    cls.kind === "rate-limited" ||
    cls.kind === "network" ||
    (cls.kind === "server" && !isUnrecognised(cls))
  )
    return "back-off";
  // Gone, refused, or nothing we recognise: write `{}` ourselves at once, as js-sdk does.
  return "write-empty";
}

/** The inputs of `retryWaitMs`. `capMs` and `hintCapMs` come from `laneWaitLimits` in the manager. */
export interface WaitInput {
  cls: ErrorClass;
  /** The failure was our own local timeout: a whole timeout has already passed. */
  localTimeout: boolean;
  /** How many answered failures in a row came before this one (the backoff exponent). */
  attempt: number;
  baseMs: number;
  /** The lane's backoff ceiling. */
  capMs: number;
  /**
   * The most a server's Retry-After may make us wait on this lane. A heartbeat must get through before
   * the delay runs out, so its lane honours hints only up to a fraction of the delay: a device is back
   * in the call soon after the server recovers, not an hour later.
   */
  hintCapMs: number;
  random: () => number;
}

/**
 * How long to wait before retrying: the package's one retry-wait rule. Every wait lies between a floor
 * and a ceiling (and below 2^31 ms): a Retry-After of 0, -5 or an hour, or a `retry_after_ms` of 1e12,
 * all give a sane wait.
 *
 * - our own local timeout: 0 (a whole timeout has already passed).
 * - a 429 with a usable hint (> 0 ms): the hint, at least MIN_HINT_MS, at most `hintCapMs`.
 * - a 429 without one (absent, 0 or a date in the past, negative, NaN, garbage): the backoff, at most
 *   the lane's cap, but never less than BARE_RATE_LIMIT_FLOOR_MS (1 s), even where the cap is lower.
 * - anything else: the backoff (equal jitter, base·2^attempt), at least 1 ms, at most the lane's cap.
 *
 * A `random` that returns NaN or a value outside [0, 1) still gives a wait within these bounds.
 */
export function retryWaitMs(input: WaitInput): number {
  const { cls, localTimeout, attempt, baseMs, random } = input;
  if (localTimeout) return 0;
  const cap = Math.min(MAX_TIMER_MS, Math.max(baseMs, input.capMs));
  if (cls.kind === "rate-limited") {
    const hint = cls.retryAfterMs;
    if (hint !== undefined && Number.isFinite(hint) && hint > 0) {
      return clampWaitMs(hint, MIN_HINT_MS, Math.max(MIN_HINT_MS, input.hintCapMs));
    }
    // A 429 with no usable hint (none, 0, negative, garbage): never sooner than about a second.
    return Math.max(BARE_RATE_LIMIT_FLOOR_MS, clampWaitMs(backoffMs(attempt, baseMs, cap, random), 0, cap));
  }
  return clampWaitMs(backoffMs(attempt, baseMs, cap, random), 1, cap);
}

/**
 * Where a retry happens: `delayed` is the delayed-event lane (schedule, heartbeat after a lost answer,
 * cancel, list), `state` the state sends (membership, explicit leave), `refusal` a heartbeat the server
 * refused without saying the delayed leave is gone (a proxy's 404, a 403, an odd status).
 */
export type WaitLane = "delayed" | "state" | "refusal";

/**
 * The backoff ceiling of the delayed-leave lane (heartbeat retries, re-scheduling, cancels): half a
 * request timeout. During an outage that is about one probe a second, and when the network returns
 * the rejoin starts within that step instead of after a long backoff.
 */
export function delayedLaneCapMs(timing: Pick<Timing, "retryBaseMs" | "requestTimeoutMs">): number {
  return Math.max(timing.retryBaseMs, timing.requestTimeoutMs / 2);
}

/** The ceilings `retryWaitMs` needs for one lane. */
export interface WaitLimits {
  /** The backoff ceiling. */
  capMs: number;
  /** The most a server's Retry-After may make us wait. */
  hintCapMs: number;
}

/** The timing a lane's ceilings derive from (a resolved `Timing` will do). */
export type LaneTiming = Pick<Timing, "delayMs" | "heartbeatIntervalMs" | "retryMaxMs">;

/**
 * Which ceilings apply on which lane. Pure.
 *
 * - `delayed`: the caller's backoff cap; a hint is honoured up to max(cap, delay / 4). A heartbeat is
 *   due half a delay before the server fires our leave; a retry a quarter of the delay later is still
 *   sent more than a request timeout (at most delay / 5) before it fires. So `Retry-After: 3600` on a
 *   heartbeat with the default 10 s delay costs 2.5 s, not the hour, and the device stays in the call
 *   when the server recovers.
 * - `state`: the caller's backoff cap; a hint may ask for up to max(cap, retryMaxMs).
 * - `refusal`: backoff and hint both up to one heartbeat interval: the delayed leave may well be
 *   alive, so the next probe must come before it can fire.
 */
export function laneWaitLimits(lane: "refusal", timing: LaneTiming): WaitLimits;
export function laneWaitLimits(lane: "delayed" | "state", timing: LaneTiming, capMs: number): WaitLimits;
export function laneWaitLimits(lane: WaitLane, timing: LaneTiming, capMs?: number): WaitLimits {
  switch (lane) {
    case "refusal":
      return { capMs: timing.heartbeatIntervalMs, hintCapMs: timing.heartbeatIntervalMs };
    case "state": {
      const cap = capMs ?? timing.retryMaxMs;
      return { capMs: cap, hintCapMs: Math.max(cap, timing.retryMaxMs) };
    }
    case "delayed": {
      const cap = capMs ?? timing.retryMaxMs;
      return { capMs: cap, hintCapMs: Math.max(cap, timing.delayMs / 4) };
    }
  }
}
