/**
 * The call's members without RxJS: the list now, a watch with a listener, and a promise for a list that
 * satisfies a condition (for example "includes our own device"). All three ride on `callMembers$`, so
 * they share its evaluation with every other reader of the same source.
 */
import type { Subscription } from "rxjs";
import { LocalTimeoutError } from "../errors.js";
import { MAX_TIMER_MS } from "../core/limits.js";
import { asyncScheduler } from "rxjs";
import { callMembers$, type CallMembersOptions, type SourceLike } from "./observer.js";
import { ownMembership, type CallMember } from "./parse.js";

/** The source completed (a `WidgetStateSource` was closed) before the wait was over. */
export class CallMembersSourceEndedError extends Error {
  constructor() {
    super("the room-state source ended before the call members matched");
    this.name = "CallMembersSourceEndedError";
  }
}

/**
 * The members right now, oldest first, or undefined when the source does not know the room's state yet
 * (a client before its first sync with the room, a widget before the host's first push). Synchronous:
 * a synced client, a `WidgetStateSource` and `eventsStateSource` answer at once.
 */
export function currentCallMembers(
  source: SourceLike,
  options: CallMembersOptions = {},
): CallMember[] | undefined {
  let latest: CallMember[] | undefined;
  callMembers$(source, options)
    .subscribe((members) => (latest = members))
    .unsubscribe();
  return latest;
}

/** A live view of the members; `close()` it when done. */
export interface CallMembersWatch {
  /** The latest list, oldest first; undefined until the source knows the room's state. */
  readonly members: CallMember[] | undefined;
  /** Calls `listener` with every new list (not with the current one); returns a function that removes it. */
  onChange(listener: (members: CallMember[]) => void): () => void;
  /** Stop watching (idempotent). Listeners are dropped. */
  close(): void;
}

/**
 * Follow the members with a plain listener:
 *
 * ```ts
 * const watch = watchCallMembers(client, { roomId });
 * render(watch.members ?? []);
 * watch.onChange(render);
 * // later
 * watch.close();
 * ```
 */
export function watchCallMembers(source: SourceLike, options: CallMembersOptions = {}): CallMembersWatch {
  let latest: CallMember[] | undefined;
  const listeners = new Set<(members: CallMember[]) => void>();
  let subscription: Subscription | undefined = callMembers$(source, options).subscribe((members) => {
    latest = members;
    for (const listener of [...listeners]) listener(members);
  });
  return {
    get members() {
      return latest;
    },
    onChange(listener) {
      if (subscription) listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    close() {
      subscription?.unsubscribe();
      subscription = undefined;
      listeners.clear();
    },
  };
}

/** Options of `waitForCallMembers`. */
export interface WaitForCallMembersOptions extends CallMembersOptions {
  /**
   * Give up after this long: the promise rejects with a `LocalTimeoutError`. Default 30 000; at most
   * 2^31 - 1. Runs on `scheduler`.
   */
  timeoutMs?: number;
  /** Give up when this aborts: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Default wait of `waitForCallMembers`. */
export const WAIT_FOR_CALL_MEMBERS_TIMEOUT_MS = 30_000;

/**
 * The first list (the current one included) for which `predicate` holds; by default the first list at
 * all (the source knows the room's state). Rejects with a `LocalTimeoutError` after `timeoutMs`, with
 * the signal's reason when `signal` aborts, with `CallMembersSourceEndedError` if the source ends.
 *
 * ```ts
 * const bob = await waitForCallMembers(client, includesDevice(bobId, bobDevice), { roomId });
 * // With `manager`, our own device is in every list from `connected` on (before the client's next sync):
 * const first = await waitForCallMembers(client, undefined, { manager });
 * ```
 */
export function waitForCallMembers(
  source: SourceLike,
  predicate: (members: CallMember[]) => boolean = () => true,
  options: WaitForCallMembersOptions = {},
): Promise<CallMember[]> {
  const { timeoutMs = WAIT_FOR_CALL_MEMBERS_TIMEOUT_MS, signal, ...rest } = options;
  if (!(timeoutMs >= 0 && timeoutMs <= MAX_TIMER_MS))
    return Promise.reject(new RangeError(`waitForCallMembers: timeoutMs must be within 0..${MAX_TIMER_MS}`));
  if (signal?.aborted) return Promise.reject(signal.reason);
  const scheduler = rest.scheduler ?? asyncScheduler;
  return new Promise<CallMember[]>((resolve, reject) => {
    let settled = false;
    // Not const: `finish` may run inside `subscribe()` (the current list), before the assignment.
    // eslint-disable-next-line prefer-const
    let lists: Subscription | undefined;
    const onAbort = () => finish(() => reject(signal?.reason));
    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      timer.unsubscribe();
      lists?.unsubscribe();
      signal?.removeEventListener("abort", onAbort);
      settle();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer: Subscription = scheduler.schedule(
      () => finish(() => reject(new LocalTimeoutError(timeoutMs))),
      timeoutMs,
    );
    lists = callMembers$(source, rest).subscribe({
      next: (members) => {
        let ok: boolean;
        try {
          ok = predicate(members);
        } catch (error) {
          return finish(() => reject(error));
        }
        if (ok) finish(() => resolve(members));
      },
      error: (error: unknown) => finish(() => reject(error)),
      complete: () => finish(() => reject(new CallMembersSourceEndedError())),
    });
    if (settled) lists.unsubscribe();
  });
}

/** A predicate for `waitForCallMembers`: the list includes this device. */
export function includesDevice(userId: string, deviceId: string): (members: CallMember[]) => boolean {
  return (members) => ownMembership(members, userId, deviceId) !== undefined;
}
