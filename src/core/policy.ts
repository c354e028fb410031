/**
 * What the manager does with each answer, and how long it waits before the next request. Pure: no
 * promises, timers, I/O or clock reads; the current time is always an argument. The manager asks these
 * functions and nothing else, so the whole error policy can be read (and tested) here in one sitting.
 */
import type { ErrorClass } from "../errors.js";

/** Node fires a timer of 2^31 ms or more after 1 ms: no wait we compute may reach it. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
/** A 429 without a usable hint: js-sdk waits 5 s; we wait at least this long. */
export const BARE_RATE_LIMIT_FLOOR_MS = 1000;
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

/** What to do when scheduling the delayed leave fails. */
export function onScheduleFailure(
  cls: ErrorClass,
  unrecognisedSoFar: number,
): "lower-delay" | "degrade" | "back-off" | "fail" {
  if (cls.kind === "max-delay") return "lower-delay";
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

/** Exponential backoff with "equal jitter": between half and all of base·2^attempt, capped. */
export function backoff(attempt: number, baseMs: number, capMs: number, random: () => number): number {
  const step = Math.min(capMs, baseMs * 2 ** Math.min(Math.max(0, attempt), 30));
  return Math.round(step / 2 + (random() * step) / 2);
}

/**
 * How long to wait before retrying. Every wait lies between a floor and a ceiling (and below 2^31 ms):
 * a Retry-After of 0, -5 or an hour, or a `retry_after_ms` of 1e12, all give a sane wait.
 */
export function retryWaitMs(input: WaitInput): number {
  const { cls, localTimeout, attempt, baseMs, random } = input;
  if (localTimeout) return 0;
  const cap = Math.min(MAX_TIMER_MS, Math.max(baseMs, input.capMs));
  if (cls.kind === "rate-limited") {
    const hint = cls.retryAfterMs;
    if (hint !== undefined && Number.isFinite(hint) && hint > 0) {
      const hintCap = Math.min(MAX_TIMER_MS, Math.max(MIN_HINT_MS, input.hintCapMs));
      return Math.min(hintCap, Math.max(MIN_HINT_MS, hint));
    }
    // A 429 with no usable hint (none, 0, negative, garbage): never sooner than about a second.
    return Math.max(BARE_RATE_LIMIT_FLOOR_MS, Math.min(cap, backoff(attempt, baseMs, cap, random)));
  }
  return Math.min(cap, Math.max(1, backoff(attempt, baseMs, cap, random)));
}

/** Clamp any timer delay into what every runtime's timers accept. */
export function timerMs(ms: number): number {
  if (!Number.isFinite(ms)) return MAX_TIMER_MS;
  return Math.min(MAX_TIMER_MS, Math.max(0, ms));
}
