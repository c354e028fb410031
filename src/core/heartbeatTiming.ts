/**
 * The heartbeat's timing (pure): how long after the send of the last successful restart the next one
 * goes, how long we wait for its answer, and the margin that leaves. Issue 22 part 2.
 *
 * The margin, precisely: a restart is lost (its request or its answer). The device learns it at the
 * restart's local timeout, and only then can it retry. The server fires the leave a delay after the
 * last restart it received. So the time a lost restart leaves for its retries is
 *
 *     margin = delay − interval − restartTimeout
 *
 * with `interval` from the send of the last successful restart to the send of the lost one (a request
 * reaches the server about as long after its send as the one before did, so the server's deadline is the
 * last success's send + delay). matrix-js-sdk restarts 5 s after the previous answer (interval 5 s +
 * 1 RTT) with a 2 s timeout: with Element Call's 10 s delay its margin is 3 s − 1 RTT; with js-sdk's own
 * 8 s delay, 1 s − 1 RTT (its third attempt gets what is left, a timeout clamped to the predicted leave).
 *
 * A fixed 2 s timeout spends most of a fast link's margin on waiting for an answer that, on a 50 ms link,
 * is either there within a few hundred ms or not coming. The adaptive heartbeat (the default: the app did
 * not set `heartbeatIntervalMs`) waits for what the link needs (the smoothed round trip plus four
 * deviations, as TCP's RTO, at least 250 ms) and spends the rest on a longer interval. It keeps the
 * configured margin (`heartbeatMarginMs`, default delay / 2 − requestTimeoutMs: 3 s at a 10 s delay, at
 * least js-sdk's there, and what the fixed timing gave) and at least one more restart timeout, so the leave never comes before two attempts'
 * worth of time (the lost restart and one retry, each with its whole timeout); with a 250 ms timeout the
 * 3 s margin holds five retries where js-sdk's holds two. A link that slows down raises the timeout and
 * so shortens the interval with the next answer.
 *
 * The retries of a lost restart go back to back (a local timeout is retried at once). A timed-out
 * restart is aborted, its round trip never measured, so the retries must also find a link that became
 * slower than the timeout: each waits half the time left before the predicted leave (the first one the
 * longest: an answer from a link up to about that slow still comes in time), never less than the
 * measured timeout (so retries keep coming until the predicted leave: a cut that ends just before it
 * still lets one through), and never more than the configured timeout on silence alone (a cut is not a
 * slow link; beyond it the timeout grows with measured round trips only, core/linkTiming.ts). Past the
 * predicted leave the server's deadline is behind us, and only the answer can say where we stand: retries
 * wait as long as the delay allows (the link's ceiling), so even a link that became slower than the
 * configured timeout answers (a fixed 2 s timeout never lets a 2.5 s round trip through, and the
 * device would say "probably left" for good while the server holds it).
 *
 * What the longer interval gives up: a restart that fails with an answer (a 5xx, a 429, a reset) is known
 * a round trip after its send, not a timeout later; its retries have delay − interval, 3.25 s instead
 * of 5 s (js-sdk: 4.95 s) at a 10 s delay on a fast link. A 429's hint is honoured up to delay / 4
 * (core/policy.ts), so one such retry still fits.
 *
 * What the margin costs: requests per hour are 3 600 000 / interval, and interval = delay − margin −
 * restartTimeout. At js-sdk's margin (Element Call: 2 947 ms on a 53 ms link) even a zero timeout
 * leaves an interval of at most 7 053 ms, 0.716 × js-sdk's requests: fewer requests than that need a
 * thinner margin, which the defaults do not take.
 */
import type { Timing } from "./config.js";
import type { LinkBounds, LinkTiming } from "./linkTiming.js";

/**
 * The margin of a heartbeat (see above): the time from the moment a lost restart's loss can be known
 * (its local timeout) to the moment the server fires the leave. The same definition for any
 * implementation: `intervalMs` from the send of the last successful restart to the send of the next.
 */
export function heartbeatMarginMs(delayMs: number, intervalMs: number, restartTimeoutMs: number): number {
  return delayMs - intervalMs - restartTimeoutMs;
}

/**
 * How many retries of a lost restart are sent within its margin: back to back (a local timeout is
 * retried at once), the k-th (from 1) waiting `timeoutOf(k, msLeft)` for its answer, `msLeft` being what
 * is left of the margin when it is sent. js-sdk: `(k, left) => Math.min(2000, left)`; ours:
 * `(k, left) => retryTimeoutMs(first, cap, k, left)`.
 */
