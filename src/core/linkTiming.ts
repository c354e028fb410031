/**
 * The local timeout of delayed-event requests, adapted to the link (pure). A fixed 2 s timeout never
 * lets a 2.3 s round trip through: every schedule times out, its late answer is cancelled, and the
 * device stays `joining`. We grow the timeout after a local timeout and follow the measured round trip,
 * but never past what the delay allows (interval + timeout must stay under the delay, or one lost
 * heartbeat lets the server fire our leave). A link slower than that is reported, not hidden.
 *
 * The heartbeat's restarts are measured apart as well (the smoothed round trip and its mean deviation,
 * as TCP keeps them: RFC 6298): they drive the adaptive heartbeat's restart timeout and interval
 * (core/heartbeatTiming.ts). Only restarts, the request whose timeout they set: a schedule's round trip
 * can include the backend's discovery (`/versions`) and the connection's set-up, which one sample in a
 * few a minute would take a long while to forget.
 */
export interface LinkTiming {
  /** Smoothed round trip of answered requests, when measured. */
  readonly srttMs?: number;
  /** Smoothed round trip of answered heartbeat restarts, when measured. */
  readonly restartSrttMs?: number;
  /** Mean deviation of those from their smoothed round trip (RFC 6298's RTTVAR), when measured. */
  readonly restartRttvarMs?: number;
  /** The local timeout in force (schedules, cancels, sends; restarts with a fixed heartbeat interval). */
  readonly timeoutMs: number;
  /** True once a request timed out with the timeout at its ceiling: the link is too slow for the delay. */
  readonly tooSlow: boolean;
  /**
   * Restarts in a row that got no answer within their (adaptive) timeout: the next one is a retry, whose
   * timeout core/heartbeatTiming.ts sets (a timed-out restart is aborted, its round trip never measured).
   * Any answer resets it. Absent: none.
   */
  readonly silentRestarts?: number;
}

export interface LinkBounds {
  /** The configured timeout: never go below it. */
  baseMs: number;
  /** What the delay allows: the timeout never goes above it. */
  maxMs: number;
}

/** The ceiling: what is left of the delay after a heartbeat interval, with a 10 % margin. */
export function linkBounds(baseMs: number, delayMs: number, heartbeatIntervalMs: number): LinkBounds {
  const maxMs = Math.max(baseMs, Math.floor((delayMs - heartbeatIntervalMs) * 0.9));
  return { baseMs, maxMs };
}

export function initialLink(bounds: LinkBounds): LinkTiming {
  return { timeoutMs: bounds.baseMs, tooSlow: false };
}

/**
 * Gains of the smoothed round trips and of the restarts' deviation: a quarter each (RFC 6298 smooths
 * the round trip by an eighth; with one restart every few seconds, a slowdown must show within a few).
 */
const SRTT_GAIN = 0.25;
const RTTVAR_GAIN = 0.25;

/** A request answered after `rttMs` (success or a server error: both crossed the link). Any answer ends a silence. */
export function onAnswered(link: LinkTiming, bounds: LinkBounds, rttMs: number): LinkTiming {
  const srttMs =
    link.srttMs === undefined ? rttMs : Math.round(link.srttMs * (1 - SRTT_GAIN) + rttMs * SRTT_GAIN);
  // Room for a round trip twice the smoothed one, within the bounds.
  const timeoutMs = Math.min(bounds.maxMs, Math.max(bounds.baseMs, Math.ceil(srttMs * 2)));
  // One literal of a fixed shape (no rest and spread): every answer of every manager comes here.
  return {
    srttMs,
    restartSrttMs: link.restartSrttMs,
    restartRttvarMs: link.restartRttvarMs,
    timeoutMs,
    tooSlow: rttMs > bounds.maxMs,
    silentRestarts: undefined,
  };
}

/** A heartbeat restart answered after `rttMs` (as well as `onAnswered`): the restarts' own estimate. */
export function onRestartAnswered(link: LinkTiming, rttMs: number): LinkTiming {
  const srtt = link.restartSrttMs;
  // The deviation is measured against the smoothed round trip before this sample (RFC 6298, 2.3).
  const restartSrttMs = srtt === undefined ? rttMs : Math.round(srtt * (1 - SRTT_GAIN) + rttMs * SRTT_GAIN);
  const restartRttvarMs =
    srtt === undefined
      ? Math.round(rttMs / 2)
      : Math.round((link.restartRttvarMs ?? 0) * (1 - RTTVAR_GAIN) + Math.abs(srtt - rttMs) * RTTVAR_GAIN);
  return {
    srttMs: link.srttMs,
    restartSrttMs,
    restartRttvarMs,
    timeoutMs: link.timeoutMs,
    tooSlow: link.tooSlow,
    silentRestarts: link.silentRestarts,
  };
}

/**
 * A request got no answer within the timeout. The timeout does not grow on silence alone: during a cut
 * a longer timeout would only push the next retry past the server's deadline. It grows with measured
 * round trips (answers, including late answers to schedules we had given up on).
 */
export function onLocalTimeout(link: LinkTiming, bounds: LinkBounds): LinkTiming {
  return { ...link, tooSlow: link.tooSlow || link.timeoutMs >= bounds.maxMs };
}

/** The most silent restarts counted (only "none" and "some" matter; the count is for logs and tests). */
const MAX_SILENT_RESTARTS = 6;

/**
 * An adaptive heartbeat's restart got no answer within its timeout: the next one is a retry (its
 * timeout: core/heartbeatTiming.ts). As for any request, the link is too slow only once the measured
 * timeout is at its ceiling: silence alone is a cut, not a slow link.
 */
export function onSilentRestart(link: LinkTiming, bounds: LinkBounds): LinkTiming {
  return {
    ...onLocalTimeout(link, bounds),
    silentRestarts: Math.min(MAX_SILENT_RESTARTS, (link.silentRestarts ?? 0) + 1),
  };
}
