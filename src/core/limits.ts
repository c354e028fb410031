/**
 * Hard numeric limits shared by configuration, error classification and the retry policy. No imports:
 * every other module may depend on this one.
 */

/**
 * The largest delay a JavaScript timer honours: Node and browsers fire a timer set past 2^31 - 1 ms after
 * 1 ms (Node also warns once per timer), which turns a long wait into a hot loop. Every wait we compute,
 * and every millisecond option that becomes a timer, stays at or below this.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * No retry after a bare 429 (no usable Retry-After or `retry_after_ms`, or one that says "now")
 * comes sooner than this, on any lane, even one whose backoff cap is lower (short test delays): see
 * `retryWaitMs` in core/policy.ts. matrix-js-sdk waits 5 s; we used to retry at 125-250 ms.
 */
export const RATE_LIMIT_FLOOR_MS = 1000;

/**
 * How far the device's wall clock may be from the server's before we say so (`clock-skew`). Our own
 * writes rest on the server's clock; what a device judges by its own clock (others' `expires`) is off by
 * the skew, which matters once it nears the degraded expiry window's margins (2 min).
 */
export const CLOCK_SKEW_MARGIN_MS = 30_000;

/**
 * How long after it was sent a request of ours whose answer never came may still be processed (held by a
 * proxy or a slow link). A restart processed that late starts its delayed leave's delay again then
 * (core/machine/lateRestarts.ts).
 */
export const LATE_REQUEST_HORIZON_MS = 30_000;

/**
 * The same for a membership write: a leave keeps a guard pending until then (core/machine/lateWrites.ts).
 */
export const LATE_WRITE_HORIZON_MS = LATE_REQUEST_HORIZON_MS;

/** Matrix caps `room_id`, `sender` and `state_key` at 255 bytes (spec: "Size limits"); servers refuse longer. */
export const MAX_ID_BYTES = 255;
