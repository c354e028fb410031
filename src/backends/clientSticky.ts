/**
 * The sticky membership format through matrix-js-sdk (client mode): MSC4354 sticky events, now or
 * delayed, and reading one back by id.
 *
 * - Nothing goes out before the server's `/versions` lists `org.matrix.msc4354`: Synapse 1.163 with the
 *   feature off ignores the sticky query parameter and sends a plain event nobody reads as a membership.
 *   Such a server gives a `StickyEventsUnsupportedError` and nothing is sent.
 * - Unencrypted rooms: `PUT /rooms/{roomId}/send/{type}/{txnId}?org.matrix.msc4354.sticky_duration_ms=…`
 *   (and `org.matrix.msc4140.delay=…` for the delayed leave) through js-sdk's HTTP API: abortable,
 *   no local echo, the same request js-sdk 43's `_unstable_sendSticky(Delayed)Event` makes.
 * - Encrypted rooms (an `m.room.encryption` state event, by the client's room or, for a client that
 *   does not sync, the server's state): the membership goes through js-sdk's `_unstable_sendStickyEvent`,
 *   which encrypts it with the client's crypto. A client without crypto, or one that does not know the
 *   room (it cannot encrypt for it and js-sdk would send in the clear), gives an
 *   `EncryptionUnavailableError` and nothing is sent. The delayed leave (only the slot and the sticky
 *   key, MSC4143's "left") goes out in the clear, as js-sdk 43 sends it: delayed events are not encrypted.
 */
import { DelayIgnoredError, EncryptionUnavailableError, StickyEventsUnsupportedError } from "../errors.js";
import { readDelayId, readStateSnapshot } from "../core/validate.js";
import { MalformedResponseError } from "../errors.js";
import { raceAbort } from "./dialect.js";
import type { MergedClientLike } from "./mergedDelayedEvents.js";
import type { RequestOptions, StateEventSnapshot, StickyEventRequest } from "./types.js";

/** The unstable feature flag a server speaking MSC4354 lists in `/versions`. */
export const MSC4354_FEATURE = "org.matrix.msc4354";
/** The query parameter carrying the stickiness (Synapse 1.163's unstable name, js-sdk 43's). */
export const STICKY_DURATION_QUERY = "org.matrix.msc4354.sticky_duration_ms";
const DELAY_QUERY = "org.matrix.msc4140.delay";
const ENCRYPTION_EVENT_TYPE = "m.room.encryption";

/** The part of matrix-js-sdk's MatrixClient the sticky format uses beyond its HTTP API (all optional). */
export interface StickyClientLike extends Partial<MergedClientLike> {
  /** js-sdk ≥ 43: sends a sticky event through its event pipeline (encrypting it in an encrypted room). */
  _unstable_sendStickyEvent?(
    roomId: string,
    stickDuration: number,
    threadId: string | null,
    // (js-sdk types both per event type; ours is an unstable type it lists with its own content type.)
    eventType: never,
    content: never,
    txnId?: string,
  ): Promise<unknown>;
  /** The client's crypto (undefined: none set up). */
  getCrypto?(): unknown;
  /** The client's room, when it syncs it. */
  getRoom?(roomId: string): StickyRoomLike | null | undefined;
  /** Drops a local echo that was not sent (js-sdk's `cancelPendingEvent`). */
  cancelPendingEvent?(event: never): void;
}

/** The part of js-sdk's `Room` the encrypted path uses. */
export interface StickyRoomLike {
  /** The room has an `m.room.encryption` state event. */
  hasEncryptionStateEvent?(): boolean;
  /** Local echoes not yet sent (js-sdk throws unless the client's pending event ordering is "detached"). */
  getPendingEvents?(): readonly PendingEchoLike[];
}

/** A local echo in js-sdk's pending list. */
export interface PendingEchoLike {
  /** "not_sent" once its send failed. */
  status: string | null;
  /** Its (clear) event type. */
  getType(): string;
}

/** Sticky events through one client; remembers an encrypted room (encryption is never switched off). */
/**
 * How long the server's "not encrypted" answer is taken for a client that does not sync the room. The
 * delayed leave asks it beside its own request, so the join's membership write that follows finds the
 * answer instead of waiting a round trip for it; a room switched to encryption meanwhile gets at most
 * this long of memberships in the clear (and the next write, at the latest the hourly refresh, asks again).
 */
export const NOT_ENCRYPTED_FRESH_MS = 30_000;

