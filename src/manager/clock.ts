import { asyncScheduler, type SchedulerLike, type Subscription } from "rxjs";

/**
 * Every timer the manager sets (its one wake timer, each request's local timeout, a leave's timeout)
 * goes through one RxJS scheduler, so tests can run a call of hours on virtual time, and `dispose()` can
 * cancel every pending timer at once.
 *
 * `now()` is ELAPSED time, never the wall clock: every deadline of the machine (the next restart, the
 * predicted leave, budgets, expiry) is an absolute time on this clock, so a wall-clock step (NTP, a VM
 * restore, a user fixing the clock) must not move it. RxJS's default schedulers read `Date.now()`, which
 * steps; for them we read `performance.now()` instead, which only ever moves forward with real time.
 * A scheduler with a clock of its own (a VirtualTimeScheduler in tests) is used as it is, clamped so
 * that it never goes back.
 */
export class Clock {
  private readonly pending = new Set<Subscription>();
  private readonly read: () => number;
  private last = -Infinity;

  constructor(readonly scheduler: SchedulerLike) {
    this.read = readsWallClock(scheduler) ? monotonicNow : () => scheduler.now();
  }

  now(): number {
    const t = this.read();
    if (t > this.last) this.last = t;
    return this.last;
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

  /** Cancel every pending timer. */
  dispose(): void {
    for (const sub of this.pending) sub.unsubscribe();
    this.pending.clear();
  }

  get pendingTimers(): number {
    return this.pending.size;
  }
}

/**
 * True for the schedulers whose `now()` is RxJS's date provider (`asyncScheduler`, `asapScheduler`,
 * `queueScheduler`, `animationFrameScheduler` and any `AsyncScheduler` made without a clock of its own):
 * they all share the one static `Scheduler.now`.
 */
export function readsWallClock(scheduler: SchedulerLike): boolean {
  return scheduler.now === asyncScheduler.now;
}

/** Milliseconds on a clock that never steps (its zero is arbitrary: only differences mean anything). */
function monotonicNow(): number {
  return Math.floor(globalThis.performance.now());
}
