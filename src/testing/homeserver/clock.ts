import type { Clock } from "./options.js";

/** Wall-clock time and Node timers. */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface ManualClock extends Clock {
  /** Moves time forward, running every timer that falls due on the way, in due order. */
  advance(ms: number): void;
  /** Sets the absolute time (must not go backwards) and runs due timers. */
  set(nowMs: number): void;
}

/**
 * A clock that only moves when the test says so, for firing-order and rate-limit tests that would
 * otherwise need real waits. HTTP keeps running on real time; only the server's notion of "now" is fake.
 * It starts at the wall-clock time by default, because clients judge membership expiry
 * (`origin_server_ts + expires`) against their own real clock.
 */
export function createManualClock(startMs = Date.now()): ManualClock {
  let now = startMs;
  let nextId = 1;
  const timers = new Map<number, { due: number; fn: () => void }>();

  const runDue = (): void => {
    for (;;) {
      let first: [number, { due: number; fn: () => void }] | undefined;
      for (const entry of timers) {
        if (entry[1].due <= now && (!first || entry[1].due < first[1].due)) first = entry;
      }
      if (!first) return;
      timers.delete(first[0]);
      first[1].fn();
    }
  };

  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = nextId++;
      timers.set(id, { due: now + Math.max(0, ms), fn });
      return id;
    },
    clearTimeout(handle) {
      timers.delete(handle as number);
    },
    advance(ms) {
      this.set(now + ms);
    },
    set(nowMs) {
      if (nowMs < now) throw new Error("ManualClock cannot go backwards");
      now = nowMs;
      runDue();
    },
  };
}
