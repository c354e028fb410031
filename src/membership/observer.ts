/**
 * The call's members as an Observable, fed by room state: from a synced matrix-js-sdk `MatrixClient`
 * (`clientSource.ts`), from the widget API's `update_state` pushes (`widgetSource.ts`), or from plain
 * state events (`eventsSource.ts`). The members are kept by `CallMemberStore` (`store.ts`), which reads
 * only what each snapshot changed; this file runs one store per source, room, slot and scheduler,
 * shared by every subscriber (the app's list, the manager's own-membership check), with one timer for
 * the next expiry.
 *
 * No runtime import of matrix-js-sdk or matrix-widget-api: widget bundles stay small.
 */
import {
  asyncScheduler,
  distinctUntilChanged,
  filter,
  from,
  isObservable,
  map,
  mergeMap,
  Observable,
  ReplaySubject,
  share,
  type SchedulerLike,
  type Subscription,
} from "rxjs";
import { DEFAULT_SLOT, sameContent, type Slot } from "./content.js";
import { ownMembership, type CallMember, type RejectedMembership } from "./parse.js";
import { roomStateSource, type RoomStateClient } from "./clientSource.js";
import type { RoomStateSource } from "./snapshot.js";
import { CallMemberStore } from "./store.js";
import type { OwnMembershipReporter } from "./own.js";
import { ownDefaults, sharedOwnOverlay } from "./ownOverlay.js";

export {
  JS_SDK_EVENTS,
  plainStateEvent,
  roomStateSource,
  type MatrixEventLike,
  type RoomLike,
  type RoomStateClient,
  type RoomStateSourceOptions,
} from "./clientSource.js";
export {
  WidgetStateSource,
  widgetObserverCapabilities,
  widgetStateSource,
  type WidgetStateApi,
  type WidgetStateSourceOptions,
} from "./widgetSource.js";
export { eventsStateSource } from "./eventsSource.js";
export type { RoomStateChanges, RoomStateSnapshot, RoomStateSource } from "./snapshot.js";

/** Options of `callMembers$` and its relatives. */
export interface CallMembersOptions {
  /** Required when the source is a MatrixClient. */
  roomId?: string;
  /** Default `{application: "m.call", id: "ROOM"}`. */
  slot?: Slot;
  /** Time and expiry timers (tests pass a TestScheduler/VirtualTimeScheduler). Default asyncScheduler. */
  scheduler?: SchedulerLike;
  /**
   * Count only senders whose `m.room.member` is `join` (js-sdk's rule). Default true; false only for
   * sources that cannot know room membership and whose senders are known to be joined.
   */
  requireJoinedSender?: boolean;
  /**
   * Our own `MembershipManager`: the list then shows our device as the server answered it, before the
   * source's next sync does (`own.ts`). While the manager says `connected`, the list includes our
   * device; once the server confirmed our leave (or told the manager our membership is gone), the list
   * leaves out what we wrote, even if the source has not synced that yet. Other members are the
   * source's. The room and slot default to the manager's (naming others throws a TypeError).
   */
  manager?: OwnMembershipReporter;
}

/** One evaluation of the room's call state. */
export interface CallMembersSnapshot {
  /** false until the source has the room's state (an empty `members` then means "not known yet"). */
  synced: boolean;
  /** Oldest first: `members[0]` is the one `oldest_membership` focus selection follows. */
  members: CallMember[];
  /** Membership events that are not counted, and why (malformed, spoofed keys, expired, not joined). */
  rejected: RejectedMembership[];
  /** Scheduler time of this evaluation. */
  at: number;
}

/** Where call members are read from: a `RoomStateSource` observable, or a started js-sdk client. */
export type SourceLike = RoomStateSource | RoomStateClient;

/**
 * Members expiring close together leave the list together: after an expiry, the next one is looked at
 * no sooner than this (ms). A member is therefore listed at most this long past its expiry, and a wave
 * of expiries emits at most one list per this interval.
 */
