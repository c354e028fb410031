/**
 * Which MSC4140 shape a server speaks, asked of its `/versions`, and asked again when its answers suggest
 * it changed (a restart into a new release shows as connection failures and 5xx, a vanished endpoint as
 * `M_UNRECOGNIZED`, an ignored delay as an event id where a delay id belonged).
 *
 * Discovery is our own request (through matrix-js-sdk's HTTP API, unauthenticated), so that it is
 * bounded and abortable like every other request: calling js-sdk's `getVersions()` would start its own
 * request, which is neither (a hung `/versions` used to keep a manager `joining` for ever and its process
 * alive after `dispose()`). Only the very first answer may come from js-sdk's cache, when the client
 * already holds one: we read the promise it keeps and race it with our signal, starting nothing.
 */
import { httpFacts } from "../errors.js";

/** `/versions` flag of MSC4140 as merged. */
export const MERGED_FEATURE_FLAG = "org.matrix.msc4140.stable";
/** `/versions` flag of the unstable MSC4140 (Synapse's). */
export const UNSTABLE_FEATURE_FLAG = "org.matrix.msc4140";

/** What `/versions` said. */
export interface Dialect {
  /** `org.matrix.msc4140.stable`: the merged endpoints. */
  merged: boolean;
  /** `org.matrix.msc4140`: the unstable shape. */
  unstable: boolean;
}

/** The part of matrix-js-sdk's client discovery needs (a `MatrixClient` fits). */
export interface DialectClient {
  /** matrix-js-sdk's HTTP API; `request` is its unauthenticated request. */
  http?: {
    request?<T>(
      method: string,
      path: string,
      queryParams?: Record<string, string>,
      body?: unknown,
      opts?: { prefix?: string; abortSignal?: AbortSignal },
    ): Promise<T>;
  };
  /** js-sdk's own (cached, not abortable) flag check: used only by clients without the HTTP API. */
  doesServerSupportUnstableFeature?(feature: string): Promise<boolean>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Rejects with the signal's reason when it aborts first (the work itself goes on underneath). */
export function raceAbort<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

export const monotonicNow = (): number => globalThis.performance.now();

/** A discovery started beside another request gives up after this long at most. */
export const BESIDE_TIMEOUT_MS = 10_000;

/** One discovery in flight, shared by everyone who needs an answer now. */
interface SharedDiscovery {
  promise: Promise<Dialect>;
  controller: AbortController;
  /** Callers still waiting for it; it is aborted when the last one gives up. */
  waiters: number;
}

/** The part of a js-sdk `MatrixClient` that holds its own `/versions` answer (protected in js-sdk 43). */
interface VersionsCache {
  serverVersionsPromise?: unknown;
}

const isThenable = (v: unknown): v is Promise<unknown> =>
  typeof v === "object" && v !== null && typeof (v as { then?: unknown }).then === "function";

/**
 * One server's dialect, cached, asked again when stale or old. Callers that need an answer at the same
 * time share one request. The first answer is the client's own when it already holds one: an app's
 * matrix-js-sdk client has asked `/versions` at start (and js-sdk caches it), so the first join does
 * not pay a round trip for it; every later discovery is our own request.
 */
export class DialectDetector {
  /** `at`: when the answer came; `askedAt`: when its request went out (-Infinity for js-sdk's cached one). */
  private known?: Dialect & { at: number; askedAt: number };
  private stale = false;
  /** Counts the times answers suggested a change (js-sdk's cached answer is used only before the first). */
  private staleGeneration = 0;
  private shared?: SharedDiscovery;

  constructor(private readonly client: DialectClient) {}

  /**
   * The dialect; asks `/versions` when nothing is known, the answer is stale, older than `maxAgeMs`, or
   * was asked before `askedSince` (a monotonic time: performance.now()).
   */
  async get(signal?: AbortSignal, maxAgeMs = Infinity, askedSince = -Infinity): Promise<Dialect> {
    const known = this.known;
    if (known && !this.stale && monotonicNow() - known.at <= maxAgeMs && known.askedAt >= askedSince)
      return known;
    return this.await(signal);
  }

  /** The last answer, even a stale one (for requests where the wrong shape costs only an `M_UNRECOGNIZED`). */
  get lastKnown(): Dialect | undefined {
    return this.known;
  }

  /** True when the server's answers suggested a change since the last answer. */
  get isStale(): boolean {
    return this.stale || !this.known;
  }

  /**
   * Stale: start a discovery beside the request about to go out (not awaited), so that a schedule its
   * answer leads to finds a fresh answer. At most one in flight, so at most one per request the
   * manager sends (its budget bounds both); bounded like that request (`signal`: its local timeout; a
   * `/versions` held by a dead network is not left to answer later), by `gate` (the manager's
   * dispose) and BESIDE_TIMEOUT_MS. A failure just leaves the decision stale.
   */
  refreshBeside(signal?: AbortSignal, gate?: AbortSignal): void {
    if (!this.isStale || this.shared || signal?.aborted || gate?.aborted) return;
    const bounds = [
      AbortSignal.timeout(BESIDE_TIMEOUT_MS),
      ...(signal ? [signal] : []),
      ...(gate ? [gate] : []),
    ];
    this.await(AbortSignal.any(bounds)).catch(() => undefined);
  }