export class ClientStickyEvents {
  private readonly encryptedRooms = new Set<string>();
  /** Rooms the server said were not encrypted, with when it was asked (performance.now()). */
  private readonly notEncryptedAt = new Map<string, number>();
  /** One server read at a time per room. */
  private readonly asking = new Map<string, Promise<boolean>>();

  constructor(private readonly client: StickyClientLike) {}

  private http(): MergedClientLike["http"] {
    const http = this.client.http;
    if (typeof http?.authedRequest !== "function")
      throw new StickyEventsUnsupportedError(
        "the client has no HTTP API (matrix-js-sdk's client.http) to send sticky events with",
      );
    return http;
  }

  /** Throws StickyEventsUnsupportedError unless the server lists MSC4354 (nothing is sent then). */
  private async requireSticky(signal?: AbortSignal): Promise<void> {
    const ask = this.client.doesServerSupportUnstableFeature;
    if (typeof ask !== "function")
      throw new StickyEventsUnsupportedError("the client cannot tell whether the server speaks MSC4354");
    if (!(await raceAbort(ask.call(this.client, MSC4354_FEATURE), signal)))
      throw new StickyEventsUnsupportedError(`the server does not advertise ${MSC4354_FEATURE}`);
  }

  /** Is the room encrypted: the client's room when it knows it, else the server's state (cached when so). */
  async isEncrypted(roomId: string, signal?: AbortSignal): Promise<boolean> {
    if (this.encryptedRooms.has(roomId)) return true;
    let encrypted: boolean;
    if (this.roomSaysEncrypted(roomId)) encrypted = true;
    else {
      // A client that does not sync (or has not seen the event yet): the server's word, recent enough.
      const askedAt = this.notEncryptedAt.get(roomId);
      if (askedAt !== undefined && performance.now() - askedAt <= NOT_ENCRYPTED_FRESH_MS) return false;
      encrypted = await raceAbort(this.askServer(roomId, signal), signal);
    }
    if (encrypted) this.encryptedRooms.add(roomId);
    return encrypted;
  }

  /** Ask the server's `m.room.encryption` beside another request (not awaited; a failure is the next ask's). */
  prefetchEncryption(roomId: string, signal?: AbortSignal): void {
    if (this.encryptedRooms.has(roomId) || this.roomSaysEncrypted(roomId)) return;
    this.askServer(roomId, signal).catch(() => undefined);
  }

  /** The client's synced room has seen `m.room.encryption`. */
  private roomSaysEncrypted(roomId: string): boolean {
    const room = this.client.getRoom?.(roomId);
    return !!room && typeof room.hasEncryptionStateEvent === "function" && room.hasEncryptionStateEvent();
  }

  /**
   * The server's `m.room.encryption` (shared while in flight): bounded by the signal of the request that
   * started it (the others race it with their own).
   */
  private askServer(roomId: string, signal?: AbortSignal): Promise<boolean> {
    const inFlight = this.asking.get(roomId);
    if (inFlight) return inFlight;
    const askedAt = performance.now();
    const enc = encodeURIComponent;
    const ask = this.http()
      .authedRequest(
        "GET",
        `/rooms/${enc(roomId)}/state/${enc(ENCRYPTION_EVENT_TYPE)}/`,
        undefined,
        undefined,
        { prefix: "/_matrix/client/v3", abortSignal: signal },
      )
      .then(
        () => true,
        (e: unknown) => {
          if ((e as { errcode?: string }).errcode !== "M_NOT_FOUND") throw e;
          this.notEncryptedAt.set(roomId, askedAt);
          return false;
        },
      )
      .finally(() => this.asking.delete(roomId));
    this.asking.set(roomId, ask);
    return ask;
  }

  /**
   * js-sdk keeps a failed send as a "not sent" local echo, and with detached pending-event ordering (what
   * Element Web uses) every later send to the room is refused while one is there ("Event blocked by other
   * events not yet sent"). Ours are retried by the manager anyway: drop our own failed membership echoes
   * before the next attempt. (Someone else's unsent message still blocks us: that is js-sdk's rule.)
   */
  private dropUnsentEchoes(req: StickyEventRequest): void {
    const client = this.client;
    const room = client.getRoom?.(req.roomId);
    if (
      !room ||
      typeof room.getPendingEvents !== "function" ||
      typeof client.cancelPendingEvent !== "function"
    )
      return;
    let pending: readonly PendingEchoLike[];
    try {
      pending = room.getPendingEvents();
    } catch {
      return; // chronological ordering: js-sdk keeps no pending list that could block us
    }
    for (const echo of [...pending])
      if (echo.status === "not_sent" && echo.getType() === req.eventType) {
        try {
          client.cancelPendingEvent(echo as never);
        } catch {
          // its status changed meanwhile: nothing to drop
        }
      }
  }

