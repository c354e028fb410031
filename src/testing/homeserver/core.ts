/**
 * The server's state and the shared event pipeline, without any HTTP: users, rooms, delayed events,
 * rate limiters, transaction cache, filters. API modules and the public handle both work on this.
 */
import { realClock } from "./clock.js";
import { DelayedEventScheduler } from "./delayed-events.js";
import { FinalisedDelayedEvents, toFinalisedOutcome } from "./delayed-finalised.js";
import { limitExceeded, type JsonObject } from "./errors.js";
import { FaultRegistry } from "./faults.js";
import { IdGenerator } from "./ids.js";
import { delayedEventsEnabled, type Clock, type RateLimits, type ResolvedOptions } from "./options.js";
import { LeakyBucketLimiter } from "./rate-limiter.js";
import type { HandlerResult } from "./router.js";
import { RoomStore, type SendRequest, type SendResult } from "./rooms.js";
import type { SerializeOptions } from "./serialize.js";
import { activeStickyNames, StickyEventTable, stickyNames, stickyTopLevel } from "./sticky-events.js";
import { SyncNotifier } from "./sync.js";
import { UserStore } from "./users.js";

export type BucketName = keyof RateLimits;

export class HomeserverCore {
  public readonly ids: IdGenerator;
  public readonly users: UserStore;
  public readonly rooms: RoomStore;
  public readonly delayed: DelayedEventScheduler;
  /** Sent, cancelled and failed delayed events, for the merged MSC4140 shape. */
  public readonly finalised: FinalisedDelayedEvents;
  public readonly notifier = new SyncNotifier();
  public readonly faults = new FaultRegistry();
  /** Successful responses of `PUT …/send/{type}/{txnId}`, keyed on path + user + device (Synapse's txn cache). */
  public readonly transactions = new Map<string, HandlerResult>();
  /** Filters by `${userId}\0${filterId}`. */
  public readonly filters = new Map<string, JsonObject>();
  /** Account data by `${userId}\0${roomId or ""}\0${type}`. */
  public readonly accountData = new Map<string, JsonObject>();
  /** MSC4354: the unexpired sticky events /sync delivers beside the timeline. */
  public readonly sticky = new StickyEventTable();
  private readonly limiters: Record<BucketName, LeakyBucketLimiter> = {
    message: new LeakyBucketLimiter(),
    delayedEventMgmt: new LeakyBucketLimiter(),
  };

  public constructor(public options: ResolvedOptions) {
    this.ids = new IdGenerator(options.serverName, options.deterministicIds);
    this.users = new UserStore(options.serverName, this.ids);
    this.rooms = new RoomStore(
      this.ids,
      () => this.now(),
      {
        onStateChanged: (event) =>
          this.delayed.onStateChanged(
            event.room_id,
            event.type,
            event.state_key as string,
            event.sender,
            this.options.ownWritesCancel,
          ),
        onNewEvent: (event) => {
          // Only while the feature is on, like Synapse's sticky_events table.
          const names = activeStickyNames(this.options);
          if (names) this.sticky.record(event, names.field, this.now());
          this.notifier.notify();
        },
      },
      () => this.options.maxEventBytes,
    );
    this.delayed = new DelayedEventScheduler(() => this.clock, {
      send: (row, originServerTs) => {
        // Synapse adds the sticky field when the event is sent (whatever the switch says by then), so
        // the stickiness counts from then.
        const sticky =
          row.stickyDurationMs !== undefined
            ? stickyTopLevel(stickyNames(this.options), row.stickyDurationMs)
            : undefined;
        return this.sendEvent(
          {
            roomId: row.roomId,
            sender: row.userId,
            type: row.type,
            content: row.content,
            stateKey: row.stateKey,
            deviceId: row.deviceId,
            delayId: row.delayId,
            originServerTs,
            ...(sticky ? { topLevel: sticky } : {}),
          },
          { ratelimit: true },
        ).event.event_id;
      },
    });
    this.finalised = new FinalisedDelayedEvents(
      () => ({ maxAgeMs: this.options.finalisedRetentionMs, maxPerUser: this.options.finalisedPerUser }),
      () => this.now(),
    );
    this.delayed.onFinalised = (row, exit) => this.finalised.record(row, toFinalisedOutcome(exit));
  }

  public get clock(): Clock {
    return this.options.clock ?? realClock;
  }

  public now(): number {
    return this.clock.now();
  }

  /** How events are serialized for clients right now (the sender-only delay id, MSC4354's TTL). */
  public serializeOptions(): SerializeOptions {
    const sticky = activeStickyNames(this.options);
    return {
      now: this.now(),
      delayIdInUnsigned: this.options.delayIdInUnsigned,
      ...(sticky ? { sticky } : {}),
    };
  }

  public get delayedEventsEnabled(): boolean {
    return delayedEventsEnabled(this.options);
  }

  /** Throws 429 M_LIMIT_EXCEEDED when the bucket for `key` is full. Exempt users never are. */
  public rateLimit(bucket: BucketName, key: string, userId?: string): void {
    if (userId !== undefined && this.options.rateLimitExemptUsers.includes(userId)) return;
    const result = this.limiters[bucket].take(
      `${bucket}\u0000${key}`,
      this.options.rateLimits[bucket],
      this.now(),
    );
    if (!result.allowed) throw limitExceeded(result.retryAfterMs);
  }

  /**
   * The event pipeline every client send and every fired delayed event goes through: `rc_message`
   * (membership changes too: Synapse's event pipeline limits them beside `rc_joins`, verified against
   * real Synapse 1.116–1.163 by the differential suite), then room checks and auth rules.
   */
  public sendEvent(req: SendRequest, opts: { ratelimit: boolean }): SendResult {
    if (opts.ratelimit) this.rateLimit("message", req.sender, req.sender);
    return this.rooms.send(req);
  }
}
