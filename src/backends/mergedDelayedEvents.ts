/**
 * MSC4140 as merged, spoken through matrix-js-sdk's HTTP API (`client.http.authedRequest`), beside the
 * unstable shape matrix-js-sdk 43 speaks. Decides per server which one to use (the `/versions` flag
 * `org.matrix.msc4140.stable`), schedules through the dedicated endpoint with a transaction id,
 * manages through `v1`, and reads one delayed event (`GET …/delayed_events/{delay_id}`) into a typed
 * status. Field sources: docs/compatibility.md, "MSC4140 as merged".
 */
import { delayIdForPath, isDelayId, readDelayId } from "../core/validate.js";
import { DelayedEventsUnsupportedError, DelayIgnoredError, httpFacts } from "../errors.js";
import { DialectDetector, MERGED_FEATURE_FLAG, monotonicNow } from "./dialect.js";
import type {
  DelayedEventAction,
  DelayedEventStatus,
  PendingDelayedEvent,
  StateEventRequest,
} from "./types.js";

/** Which delayed-event HTTP shape to speak; `auto` (default) asks the server once. */
export type DelayedEventsApiChoice = "auto" | "merged" | "unstable";

/** The request options we pass to matrix-js-sdk's `authedRequest` (part of its `IRequestOpts`). */
export interface AuthedRequestOptions {
  /** The path prefix, e.g. `/_matrix/client/v1`. */
  prefix?: string;
  /** Aborts the request. */
  abortSignal?: AbortSignal;
  /** Let the request outlive the page (fetch `keepalive`). */
  keepAlive?: boolean;
}

/**
 * The part of matrix-js-sdk's `MatrixClient` the merged shape needs; a `MatrixClient` fits it. Typed here
 * (not picked from `MatrixClient`) so that neither our declarations nor our run-time code need
 * matrix-js-sdk: the main entry must load without it.
 */
export interface MergedClientLike {
  /** matrix-js-sdk's HTTP API: an authenticated request to any endpoint. */
  http: {
    /** `method` is one of GET, PUT, POST (js-sdk's `Method` enum has those string values). */
    authedRequest<T>(
      method: string,
      path: string,
      queryParams?: Record<string, string>,
      body?: unknown,
      opts?: AuthedRequestOptions,
    ): Promise<T>;
    /** js-sdk's unauthenticated request (for `/versions`). */
    request?<T>(
      method: string,
      path: string,
      queryParams?: Record<string, string>,
      body?: unknown,
      opts?: AuthedRequestOptions,
    ): Promise<T>;
  };
  /** A fresh transaction id. */
  makeTxnId(): string;
  /** Whether `/versions` lists an unstable feature flag. */
  doesServerSupportUnstableFeature(feature: string): Promise<boolean>;
}

/** HTTP methods as js-sdk's `Method` enum spells them (its values are these strings). */
const Method = { Get: "GET", Put: "PUT", Post: "POST" } as const;

export { MERGED_FEATURE_FLAG };
const V1 = "/_matrix/client/v1";
const V3 = "/_matrix/client/v3";
const UNSTABLE = "/_matrix/client/unstable/org.matrix.msc4140";
/** Lost schedules remembered for replay; more than a handful means something else is wrong. */
const MAX_LOST = 16;

const enc = encodeURIComponent;