  /** `PUT …/send/{type}/{txnId}` with the sticky (and delay) parameters; the answer's body. */
  private put(
    req: StickyEventRequest,
    query: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<unknown> {
    const enc = encodeURIComponent;
    const txnId = this.client.makeTxnId?.() ?? `mrtc${Date.now()}${Math.random().toString(36).slice(2)}`;
    return this.http().authedRequest(
      "PUT",
      `/rooms/${enc(req.roomId)}/send/${enc(req.eventType)}/${enc(txnId)}`,
      { [STICKY_DURATION_QUERY]: String(req.durationMs), ...query },
      req.content,
      { prefix: "/_matrix/client/v3", abortSignal: signal },
    );
  }

  async send(req: StickyEventRequest, opts?: RequestOptions): Promise<string> {
    const signal = opts?.signal;
    opts?.notAfter?.throwIfAborted();
    await this.requireSticky(signal);
    if (await this.isEncrypted(req.roomId, signal)) {
      const client = this.client;
      if (typeof client.getCrypto !== "function" || !client.getCrypto())
        throw new EncryptionUnavailableError(
          "the room is encrypted and the client has no crypto: the membership is not sent in the clear",
        );
      if (!client.getRoom?.(req.roomId))
        throw new EncryptionUnavailableError(
          "the room is encrypted and the client does not know it (it has not synced it): it cannot encrypt for it",
        );
      if (typeof client._unstable_sendStickyEvent !== "function")
        throw new EncryptionUnavailableError(
          "the room is encrypted and the client cannot send sticky events encrypted (matrix-js-sdk ≥ 43 needed)",
        );
      opts?.notAfter?.throwIfAborted();
      this.dropUnsentEchoes(req);
      // js-sdk's pipeline takes no abort signal: our timeout stops waiting, the request runs its course.
      const res = await raceAbort(
        client._unstable_sendStickyEvent(
          req.roomId,
          req.durationMs,
          null,
          req.eventType as never,
          req.content as never,
        ),
        signal,
      );
      return readEventId(res);
    }
    opts?.notAfter?.throwIfAborted();
    return readEventId(await this.put(req, {}, signal));
  }

  async sendDelayed(req: StickyEventRequest & { delayMs: number }, opts?: RequestOptions): Promise<string> {
    const signal = opts?.signal;
    opts?.notAfter?.throwIfAborted();
    await this.requireSticky(signal);
    opts?.notAfter?.throwIfAborted();
    // The membership write that follows a join's delayed leave needs it: asked now, beside this request.
    this.prefetchEncryption(req.roomId, signal);
    const res = await this.put(req, { [DELAY_QUERY]: String(req.delayMs) }, signal);
    // An event id and no delay id: the server (or a proxy dropping the query) sent our leave at once.
    const r = res as { delay_id?: unknown; event_id?: unknown } | null;
    if (r && typeof r === "object" && r.delay_id === undefined && typeof r.event_id === "string")
      throw new DelayIgnoredError();
    return readDelayId(res);
  }

  /** One event by id (`GET /rooms/{roomId}/event/{eventId}`); undefined when the server has none. */
  async read(
    roomId: string,
    eventId: string,
    opts?: RequestOptions,
  ): Promise<StateEventSnapshot | undefined> {
    const enc = encodeURIComponent;
    let body: unknown;
    try {
      body = await this.http().authedRequest(
        "GET",
        `/rooms/${enc(roomId)}/event/${enc(eventId)}`,
        undefined,
        undefined,
        { prefix: "/_matrix/client/v3", abortSignal: opts?.signal },
      );
    } catch (e) {
      if ((e as { errcode?: string }).errcode === "M_NOT_FOUND") return undefined;
      throw e;
    }
    return readStateSnapshot(body);
  }
}

/** The event id of a send's answer (checked: a proxy can answer 200 with anything). */
function readEventId(answer: unknown): string {
  const id = (answer as { event_id?: unknown } | null)?.event_id;
  if (typeof id !== "string" || !id.startsWith("$"))
    throw new MalformedResponseError(
      "send-sticky-event",
      `event_id is ${typeof id === "string" ? JSON.stringify(id.slice(0, 40)) : typeof id}`,
    );
  return id;
}
