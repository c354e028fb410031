/**
 * Timers armed by code an app cannot reach, attributed to a scope so that they can be let go when the
 * scope's owner is done. matrix-js-sdk 43 arms a `setTimeout` for the local timeout of every request
 * (80-110 s for a synced client's `/sync`, 15 s for its keep-alive poke) and never clears it, even after
 * `stopClient()`; a Node process (a bot, `node --test`, a jest worker) then waits up to 110 s after its
 * work is done. A `MatrixRTCSession` that is stopped while its homeserver is gone retries its leave
 * every 200-400 ms for a while, sending requests to a port something else may listen on by then.
 *
 * How the timers are attributed: `setTimeout` / `setInterval` of a global are wrapped (once, when the
 * first scope is made) so that each timer is recorded in the scope its code runs in. A scope is an
 * AsyncLocalStorage context: what `scope.run(fn)` starts, and every promise continuation, timer or
 * event callback that follows from it (matrix-js-sdk's whole sync loop, when `startClient()` runs inside),
 * belongs to the scope. `trackEverything` scopes record every timer of a global instead.
 */
import { AsyncLocalStorage } from "node:async_hooks";

type Timer = ReturnType<typeof setTimeout>;
type TimerFunction = (handler: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => Timer;
type ClearFunction = (timer?: Timer | string | number) => void;
type Timers = {
  setTimeout: TimerFunction;
  setInterval: TimerFunction;
  clearTimeout: ClearFunction;
  clearInterval: ClearFunction;
};

function unref(timer: Timer): void {
  if (typeof timer === "object" && timer !== null && typeof timer.unref === "function") timer.unref();
}

/**
 * The timers armed in one scope. `release()` lets them go (they no longer keep Node running; they still
 * fire if the process lives on); `stop()` stops them (cleared; none armed later ever runs).
 */
export class TimerScope {
  private readonly pending = new Set<Timer>();
  private end: "released" | "stopped" | undefined;

  /** @internal Made by `timerScope()` / `trackEverything()`. */
  constructor(
    private readonly clear: ClearFunction,
    private readonly store?: AsyncLocalStorage<TimerScope>,
  ) {}

  /** Runs `fn` in this scope: every timer it arms, directly or through what it starts, is recorded here. */
  run<T>(fn: () => T): T {
    if (!this.store) throw new Error("TimerScope.run: this scope records every timer already");
    return this.store.run(this, fn);
  }

  /** How many of this scope's timers are still pending. */
  get size(): number {
    return this.pending.size;
  }

  /** "released", "stopped", or undefined while the scope is live. */
  get state(): "released" | "stopped" | undefined {
    return this.end;
  }

  /**
   * Every pending timer of the scope stops holding the process open (`unref`), and so does every timer
   * armed in the scope from now on. Nothing is cancelled: safe when the scope's code may still be needed
   * (a manager fed by the client's events), enough for the process to exit once its work is done.
   */
  release(): void {
    if (this.end) return;
    this.end = "released";
    for (const timer of this.pending) unref(timer);
    this.pending.clear();
  }

  /** Every pending timer of the scope is cleared, and a timer armed in it from now on never runs. */
  stop(): void {
    if (this.end === "stopped") return;
    this.end = "stopped";
    for (const timer of this.pending) this.clear(timer);
    this.pending.clear();
  }

  /** @internal A timer was armed in this scope; false means "never run it". */
  armed(timer: Timer): boolean {
    if (this.end === "stopped") {
      this.clear(timer);
      return false;
    }
    if (this.end === "released") unref(timer);
    else this.pending.add(timer);
    return true;
  }

  /** @internal The timer fired (a timeout) or was cleared. */
  forget(timer: Timer): void {
    this.pending.delete(timer);
  }

  /** @internal For a timer that fires: may its handler run? */
  get live(): boolean {
    return this.end !== "stopped";
  }
}

/** What one wrapped global knows: its original functions, the scopes of its timers. */
interface Registry {
  readonly originals: Timers;
  readonly store: AsyncLocalStorage<TimerScope>;
  /** Scopes that record every timer (jest environments, `trackEverything`). */
  readonly everything: Set<TimerScope>;
  readonly scopesOf: WeakMap<object, TimerScope[]>;
}

const REGISTRY = Symbol.for("matrixrtc-membership.timer-registry");

function registryOf(global: typeof globalThis): Registry {
  const holder = global as unknown as Record<symbol, Registry | undefined>;
  const existing = holder[REGISTRY];
  if (existing) return existing;
  const g = global as unknown as Timers;
  // The wrappers use these through their closures, never through `registry`: jest soft-deletes what a
  // test file left on its global and warns about every later property read (a late clearTimeout).
  const originals: Timers = {
    setTimeout: g.setTimeout,
    setInterval: g.setInterval,
    clearTimeout: g.clearTimeout,
    clearInterval: g.clearInterval,
  };
  const store = new AsyncLocalStorage<TimerScope>();
  const everything = new Set<TimerScope>();
  const scopesOf = new WeakMap<object, TimerScope[]>();
  const registry: Registry = { originals, store, everything, scopesOf };
  const scopesNow = (): TimerScope[] => {
    const inner = store.getStore();
    if (!inner && everything.size === 0) return [];
    return inner ? [inner, ...everything] : [...everything];
  };
  const arm = (original: TimerFunction, once: boolean): TimerFunction => {
    const wrapped = function (
      this: unknown,
      handler: (...args: unknown[]) => void,
      ...rest: unknown[]
    ): Timer {
      const scopes = scopesNow();
      if (scopes.length === 0 || typeof handler !== "function")
        return (original as (...a: unknown[]) => Timer).call(this, handler, ...rest);
      const timer: Timer = (original as (...a: unknown[]) => Timer).call(
        this,
        (...args: unknown[]) => {
          if (once) for (const scope of scopes) scope.forget(timer);
          if (scopes.every((scope) => scope.live)) handler(...args);
        },
        ...rest,
      );
      const tracked = scopes.filter((scope) => scope.armed(timer));
      if (tracked.length > 0) scopesOf.set(timer as object, tracked);
      return timer;
    };
    // Keeps what Node hangs on the originals (util.promisify's custom form of setTimeout).
    for (const key of Reflect.ownKeys(original))
      if (key !== "length" && key !== "name" && key !== "prototype")
        Object.defineProperty(wrapped, key, Object.getOwnPropertyDescriptor(original, key)!);
    return wrapped as TimerFunction;
  };
  const disarm = (original: ClearFunction): ClearFunction =>
    function (this: unknown, timer?: Timer | string | number) {
      if (typeof timer === "object" && timer !== null) {
        for (const scope of scopesOf.get(timer) ?? []) scope.forget(timer);
        scopesOf.delete(timer);
      }
      original.call(this, timer);
    };
  g.setTimeout = arm(g.setTimeout, true);
  g.setInterval = arm(g.setInterval, false);
  g.clearTimeout = disarm(g.clearTimeout);
  g.clearInterval = disarm(g.clearInterval);
  holder[REGISTRY] = registry;
  return registry;
}

/** Clears either kind: Node's clearTimeout and clearInterval accept each other's timers. */
function clearer(registry: Registry): ClearFunction {
  const clear = registry.originals.clearTimeout;
  return (timer) => clear(timer);
}

/**
 * A new scope for timers of this process (its `globalThis`): `scope.run(fn)` records every timer `fn`
 * arms, and every timer armed by what follows from it; `release()` or `stop()` when done.
 */
export function timerScope(global: typeof globalThis = globalThis): TimerScope {
  const registry = registryOf(global);
  return new TimerScope(clearer(registry), registry.store);
}

/**
 * A scope that records every timer armed on `global` from now on (a test file's whole run); `release()`
 * or `stop()` it at the end. What a test runner's environment uses.
 */
export function trackEverything(global: typeof globalThis = globalThis): TimerScope {
  const registry = registryOf(global);
  const scope = new TimerScope(clearer(registry));
  registry.everything.add(scope);
  return scope;
}