export function retriesWithinMargin(
  marginMs: number,
  timeoutOf: (k: number, msLeft: number) => number,
): number {
  let retries = 0;
  for (let at = 0; at < marginMs && retries < 1000;) {
    retries++;
    at += Math.max(1, timeoutOf(retries, marginMs - at));
  }
  return retries;
}

/**
 * The timeout of a heartbeat restart after `silent` restarts in a row got no answer, `msLeft` before the
 * predicted leave: the measured `firstMs` for the first attempt; for a retry, half of what is left,
 * within [firstMs, capMs]; past the predicted leave, `ceilingMs` (default `capMs`; never under `firstMs`).
 */
export function retryTimeoutMs(
  firstMs: number,
  capMs: number,
  silent: number,
  msLeft: number,
  ceilingMs: number = capMs,
): number {
  const cap = Math.max(firstMs, capMs);
  if (silent <= 0) return firstMs;
  if (!(msLeft > 0)) return Math.max(cap, ceilingMs);
  return Math.min(cap, Math.max(firstMs, Math.floor(msLeft / 2)));
}

export interface HeartbeatTiming {
  /** From the send of the last successful restart to the send of the next. */
  intervalMs: number;
  /** The local timeout of the next restart attempt (a backed-off one after silent restarts). */
  timeoutMs: number;
  /** `heartbeatMarginMs(delay, intervalMs, the first attempt's timeout)`. */
  marginMs: number;
}

/**
 * The restart timeout the restarts' measurements ask for, before any retry: their smoothed round trip
 * plus four deviations, and at least half again the round trip (a steady link has no deviation, yet
 * its answers vary); within the app's floor and what the delay allows. Before a restart was answered:
 * the link's timeout for any delayed-event request (the configured one, or longer for a slow link).
 */
export function measuredRestartTimeoutMs(
  timing: Pick<Timing, "requestTimeoutMs" | "minRestartTimeoutMs">,
  link: Pick<LinkTiming, "timeoutMs" | "restartSrttMs" | "restartRttvarMs"> | undefined,
  bounds: LinkBounds,
): number {
  const srtt = link?.restartSrttMs;
  if (srtt === undefined) return link?.timeoutMs ?? timing.requestTimeoutMs;
  const wanted = Math.ceil(srtt + Math.max(4 * (link?.restartRttvarMs ?? 0), srtt / 2));
  return Math.min(bounds.maxMs, Math.max(timing.minRestartTimeoutMs, wanted));
}

/** The shortest adaptive interval: a quarter of the delay (the budget's three tokens per configured interval cover two). */
export function minAdaptiveIntervalMs(delayMs: number): number {
  return Math.ceil(delayMs / 4);
}

/**
 * The heartbeat timing in force. Fixed (the app set `heartbeatIntervalMs`): its interval, the link's
 * conservative timeout. Adaptive: the timeout the link asks for, and the interval that keeps the margin
 * at least the configured timing's and at least one more such timeout; the next attempt's timeout after
 * silent restarts, `msLeft` before the predicted leave (`retryTimeoutMs`).
 */
export function heartbeatTiming(
  timing: Pick<
    Timing,
    | "delayMs"
    | "heartbeatIntervalMs"
    | "requestTimeoutMs"
    | "adaptiveHeartbeat"
    | "minRestartTimeoutMs"
    | "heartbeatMarginMs"
  >,
  link: LinkTiming | undefined,
  bounds: LinkBounds,
  msLeft = Infinity,
): HeartbeatTiming {
  const delayMs = timing.delayMs;
  if (!timing.adaptiveHeartbeat) {
    const timeoutMs = link?.timeoutMs ?? timing.requestTimeoutMs;
    const intervalMs = timing.heartbeatIntervalMs;
    return { intervalMs, timeoutMs, marginMs: heartbeatMarginMs(delayMs, intervalMs, timeoutMs) };
  }
  const firstMs = measuredRestartTimeoutMs(timing, link, bounds);
  // The configured margin (delay/2 − requestTimeoutMs by default): never thinner than that.
  const marginFloorMs = timing.heartbeatMarginMs;
  const intervalMs = Math.max(
    minAdaptiveIntervalMs(delayMs),
    delayMs - firstMs - Math.max(marginFloorMs, firstMs),
  );
  // After silent restarts: half the time left, up to the configured timeout (or the measured one).
  const capMs = Math.min(bounds.maxMs, timing.requestTimeoutMs);
  const timeoutMs = retryTimeoutMs(firstMs, capMs, link?.silentRestarts ?? 0, msLeft, bounds.maxMs);
  return { intervalMs, timeoutMs, marginMs: heartbeatMarginMs(delayMs, intervalMs, firstMs) };
}
