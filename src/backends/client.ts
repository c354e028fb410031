import {
  delayIdForPath,
  readDelayedEventList,
  readDelayId,
  readMaxDelayMs,
  readStateContent,
  readStateSnapshot,
} from "../core/validate.js";
import { raceAbort } from "./dialect.js";
import { ClientStickyEvents, type StickyClientLike } from "./clientSticky.js";
import {
  DelayedEventsHttp,
  speaksHttp,
  type DelayedEventsApiChoice,
  type MergedClientLike,
} from "./mergedDelayedEvents.js";
import { roomStateSource, type RoomStateClient, type SourceLike } from "../membership/observer.js";
import type {
  DelegateDelayedLeaveRequest,
  DelayedEventAction,
  DelayedEventStatus,
  MembershipBackend,
  PendingDelayedEvent,
  RequestOptions,
  StateEventRequest,
  StateEventSnapshot,
  StickyEventRequest,
  SupportHint,
} from "./types.js";

/** Request options the client methods accept (matrix-js-sdk's `IRequestOpts`, the part we pass). */
export interface ClientRequestOptions {
  /** Aborts the request (the manager's local timeout, or dispose). */
  abortSignal?: AbortSignal;
  /** Let the request outlive the page (js-sdk passes it to fetch as `keepalive`): the leave on page exit. */
  keepAlive?: boolean;
}

/**
 * The part of matrix-js-sdk's `MatrixClient` the backend uses (a bare client, no startClient() needed).
 * Typed here rather than picked from `MatrixClient` so that our declarations do not pull in
 * matrix-js-sdk's (whose crypto types reference a file it does not ship): a js-sdk 43 `MatrixClient`
 * fits it, which test/package/clientTypes.test.ts checks at compile time.
 */
export interface ClientLike
  extends Partial<MergedClientLike>, Omit<StickyClientLike, keyof MergedClientLike> {
  /** Schedules a delayed state event (MSC4140): the delayed leave. */
  _unstable_sendDelayedStateEvent(
    roomId: string,
    delayOpts: { delay: number },
    eventType: string,
    content: Record<string, unknown>,
    stateKey?: string,
    opts?: ClientRequestOptions,
  ): Promise<{
    /** The id to restart, send or cancel it with. */
    delay_id: string;
  }>;
  /** Pushes a delayed event's deadline back (the heartbeat). */
  _unstable_restartScheduledDelayedEvent(delayId: string, opts?: ClientRequestOptions): Promise<unknown>;
  /** Sends a delayed event now (the leave). */
  _unstable_sendScheduledDelayedEvent(delayId: string, opts?: ClientRequestOptions): Promise<unknown>;
  /** Drops a delayed event. */
  _unstable_cancelScheduledDelayedEvent(delayId: string, opts?: ClientRequestOptions): Promise<unknown>;
  /** Sends a state event now (the membership). */
  sendStateEvent(
    roomId: string,
    eventType: string,
    content: Record<string, unknown>,
    stateKey?: string,
    opts?: ClientRequestOptions,
  ): Promise<unknown>;
  /** Whether `/versions` lists an unstable feature (here `org.matrix.msc4140`). */
  doesServerSupportUnstableFeature(feature: string): Promise<boolean>;
  /** The server's `/capabilities` (for the maximum delay). */
  getCapabilities(): Promise<unknown>;
  /** One state event's content (rejects with `M_NOT_FOUND` when there is none). */
  getStateEvent(roomId: string, eventType: string, stateKey: string): Promise<Record<string, unknown>>;
  /** Our pending delayed events. */
  _unstable_getDelayedEvents(): Promise<unknown>;
  /** The client's own user id (optional so that minimal fakes keep working; a real MatrixClient has it). */
  getUserId?(): string | null;
  /**
   * A fresh transaction id, for scheduling through MSC4140 as merged (a real MatrixClient has it; without
   * it the backend speaks the unstable shape only).
   */
  makeTxnId?(): string;
}

/** Options for `new ClientBackend(client, options)`. */
export interface ClientBackendOptions {
  /** MSC4140 shape: `auto` (default) uses the merged endpoints where the server offers them. For tests. */
  delayedEventsApi?: DelayedEventsApiChoice;
}

/** MSC4195's homeserver endpoint, unstable first (Synapse's MSC4512 proxy serves both). */
const DELEGATE_PATH = "/rtc/livekit/delegate_delayed_leave";
const DELEGATE_PREFIXES = ["/_matrix/client/unstable/io.element.msc4195", "/_matrix/client/v1"];

