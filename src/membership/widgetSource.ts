/**
 * Room state as a widget sees it: the host's MSC2762 `update_state` pushes (or, from hosts that do not
 * push, `readStateEvents`), merged by type and state key. One snapshot per push or read, carrying what it
 * changed, so the observer reads only that; a push that changed nothing the observer reads is none.
 */
import { Observable, ReplaySubject } from "rxjs";
import { receiveStateCapability } from "../backends/widget.js";
import { CALL_MEMBER_EVENT_TYPE } from "./content.js";
import type { StateEventLike } from "./parse.js";
import type { RoomStateChanges, RoomStateSnapshot } from "./snapshot.js";

const ROOM_MEMBER_EVENT_TYPE = "m.room.member";

/**
 * The part of matrix-widget-api's `WidgetApi` the state source uses; a `WidgetApi` fits it. Typed here
 * so that apps that never use a widget need not install matrix-widget-api to type-check.
 */
export interface WidgetStateApi {
  /** Subscribes to a widget API event (`ready`, `action:update_state`). */
  on(event: string, listener: (ev: CustomEvent) => void): unknown;
  /** Unsubscribes. */
  off(event: string, listener: (ev: CustomEvent) => void): unknown;
  /** Reads state events the host lets the widget see. */
  readStateEvents(
    eventType: string,
    limit?: number,
    stateKey?: string,
    roomIds?: string[],
  ): Promise<unknown[]>;
  /** The widget API versions the host supports (to learn whether it pushes state). */
  getClientVersions(): Promise<string[]>;
  /** The transport, to acknowledge the host's `update_state` pushes. */
  transport: {
    /** Answers a request from the host. */
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- WidgetApi's reply is generic over the request
    reply(request: any, responseData: Record<string, unknown>): void;
  };
}

const UPDATE_STATE_ACTION = "action:update_state";
const MSC2762_UPDATE_STATE = "org.matrix.msc2762_update_state";

/**
 * The capabilities a widget requests to observe a room's call members: every call membership, every
 * room membership (for the "sender is joined" rule), and the room's timeline, which is what makes a
 * matrix-widget-api host push the room's current state at negotiation (`update_state`).
 */
export function widgetObserverCapabilities(roomId: string): string[] {
  return [
    receiveStateCapability(CALL_MEMBER_EVENT_TYPE),
    receiveStateCapability(ROOM_MEMBER_EVENT_TYPE),
    `org.matrix.msc2762.timeline:${roomId}`,
  ];
}

/** Options of `widgetStateSource` / `WidgetStateSource`. */
export interface WidgetStateSourceOptions {
  /**
   * How to get the state the host had before we listened. `"auto"` (default): on the widget's `ready`,
   * read it with `readStateEvents` only if the host does not push state (`update_state`); otherwise its
   * first push is the initial state. `"now"`: read at once (the source was made after `ready`, so the
   * host's initial push may have been missed; best effort). `"never"`.
   */
  backfill?: "auto" | "now" | "never";
}

interface RawStateEvent {
  type?: unknown;
  state_key?: unknown;
  room_id?: unknown;
  sender?: unknown;
  content?: unknown;
  origin_server_ts?: unknown;
  event_id?: unknown;
}

/**
 * Room state as a widget sees it: what the host pushes with `update_state` (MSC2762), merged by type
 * and state key. Make it **before** `widgetApi.start()` (as matrix-js-sdk's RoomWidgetClient does) so
 * the host's initial push is not missed, and request `widgetObserverCapabilities(roomId)`.
 * It listens from creation until `close()`; subscribers get the latest snapshot at once.
 */
export class WidgetStateSource extends Observable<RoomStateSnapshot> {
  private readonly callEvents = new Map<string, StateEventLike>();
  private readonly memberEvents = new Map<string, StateEventLike>();
  private readonly snapshots = new ReplaySubject<RoomStateSnapshot>(1);
  private synced = false;
  private closed = false;

  constructor(
    private readonly widgetApi: WidgetStateApi,
    /** The room whose state this source follows. */
    readonly roomId: string,
    options: WidgetStateSourceOptions = {},
  ) {
    super((subscriber) => this.snapshots.subscribe(subscriber));
    this.widgetApi.on(UPDATE_STATE_ACTION, this.onUpdateState);
    const backfill = options.backfill ?? "auto";
    if (backfill === "now") void this.backfill();
    else if (backfill === "auto") this.widgetApi.on("ready", this.onReady);
    this.publish(undefined);
  }

