/**
 * Which MSC4140 shape a server speaks, asked of its `/versions`, and asked again when its answers suggest
 * it changed (a restart into a new release shows as connection failures and 5xx, a vanished endpoint as
 * `M_UNRECOGNIZED`, an ignored delay as an event id where a delay id belonged).
 *
 * The discovery request is our own (through matrix-js-sdk's HTTP API, unauthenticated), so that it is
 * bounded and abortable like every other request: js-sdk's cached `getVersions()` is neither, and a hung
 * `/versions` used to keep a manager `joining` for ever and its process alive after `dispose()`.
 */
import { httpFacts } from "../errors.js";

/** `/versions` flag of MSC4140 as merged. */
export const MERGED_FEATURE_FLAG = "org.matrix.msc4140.stable";
/** `/versions` flag of the unstable MSC4140 (Synapse's). */
export const UNSTABLE_FEATURE_FLAG = "org.matrix.msc4140";

/**
 * Before scheduling in the unstable shape (a state `PUT` with a query parameter, which a server that
 * ignores the parameter turns into an ordinary write of `{}` over our membership), the decision is
 * asked again when older than this.
 */
export const DIALECT_MAX_AGE_MS = 60_000;

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

const monotonicNow = (): number => globalThis.performance.now();

/** One server's dialect, cached, asked again when stale or old. */
export class DialectDetector {
  private known?: Dialect & { at: number };
  private stale = false;

  constructor(private readonly client: DialectClient) {}

  /** The dialect; asks `/versions` when nothing is known, the answer is stale, or older than `maxAgeMs`. */
  async get(signal?: AbortSignal, maxAgeMs = Infinity): Promise<Dialect> {
    const known = this.known;
    if (known && !this.stale && monotonicNow() - known.at <= maxAgeMs) return known;
    return this.discover(signal);
  }

  /** The server's answers suggest it changed: the next request asks `/versions` first. */
  markStale(): void {
    this.stale = true;
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

  private async discover(signal?: AbortSignal): Promise<Dialect> {
    signal?.throwIfAborted();
    let flags: Record<string, unknown> = {};
    const request = this.client.http?.request?.bind(this.client.http);
    if (request) {
      const body = await request<unknown>("GET", "/_matrix/client/versions", undefined, undefined, {
        prefix: "",
        abortSignal: signal,
      });
      if (isRecord(body) && isRecord(body.unstable_features)) flags = body.unstable_features;
    } else if (this.client.doesServerSupportUnstableFeature) {
      const ask = (f: string) => this.client.doesServerSupportUnstableFeature!(f);
      const [merged, unstable] = await raceAbort(
        Promise.all([ask(MERGED_FEATURE_FLAG), ask(UNSTABLE_FEATURE_FLAG)]),
        signal,
      );
      flags = { [MERGED_FEATURE_FLAG]: merged, [UNSTABLE_FEATURE_FLAG]: unstable };
    }
    this.known = {
      merged: flags[MERGED_FEATURE_FLAG] === true,
      unstable: flags[UNSTABLE_FEATURE_FLAG] === true,
      at: monotonicNow(),
    };
    this.stale = false;
    return this.known;
  }
}