  /** The server's answers suggest it changed: the next request asks `/versions` first. */
  markStale(): void {
    this.stale = true;
    this.staleGeneration++;
  }

  /**
   * Note a failed request: no HTTP answer (the server restarting), a 5xx, or an endpoint the server does
   * not know (`M_UNRECOGNIZED`) make the decision stale.
   */
  noteFailure(error: unknown): void {
    const { status, errcode } = httpFacts(error);
    if ((error as { name?: unknown } | null)?.name === "AbortError") return;
    if (status === undefined || status >= 500 || errcode === "M_UNRECOGNIZED" || status === 405)
      this.markStale();
  }

  /**
   * Waits for the shared discovery, or for `signal`. The discovery is bounded by the signal of the
   * caller that started it (callers keep coming while a server hangs, so "until the last one gives up"
   * would never end); a caller whose own signal still runs when that happens starts the next one.
   */
  private await(signal?: AbortSignal): Promise<Dialect> {
    signal?.throwIfAborted();
    const shared = this.shared ?? this.start(signal);
    shared.waiters++;
    return new Promise<Dialect>((resolve, reject) => {
      let waiting = true;
      const done = () => {
        if (!waiting) return false;
        waiting = false;
        signal?.removeEventListener("abort", onAbort);
        shared.waiters--;
        return true;
      };
      const onAbort = () => {
        if (!done()) return;
        // The last one to give up takes the request down with it.
        if (shared.waiters === 0) shared.controller.abort(signal?.reason);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      shared.promise.then(
        (d) => done() && resolve(d),
        (e: unknown) => {
          if (!done()) return;
          if (shared.controller.signal.aborted && !signal?.aborted) this.await(signal).then(resolve, reject);
          else reject(e);
        },
      );
    });
  }

  private start(owner?: AbortSignal): SharedDiscovery {
    const controller = new AbortController();
    const onOwnerAbort = () => controller.abort(owner?.reason);
    owner?.addEventListener("abort", onOwnerAbort, { once: true });
    const shared: SharedDiscovery = {
      controller,
      waiters: 0,
      promise: this.discover(controller.signal).finally(() => {
        owner?.removeEventListener("abort", onOwnerAbort);
        if (this.shared === shared) this.shared = undefined;
      }),
    };
    controller.signal.addEventListener("abort", () => {
      if (this.shared === shared) this.shared = undefined;
    });
    // Nobody may be left waiting (every waiter gave up): the rejection is then nobody's.
    shared.promise.catch(() => undefined);
    this.shared = shared;
    return shared;
  }

  private async discover(signal: AbortSignal): Promise<Dialect> {
    const generation = this.staleGeneration;
    const cached = await this.fromClientCache(signal);
    const askedAt = cached ? -Infinity : monotonicNow();
    const flags = cached ?? (await this.ask(signal));
    this.known = {
      merged: flags[MERGED_FEATURE_FLAG] === true,
      unstable: flags[UNSTABLE_FEATURE_FLAG] === true,
      at: monotonicNow(),
      askedAt,
    };
    // A failure noted while we were asking may postdate this answer: it stays stale then.
    if (generation === this.staleGeneration) this.stale = false;
    return this.known;
  }

  /** js-sdk's own answer (or its request in flight) for the very first discovery; undefined when none. */
  private async fromClientCache(signal: AbortSignal): Promise<Record<string, unknown> | undefined> {
    const cached = (this.client as VersionsCache).serverVersionsPromise;
    if (this.known || this.staleGeneration > 0 || !isThenable(cached)) return undefined;
    const body = await raceAbort(cached, signal).catch((e: unknown) => {
      if (signal.aborted) throw e;
      return undefined; // js-sdk's request failed: ask ourselves
    });
    return isRecord(body) && isRecord(body.unstable_features) ? body.unstable_features : undefined;
  }

  /** Our own bounded `/versions` through js-sdk's HTTP API (or its flag check for clients without one). */
  private async ask(signal: AbortSignal): Promise<Record<string, unknown>> {
    const request = this.client.http?.request?.bind(this.client.http);
    if (request) {
      const body = await request<unknown>("GET", "/_matrix/client/versions", undefined, undefined, {
        prefix: "",
        abortSignal: signal,
      });
      return isRecord(body) && isRecord(body.unstable_features) ? body.unstable_features : {};
    }
    if (!this.client.doesServerSupportUnstableFeature) return {};
    const ask = (f: string) => this.client.doesServerSupportUnstableFeature!(f);
    const [merged, unstable] = await raceAbort(
      Promise.all([ask(MERGED_FEATURE_FLAG), ask(UNSTABLE_FEATURE_FLAG)]),
      signal,
    );
    return { [MERGED_FEATURE_FLAG]: merged, [UNSTABLE_FEATURE_FLAG]: unstable };
  }
}
