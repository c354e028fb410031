/**
 * Leave when a Node process is told to stop: an opt-in helper for apps and bots (issue 22 part 1). A
 * browser page leaves by itself on `pagehide` (the manager's `leaveOnPageHide`); a process has signals.
 *
 * Nothing here touches Node at module load: `process` is looked up (`globalThis.process`) when the
 * helper is called, so the main entry stays loadable in a browser, where the helper does nothing.
 */
import type { Observable, Subscription } from "rxjs";
import { MAX_TIMER_MS } from "../core/limits.js";
import { MembershipConfigError } from "../errors.js";

/** What the helper needs of a manager (a `MembershipManager` fits). */
export interface ExitingManager {
  /** Leave the call within `timeoutMs`. */
  leave(options?: { timeoutMs?: number }): Promise<unknown>;
  /** Stop every timer. */
  dispose(): void;
  /** True once disposed. */
  readonly disposed: boolean;
  /** Completes when the manager is disposed (the helper then forgets it). */
  readonly state$: Observable<unknown>;
}

/** The part of Node's `process` the helper uses (tests pass a double). */
export interface ExitProcess {
  /** This process's id (to raise a signal again). */
  readonly pid: number;
  /** Adds a listener. */
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  /** Removes it. */
  removeListener(event: string, listener: (...args: unknown[]) => void): unknown;
  /** How many listeners an event has. */
  listenerCount(event: string): number;
  /** Sends a signal. */
  kill(pid: number, signal: string): unknown;
}

/** Options of `leaveOnExit`. */
export interface LeaveOnExitOptions {
  /** How long the leave may take before the process goes on exiting, in ms. Default 2000. */
  timeoutMs?: number;
  /** The signals to leave on. Default `["SIGINT", "SIGTERM"]` (Ctrl-C; a service manager's stop). */
  signals?: string[];
  /** Also leave on `beforeExit` (the event loop ran out of work). Default true. */
  beforeExit?: boolean;
  /** The process to watch. Default `globalThis.process` (none in a browser: nothing happens). */
  process?: ExitProcess;
}

const DEFAULT_TIMEOUT_MS = 2000;

function nodeProcess(): ExitProcess | undefined {
  const p = (globalThis as { process?: Partial<ExitProcess> }).process;
  return typeof p?.on === "function" &&
    typeof p.removeListener === "function" &&
    typeof p.listenerCount === "function" &&
    typeof p.kill === "function" &&
    typeof p.pid === "number"
    ? (p as ExitProcess)
    : undefined;
}

/**
 * Leave the call when the process is told to stop, then let it stop as Node would have.
 *
 * - **SIGINT, SIGTERM** (or `signals`): every manager leaves at once (`leave({ timeoutMs })`, all
 *   together) and is disposed; then the helper removes its listeners and raises the same signal again,
 *   so the process ends as it would have without the helper: killed by that signal (exit status 128 +
 *   the signal's number, 130 for SIGINT and 143 for SIGTERM). If the app has its own listener for that
 *   signal, Node would not have exited, and the helper does not raise it either: the app decides. A
 *   second signal while leaving is raised again at once (Ctrl-C twice: out now).
 * - **beforeExit** (the event loop ran out of work, so the process is about to end with its exit code):
 *   the same leave and dispose, once; then Node exits as it was going to. A joined manager's heartbeat
 *   keeps the loop busy, so this only catches managers whose timers have already stopped.
 * - **Bounded**: after `timeoutMs` (default 2000) the process goes on exiting whatever the server said
 *   (the delayed leave still fires at its time).
 * - **Keeps nothing alive**: its listeners do not hold the event loop; its one timer runs only while
 *   leaving. Its listeners go once every manager is disposed, or when the returned function is called.
 *
 * `process.exit()` and the `exit` event cannot wait for a request: a program that calls
 * `process.exit()` itself should `await manager.leave()` first. In a browser (no `process`) this does
 * nothing. Returns a function that removes the listeners.
 */
export function leaveOnExit(
  managers: ExitingManager | readonly ExitingManager[],
  options: LeaveOnExitOptions = {},
): () => void {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (typeof timeoutMs !== "number" || !(timeoutMs >= 0) || timeoutMs > MAX_TIMER_MS)
    throw new MembershipConfigError(
      `leaveOnExit timeoutMs must be between 0 and ${MAX_TIMER_MS} ms; got ${String(timeoutMs)}`,
    );
  const proc = options.process ?? nodeProcess();
  const live = new Set((Array.isArray(managers) ? managers : [managers]) as ExitingManager[]);
  for (const m of live) if (m.disposed) live.delete(m);
  if (!proc || live.size === 0) return () => {};

  const signals = options.signals ?? ["SIGINT", "SIGTERM"];
  const listening: [string, (...args: unknown[]) => void][] = [];
  const subscriptions: Subscription[] = [];
  let leaving: Promise<void> | undefined;
  let removed = false;

  const remove = () => {
    if (removed) return;
    removed = true;
    for (const [event, listener] of listening) proc.removeListener(event, listener);
    for (const sub of subscriptions) sub.unsubscribe();
  };

  const leaveAll = (): Promise<void> =>
    (leaving ??= (async () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      const leaves = [...live].map((m) => m.leave({ timeoutMs }).catch(() => undefined));
      await Promise.race([Promise.all(leaves), bound]);
      clearTimeout(timer);
      for (const m of [...live]) m.dispose();
      remove();
    })());

  /** What Node would have done with the signal had we not listened: end the process, unless the app listens. */
  let raised = false;
  const raiseAgain = (signal: string) => {
    remove();
    if (raised || proc.listenerCount(signal) > 0) return;
    raised = true;
    proc.kill(proc.pid, signal);
  };

  for (const signal of signals) {
    const onSignal = () => {
      if (leaving) return raiseAgain(signal);
      void leaveAll().then(() => raiseAgain(signal));
    };
    listening.push([signal, onSignal]);
  }
  if (options.beforeExit ?? true) listening.push(["beforeExit", () => void leaveAll()]);

  // Forget a manager once it is disposed (its state$ completes); no managers left, no listeners.
  for (const m of [...live])
    subscriptions.push(
      m.state$.subscribe({
        complete: () => {
          live.delete(m);
          if (live.size === 0 && !leaving) remove();
        },
      }),
    );
  if (!removed) for (const [event, listener] of listening) proc.on(event, listener);
  return remove;
}
