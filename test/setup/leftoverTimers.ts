/**
 * Runs before every test file (jest `setupFilesAfterEnv`): once the file's tests are over, timers still
 * pending stop holding the worker process open.
 *
 * Without it, every run ended with "A worker process has failed to exit gracefully". The timers left
 * were matrix-js-sdk's, all of them (found by recording every pending timer's stack after each file):
 * - every request arms a `setTimeout` for its local timeout (`timeoutSignal` in http-api/utils) that is
 *   never cleared, even after `stopClient()`: 80-110 s for a synced client's sync requests, 15 s for the
 *   keep-alive poke;
 * - a `MatrixRTCSession` whose homeserver closed before it could leave keeps retrying its heartbeat
 *   every 200-400 ms, forever.
 * Our own code's timers are asserted on in the tests (`pendingTimers === 0` after `dispose()`).
 *
 * Unref'ing changes nothing while the file runs (jest's IPC channel keeps the worker alive until jest
 * lets it go); a leftover timer only loses its power to keep a finished worker running.
 */
import { afterAll } from "@jest/globals";

type Timer = ReturnType<typeof setTimeout>;

const pending = new Set<Timer>();
let fileDone = false;

function unref(timer: Timer): void {
  if (typeof timer === "object" && typeof timer.unref === "function") timer.unref();
}

function track<F extends typeof setTimeout | typeof setInterval>(original: F, once: boolean): F {
  const wrapped = (handler: unknown, ...rest: unknown[]): Timer => {
    // Typed loosely: timers are called with a function in every caller we load.
    const fn = handler as (...args: unknown[]) => void;
    const timer: Timer = (original as (...a: unknown[]) => Timer)(
      (...args: unknown[]) => {
        if (once) pending.delete(timer);
        fn(...args);
      },
      ...rest,
    );
    if (fileDone) unref(timer);
    else pending.add(timer);
    return timer;
  };
  return Object.assign(wrapped, original) as unknown as F;
}

const originalClearTimeout = globalThis.clearTimeout;
const originalClearInterval = globalThis.clearInterval;
globalThis.setTimeout = track(globalThis.setTimeout, true);
globalThis.setInterval = track(globalThis.setInterval, false);
globalThis.clearTimeout = ((timer?: Timer) => {
  if (timer !== undefined) pending.delete(timer);
  originalClearTimeout(timer);
}) as typeof clearTimeout;
globalThis.clearInterval = ((timer?: Timer) => {
  if (timer !== undefined) pending.delete(timer);
  originalClearInterval(timer);
}) as typeof clearInterval;

afterAll(() => {
  fileDone = true;
  for (const timer of pending) unref(timer);
  pending.clear();
});
