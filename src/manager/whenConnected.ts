import { asyncScheduler, type Observable, type SchedulerLike, type Subscription } from "rxjs";
import { LocalTimeoutError, MembershipError } from "../errors.js";
import type { MembershipState } from "./state.js";
import { MAX_TIMER_MS } from "../core/limits.js";

/** What `whenConnected` needs of a manager: its public `state$` (a `MembershipManager` fits). */
export interface ConnectableManager {
  /** The manager's state, replaying the current one on subscription. */
  readonly state$: Observable<MembershipState>;
  /**
   * True while the app wants to be in the call (`join()` called, no `leave()` since): a `leaving` or
   * `failed` state replayed then belongs to an earlier call, not to the join being waited for.
   */
  readonly joinRequested?: boolean;
}

/** Options for {@link whenConnected}. */
export interface WhenConnectedOptions {
  /**
   * Give up waiting after this long: the promise rejects with a `LocalTimeoutError`. The manager goes
   * on trying; only the wait ends. Default: no limit. At most 2^31 - 1 ms.
   */
  timeoutMs?: number;
  /** Give up waiting when this aborts: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** The timer's scheduler, for tests on virtual time. Default: RxJS's `asyncScheduler` (real time). */
  scheduler?: SchedulerLike;
}

/**
 * A promise for the join, for apps that do not use RxJS: it resolves once the manager is `connected`
 * (at once if it already is), and rejects
 * - with the manager's `MembershipError` when the join waited for reaches `failed`;
 * - with a `MembershipError` (code `gave-up`) when `leave()` is called, when it reaches `left` after
 *   having started to join (the server fired the delayed leave and `autoRejoin` is off), or when it is
 *   disposed;
 * - with a `LocalTimeoutError` after `timeoutMs`, or the signal's reason when `signal` aborts.
 *
 * Call it before or after `join()`: an `idle` (or earlier `left`) manager is waited on until it joins. It
 * judges the join it was asked about, never the end of an earlier call: after a failed call,
 * `whenConnected(m)` then `m.join()` waits for the new join; so does `leave(); join(); whenConnected(m)`.
 * A `failed` (or `leaving`) state that is still current one tick after the call, with no join requested,
 * is the outcome it reports.
 *
 * ```ts
 * manager.join();
 * await whenConnected(manager, { timeoutMs: 30_000 });
 * ```
 */
export function whenConnected(
  manager: ConnectableManager,
  options: WhenConnectedOptions = {},
): Promise<void> {
  const { timeoutMs, signal, scheduler = asyncScheduler } = options;
  if (timeoutMs !== undefined && !(timeoutMs >= 0 && timeoutMs <= MAX_TIMER_MS))
    return Promise.reject(new RangeError(`whenConnected: timeoutMs must be within 0..${MAX_TIMER_MS}`));
  if (signal?.aborted) return Promise.reject(signal.reason);

  return new Promise<void>((resolve, reject) => {
    let timer: Subscription | undefined;
    // Not const: `finish` may run inside `subscribe()` (state$ replays), before the assignment.
    // eslint-disable-next-line prefer-const
    let states: Subscription | undefined;
    let settled = false;
    // A `left` replayed at subscription is an earlier call's end, not this join's.
    let joinStarted = false;
    /** The state replayed at subscription, while it may still be an earlier call's end. */
    let replayed: MembershipState | undefined;
    let first = true;
    let deferred: Subscription | undefined;
    const onAbort = () => finish(() => reject(signal?.reason));
    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      timer?.unsubscribe();
      deferred?.unsubscribe();
      states?.unsubscribe();
      signal?.removeEventListener("abort", onAbort);
      settle();
    };

    signal?.addEventListener("abort", onAbort, { once: true });
    if (timeoutMs !== undefined)
      timer = scheduler.schedule(() => finish(() => reject(new LocalTimeoutError(timeoutMs))), timeoutMs);
    /** An end that may be an earlier call's: judged one tick later, if nothing happened meanwhile. */
    const judgeLater = (state: MembershipState) => {
      replayed = state;
      deferred = scheduler.schedule(() => {
        if (replayed !== state || manager.joinRequested === true) return;
        replayed = undefined;
        if (state.kind === "failed") finish(() => reject(state.error));
        else
          finish(() => reject(new MembershipError("leave() called before connecting", "gave-up", "config")));
      }, 0);
    };
    states = manager.state$.subscribe({
      next: (state) => {
        const atSubscription = first;
        first = false;
        replayed = undefined;
        if (atSubscription && (state.kind === "failed" || state.kind === "leaving")) {
          // An earlier call's end, or cleanup before the join that was asked for (leave(); join()).
          if (manager.joinRequested !== true) judgeLater(state);
          return;
        }
        switch (state.kind) {
          case "joined":
            return finish(resolve);
          case "failed":
            return finish(() => reject(state.error));
          case "left":
            if (joinStarted)
              finish(() =>
                reject(new MembershipError(`left before connecting (${state.reason})`, "gave-up", "config")),
              );
            return;
          case "leaving":
            return finish(() =>
              reject(new MembershipError("leave() called before connecting", "gave-up", "config")),
            );
          case "idle":
            return;
          default:
            joinStarted = true;
        }
      },
      complete: () =>
        finish(() => reject(new MembershipError("disposed before connecting", "gave-up", "config"))),
    });
    // `state$` replays synchronously: the wait may be over already.
    if (settled) states.unsubscribe();
  });
}
