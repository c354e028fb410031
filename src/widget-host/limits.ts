/**
 * What one widget can make its host send. Each kind of request has a token bucket (`burst` requests at
 * once, refilled at `perSecond`); a request that finds its bucket empty is refused like a server refuses
 * one (429 `M_LIMIT_EXCEEDED` with `retry_after_ms`), before anything is sent. Times are a monotonic
 * clock's milliseconds, passed in.
 *
 * The defaults are far above what an honest call widget sends. Measured with Element Call 0.26.1 (the
 * browser test, a 3 s delayed leave restarted every 750 ms): per join 1 delayed leave, 1 membership, 2
 * OpenID requests, then ~1.3 restarts a second; our own manager restarts every delay/4 (4 a second at a 1 s
 * delay). Media keys go out as one to-device request per key rotation.
 */

/** A token bucket: `burst` requests at once, refilled at `perSecond`. */
export interface RateLimit {
  /** Requests allowed at once (the bucket's size). */
  burst: number;
  /** Requests allowed per second, on average, after the burst. */
  perSecond: number;
}

/** Per-widget limits (`DelayedEventWidgetDriverOptions.limits`); `null` turns one off. */
export interface WidgetLimits {
  /** `send_event` without `delay` (state and room events). Default 30 at once, 5/s. */
  sendEvents?: RateLimit | null;
  /** `send_event` with `delay`. Default 20 at once, 2/s. */
  scheduleDelayedEvents?: RateLimit | null;
  /** `update_delayed_event` (restart, send, cancel). Default 30 at once, 10/s. */
  updateDelayedEvents?: RateLimit | null;
  /** `send_to_device` requests. Default 30 at once, 5/s. */
  toDevice?: RateLimit | null;
  /**
   * OpenID tokens minted (`POST /openid/request_token`); a token is reused while it is valid, so this
   * counts only new ones. Default 5 at once, 1 a minute.
   */
  openIdTokens?: RateLimit | null;
  /**
   * The longest `delay` a widget may ask for, in ms. Default 24 h. Longer ones are refused as a server
   * refuses a delay over its maximum (`M_MAX_DELAY_EXCEEDED` with `max_delay`), so the widget can shorten it.
   */
  maxDelayMs?: number;
}

/** The kinds of request a widget's buckets count. */
export type LimitedRequest =
  "sendEvents" | "scheduleDelayedEvents" | "updateDelayedEvents" | "toDevice" | "openIdTokens";

export const DEFAULT_WIDGET_LIMITS: Required<{ [K in LimitedRequest]: RateLimit }> & { maxDelayMs: number } =
  {
    sendEvents: { burst: 30, perSecond: 5 },
    scheduleDelayedEvents: { burst: 20, perSecond: 2 },
    updateDelayedEvents: { burst: 30, perSecond: 10 },
    toDevice: { burst: 30, perSecond: 5 },
    openIdTokens: { burst: 5, perSecond: 1 / 60 },
    maxDelayMs: 24 * 60 * 60 * 1000,
  };

/** Every timer and delay stays below this (a JavaScript timer fires at once past 2^31 - 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** One bucket. */
export class TokenBucket {
  private tokens: number;
  private at: number | undefined;

  constructor(private readonly limit: RateLimit) {
    if (!(limit.burst >= 1) || !(limit.perSecond > 0) || !Number.isFinite(limit.perSecond))
      throw new RangeError(
        `a rate limit needs burst >= 1 and a finite perSecond > 0, got ${JSON.stringify(limit)}`,
      );
    this.tokens = limit.burst;
  }

  /**
   * Takes one token at `now`: 0 when taken, otherwise how many ms until one will be there (nothing is
   * taken then).
   */
  take(now: number): number {
    if (this.at !== undefined && now > this.at)
      this.tokens = Math.min(this.limit.burst, this.tokens + ((now - this.at) / 1000) * this.limit.perSecond);
    if (this.at === undefined || now > this.at) this.at = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.min(MAX_TIMER_MS, Math.ceil(((1 - this.tokens) / this.limit.perSecond) * 1000));
  }
}

/** A widget's buckets, built from its limits over the defaults. */
export class WidgetBuckets {
  private readonly buckets = new Map<LimitedRequest, TokenBucket>();
  /** The longest delay the widget may ask for. */
  readonly maxDelayMs: number;

  constructor(limits: WidgetLimits = {}) {
    for (const kind of Object.keys(DEFAULT_WIDGET_LIMITS) as (LimitedRequest | "maxDelayMs")[]) {
      if (kind === "maxDelayMs") continue;
      const limit = limits[kind] === undefined ? DEFAULT_WIDGET_LIMITS[kind] : limits[kind];
      if (limit !== null) this.buckets.set(kind, new TokenBucket(limit));
    }
    const max = limits.maxDelayMs ?? DEFAULT_WIDGET_LIMITS.maxDelayMs;
    if (!Number.isInteger(max) || max < 0 || max > MAX_TIMER_MS)
      throw new RangeError(`maxDelayMs must be an integer between 0 and ${MAX_TIMER_MS}, got ${String(max)}`);
    this.maxDelayMs = max;
  }

  /** Takes a token for `kind`: 0 when allowed, else ms until it would be. */
  take(kind: LimitedRequest, now: number): number {
    return this.buckets.get(kind)?.take(now) ?? 0;
  }
}
