/**
 * The local timeout of delayed-event requests, adapted to the link (pure). A fixed 2 s timeout never
 * lets a 2.3 s round trip through: every schedule times out, its late answer is cancelled, and the
 * device stays `joining`. We grow the timeout after a local timeout and follow the measured round trip,
 * but never past what the delay allows (interval + timeout must stay under the delay, or one lost
 * heartbeat lets the server fire our leave). A link slower than that is reported, not hidden.
 */
export interface LinkTiming {
  /** Smoothed round trip of answered requests, when measured. */
  readonly srttMs?: number;
  /** The local timeout in force. */
  readonly timeoutMs: number;
  /** True once a request timed out with the timeout at its ceiling: the link is too slow for the delay. */
  readonly tooSlow: boolean;
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

/** A request answered after `rttMs` (success or a server error: both crossed the link). */
export function onAnswered(link: LinkTiming, bounds: LinkBounds, rttMs: number): LinkTiming {
  const srttMs = link.srttMs === undefined ? rttMs : Math.round(link.srttMs * 0.75 + rttMs * 0.25);
  // Room for a round trip twice the smoothed one, within the bounds.
  const timeoutMs = Math.min(bounds.maxMs, Math.max(bounds.baseMs, Math.ceil(srttMs * 2)));
  return { srttMs, timeoutMs, tooSlow: rttMs > bounds.maxMs };
}

/**
 * A request got no answer within the timeout. The timeout does not grow on silence alone: during a cut
 * a longer timeout would only push the next retry past the server's deadline. It grows with measured
 * round trips (answers, including late answers to schedules we had given up on).
 */
export function onLocalTimeout(link: LinkTiming, bounds: LinkBounds): LinkTiming {
  return { ...link, tooSlow: link.tooSlow || link.timeoutMs >= bounds.maxMs };
}
