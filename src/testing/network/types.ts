// Public types of the client-side network fault kit. Kept apart from the implementation so a reader
// can see the whole contract of a FaultyLink in one screen.

/** What became of one request that passed through a FaultyLink. */
export type RequestFate =
  /** Still on its way: being received, delayed by latency, or waiting for the target's answer. */
  | "pending"
  /** Stopped by a cut (request not yet forwarded, or answer not yet delivered); waits for `restore()`. */
  | "held"
  /** The target's answer reached the client. */
  | "ok"
  /** Held during a cut, then dropped by `restore()`: the client's connection was reset. */
  | "dropped"
  /** The target answered, but `loseResponses()` destroyed the client's connection instead. */
  | "lost-response"
  /** Killed by `reset()`. */
  | "reset"
  /** The client closed its connection before the answer could be delivered. */
  | "aborted"
  /** The target could not be reached or broke the connection; the client's connection was reset. */
  | "error"
  /** Killed by `close()`. */
  | "closed";

/** One request as the link saw it. Never holds headers, bodies or query strings (access tokens live there). */
export interface LinkLogEntry {
  /** `Date.now()` when the request arrived at the link. */
  readonly ts: number;
  /** The HTTP method. */
  readonly method: string;
  /** The request path without its query string. */
  readonly path: string;
  /** What became of it (so far). */
  readonly fate: RequestFate;
  /** True if a cut held this request or its answer at some point. */
  readonly wasHeld: boolean;
  /** The status the target answered with, if it answered: the target processed the request. */
  readonly upstreamStatus?: number;
}

/** Counters since the link started. */
export interface LinkStats {
  /** Requests forwarded to the target. */
  readonly forwarded: number;
  /** Requests that a cut held (before forwarding or before delivering the answer); counted once each. */
  readonly held: number;
  /** Held requests dropped by `restore()` (the default `held: "drop"`). */
  readonly dropped: number;
  /** Answers thrown away by `loseResponses()`. */
  readonly lostResponses: number;
  /** Client connections destroyed by `reset()`. */
  readonly resets: number;
}

/** Options of `startFaultyLink`. */
export interface FaultyLinkOptions {
  /** Where to forward, e.g. `"http://127.0.0.1:8008"`. Plain http only; a path prefix is kept. */
  target: string;
  /** Port to listen on (127.0.0.1). Default 0: any free port. */
  port?: number;
  /** Source of randomness for jitter, returning [0, 1). Default `Math.random`; inject one for replayable runs. */
  random?: () => number;
}

/** Options of `FaultyLink.restore()`. */
export interface RestoreOptions {
  /**
   * What happens to requests a cut held:
   * - `"drop"` (default): their client connections are reset and the target never sees requests that had not
   *   been forwarded yet, as after a long outage;
   * - `"deliver"`: forward them now (and deliver held answers), like TCP retransmission succeeding late.
   *   A held request is forwarded even if its client already gave up: its bytes were already on the wire.
   */
  held?: "drop" | "deliver";
}

/**
 * A TCP proxy on 127.0.0.1 between one client and its homeserver that can lose the network on demand
 * (cut, reset, latency, lost answers), so a real client's `fetch` meets real faults.
 */
export interface FaultyLink {
  /** `"http://127.0.0.1:PORT"`: use it as the client's baseUrl. */
  readonly url: string;
  /**
   * The network is gone. Nothing reaches the client any more: requests not yet forwarded are held, answers
   * arriving from the target are held, and new connections are accepted but get no answer. Nothing is
   * reset; the client only sees silence (its own timeouts decide what happens).
   */
  cut(): void;
  /** The network is back. See {@link RestoreOptions} for what happens to what the cut held. */
  restore(opts?: RestoreOptions): void;
  /**
   * Destroy every open client connection now with a TCP RST (the client sees ECONNRESET), abort their
   * requests still at the target, and drop everything held. New connections work (a cut stays a cut).
   */
  reset(): void;
  /**
   * Added delay per request, sampled when the request arrives: `ms + U[0, jitterMs]`, half applied before
   * forwarding the request and half before delivering the answer. So a request takes at least `ms` longer
   * round trip, and the target sees it about `ms / 2` after the client sent it. `setLatency(0)` turns it off.
   */
  setLatency(ms: number, jitterMs?: number): void;
  /**
   * The target receives and processes the request, but the answer never arrives: the client connection is
   * reset instead of delivering it. Applies to the next `count` answers about to be delivered (default 1),
   * or to all of them until `deliverResponses()`. Calls add up; `"all"` wins.
   */
  loseResponses(count?: number | "all"): void;
  /** Stop losing answers (cancels any remaining count). */
  deliverResponses(): void;
  /** True between `cut()` and `restore()`. */
  readonly isCut: boolean;
  /** Requests (or their answers) a cut is holding right now. */
  readonly heldNow: number;
  /** Counters since the link started. */
  readonly stats: LinkStats;
  /** The most recent requests (up to 1,000), oldest first. */
  readonly log: readonly LinkLogEntry[];
  /** Close the listener, destroy every connection, clear every timer. Idempotent. */
  close(): Promise<void>;
}