/**
 * Standalone mode: talks to the homeserver through a matrix-js-sdk MatrixClient. Every answer we read
 * is checked (core/validate.ts): a wrong shape throws a MalformedResponseError instead of flowing on.
 * MSC4140 as merged is spoken where the server offers it (mergedDelayedEvents.ts).
 */
export class ClientBackend implements MembershipBackend {
  private readonly delayed: DelayedEventsHttp;
  private readonly sticky: ClientStickyEvents;
  /** The delegation path the homeserver answered on (not 404 M_UNRECOGNIZED). */
  private delegatePrefix?: string;

  constructor(
    private readonly client: ClientLike,
    options: ClientBackendOptions = {},
  ) {
    this.delayed = new DelayedEventsHttp(client, options.delayedEventsApi);
    this.sticky = new ClientStickyEvents(client);
  }

  /**
   * The sticky format's join, refresh and fallback leave (clientSticky.ts): refused with a typed error,
   * nothing sent, where the server lacks MSC4354; encrypted by js-sdk in an encrypted room, or refused
   * (`EncryptionUnavailableError`) when the client cannot encrypt for it.
   */
  sendStickyEvent(req: StickyEventRequest, opts?: RequestOptions): Promise<string> {
    return this.sticky.send(req, opts);
  }

  /** The sticky format's delayed leave (MSC4140 + MSC4354 in one request), to its delay id. */
  sendDelayedStickyEvent(
    req: StickyEventRequest & { delayMs: number },
    opts?: RequestOptions,
  ): Promise<string> {
    return this.sticky.sendDelayed(req, opts);
  }

  /** One event by id (the sticky format reads its own membership back; a redaction empties it). */
  readEvent(roomId: string, eventId: string, opts?: RequestOptions): Promise<StateEventSnapshot | undefined> {
    return this.sticky.read(roomId, eventId, opts);
  }

  /** The user whose token the client holds, when it knows (the manager checks it against `userId`). */
  ownUserId(): string | undefined {
    return this.client.getUserId?.() ?? undefined;
  }

  async sendDelayedStateEvent(
    req: StateEventRequest & { delayMs: number },
    opts?: RequestOptions,
  ): Promise<string> {
    // Through js-sdk's HTTP API (a real MatrixClient): both shapes, bounded discovery, an ignored delay
    // detected. A client double without it goes through js-sdk's unstable methods.
    if (speaksHttp(this.client))
      return this.delayed.scheduleAny(req, opts?.signal, opts?.notAfter, opts?.overMembership);
    opts?.notAfter?.throwIfAborted();
    const res = await this.client._unstable_sendDelayedStateEvent(
      req.roomId,
      { delay: req.delayMs },
      // js-sdk types state content per event type; ours is an unstable type it does not list.
      req.eventType as never,
      req.content as never,
      req.stateKey,
      { abortSignal: opts?.signal },
    );
    // js-sdk passes the body through untyped: a proxy or a broken server can answer 200 with anything.
    return readDelayId(res);
  }

  async sendStateEvent(req: StateEventRequest, opts?: RequestOptions): Promise<void> {
    opts?.notAfter?.throwIfAborted();
    await this.client.sendStateEvent(req.roomId, req.eventType as never, req.content as never, req.stateKey, {
      abortSignal: opts?.signal,
    });
  }

  async updateDelayedEvent(
    delayId: string,
    action: DelayedEventAction,
    opts?: RequestOptions,
  ): Promise<void> {
    // js-sdk encodes the id (encodeURIComponent), but "." and ".." would still resolve away in the URL.
    delayIdForPath(delayId, `${action}-delayed-event`);
    // The page is going away: where the unstable shape is spoken, also a token-less send (no preflight).
    const quick = action === "send" && opts?.keepAlive === true;
    if (speaksHttp(this.client)) {
      if (quick && !(await this.delayed.useMerged(opts?.signal).catch(() => true)))
        this.sendWithoutPreflight(delayId, opts?.signal);
      return this.delayed.updateAny(delayId, action, opts?.signal, opts?.notAfter, opts?.keepAlive);
    }
    opts?.notAfter?.throwIfAborted();
    if (quick) this.sendWithoutPreflight(delayId, opts?.signal);
    const requestOpts = { abortSignal: opts?.signal, ...keepAliveOption(opts) };
    if (action === "restart") await this.client._unstable_restartScheduledDelayedEvent(delayId, requestOpts);
    else if (action === "send") await this.client._unstable_sendScheduledDelayedEvent(delayId, requestOpts);
    else await this.client._unstable_cancelScheduledDelayedEvent(delayId, requestOpts);
  }

