import { VirtualAction, VirtualTimeScheduler } from "rxjs";

/** Let every pending promise callback run (setImmediate fires after the microtask queue drains). */
export async function settle(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

/**
 * Drives RxJS's VirtualTimeScheduler one due time at a time and lets promises settle in between,
 * so async code that waits on the scheduler runs exactly as it would on real time.
 */
export class VirtualTime {
  readonly scheduler = new VirtualTimeScheduler(VirtualAction, Infinity);

  now(): number {
    return this.scheduler.now();
  }

  async advance(ms: number): Promise<void> {
    const target = this.scheduler.frame + ms;
    await settle();
    for (;;) {
      const next = this.scheduler.actions.find((a) => !a.closed);
      if (!next || next.delay > target) break;
      this.scheduler.maxFrames = next.delay;
      this.scheduler.flush();
      await settle();
    }
    this.scheduler.frame = Math.max(this.scheduler.frame, target);
    await settle();
  }

  /** Advance in steps until `predicate` holds; returns the virtual time it took. */
  async until(predicate: () => boolean, limitMs = 600_000, stepMs = 10): Promise<number> {
    const start = this.now();
    while (!predicate()) {
      if (this.now() - start > limitMs) throw new Error(`condition not met within ${limitMs} virtual ms`);
      await this.advance(stepMs);
    }
    return this.now() - start;
  }
}
