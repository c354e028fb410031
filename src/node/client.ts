/**
 * Starting and stopping a matrix-js-sdk client so that a Node process exits once its work is done.
 * `startClient(client)` runs `client.startClient()` in the client's own timer scope (timers.ts), so every
 * timer its sync loop arms is known; `stopClient(client)` stops the client and lets those timers go.
 * Typed by the few members used, so this module loads no matrix-js-sdk.
 */
import { timerScope, type TimerScope } from "./timers.js";

/** The part of matrix-js-sdk's `MatrixClient` that `startClient` / `stopClient` use. */
export interface StartableClient {
  /** matrix-js-sdk's `startClient(opts)`: starts the sync loop. */
  startClient(opts?: object): Promise<void>;
  /** matrix-js-sdk's `stopClient()`. */
  stopClient(): void;
  /** matrix-js-sdk's MatrixRTC session manager, stopped with the client. */
  readonly matrixRTC?: {
    /** Stops every MatrixRTC session of the client. */
    stop(): void;
  };
}

const scopes = new WeakMap<object, TimerScope>();

/**
 * The timer scope of `client` (made on first use). Run anything that starts work of the client in it
 * (`clientTimers(client).run(() => client.matrixRTC.start())`) to have its timers let go with the client's.
 */
export function clientTimers(client: object): TimerScope {
  let scope = scopes.get(client);
  if (!scope) {
    scope = timerScope();
    scopes.set(client, scope);
  }
  return scope;
}

/**
 * `client.startClient(opts)`, run in the client's timer scope: every timer its sync loop arms from now on
 * is recorded, so that `stopClient(client)` can let go of what matrix-js-sdk leaves armed.
 */
export function startClient(client: StartableClient, opts?: object): Promise<void> {
  const scope = clientTimers(client);
  if (scope.state) throw new Error("startClient: this client was stopped; make a new one");
  return scope.run(() => client.startClient(opts));
}

/**
 * Stops `client` (its MatrixRTC sessions, then its sync loop) and releases every timer its scope armed:
 * matrix-js-sdk's request timeouts (up to 110 s after `stopClient()`) and retries no longer keep the
 * process running. Nothing is cancelled, so a manager still fed by the client keeps working; the
 * process simply no longer waits for them. Idempotent; safe on a client that never started.
 */
export function stopClient(client: StartableClient): void {
  try {
    client.matrixRTC?.stop();
  } catch {
    // never started
  }
  client.stopClient();
  clientTimers(client).release();
}