  /**
   * The page is going away: the same unstable `send` once more as a CORS "simple" request (no token, no
   * body), which the browser sends at once, where the authenticated one first waits a round trip for its
   * preflight (the page is on another origin than the homeserver). Servers that take unauthenticated
   * management (Synapse ≥ 1.143: the delay id is the capability) fire the leave half a round trip after
   * pagehide, and the authenticated send then finds it gone; others refuse it (401 before 1.143) and the
   * authenticated one does the work. Needs js-sdk's HTTP API (a real MatrixClient); nothing waits for it.
   */
  private sendWithoutPreflight(delayId: string, signal?: AbortSignal): void {
    const http = (this.client as { http?: Partial<PlainHttp> }).http;
    if (typeof http?.request !== "function") return;
    http
      .request("POST", `/delayed_events/${encodeURIComponent(delayId)}/send`, undefined, undefined, {
        prefix: UNSTABLE_MSC4140,
        keepAlive: true,
        abortSignal: signal,
      })
      .catch(() => undefined);
  }

  async readStateEvent(
    req: Omit<StateEventRequest, "content">,
    opts?: RequestOptions,
  ): Promise<Record<string, unknown> | undefined> {
    try {
      // js-sdk's getStateEvent takes no request options, so this read cannot be aborted early.
      void opts;
      return readStateContent(await this.client.getStateEvent(req.roomId, req.eventType, req.stateKey));
    } catch (e) {
      if ((e as { errcode?: string }).errcode === "M_NOT_FOUND") return undefined;
      throw e;
    }
  }

  /**
   * One state event with its server timestamp: `GET …/state/{type}/{key}?format=event` through js-sdk's
   * HTTP API (every Synapse answers it); a client without that API reads the content alone.
   */
  async readState(
    req: Omit<StateEventRequest, "content">,
    opts?: RequestOptions,
  ): Promise<StateEventSnapshot | undefined> {
    const http = (this.client as Partial<MergedClientLike>).http;
    if (typeof http?.authedRequest !== "function") {
      const content = await this.readStateEvent(req, opts);
      return content === undefined ? undefined : { content };
    }
    const enc = encodeURIComponent;
    let body: unknown;
    try {
      body = await http.authedRequest(
        "GET",
        `/rooms/${enc(req.roomId)}/state/${enc(req.eventType)}/${enc(req.stateKey)}`,
        { format: "event" },
        undefined,
        { prefix: "/_matrix/client/v3", abortSignal: opts?.signal },
      );
    } catch (e) {
      if ((e as { errcode?: string }).errcode === "M_NOT_FOUND") return undefined;
      throw e;
    }
    return readStateSnapshot(body);
  }

  /**
   * MSC4195 through the homeserver (`POST …/rtc/livekit/delegate_delayed_leave`, which Synapse ≥1.163
   * proxies to the token service with `msc4512_enabled`): the unstable path first, then the stable one
   * if the homeserver has no route for it (404 M_UNRECOGNIZED). The body names the member both ways:
   * `member_id` (MSC4195 as accepted, ruma-client-api 0.25) and `member: {id, claimed_device_id}`
   * (matrix-js-sdk 43's `_unstable_delegateDelayedLeave`). Needs js-sdk's HTTP API.
   */
  async delegateDelayedLeave(req: DelegateDelayedLeaveRequest, opts?: RequestOptions): Promise<void> {
    const http = (this.client as Partial<MergedClientLike>).http;
    if (typeof http?.authedRequest !== "function") {
      throw Object.assign(new Error("delegation needs matrix-js-sdk's HTTP API"), { httpStatus: 404 });
    }
    opts?.notAfter?.throwIfAborted();
    const body = {
      url: req.url,
      room_id: req.roomId,
      slot_id: req.slotId,
      member_id: req.memberId,
      member: { id: req.memberId, claimed_device_id: req.deviceId },
      delay_id: req.delayId,
    };
    const send = (prefix: string) =>
      http.authedRequest("POST", DELEGATE_PATH, undefined, body, { prefix, abortSignal: opts?.signal });
    if (this.delegatePrefix) {
      await send(this.delegatePrefix);
      return;
    }
    for (const prefix of DELEGATE_PREFIXES) {
      try {
        await send(prefix);
        this.delegatePrefix = prefix;
        return;
      } catch (e) {
        const unrouted =
          (e as { httpStatus?: number }).httpStatus === 404 &&
          (e as { errcode?: string }).errcode === "M_UNRECOGNIZED";
        if (!unrouted || prefix === DELEGATE_PREFIXES[DELEGATE_PREFIXES.length - 1]) throw e;
      }
    }
  }

