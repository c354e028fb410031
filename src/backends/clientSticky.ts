/**
 * The sticky membership format (`membershipFormat: "sticky"`) through matrix-js-sdk: `ClientBackend`'s
 * `sendStickyEvent`, `sendDelayedStickyEvent` and `readEvent`, in the unstable names Synapse 1.163 and
 * js-sdk 43 speak (`PUT …/send/{type}/{txnId}?org.matrix.msc4354.sticky_duration_ms=…`, plus
 * `org.matrix.msc4140.delay` for the delayed leave).
 *
 * - No sticky events without `org.matrix.msc4354` in `/versions`: Synapse with the feature off ignores the
 *   parameter and sends a plain event nobody reads as a membership, so nothing is sent
 *   (`StickyEventsUnsupportedError`).
 * - In an encrypted room the membership goes out encrypted, through js-sdk's own send path (its crypto
 *   encrypts in `encryptAndSendEvent`; there is no public "encrypt this content" call), or not at all
 *   (`EncryptionUnavailableError`: no crypto, or the client has not synced the room). The delayed leave is
 *   sent in the clear, as js-sdk 43 sends it: it holds only the slot and the sticky key, and js-sdk 43
 *   cannot encrypt delayed events.
 * - Unencrypted rooms and the delayed leave go through js-sdk's HTTP API directly, so that each request
 *   can be aborted (the manager's local timeout) and its answer is checked.
 */
import { isDelayId, readDelayId, readStateSnapshot } from "../core/validate.js";
import {
  DelayIgnoredError,
  EncryptionUnavailableError,
  MalformedResponseError,
  StickyEventsUnsupportedError,
} from "../errors.js";
import { raceAbort } from "./dialect.js";
import type { MergedClientLike } from "./mergedDelayedEvents.js";
import { stickyKeyOf } from "../membership/rtcMember.js";
import type { PendingDelayedEvent, RequestOptions, StateEventSnapshot, StickyEventRequest } from "./types.js";

/** `/versions` flag of MSC4354 (unstable). */
export const STICKY_FEATURE_FLAG = "org.matrix.msc4354";
const STICKY_QUERY = "org.matrix.msc4354.sticky_duration_ms";
const DELAY_QUERY = "org.matrix.msc4140.delay";
const V3 = "/_matrix/client/v3";
const enc = encodeURIComponent;

/** What of a js-sdk `Room` the encryption decision and the clean-up of a failed send read. */
interface RoomLike {
  hasEncryptionStateEvent(): boolean;
  getPendingEvents?(): { getTxnId(): string | undefined; status: string | null }[];
}

