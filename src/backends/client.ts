import type { MatrixClient } from "matrix-js-sdk";
import { DelayedEventsHttp, type DelayedEventsApiChoice } from "./mergedDelayedEvents.js";
import type {
  DelayedEventAction,
  DelayedEventStatus,
  MembershipBackend,
  PendingDelayedEvent,
  RequestOptions,
  StateEventRequest,
  SupportHint,
} from "./types.js";

/** The part of matrix-js-sdk's MatrixClient the backend uses (a bare client, no startClient() needed). */
export type ClientLike = Pick<
  MatrixClient,
  | "_unstable_sendDelayedStateEvent"
  | "_unstable_restartScheduledDelayedEvent"
  | "_unstable_sendScheduledDelayedEvent"
  | "_unstable_cancelScheduledDelayedEvent"
  | "sendStateEvent"
  | "doesServerSupportUnstableFeature"
  | "getCapabilities"
  | "getStateEvent"
  | "_unstable_getDelayedEvents"
  | "http"
  | "makeTxnId"
>;

export interface ClientBackendOptions {
  /** MSC4140 shape: `auto` (default) uses the merged endpoints where the server offers them. For tests. */
  delayedEventsApi?: DelayedEventsApiChoice;
}

const CAPABILITY = "org.matrix.msc4140.delayed_events";
const STABLE_CAPABILITY = "m.delayed_events";

/** Standalone mode: talks to the homeserver through a matrix-js-sdk MatrixClient. */
export class ClientBackend implements MembershipBackend {
  private readonly delayed: DelayedEventsHttp;

  constructor(
    private readonly client: ClientLike,
    options: ClientBackendOptions = {},
  ) {
    this.delayed = new DelayedEventsHttp(client, options.delayedEventsApi);
  }

  async sendDelayedStateEvent(
    req: StateEventRequest & { delayMs: number },
    opts?: RequestOptions,
  ): Promise<string> {
    if (await this.delayed.useMerged()) return this.delayed.schedule(req, opts?.signal);
    const res = await this.client._unstable_sendDelayedStateEvent(
      req.roomId,
      { delay: req.delayMs },
      // js-sdk types state content per event type; ours is an unstable type it does not list.
      req.eventType as never,
      req.content as never,
      req.stateKey,
      { abortSignal: opts?.signal },
    );
    return res.delay_id;
  }

  async sendStateEvent(req: StateEventRequest, opts?: RequestOptions): Promise<void> {
    await this.client.sendStateEvent(req.roomId, req.eventType as never, req.content as never, req.stateKey, {
      abortSignal: opts?.signal,
    });
  }

  async updateDelayedEvent(
    delayId: string,
    action: DelayedEventAction,
    opts?: RequestOptions,
  ): Promise<void> {
    if (await this.delayed.useMerged()) return this.delayed.update(delayId, action, opts?.signal);
    const requestOpts = { abortSignal: opts?.signal };
    if (action === "restart") await this.client._unstable_restartScheduledDelayedEvent(delayId, requestOpts);
    else if (action === "send") await this.client._unstable_sendScheduledDelayedEvent(delayId, requestOpts);
    else await this.client._unstable_cancelScheduledDelayedEvent(delayId, requestOpts);
  }

  async readStateEvent(
    req: Omit<StateEventRequest, "content">,
    opts?: RequestOptions,
  ): Promise<Record<string, unknown> | undefined> {
    try {
      // js-sdk's getStateEvent takes no request options, so this read cannot be aborted early.
      void opts;
      return await this.client.getStateEvent(req.roomId, req.eventType, req.stateKey);
    } catch (e) {
      if ((e as { errcode?: string }).errcode === "M_NOT_FOUND") return undefined;
      throw e;
    }
  }

  async listDelayedEvents(opts?: RequestOptions): Promise<PendingDelayedEvent[]> {
    if (await this.delayed.useMerged()) return this.delayed.recoverLost(opts?.signal);
    // Synapse answers {delayed_events: [...]}; js-sdk 43 types it after a newer MSC draft ({scheduled}).
    const res = (await this.client._unstable_getDelayedEvents()) as unknown as Record<string, unknown>;
    const list = (res.delayed_events ?? res.scheduled ?? []) as Record<string, unknown>[];
    return list
      .filter((e) => typeof e.delay_id === "string" && typeof e.room_id === "string")
      .map((e) => ({
        delayId: e.delay_id as string,
        roomId: e.room_id as string,
        stateKey: typeof e.state_key === "string" ? e.state_key : undefined,
      }));
  }

  getDelayedEvent(delayId: string, opts?: RequestOptions): Promise<DelayedEventStatus> {
    return this.delayed.get(delayId, opts?.signal);
  }

  async probeSupport(): Promise<SupportHint> {
    // A merged server may advertise only `org.matrix.msc4140.stable`.
    if (
      !(await this.client.doesServerSupportUnstableFeature("org.matrix.msc4140")) &&
      !(await this.delayed.useMerged())
    )
      return { delayedEvents: false, reason: "the server does not advertise org.matrix.msc4140" };
    // Synapse ≥1.157 advertises its limits; older servers do not, which is fine.
    try {
      const caps = (await this.client.getCapabilities()) as Record<string, unknown>;
      const cap = (caps[STABLE_CAPABILITY] ?? caps[CAPABILITY]) as { max_delay_ms?: unknown } | undefined;
      const max = cap?.max_delay_ms;
      if (typeof max === "number") {
        if (max <= 0) return { delayedEvents: false, maxDelayMs: 0, reason: "max_delay_ms is 0" };
        return { delayedEvents: true, maxDelayMs: max };
      }
    } catch {
      // capabilities are advisory only
    }
    return { delayedEvents: true };
  }
}