/** Aborted when either is (discovery gives up with the request or when it may no longer start). */
function both(a: AbortSignal | undefined, b: AbortSignal | undefined): AbortSignal | undefined {
  return a && b ? AbortSignal.any([a, b]) : (a ?? b);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/**
 * One lookup answer as a status. Accepts every layout seen so far: the MSC text (flat `scheduled_at`,
 * `finalised_ts`, `event_id`, `error`), a nested `finalised` object with `delayed_since_ts` (issue 14's
 * reading; Synapse ≥1.161 names the pending fields so), and the older `delay` / `running_since`.
 * `tracksFinalised`: whether a 404 from this server can also mean "finalised and forgotten".
 */
export function parseDelayedEventLookup(body: unknown): DelayedEventStatus {
  if (!isRecord(body)) throw new TypeError("delayed event lookup: answer is not a JSON object");
  const delayMs = num(body.delay_ms) ?? num(body.delay);
  const delayedSinceTs = num(body.scheduled_at) ?? num(body.delayed_since_ts) ?? num(body.running_since);
  const nested = isRecord(body.finalised) ? body.finalised : undefined;
  const fin = nested ?? body;
  const finalisedTs = num(fin.finalised_ts) ?? (nested ? (num(nested.ts) ?? 0) : undefined);
  if (finalisedTs === undefined) {
    if (delayMs === undefined || delayedSinceTs === undefined)
      throw new TypeError("delayed event lookup: pending answer without delay_ms and its start time");
    return { status: "pending", delayMs, delayedSinceTs };
  }
  if (typeof fin.event_id === "string") {
    // The MSC: sent before its due time means someone used the `send` action.
    const due = delayMs !== undefined && delayedSinceTs !== undefined ? delayedSinceTs + delayMs : undefined;
    return {
      status: "finalised",
      outcome: "sent",
      eventId: fin.event_id,
      finalisedTs,
      ...(due !== undefined ? { manual: finalisedTs < due } : {}),
    };
  }
  if (isRecord(fin.error)) {
    const { errcode, error } = fin.error;
    return {
      status: "finalised",
      outcome: "error",
      finalisedTs,
      error: {
        ...(typeof errcode === "string" ? { errcode } : {}),
        ...(typeof error === "string" ? { error } : {}),
      },
    };
  }
  return { status: "finalised", outcome: "cancelled", finalisedTs };
}

/** True for a MatrixClient (or a double) that has what the merged requests need. */
export function speaksHttp(client: Partial<MergedClientLike>): client is MergedClientLike {
  return (
    typeof client.http?.authedRequest === "function" &&
    typeof client.makeTxnId === "function" &&
    typeof client.doesServerSupportUnstableFeature === "function"
  );
}

interface LostSchedule {
  path: string;
  body: Record<string, unknown>;
  roomId: string;
  stateKey?: string;
  delayMs: number;
  /** Learnt by a replay; the entry is then listed until it is cancelled or sent, or its delay passed. */
  delayId?: string;
  knownAt?: number;
}

/** Per server (one per backend): which shape to speak, and the requests of both shapes. */
export class DelayedEventsHttp {
  private readonly dialect: DialectDetector;
  /** The server advertises the merged shape, but its endpoints answered `M_UNRECOGNIZED` (404/405). */
  private mergedBroken = false;
  /** The unstable management endpoint answered `M_UNRECOGNIZED` with the action in the path. */
  private actionInBody = false;
  /** When the last restart / send / cancel went out (monotonic). */
  private lastUpdateAt = -Infinity;
  /** Schedules whose answer never arrived (network, abort, local timeout), by transaction path. */
  private readonly lost = new Map<string, LostSchedule>();

  public constructor(
    private readonly client: Partial<MergedClientLike>,
    private readonly choice: DelayedEventsApiChoice = "auto",
  ) {
    this.dialect = new DialectDetector(client);
  }

  /** The client, for a merged request: only reached once the client was found to have js-sdk's HTTP API. */
  private speaking(): MergedClientLike {
    if (!speaksHttp(this.client))
      throw new TypeError(
        "the merged MSC4140 shape needs matrix-js-sdk's HTTP API (client.http.authedRequest)",
      );
    return this.client;
  }

  /**
   * True when the merged endpoints are to be used: the server advertises them (its `/versions`, asked
   * with our own bounded request, cached, asked again once its answers suggest it changed), unless they
   * answered `M_UNRECOGNIZED` and the server also speaks the unstable shape. A failed `/versions` is not
   * remembered, so the next request asks again.
   */
  public async useMerged(signal?: AbortSignal): Promise<boolean> {
    if (this.choice !== "auto") return this.choice === "merged";
    // A client double without js-sdk's HTTP API can only speak through the unstable methods.
    if (!speaksHttp(this.client)) return false;
    return this.speaksMerged(await this.dialect.get(signal));
  }

  /**
   * `useMerged` for a request where the wrong shape is harmless: the last answer even when stale (a
   * fresh one is asked beside it), waiting only when nothing is known yet.
   */
  private async useMergedNow(signal?: AbortSignal, gate?: AbortSignal): Promise<boolean> {
    if (this.choice !== "auto") return this.choice === "merged";
    if (!speaksHttp(this.client)) return false;
    const last = this.dialect.lastKnown;
    if (!last) return this.useMerged(both(signal, gate));
    this.dialect.refreshBeside(signal, gate);
    return this.speaksMerged(last);
  }

  /** The merged shape for this answer, unless its endpoints proved missing where the unstable one is advertised. */
  private speaksMerged(d: { merged: boolean; unstable: boolean }): boolean {
    return d.merged && !(this.mergedBroken && d.unstable);
  }

  /** What `/versions` says now (bounded, abortable; asked again when stale). */
  public serverDialect(signal?: AbortSignal) {
    return this.dialect.get(signal);
  }

  /** A failed request may mean the server changed: the next one asks `/versions` first. */
  private noteFailure(e: unknown, merged: boolean): void {
    if (this.choice !== "auto") return;
    this.dialect.noteFailure(e);
    const { status, errcode } = httpFacts(e);
    // The merged endpoints are advertised but missing: speak the unstable shape where it is advertised.
    if (merged && (status === 405 || (status === 404 && errcode === "M_UNRECOGNIZED")))
      this.mergedBroken = true;
  }

  /**
   * Schedule in whichever shape the server speaks. `gate` aborts when the request may no longer be
   * started (the manager was disposed meanwhile): checked just before anything is sent.
   */
  public async scheduleAny(
    req: Omit<StateEventRequest, "stateKey"> & { stateKey?: string; delayMs: number },
    signal?: AbortSignal,
    gate?: AbortSignal,
    verify = false,
  ): Promise<string> {
    const merged = await this.useMerged(both(signal, gate));
    try {
      return merged
        ? await this.schedule(req, signal, gate)
        : await this.scheduleUnstable(req, signal, gate, verify ? this.lastUpdateAt : -Infinity);
    } catch (e) {
      // The endpoint is gone (the server changed dialect under us, nothing was written): ask again and,
      // where the other shape is now the one, switch at once.
      if (!(await this.switched(e, merged, signal))) throw e;
      // `switched` has just asked /versions.
      return merged ? this.scheduleUnstable(req, signal, gate, -Infinity) : this.schedule(req, signal, gate);
    }
  }

  /** After `M_UNRECOGNIZED` (404/405) from one shape: is the other shape the one to speak now? */
  private async switched(e: unknown, merged: boolean, signal?: AbortSignal): Promise<boolean> {
    if (this.choice !== "auto" || !speaksHttp(this.client)) return false;
    const { status, errcode } = httpFacts(e);
    if (!(status === 405 || (status === 404 && errcode === "M_UNRECOGNIZED"))) return false;
    const d = await this.dialect.get(signal, 0);
    return merged ? d.unstable : d.merged && !this.mergedBroken;
  }

  /**
   * restart / send / cancel in whichever shape the server speaks (see `scheduleAny` for `gate`;
   * `keepAlive`: the request must outlive the page).
   */
  public async updateAny(
    delayId: string,
    action: DelayedEventAction,
    signal?: AbortSignal,
    gate?: AbortSignal,
    keepAlive?: boolean,
  ): Promise<void> {
    // Where the answers suggest the server changed, ask /versions beside this request rather than
    // before it: a wrong shape here costs an M_UNRECOGNIZED and a switch (nothing is written), and a
    // schedule this request's answer leads to (a restart that 404s after a cut) finds the fresh answer.
    this.lastUpdateAt = monotonicNow();
    const merged = await this.useMergedNow(signal, gate);
    try {
      return merged
        ? await this.update(delayId, action, signal, gate, keepAlive)
        : await this.updateUnstable(delayId, action, signal, gate, keepAlive);
    } catch (e) {
      if (!(await this.switched(e, merged, signal))) throw e;
      return merged
        ? this.updateUnstable(delayId, action, signal, gate, keepAlive)
        : this.update(delayId, action, signal, gate, keepAlive);
    }
  }

  /**
   * The unstable shape: `PUT …/state/{type}/{key}?org.matrix.msc4140.delay=…`. A server that ignores the
   * parameter writes the content (`{}`, over our membership) at once, so the shape is used only where
   * `/versions` advertises it: asked again when the server's answers suggest it changed, and, where we
   * hold a membership it could overwrite, unless the answer was asked after `askedSince` (the last
   * management request: a restart whose 404 leads here was answered by the server as it is now, and
   * so must the dialect be; after a cut that answer was asked beside the restart, costing no round
   * trip). An answer that proves the delay was ignored (an event id, no delay id) is never retried as
   * it was.
   */
  public async scheduleUnstable(
    req: Omit<StateEventRequest, "stateKey"> & { stateKey?: string; delayMs: number },
    signal?: AbortSignal,
    gate?: AbortSignal,
    askedSince = Infinity,
  ): Promise<string> {
    const client = this.speaking();
    if (this.choice === "auto") {
      const d = await this.dialect.get(both(signal, gate), Infinity, askedSince);
      if (!d.unstable) {
        if (d.merged) return this.schedule(req, signal, gate);
        throw new DelayedEventsUnsupportedError("the server advertises neither MSC4140 shape in /versions");
      }
    }
    const path =
      req.stateKey === undefined
        ? `/rooms/${enc(req.roomId)}/send/${enc(req.eventType)}/${enc(client.makeTxnId())}`
        : `/rooms/${enc(req.roomId)}/state/${enc(req.eventType)}/${enc(req.stateKey)}`;
    signal?.throwIfAborted();
    gate?.throwIfAborted();
    let res: unknown;
    try {
      res = await client.http.authedRequest(
        Method.Put,
        path,
        { "org.matrix.msc4140.delay": String(req.delayMs) },
        req.content,
        { prefix: V3, abortSignal: signal },
      );
    } catch (e) {
      this.noteFailure(e, false);
      throw e;
    }
    if (isRecord(res) && res.delay_id === undefined && typeof res.event_id === "string") {
      this.dialect.markStale();
      throw new DelayIgnoredError();
    }
    return readDelayId(res);
  }

  /**
   * The unstable management endpoint (`POST …/unstable/org.matrix.msc4140/delayed_events/{id}/{action}`),
   * or the older one with the action in the body where the server does not know the first.
   */
  public async updateUnstable(
    delayId: string,
    action: DelayedEventAction,
    signal?: AbortSignal,
    gate?: AbortSignal,
    keepAlive?: boolean,
  ): Promise<void> {
    const client = this.speaking();
    delayIdForPath(delayId, `${action}-delayed-event`);
    signal?.throwIfAborted();
    gate?.throwIfAborted();
    const opts = { prefix: UNSTABLE, abortSignal: signal, ...(keepAlive ? { keepAlive: true } : {}) };
    const inPath = () =>
      client.http.authedRequest(
        Method.Post,
        `/delayed_events/${enc(delayId)}/${action}`,
        undefined,
        {},
        opts,
      );
    const inBody = () =>
      client.http.authedRequest(Method.Post, `/delayed_events/${enc(delayId)}`, undefined, { action }, opts);
    try {
      // Servers before Synapse 1.143 know only the action in the body: once one said so, that form
      // first (one request per heartbeat, not two), until it too is unknown (the server changed).
      const [first, second] = this.actionInBody ? [inBody, inPath] : [inPath, inBody];
      try {
        await first();
      } catch (e) {
        if (httpFacts(e).errcode !== "M_UNRECOGNIZED") throw e;
        await second();
        this.actionInBody = !this.actionInBody;
      }
    } catch (e) {
      this.noteFailure(e, false);
      throw e;
    }
  }

  /** `PUT /v3/rooms/{roomId}/delayed_event/{eventType}/{txnId}`; resolves to the delay id. No `stateKey`: a message event. */
  public async schedule(
    req: Omit<StateEventRequest, "stateKey"> & { stateKey?: string; delayMs: number },
    signal?: AbortSignal,
    gate?: AbortSignal,
  ): Promise<string> {
    const path = `/rooms/${enc(req.roomId)}/delayed_event/${enc(req.eventType)}/${enc(this.speaking().makeTxnId())}`;
    const body = { delay_ms: req.delayMs, state_key: req.stateKey, content: req.content };
    // The caller may have given up while /versions was asked: then nothing must be sent.
    signal?.throwIfAborted();
    gate?.throwIfAborted();
    let res: unknown;
    try {
      res = await this.speaking().http.authedRequest(Method.Put, path, undefined, body, {
        prefix: V3,
        abortSignal: signal,
      });
    } catch (e) {
      this.noteFailure(e, true);
      // No HTTP answer: the server may hold a delayed event we have no id for. Remember the
      // transaction, so listing can replay it and learn the id (the server dedupes on it).
      if (httpFacts(e).status === undefined)
        this.rememberLost({ path, body, roomId: req.roomId, stateKey: req.stateKey, delayMs: req.delayMs });
      throw e;
    }
    // A 200 without a usable delay_id is a broken server (MalformedResponseError, classified server).
    return readDelayId(res);
  }

  /** `POST /v1/delayed_events/{delay_id}/{action}`. A 409 carries what the lookup says (`delayedEventStatus`). */
  public async update(
    delayId: string,
    action: DelayedEventAction,
    signal?: AbortSignal,
    gate?: AbortSignal,
    keepAlive?: boolean,
  ): Promise<void> {
    signal?.throwIfAborted();
    gate?.throwIfAborted();
    delayIdForPath(delayId, `${action}-delayed-event`);
    try {
      await this.speaking().http.authedRequest(
        Method.Post,
        `/delayed_events/${enc(delayId)}/${action}`,
        undefined,
        {},
        {
          prefix: V1,
          abortSignal: signal,
          ...(keepAlive ? { keepAlive: true } : {}),
        },
      );
      if (action !== "restart") this.forgetRecovered(delayId);
    } catch (e) {
      this.noteFailure(e, true);
      const status = httpFacts(e).status;
      // Not pending any more (404, 409): nothing left to recover either.
      if (status === 404 || status === 409) this.forgetRecovered(delayId);
      if (status === 409 && typeof e === "object" && e !== null) {
        const status = await this.get(delayId, signal).catch(() => undefined);
        if (status) Object.assign(e, { delayedEventStatus: status });
      }
      throw e;
    }
  }

  /**
   * One delayed event: merged servers answer pending and finalised events on `v1`; on unstable
   * servers, Synapse ≥1.161 answers pending ones on the unstable prefix (404 once it left the
   * schedule, so "unknown" there cannot tell "finalised" from "never existed"). Older servers have no
   * such endpoint: their 404/405 `M_UNRECOGNIZED` is thrown as it came.
   */
  public async get(delayId: string, signal?: AbortSignal): Promise<DelayedEventStatus> {
    delayIdForPath(delayId, "get-delayed-event");
    const merged = await this.useMerged(signal);
    try {
      const body = await this.speaking().http.authedRequest(
        Method.Get,
        `/delayed_events/${enc(delayId)}`,
        undefined,
        undefined,
        { prefix: merged ? V1 : UNSTABLE, abortSignal: signal },
      );
      return parseDelayedEventLookup(body);
    } catch (e) {
      const facts = httpFacts(e);
      if (facts.status === 404 && facts.errcode === "M_NOT_FOUND")
        return { status: "unknown", tracksFinalised: merged };
      throw e;
    }
  }

  /** The unstable listing (`GET …/unstable/org.matrix.msc4140/delayed_events`), bounded and abortable. */
  public async listUnstable(signal?: AbortSignal, gate?: AbortSignal): Promise<unknown> {
    signal?.throwIfAborted();
    gate?.throwIfAborted();
    try {
      return await this.speaking().http.authedRequest(Method.Get, "/delayed_events", undefined, undefined, {
        prefix: UNSTABLE,
        abortSignal: signal,
      });
    } catch (e) {
      this.noteFailure(e, false);
      throw e;
    }
  }

  /**
   * The merged shape has no listing (moved to MSC4486), but a lost schedule can be recovered exactly:
   * replaying its transaction answers the delay id it got, or schedules it now. Either way the caller
   * gets ids it can cancel. A recovered id is listed (to every caller: managers of other rooms may
   * share this backend) until it is cancelled or sent through this backend, or its delay has passed.
   */
  public async recoverLost(signal?: AbortSignal): Promise<PendingDelayedEvent[]> {
    const now = Date.now();
    for (const [path, lost] of [...this.lost]) {
      if (lost.knownAt !== undefined && now > lost.knownAt + lost.delayMs) this.lost.delete(path);
    }
    for (const [path, lost] of [...this.lost]) {
      if (lost.delayId !== undefined) continue;
      let res: unknown;
      try {
        res = await this.speaking().http.authedRequest(Method.Put, path, undefined, lost.body, {
          prefix: V3,
          abortSignal: signal,
        });
      } catch (e) {
        const status = httpFacts(e).status;
        // Refused now (and never answered before, or the cache would have): nothing is scheduled.
        if (status !== undefined && status < 500 && status !== 429) {
          this.lost.delete(path);
          continue;
        }
        throw e;
      }
      const delayId = isRecord(res) ? res.delay_id : undefined;
      if (isDelayId(delayId)) {
        lost.delayId = delayId;
        lost.knownAt = Date.now();
      } else this.lost.delete(path);
    }
    return [...this.lost.values()]
      .filter((lost) => lost.delayId !== undefined)
      .map((lost) => ({
        delayId: lost.delayId!,
        roomId: lost.roomId,
        ...(lost.stateKey !== undefined ? { stateKey: lost.stateKey } : {}),
      }));
  }

  private forgetRecovered(delayId: string): void {
    for (const [path, lost] of this.lost) if (lost.delayId === delayId) this.lost.delete(path);
  }

  private rememberLost(entry: LostSchedule): void {
    this.lost.set(entry.path, entry);
    if (this.lost.size > MAX_LOST) this.lost.delete(this.lost.keys().next().value as string);
  }
}
