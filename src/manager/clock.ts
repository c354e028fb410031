import type { SchedulerLike, Subscription } from "rxjs";
import { LocalTimeoutError } from "../errors.js";

/**
 * What the manager needs of an AbortSignal. A real `AbortSignal` fits; the manager's long-lived signals
 * (dispose, a call, its heartbeat) are `Canceller`s instead.
 */
export interface CancelSignal {
  readonly aborted: boolean;
  readonly reason?: unknown;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/**
 * An AbortController for signals that live as long as a call. Its listeners are a plain Set: Node's
 * EventTarget allocates a listener record on every add, and the heartbeat adds and removes two per beat.
 */
export class Canceller implements CancelSignal {
  aborted = false;
  reason: unknown = undefined;
  private listeners?: Set<() => void>;

  get signal(): CancelSignal {
    return this;
  }

  addEventListener(_type: "abort", listener: () => void): void {
    if (!this.aborted) (this.listeners ??= new Set()).add(listener);
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    this.listeners?.delete(listener);
  }

  abort(reason: unknown = new DOMException("aborted", "AbortError")): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.listeners;
    this.listeners = undefined;
    listeners?.forEach((listener) => listener());
  }
}

/**
 * Every wait the manager makes goes through one RxJS scheduler, so tests can run a call of hours on
 * virtual time, and `dispose()` can cancel every pending timer at once.
 */
export class Clock {
  private readonly pending = new Set<Subscription>();

  constructor(readonly scheduler: SchedulerLike) {}

  now(): number {
    return this.scheduler.now();
  }

  /** Run `fn` after `ms`; the returned function cancels it. */
  after(ms: number, fn: () => void): () => void {
    const sub = this.scheduler.schedule(
      () => {
        this.pending.delete(sub);
        fn();
      },
      Math.max(0, ms),
    );
    this.pending.add(sub);
    return () => {
      sub.unsubscribe();
      this.pending.delete(sub);
    };
  }

  /**
   * Resolves true after `ms`, or false as soon as any of `signals` aborts. Never rejects. Takes several
   * signals rather than an `AbortSignal.any` composite: a composite built per heartbeat from the call's
   * long-lived signal leaves Node bookkeeping (WeakRefs) on that signal for as long as the call lasts.
   */
  sleep(ms: number, ...signals: CancelSignal[]): Promise<boolean> {
    return this.wakeableSleep(ms, ...signals).done;
  }

  /** Like sleep(), and `wake()` ends it early (resolving false): cheaper than an AbortController per sleep. */
  wakeableSleep(ms: number, ...signals: CancelSignal[]): { done: Promise<boolean>; wake: () => void } {
    let wake = () => {};
    if (signals.some((s) => s.aborted)) return { done: Promise.resolve(false), wake };
    const done = new Promise<boolean>((resolve) => {
      let cancel = () => {};
      const end = (slept: boolean) => {
        for (const s of signals) s.removeEventListener("abort", onAbort);
        cancel();
        resolve(slept);
      };
      const onAbort = () => end(false);
      cancel = this.after(ms, () => end(true));
      wake = onAbort;
      for (const s of signals) s.addEventListener("abort", onAbort, { once: true });
    });
    return { done, wake };
  }

  /**
   * Run one request with a local timeout. The request gets an AbortSignal that fires on timeout or
   * when `outer` aborts; the promise rejects with LocalTimeoutError on timeout.
   */
  withTimeout<T>(ms: number, outer: CancelSignal, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    return new Promise<T>((resolve, reject) => {
      // On the outer abort (dispose) settle at once: a request that ignores its signal must not hang us.
      const abortFromOuter = () => {
        controller.abort(outer.reason);
        finish(() => reject(new DOMException("aborted", "AbortError")));
      };
      if (outer.aborted) return reject(new DOMException("aborted", "AbortError"));
      outer.addEventListener("abort", abortFromOuter, { once: true });
      let settled = false;
      const finish = (f: () => void) => {
        if (settled) return;
        settled = true;
        cancelTimer();
        outer.removeEventListener("abort", abortFromOuter);
        f();
      };
      const cancelTimer = this.after(ms, () => {
        finish(() => reject(new LocalTimeoutError(ms)));
        controller.abort(new LocalTimeoutError(ms));
      });
      let request: Promise<T>;
      try {
        request = fn(controller.signal);
      } catch (e) {
        request = Promise.reject(e);
      }
      request.then(
        (v) => finish(() => resolve(v)),
        (e) => finish(() => reject(e)),
      );
    });
  }

  /** Cancel every pending timer. */
  dispose(): void {
    for (const sub of this.pending) sub.unsubscribe();
    this.pending.clear();
  }

  get pendingTimers(): number {
    return this.pending.size;
  }
}