  /** Our own `m.room.member` membership, read from the server (a kicked user reads its leave event). */
  async readRoomMembership(
    roomId: string,
    userId: string,
    opts?: RequestOptions,
  ): Promise<string | undefined> {
    const read = await this.readState({ roomId, eventType: "m.room.member", stateKey: userId }, opts);
    const membership = read?.content.membership;
    return typeof membership === "string" ? membership : undefined;
  }

  /**
   * The client's room as the manager's view of its own membership: live once the client syncs (a bare
   * client never shows the manager's writes, and the manager then reads its key instead).
   */
  watchRoom(roomId: string): { source: SourceLike } | undefined {
    const client = this.client as Partial<RoomStateClient>;
    if (
      typeof client.getRoom !== "function" ||
      typeof client.on !== "function" ||
      typeof client.off !== "function"
    )
      return undefined;
    return { source: roomStateSource(client as RoomStateClient, roomId) };
  }

  async listDelayedEvents(opts?: RequestOptions): Promise<PendingDelayedEvent[]> {
    if (await this.delayed.useMerged(opts?.signal)) return this.delayed.recoverLost(opts?.signal);
    // Synapse answers {delayed_events: [...]}; js-sdk 43 types it after a newer MSC draft ({scheduled}).
    if (speaksHttp(this.client))
      return readDelayedEventList(await this.delayed.listUnstable(opts?.signal, opts?.notAfter));
    return readDelayedEventList(await this.client._unstable_getDelayedEvents());
  }

  getDelayedEvent(delayId: string, opts?: RequestOptions): Promise<DelayedEventStatus> {
    return this.delayed.get(delayId, opts?.signal);
  }

  async probeSupport(opts?: RequestOptions): Promise<SupportHint> {
    const signal = opts?.signal;
    // A merged server may advertise only `org.matrix.msc4140.stable`. Our own bounded `/versions` where
    // the client has js-sdk's HTTP API.
    const dialect = speaksHttp(this.client)
      ? await this.delayed.serverDialect(signal)
      : {
          unstable: await raceAbort(
            this.client.doesServerSupportUnstableFeature("org.matrix.msc4140"),
            signal,
          ),
          merged: await this.delayed.useMerged(signal),
        };
    if (!dialect.unstable && !dialect.merged)
      return { delayedEvents: false, reason: "the server does not advertise org.matrix.msc4140" };
    // Synapse ≥1.157 advertises its limits; older servers do not, which is fine.
    try {
      const http = (this.client as Partial<MergedClientLike>).http;
      // js-sdk's cached answer when it holds one (a started client fetched it); else our bounded request.
      const cached = (this.client as CapabilitiesCache).getCachedCapabilities?.();
      const caps = isRecord(cached)
        ? cached
        : speaksHttp(this.client)
          ? await http!
              .authedRequest<unknown>("GET", "/capabilities", undefined, undefined, {
                prefix: "/_matrix/client/v3",
                abortSignal: signal,
              })
              .then((body) => (body as { capabilities?: unknown }).capabilities ?? {})
          : await raceAbort(this.client.getCapabilities(), signal);
      // MSC4140 as merged names the capability `m.delayed_events`; same fields as the unstable one.
      const stable = (caps as Record<string, unknown>)["m.delayed_events"];
      const { maxDelayMs, disabled } = readMaxDelayMs(
        stable === undefined ? caps : { "org.matrix.msc4140.delayed_events": stable },
      );
      if (disabled) return { delayedEvents: false, maxDelayMs: 0, reason: "max_delay_ms is 0" };
      if (maxDelayMs !== undefined) return { delayedEvents: true, maxDelayMs };
    } catch {
      // capabilities are advisory only
    }
    return { delayedEvents: true };
  }
}

/** js-sdk's unauthenticated request (`client.http.request`): the part the leave on page exit uses. */
/** js-sdk's capabilities cache (public `getCachedCapabilities()` in js-sdk 43). */
interface CapabilitiesCache {
  getCachedCapabilities?(): unknown;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

interface PlainHttp {
  request(
    method: string,
    path: string,
    queryParams: undefined,
    body: undefined,
    opts: { prefix: string; keepAlive: boolean; abortSignal?: AbortSignal },
  ): Promise<unknown>;
}

const UNSTABLE_MSC4140 = "/_matrix/client/unstable/org.matrix.msc4140";

/** js-sdk's `keepAlive` request option, only when asked for (fakes and older clients see the same options as before). */
function keepAliveOption(opts?: RequestOptions): { keepAlive?: true } {
  return opts?.keepAlive ? { keepAlive: true } : {};
}
