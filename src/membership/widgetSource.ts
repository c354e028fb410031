/**
 * Room state as a widget sees it: the host's MSC2762 `update_state` pushes (or, from hosts that do not
 * push, `readStateEvents`), merged by type and state key. One snapshot per push or read, carrying what it
 * changed, so the observer reads only that; a push that changed nothing the observer reads is none.
 *
 * Sticky memberships (MatrixRTC 2.0, MSC4143 over MSC4354) are no state: a host that grants
 * `org.matrix.msc4407.receive.sticky_event` (MSC4407) pushes the room's current ones as `send_event` at
 * negotiation and each new one as it arrives, one event per message, sticky field intact. They are kept
 * by `PushedStickyEvents` and reach the observer in batches: the events pushed within `stickyBatchMs` of
 * the first one are one snapshot (sooner, with the next state push), so a host's push of the whole call
 * is a few evaluations, not one per member.
 */
import { asyncScheduler, Observable, ReplaySubject, type SchedulerLike, type Subscription } from "rxjs";
import { MSC4407_RECEIVE_STICKY_EVENT, receiveStateCapability } from "../backends/widget.js";
import { CALL_MEMBER_EVENT_TYPE } from "./content.js";
import type { StateEventLike } from "./parse.js";
import type { RoomStateChanges, RoomStateSnapshot } from "./snapshot.js";
import { RTC_MEMBER_EVENT_TYPE, RTC_SLOT_EVENT_TYPE } from "./sticky.js";
import { isPushedStickyMembership, PushedStickyEvents } from "./widgetSticky.js";

const ROOM_MEMBER_EVENT_TYPE = "m.room.member";

/**
 * The part of matrix-widget-api's `WidgetApi` the state source uses; a `WidgetApi` fits it. Typed here
 * so that apps that never use a widget need not install matrix-widget-api to type-check.
 */
export interface WidgetStateApi {
  /** Subscribes to a widget API event (`ready`, `action:update_state`, `action:send_event`). */
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
  /** Whether the host granted a capability (to read `rtc.slot` state only when it may). Optional. */
  hasCapability?(capability: string): boolean;
  /** The transport, to acknowledge the host's `update_state` and `send_event` pushes. */
  transport: {
    /** Answers a request from the host. */
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- WidgetApi's reply is generic over the request
    reply(request: any, responseData: Record<string, unknown>): void;
  };
}

const UPDATE_STATE_ACTION = "action:update_state";
const SEND_EVENT_ACTION = "action:send_event";
const MSC2762_UPDATE_STATE = "org.matrix.msc2762_update_state";

/**
 * The capabilities a widget requests to observe a room's call members: every call membership, every
 * room membership (for the "sender is joined" rule), the room's timeline, which is what makes a
 * matrix-widget-api host push the room's current state at negotiation (`update_state`), and the sticky
 * memberships (MatrixRTC 2.0: receiving `org.matrix.msc4143.rtc.member` events, MSC4407's
 * `receive.sticky_event`, and the `org.matrix.msc4143.rtc.slot` state that can close the slot). A host
 * may refuse the sticky ones: the source then lists state members only.
 */
export function widgetObserverCapabilities(roomId: string): string[] {
  return [
    receiveStateCapability(CALL_MEMBER_EVENT_TYPE),
    receiveStateCapability(ROOM_MEMBER_EVENT_TYPE),
    `org.matrix.msc2762.timeline:${roomId}`,
    `org.matrix.msc2762.receive.event:${RTC_MEMBER_EVENT_TYPE}`,
    MSC4407_RECEIVE_STICKY_EVENT,
    receiveStateCapability(RTC_SLOT_EVENT_TYPE),
  ];
}

/** How long pushed sticky memberships wait for others to join their batch, by default (ms). */
export const STICKY_BATCH_MS = 20;