/** The parts of a matrix-js-sdk `MatrixClient` the sticky format uses (a `MatrixClient` has them all). */
export interface StickyClientLike extends MergedClientLike {
  getRoom?(roomId: string): RoomLike | null;
  /** js-sdk's crypto, when `initRustCrypto()` ran. */
  getCrypto?(): unknown;
  /** js-sdk 43's sticky send (encrypts in encrypted rooms). */
  _unstable_sendStickyEvent?(
    roomId: string,
    durationMs: number,
    threadId: null,
    eventType: string,
    content: Record<string, unknown>,
    txnId?: string,
  ): Promise<{ event_id: string }>;
  /** Drops a local echo that failed to send (else js-sdk holds back later sends in "detached" order). */
  cancelPendingEvent?(event: unknown): void;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The client speaks the sticky format: js-sdk's HTTP API and a transaction id. */
export function speaksSticky(client: object): client is StickyClientLike {
  const c = client as Partial<StickyClientLike>;
  return (
    typeof c.http?.authedRequest === "function" &&
    typeof c.makeTxnId === "function" &&
    typeof c.doesServerSupportUnstableFeature === "function"
  );
}

function needsSticky(client: object): StickyClientLike {
  if (!speaksSticky(client))
    throw new TypeError(
      "the sticky membership format needs matrix-js-sdk's HTTP API (client.http.authedRequest)",
    );
  return client;
}

/** Throws StickyEventsUnsupportedError unless `/versions` lists MSC4354 (js-sdk caches `/versions`). */
async function requireSticky(client: StickyClientLike, signal?: AbortSignal): Promise<void> {
  const supported = await raceAbort(client.doesServerSupportUnstableFeature(STICKY_FEATURE_FLAG), signal);
  if (!supported)
    throw new StickyEventsUnsupportedError(`the server does not advertise ${STICKY_FEATURE_FLAG}`);
}

/**
 * Is the room encrypted? The synced room's state says; a client that has not synced the room asks the
 * server for `m.room.encryption` (404: not encrypted).
 */
async function isEncrypted(client: StickyClientLike, roomId: string, signal?: AbortSignal): Promise<boolean> {
  const room = client.getRoom?.(roomId);
  if (room) return room.hasEncryptionStateEvent();
  try {
    await client.http.authedRequest(
      "GET",
      `/rooms/${enc(roomId)}/state/m.room.encryption/`,
      undefined,
      undefined,
      {
        prefix: V3,
        abortSignal: signal,
      },
    );
    return true;
  } catch (e) {
    if ((e as { errcode?: string }).errcode === "M_NOT_FOUND") return false;
    throw e;
  }
}

/** Sends a sticky event now; resolves to its event id. Encrypted in an encrypted room, or refused. */
export async function sendStickyEvent(
  target: object,
  req: StickyEventRequest,
  opts?: RequestOptions,
): Promise<string> {
  const client = needsSticky(target);
  opts?.notAfter?.throwIfAborted();
  await requireSticky(client, opts?.signal);
  if (await isEncrypted(client, req.roomId, opts?.signal)) return sendEncrypted(client, req, opts);
  opts?.notAfter?.throwIfAborted();
  const txnId = client.makeTxnId();
  const answer = await client.http.authedRequest<unknown>(
    "PUT",
    `/rooms/${enc(req.roomId)}/send/${enc(req.eventType)}/${enc(txnId)}`,
    { [STICKY_QUERY]: String(req.durationMs) },
    req.content,
    { prefix: V3, abortSignal: opts?.signal },
  );
  return readEventId(answer);
}

/** js-sdk's send path, which encrypts: only with crypto, and for a room the client has synced. */
async function sendEncrypted(
  client: StickyClientLike,
  req: StickyEventRequest,
  opts?: RequestOptions,
): Promise<string> {
  if (typeof client.getCrypto !== "function" || !client.getCrypto())
    throw new EncryptionUnavailableError(
      "the room is encrypted and the client has no crypto (initRustCrypto)",
    );
  const room = client.getRoom?.(req.roomId);
  if (!room || typeof client._unstable_sendStickyEvent !== "function")
    throw new EncryptionUnavailableError(
      "the room is encrypted and the client has not synced it: a membership cannot be encrypted for it",
    );
  opts?.notAfter?.throwIfAborted();
  const txnId = client.makeTxnId();
  // js-sdk's send takes no abort signal: on our timeout the request may still complete (the manager
  // treats a late write as any other).
  const sending = client._unstable_sendStickyEvent(
    req.roomId,
    req.durationMs,
    null,
    req.eventType,
    { ...req.content },
    txnId,
  );
  try {
    return readEventId(await raceAbort(sending, opts?.signal));
  } catch (e) {
    // A local echo left NOT_SENT would hold back every later send in this room (js-sdk's "detached" order).
    sending.catch(() => undefined).finally(() => dropFailedEcho(client, room, txnId));
    throw e;
  }
}

function dropFailedEcho(client: StickyClientLike, room: RoomLike, txnId: string): void {
  const echo = room.getPendingEvents?.().find((e) => e.getTxnId() === txnId && e.status === "not_sent");
  if (echo) client.cancelPendingEvent?.(echo);
}

/** Schedules a delayed sticky event (the delayed leave); resolves to its delay id. */
export async function sendDelayedStickyEvent(
  target: object,
  req: StickyEventRequest & { delayMs: number },
  opts?: RequestOptions,
): Promise<string> {
  const client = needsSticky(target);
  opts?.notAfter?.throwIfAborted();
  await requireSticky(client, opts?.signal);
  opts?.notAfter?.throwIfAborted();
  const answer = await client.http.authedRequest<unknown>(
    "PUT",
    `/rooms/${enc(req.roomId)}/send/${enc(req.eventType)}/${enc(client.makeTxnId())}`,
    { [DELAY_QUERY]: String(req.delayMs), [STICKY_QUERY]: String(req.durationMs) },
    req.content,
    { prefix: V3, abortSignal: opts?.signal },
  );
  // A server that ignored the delay sent our leave now: an event id where the delay id belonged.
  if (isRecord(answer) && !isDelayId(answer.delay_id) && typeof answer.event_id === "string")
    throw new DelayIgnoredError();
  return readDelayId(answer);
}

/** One event by id, with the server's timestamp (`GET …/rooms/{roomId}/event/{eventId}`); 404: none. */
export async function readEvent(
  target: object,
  roomId: string,
  eventId: string,
  opts?: RequestOptions,
): Promise<StateEventSnapshot | undefined> {
  const client = needsSticky(target);
  let body: unknown;
  try {
    body = await client.http.authedRequest<unknown>(
      "GET",
      `/rooms/${enc(roomId)}/event/${enc(eventId)}`,
      undefined,
      undefined,
      { prefix: V3, abortSignal: opts?.signal },
    );
  } catch (e) {
    if ((e as { errcode?: string }).errcode === "M_NOT_FOUND") return undefined;
    throw e;
  }
  return readStateSnapshot(body);
}

function readEventId(answer: unknown): string {
  if (!isRecord(answer) || typeof answer.event_id !== "string" || answer.event_id.length === 0)
    throw new MalformedResponseError("send-sticky", "the answer has no event_id");
  return answer.event_id;
}

/**
 * Synapse's listing of our delayed events carries each one's type and content: the sticky format's
 * delayed leaves (no state key, a sticky key in the content) are named by their sticky key, so that the
 * manager's orphan sweep can tell a lost schedule's delayed leave at our key (which would end our
 * membership for every reader when it fires) from anything else.
 */
export function withStickyKeys(answer: unknown, list: PendingDelayedEvent[]): PendingDelayedEvent[] {
  const raw = isRecord(answer) ? (answer.delayed_events ?? answer.scheduled) : undefined;
  if (!Array.isArray(raw)) return list;
  const byId = new Map<string, Record<string, unknown>>();
  for (const e of raw) if (isRecord(e) && typeof e.delay_id === "string") byId.set(e.delay_id, e);
  return list.map((e) => {
    const r = byId.get(e.delayId);
    if (!r || e.stateKey !== undefined) return e;
    const stickyKey = stickyKeyOf(r.content);
    return {
      ...e,
      ...(typeof r.type === "string" ? { type: r.type } : {}),
      ...(stickyKey !== undefined ? { stickyKey } : {}),
    };
  });
}
