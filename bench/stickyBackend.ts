/**
 * The bench's stand-in for `ClientBackend`'s sticky methods (issue 21 item 1 gives `ClientBackend` its
 * own; until then `membershipFormat: "sticky"` needs a backend that has them). A `ClientBackend` plus the
 * three requests the sticky format makes, each one plain HTTP request through js-sdk's `http` (the same
 * transport `ClientBackend` uses), with the manager's abort signal:
 *
 * - `sendStickyEvent`: `PUT /rooms/{roomId}/send/{type}/{txnId}?org.matrix.msc4354.sticky_duration_ms=N`;
 * - `sendDelayedStickyEvent`: the same with `org.matrix.msc4140.delay=M` beside it (the merged MSC4140
 *   endpoint has no sticky parameter);
 * - `readEvent`: `GET /rooms/{roomId}/event/{eventId}`.
 *
 * A server whose `/versions` lacks `org.matrix.msc4354` gets no request at all (a StickyEventsUnsupportedError),
 * never a plain event. Nothing here decides anything: request counts and timings are the manager's.
 */
import type { MatrixClient } from "matrix-js-sdk";
import { ClientBackend } from "../src/backends/client.js";
import type {
  RequestOptions,
  StateEventSnapshot,
  StickyEventRequest,
  SupportHint,
} from "../src/backends/types.js";
import { readDelayId, readStateSnapshot } from "../src/core/validate.js";
import { StickyEventsUnsupportedError } from "../src/errors.js";

const V3 = { prefix: "/_matrix/client/v3" };
const enc = encodeURIComponent;

export class StickyClientBackend extends ClientBackend {
  constructor(private readonly mx: MatrixClient) {
    super(mx as never);
  }

  private async requireSticky(): Promise<void> {
    // js-sdk caches /versions: one request per client, already made before the join (see lib.ts).
    if (!(await this.mx.doesServerSupportUnstableFeature("org.matrix.msc4354")))
      throw new StickyEventsUnsupportedError("the server does not advertise org.matrix.msc4354");
  }

  private sendPath(req: StickyEventRequest): string {
    return `/rooms/${enc(req.roomId)}/send/${enc(req.eventType)}/${enc(this.mx.makeTxnId())}`;
  }

  async sendStickyEvent(req: StickyEventRequest, opts?: RequestOptions): Promise<string> {
    await this.requireSticky();
    opts?.notAfter?.throwIfAborted();
    const res = await this.mx.http.authedRequest<{ event_id?: unknown }>(
      "PUT" as never,
      this.sendPath(req),
      { "org.matrix.msc4354.sticky_duration_ms": String(req.durationMs) },
      req.content,
      { ...V3, abortSignal: opts?.signal },
    );
    if (typeof res?.event_id !== "string") throw new Error("send answered without an event_id");
    return res.event_id;
  }

  async sendDelayedStickyEvent(
    req: StickyEventRequest & { delayMs: number },
    opts?: RequestOptions,
  ): Promise<string> {
    await this.requireSticky();
    opts?.notAfter?.throwIfAborted();
    const res = await this.mx.http.authedRequest<unknown>(
      "PUT" as never,
      this.sendPath(req),
      {
        "org.matrix.msc4140.delay": String(req.delayMs),
        "org.matrix.msc4354.sticky_duration_ms": String(req.durationMs),
      },
      req.content,
      { ...V3, abortSignal: opts?.signal },
    );
    return readDelayId(res);
  }

  async readEvent(
    roomId: string,
    eventId: string,
    opts?: RequestOptions,
  ): Promise<StateEventSnapshot | undefined> {
    try {
      const body = await this.mx.http.authedRequest<unknown>(
        "GET" as never,
        `/rooms/${enc(roomId)}/event/${enc(eventId)}`,
        undefined,
        undefined,
        { ...V3, abortSignal: opts?.signal },
      );
      return readStateSnapshot(body);
    } catch (e) {
      if ((e as { errcode?: string }).errcode === "M_NOT_FOUND") return undefined;
      throw e;
    }
  }

  override async probeSupport(opts?: RequestOptions): Promise<SupportHint> {
    const hint = await super.probeSupport(opts);
    const sticky = await this.mx.doesServerSupportUnstableFeature("org.matrix.msc4354");
    return sticky
      ? { ...hint, stickyEvents: true }
      : { ...hint, stickyEvents: false, stickyReason: "the server does not advertise org.matrix.msc4354" };
  }
}
