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
 * No retry after a 429 comes sooner than this, whatever the server hinted (`Retry-After: 0`, a date in
 * the past, `retry_after_ms: 0`) and also when it gave no hint at all. matrix-js-sdk waits 5 s after a
 * bare 429; a lane whose ceiling is lower (the heartbeat, see `retryWaitMs`) uses its ceiling instead.
 */
export const RATE_LIMIT_FLOOR_MS = 1000;

/** Matrix caps `room_id`, `sender` and `state_key` at 255 bytes (spec: "Size limits"); servers refuse longer. */
export const MAX_ID_BYTES = 255;