/** Options of `widgetStateSource` / `WidgetStateSource`. */
export interface WidgetStateSourceOptions {
  /**
   * How to get the state the host had before we listened. `"auto"` (default): on the widget's `ready`,
   * read it with `readStateEvents` only if the host does not push state (`update_state`); otherwise its
   * first push is the initial state. `"now"`: read at once (the source was made after `ready`, so the
   * host's initial push may have been missed; best effort). `"never"`.
   */
  backfill?: "auto" | "now" | "never";
  /**
   * The clock a pushed sticky membership's remaining time (TTL) is counted on, and the batching timer.
   * Give it the scheduler `callMembers$` runs on (tests on virtual time). Default RxJS's `asyncScheduler`.
   */
  scheduler?: SchedulerLike;
  /**
   * Sticky memberships pushed within this long (ms) of the first one reach the observer as one snapshot
   * (a host pushes each as its own `send_event`). Default `STICKY_BATCH_MS` (20); 0 still batches the
   * events of one tick.
   */
  stickyBatchMs?: number;
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
 * and state key, and the sticky memberships it pushes with `send_event` (MSC4407). Make it **before**
 * `widgetApi.start()` (as matrix-js-sdk's RoomWidgetClient does) so the host's initial pushes are not
 * missed, and request `widgetObserverCapabilities(roomId)`. It listens from creation until `close()`;
 * subscribers get the latest snapshot at once.
 */
export class WidgetStateSource extends Observable<RoomStateSnapshot> {
  private readonly callEvents = new Map<string, StateEventLike>();
  private readonly memberEvents = new Map<string, StateEventLike>();
  private readonly slotEvents = new Map<string, StateEventLike>();
  private readonly sticky = new PushedStickyEvents();
  private readonly snapshots = new ReplaySubject<RoomStateSnapshot>(1);
  private readonly scheduler: SchedulerLike;
  private readonly stickyBatchMs: number;
  /** Sticky memberships taken since the last snapshot, in the order they came. */
  private pendingSticky: StateEventLike[] = [];
  private stickyFlush: Subscription | undefined;
  private synced = false;
  private closed = false;

  constructor(
    private readonly widgetApi: WidgetStateApi,
    /** The room whose state this source follows. */
    readonly roomId: string,
    options: WidgetStateSourceOptions = {},
  ) {
    super((subscriber) => this.snapshots.subscribe(subscriber));
    this.scheduler = options.scheduler ?? asyncScheduler;
    const batch = options.stickyBatchMs ?? STICKY_BATCH_MS;
    if (!(Number.isFinite(batch) && batch >= 0 && batch < 2 ** 31))
      throw new RangeError(`stickyBatchMs must be a number of ms from 0 to 2^31 - 1, got ${String(batch)}`);
    this.stickyBatchMs = batch;
    this.widgetApi.on(UPDATE_STATE_ACTION, this.onUpdateState);
    this.widgetApi.on(SEND_EVENT_ACTION, this.onSendEvent);
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
    this.widgetApi.off(SEND_EVENT_ACTION, this.onSendEvent);
    this.widgetApi.off("ready", this.onReady);
    this.stickyFlush?.unsubscribe();
    this.stickyFlush = undefined;
    this.pendingSticky = [];
    this.sticky.clear();
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
    const changes = this.takePendingSticky();
    if (Array.isArray(state)) for (const raw of state) this.merge(raw as RawStateEvent, true, changes);
    const wasSynced = this.synced;
    this.synced = true;
    if (!wasSynced || hasChanges(changes)) this.publish(changes);
  };

  /**
   * A room event pushed by the host (`send_event`): a sticky membership of our room is kept and joins
   * the current batch; anything else is only acknowledged.
   */
  private readonly onSendEvent = (ev: CustomEvent<{ data?: unknown }>): void => {
    // Acknowledge unless another listener (e.g. js-sdk's RoomWidgetClient) already does.
    if (!ev.defaultPrevented) {
      ev.preventDefault();
      this.widgetApi.transport.reply(ev.detail as never, {});
    }
    if (this.closed) return;
    const raw = ev.detail?.data;
    if (!isPushedStickyMembership(raw, this.roomId)) return;
    const taken = this.sticky.take(raw, this.scheduler.now());
    if (!taken) return;
    this.pendingSticky.push(taken as unknown as StateEventLike);
    this.stickyFlush ??= this.scheduler.schedule(() => {
      this.stickyFlush = undefined;
      const changes = this.takePendingSticky();
      if (hasChanges(changes)) this.publish(changes);
    }, this.stickyBatchMs);
  };

  /** The sticky memberships waiting for their batch, as the start of a snapshot's changes. */
  private takePendingSticky(): MutableChanges {
    this.stickyFlush?.unsubscribe();
    this.stickyFlush = undefined;
    const events = this.pendingSticky;
    this.pendingSticky = [];
    return { events };
  }

  /** Read the current state through `readStateEvents` (keys the host already pushed are kept). */
  async backfill(): Promise<void> {
    const types = [CALL_MEMBER_EVENT_TYPE, ROOM_MEMBER_EVENT_TYPE];
    // Slot state only where the host lets us read it (a refused read is an error answer for nothing).
    if (this.widgetApi.hasCapability?.(receiveStateCapability(RTC_SLOT_EVENT_TYPE)))
      types.push(RTC_SLOT_EVENT_TYPE);
    const results = await Promise.allSettled(
      types.map((type) => this.widgetApi.readStateEvents(type, undefined, undefined, [this.roomId])),
    );
    if (this.closed) return;
    const changes = this.takePendingSticky();
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
          : raw.type === RTC_SLOT_EVENT_TYPE
            ? this.slotEvents
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
    const sticky = this.sticky;
    const scheduler = this.scheduler;
    const slotEvents = this.slotEvents;
    const snapshot: RoomStateSnapshot = {
      synced: this.synced,
      get callMemberEvents(): StateEventLike[] {
        return list();
      },
      // Read at each full read, not kept: stickiness runs out without a new snapshot.
      get stickyMemberEvents(): unknown[] {
        return sticky.current(scheduler.now());
      },
      slotEventOf: (slotId) => slotEvents.get(slotId),
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
