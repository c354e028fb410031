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
 * No retry after a bare 429 (no usable Retry-After or `retry_after_ms`) comes sooner than this.
 * matrix-js-sdk waits 5 s; we used to retry at 125-250 ms. A lane whose ceiling is lower (short test
 * delays, see `retryWaitMs`) uses its ceiling instead.
 */
export const RATE_LIMIT_FLOOR_MS = 1000;

/**
 * No retry after a 429 whose hint says "now" (`Retry-After: 0`, a date in the past, `retry_after_ms: 0`)
 * comes sooner than this: at most four requests a second. Hints above it are honoured (up to the ceiling):
 * Synapse's `retry_after_ms` is exact, and a leave retried in 100 ms instead of 1 s can still fire our
 * own delayed leave rather than let it time out.
 */
export const RATE_LIMIT_HINT_FLOOR_MS = 250;

/** Matrix caps `room_id`, `sender` and `state_key` at 255 bytes (spec: "Size limits"); servers refuse longer. */
export const MAX_ID_BYTES = 255;
