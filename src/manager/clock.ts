import type { SchedulerLike, Subscription } from "rxjs";

/**
 * Every timer the manager sets (its one wake timer, each request's local timeout, a leave's timeout)
 * goes through one RxJS scheduler, so tests can run a call of hours on virtual time, and `dispose()` can
 * cancel every pending timer at once.
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

  /** Cancel every pending timer. */
  dispose(): void {
    for (const sub of this.pending) sub.unsubscribe();
    this.pending.clear();
  }

  get pendingTimers(): number {
    return this.pending.size;
  }
}