  /** Stop listening; subscribers complete. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.widgetApi.off(UPDATE_STATE_ACTION, this.onUpdateState);
    this.widgetApi.off("ready", this.onReady);
    this.snapshots.complete();
  }

  private readonly onReady = (): void => {
    this.widgetApi.off("ready", this.onReady);
    void this.widgetApi.getClientVersions().then(
      (versions) => {
        if (!versions.includes(MSC2762_UPDATE_STATE as never)) void this.backfill();
      },
      () => this.backfill(),
    );
  };

  private readonly onUpdateState = (ev: CustomEvent<{ data?: { state?: unknown } }>): void => {
    // Acknowledge unless another listener (e.g. js-sdk's RoomWidgetClient) already does.
    if (!ev.defaultPrevented) {
      ev.preventDefault();
      this.widgetApi.transport.reply(ev.detail as never, {});
    }
    if (this.closed) return;
    const state = ev.detail?.data?.state;
    const changes = newChanges();
    if (Array.isArray(state)) for (const raw of state) this.merge(raw as RawStateEvent, true, changes);
    const wasSynced = this.synced;
    this.synced = true;
    if (!wasSynced || hasChanges(changes)) this.publish(changes);
  };

  /** Read the current state through `readStateEvents` (keys the host already pushed are kept). */
  async backfill(): Promise<void> {
    const types = [CALL_MEMBER_EVENT_TYPE, ROOM_MEMBER_EVENT_TYPE];
    const results = await Promise.allSettled(
      types.map((type) => this.widgetApi.readStateEvents(type, undefined, undefined, [this.roomId])),
    );
    if (this.closed) return;
    const changes = newChanges();
    for (const result of results)
      if (result.status === "fulfilled" && Array.isArray(result.value))
        // Timeline-backed hosts may answer older events too: keep the newest per key.
        for (const raw of [...result.value].sort(byTs)) this.merge(raw as RawStateEvent, false, changes);
    const wasSynced = this.synced;
    if (results.some((r) => r.status === "fulfilled")) this.synced = true;
    if (wasSynced !== this.synced || hasChanges(changes)) this.publish(changes);
  }

  private merge(raw: RawStateEvent, fromPush: boolean, changes: MutableChanges): void {
    if (typeof raw !== "object" || raw === null) return;
    if (raw.room_id !== undefined && raw.room_id !== this.roomId) return;
    if (typeof raw.state_key !== "string") return;
    const map =
      raw.type === CALL_MEMBER_EVENT_TYPE
        ? this.callEvents
        : raw.type === ROOM_MEMBER_EVENT_TYPE
          ? this.memberEvents
          : undefined;
    if (!map) return;
    const previous = map.get(raw.state_key);
    if (previous === raw) return;
    const ts = typeof raw.origin_server_ts === "number" ? raw.origin_server_ts : NaN;
    if (!fromPush && previous && !(ts >= previous.origin_server_ts)) return;
    map.set(raw.state_key, raw as StateEventLike);
    changes.events.push(raw as StateEventLike);
  }

  private publish(changes: RoomStateChanges | undefined): void {
    if (this.closed) return;
    const list = lazyList(this.callEvents);
    const snapshot: RoomStateSnapshot = {
      synced: this.synced,
      get callMemberEvents(): StateEventLike[] {
        return list();
      },
      // (spread copies these two functions; a getter would be read, not copied)
      ...memberLookups(this.memberEvents),
    };
    if (changes) snapshot.changes = changes;
    this.snapshots.next(snapshot);
  }
}

/** `callMemberEvents`, built only if someone reads it. */
function lazyList(callEvents: Map<string, StateEventLike>): () => StateEventLike[] {
  let list: StateEventLike[] | undefined;
  return () => (list ??= [...callEvents.values()]);
}

/** Room membership lookups (apart from `lazyList`'s scope, so they do not keep its list alive). */
function memberLookups(
  memberEvents: Map<string, StateEventLike>,
): Pick<RoomStateSnapshot, "membershipOf" | "memberEventOf"> {
  return {
    membershipOf: (userId) => {
      const content = memberEvents.get(userId)?.content as { membership?: unknown } | null | undefined;
      return typeof content?.membership === "string" ? content.membership : undefined;
    },
    memberEventOf: (userId) => memberEvents.get(userId),
  };
}

interface MutableChanges {
  events: StateEventLike[];
}

const newChanges = (): MutableChanges => ({ events: [] });
const hasChanges = (c: MutableChanges): boolean => c.events.length > 0;

function byTs(a: unknown, b: unknown): number {
  const ts = (e: unknown) => {
    const v = (e as RawStateEvent | null)?.origin_server_ts;
    return typeof v === "number" ? v : 0;
  };
  return ts(a) - ts(b);
}

/** `new WidgetStateSource(widgetApi, roomId, options)`. */
export function widgetStateSource(
  widgetApi: WidgetStateApi,
  roomId: string,
  options?: WidgetStateSourceOptions,
): WidgetStateSource {
  return new WidgetStateSource(widgetApi, roomId, options);
}
