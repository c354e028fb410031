import type { RateLimitConfig } from "./options.js";

interface Bucket {
  level: number;
  updatedMs: number;
}

export type RateLimitResult = { allowed: true } | { allowed: false; retryAfterMs: number };

/**
 * Synapse's ratelimiter is a leaky bucket per key: each action adds 1, the level drains at `perSecond`,
 * an action that would take the level above `burstCount` is refused and told when it would fit.
 * One instance per bucket name (`rc_message`, `rc_delayed_event_mgmt`); the config is read per call so
 * `configure()` takes effect at once.
 */
export class LeakyBucketLimiter {
  private readonly buckets = new Map<string, Bucket>();

  public take(key: string, config: RateLimitConfig | null, nowMs: number): RateLimitResult {
    if (config === null) return { allowed: true };
    const bucket = this.buckets.get(key) ?? { level: 0, updatedMs: nowMs };
    const elapsedS = Math.max(0, nowMs - bucket.updatedMs) / 1000;
    const level = Math.max(0, bucket.level - elapsedS * config.perSecond);
    if (level + 1 > config.burstCount) {
      this.buckets.set(key, { level, updatedMs: nowMs });
      const retryAfterMs =
        config.perSecond > 0
          ? Math.ceil(((level + 1 - config.burstCount) / config.perSecond) * 1000)
          : 60_000;
      return { allowed: false, retryAfterMs: Math.max(1, retryAfterMs) };
    }
    this.buckets.set(key, { level: level + 1, updatedMs: nowMs });
    return { allowed: true };
  }

  public reset(): void {
    this.buckets.clear();
  }
}
