import { asyncScheduler, type SchedulerLike, type Subscription } from "rxjs";
import { MAX_TIMER_MS } from "../core/limits.js";

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
  /** Timers armed and not yet fired or cancelled: RxJS subscriptions (virtual time) or timer handles. */
  private readonly pending: (Subscription | RealTimer)[] = [];
  /** Elapsed time is measured on the scheduler's own clock (virtual time), or on a real-time source. */
  private readonly virtual: boolean;
  /**
   * The real-time source: `performance.now()`, unless timers turn out to run on mocked time (node:test's
   * mock timers move `Date` and `setTimeout` but not `performance`): then `Date.now()`, whose steps are
   * then the test's own.
   */
  private source: () => number = monotonicNow;
  private lastSource: number;
  private elapsed = 0;
  private last = -Infinity;

  constructor(readonly scheduler: SchedulerLike) {
    this.virtual = !readsWallClock(scheduler);
    this.lastSource = this.source();
  }

  now(): number {
    if (this.virtual) {
      const t = this.scheduler.now();
      if (t > this.last) this.last = t;
      return this.last;
    }
    // A continuous clock: the source's forward steps add up, a step back adds nothing.
    const s = this.source();
    this.elapsed += Math.max(0, s - this.lastSource);
    this.lastSource = s;
    // Whole milliseconds: every deadline and timestamp the machine keeps is then a small integer, which
    // V8 stores in place; a fraction would be a heap-allocated number per field and per assignment
    // (thousands of managers heartbeating pay for that in memory and garbage).
    return Math.floor(this.elapsed);
  }

  /** Run `fn` after `ms`; the returned function cancels it. */
  after(ms: number, fn: () => void): () => void {
    if (this.virtual) {
      const sub: Subscription = this.scheduler.schedule(
        () => {
          this.untrack(sub);
          fn();
        },
        Math.max(0, ms),
      );
      this.pending.push(sub);
      return () => {
        sub.unsubscribe();
        this.untrack(sub);
      };
    }
    // Real time: the timer's own handle is what we keep and clear (two timers per heartbeat of every
    // manager in a process: no wrapper objects around them).
    const from = monotonicNow();
    const armedAt = this.now();
    const armedDate = Date.now();
    const handle = realTimer(() => {
      this.untrack(handle);
      // A timer that fires long before `performance.now()` says it may runs on mocked time: follow
      // the clock the timers follow from now on (the time kept so far is kept).
      if (this.source === monotonicNow && ms >= 100 && monotonicNow() - from < ms / 2)
        this.followWallClock(armedAt + Math.max(ms, Date.now() - armedDate));
      fn();
    }, ms);
    this.pending.push(handle);
    return () => {
      clearTimeout(handle);
      this.untrack(handle);
    };
  }

  /** Forget a timer that fired or was cancelled (order does not matter: swap with the last). */
  private untrack(timer: Subscription | RealTimer): void {
    const list = this.pending;
    const i = list.indexOf(timer);
    if (i < 0) return;
    list[i] = list[list.length - 1];
    list.pop();
  }

  /** Switch to `Date.now()`; `elapsed` is at least what the timers' clock says has passed. */
  private followWallClock(elapsed: number): void {
    this.now(); // account for the time so far on the old source
    this.elapsed = Math.max(this.elapsed, elapsed);
    this.source = Date.now;
    this.lastSource = Date.now();
  }

  /** Cancel every pending timer. */
  dispose(): void {
    for (const timer of this.pending.splice(0))
      if (this.virtual) (timer as Subscription).unsubscribe();
      else clearTimeout(timer as RealTimer);
  }

  get pendingTimers(): number {
    return this.pending.length;
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

/**
 * A one-shot real-time timer, for the schedulers that read the wall clock. RxJS's
 * AsyncScheduler arms each action with `setInterval` and clears the interval once the action ran; under
 * node:test's mock timers such an interval kept firing, so a wake of ours came back tens of thousands
 * of times a (virtual) second. A plain `setTimeout` fires once.
 */
type RealTimer = ReturnType<typeof setTimeout>;
function realTimer(fn: () => void, ms: number): RealTimer {
  return setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS));
}

/** Milliseconds on a clock that never steps (its zero is arbitrary: only differences mean anything). */
function monotonicNow(): number {
  return Math.floor(globalThis.performance.now());
}