export const EXPIRY_BATCH_MS = 250;

/** A `RoomStateSource` for any `SourceLike` (a started client needs `roomId`). */
export function toRoomStateSource(
  source: SourceLike,
  roomId: string | undefined,
  scheduler?: SchedulerLike,
): RoomStateSource {
  if (isObservable(source)) return source as RoomStateSource;
  if (roomId === undefined) throw new TypeError("callMembers$: roomId is required with a MatrixClient");
  return roomStateSource(source, roomId, { scheduler });
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/** One store on one source: emits a snapshot when the source is first read, then on every change. */
function track(
  source: RoomStateSource,
  slot: Slot,
  scheduler: SchedulerLike,
  requireJoined: boolean,
): Observable<CallMembersSnapshot> {
  return new Observable<CallMembersSnapshot>((subscriber) => {
    const store = new CallMemberStore({ slot, requireJoinedSender: requireJoined });
    let first = true;
    let lastSynced: boolean | undefined;
    let timer: Subscription | undefined;
    let timerAt = Infinity;
    let lastExpiryRun = -Infinity;
    // A source that completes (a fixed list of events) still changes with time: finish when nothing
    // more can expire.
    let sourceDone = false;

    const publish = (now: number): boolean => {
      const changes = store.takeChanges();
      if (lastSynced === store.synced && !changes.members && !changes.rejected) return false;
      lastSynced = store.synced;
      subscriber.next({
        synced: store.synced,
        members: store.members(),
        rejected: store.rejected(),
        at: now,
      });
      return changes.members;
    };
    const arm = (): void => {
      const next = store.nextExpiryAt();
      if (next === undefined) {
        timer?.unsubscribe();
        timer = undefined;
        timerAt = Infinity;
        if (sourceDone) subscriber.complete();
        return;
      }
      const due = Math.max(next, lastExpiryRun + EXPIRY_BATCH_MS);
      // An earlier wake-up is already set: it looks again then.
      if (timer && timerAt <= due) return;
      timer?.unsubscribe();
      timerAt = due;
      // setTimeout overflows past 2^31-1 ms (and would fire at once): wake up then and look again.
      timer = scheduler.schedule(onTimer, Math.min(Math.max(0, due - scheduler.now()), MAX_TIMER_MS));
    };
    const onTimer = (): void => {
      timer = undefined;
      timerAt = Infinity;
      const now = scheduler.now();
      store.expireDue(now);
      if (publish(now)) lastExpiryRun = now;
      arm();
    };

    const subscription = source.subscribe({
      next: (snapshot) => {
        const now = scheduler.now();
        if (first || !snapshot.changes) store.applyFull(snapshot, now);
        else store.applyChanges(snapshot, snapshot.changes, now);
        first = false;
        publish(now);
        arm();
      },
      error: (error: unknown) => subscriber.error(error),
      complete: () => {
        sourceDone = true;
        if (!timer) subscriber.complete();
      },
    });
    return () => {
      subscription.unsubscribe();
      timer?.unsubscribe();
    };
  });
}

/** The shared evaluations: one per source, scheduler and (room, slot, sender rule). */
const trackers = new WeakMap<object, WeakMap<SchedulerLike, Map<string, Observable<CallMembersSnapshot>>>>();

function sharedTracker(source: SourceLike, options: CallMembersOptions): Observable<CallMembersSnapshot> {
  const slot = options.slot ?? DEFAULT_SLOT;
  const scheduler = options.scheduler ?? asyncScheduler;
  const requireJoined = options.requireJoinedSender ?? true;
  const client = !isObservable(source);
  if (client && options.roomId === undefined)
    throw new TypeError("callMembers$: roomId is required with a MatrixClient");
  const key = JSON.stringify([client ? options.roomId : null, slot.application, slot.id, requireJoined]);
  let bySchedule = trackers.get(source);
  if (!bySchedule) trackers.set(source, (bySchedule = new WeakMap()));
  let byKey = bySchedule.get(scheduler);
  if (!byKey) bySchedule.set(scheduler, (byKey = new Map()));
  let tracker = byKey.get(key);
  if (!tracker) {
    const roomSource = client
      ? roomStateSource(source as RoomStateClient, options.roomId!, { scheduler })
      : (source as RoomStateSource);
    tracker = track(roomSource, slot, scheduler, requireJoined).pipe(
      share({
        connector: () => new ReplaySubject<CallMembersSnapshot>(1),
        resetOnError: true,
        resetOnComplete: true,
        resetOnRefCountZero: true,
      }),
    );
    byKey.set(key, tracker);
  }
  return tracker;
}

/** Same members, same order, same events: what `callMembers$` suppresses. Compares by event id. */
export function sameMembers(a: readonly CallMember[], b: readonly CallMember[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!sameMember(a[i], b[i])) return false;
  return true;
}

function sameMember(a: CallMember, b: CallMember): boolean {
  if (a === b) return true;
  if (
    a.stateKey !== b.stateKey ||
    a.eventId !== b.eventId ||
    a.orderTs !== b.orderTs ||
    a.expiresAt !== b.expiresAt
  )
    return false;
  // One event id is one content; only members from sources without event ids need a deeper look.
  return a.eventId !== undefined || a.content === b.content || sameContent(a.content, b.content);
}

/**
 * Every evaluation of the call's state: on subscription (the latest, shared with other subscribers), on
 * each change of the source's state that changed the members or the rejections, and when a member
 * expires. One evaluation per source snapshot (a sync, an `update_state` push, a list of events).
 */
export function callMembersState$(
  source: SourceLike,
  options: CallMembersOptions = {},
): Observable<CallMembersSnapshot> {
  const manager = options.manager;
  if (!manager) return sharedTracker(source, options);
  // Our own membership merged over the same shared evaluation as without `manager` (ownOverlay.ts).
  const { roomId, slot } = ownDefaults(manager, options.roomId, options.slot, !isObservable(source));
  const base = sharedTracker(source, { ...options, roomId, slot, manager: undefined });
  return sharedOwnOverlay(base, manager, slot, options.scheduler ?? asyncScheduler);
}

/**
 * The call's members for a room and slot, oldest first, once the source is synced; emits when the list
 * changes (a join, an update, a leave, an expiry). The same array object until the next change.
 */
export function callMembers$(source: SourceLike, options: CallMembersOptions = {}): Observable<CallMember[]> {
  return callMembersState$(source, options).pipe(
    filter((s) => s.synced),
    map((s) => s.members),
    distinctUntilChanged<CallMember[]>(sameMembers),
  );
}

/** Each membership event that is not counted, once per event and reason, as it appears. */
export function rejectedMemberships$(
  source: SourceLike,
  options: CallMembersOptions = {},
): Observable<RejectedMembership> {
  return new Observable<RejectedMembership>((subscriber) => {
    // The store keeps a rejection's object while its event and reason stay: compare by identity.
    let seen = new Set<RejectedMembership>();
    return callMembersState$(source, options)
      .pipe(
        mergeMap((s) => {
          const fresh = s.rejected.filter((r) => !seen.has(r));
          // Forget what is gone, so a rejection that comes back is reported again.
          seen = new Set(s.rejected);
          return from(fresh);
        }),
      )
      .subscribe(subscriber);
  });
}

/**
 * Our own device's valid membership as the room state shows it (undefined when the server holds none,
 * or only an expired or invalid one). A manager can compare it with what it believes it holds.
 */
export function ownMembership$(
  source: SourceLike,
  options: CallMembersOptions & { userId: string; deviceId: string },
): Observable<CallMember | undefined> {
  return callMembers$(source, options).pipe(
    map((members) => ownMembership(members, options.userId, options.deviceId)),
    distinctUntilChanged((a, b) => (a && b ? sameMember(a, b) : a === b)),
  );
}
