/**
 * `callMembers$(source, { manager })`: the shared evaluation of the source (one per source, room, slot and
 * scheduler, as without `manager`), with our own membership merged in from the manager's report
 * (`own.ts`). One overlay per evaluation and manager, shared by its subscribers. It emits once per
 * evaluation of the source and once per report that changes the list, never more.
 */
import { Observable, ReplaySubject, share, type SchedulerLike } from "rxjs";
import type { Slot } from "./content.js";
import { mergeOwnMembership, type OwnMembershipReport, type OwnMembershipReporter } from "./own.js";
import type { CallMembersSnapshot } from "./observer.js";

/** The room and slot a list with `manager` is for: the manager's, unless the options name the same. */
export function ownDefaults(
  manager: OwnMembershipReporter,
  roomId: string | undefined,
  slot: Slot | undefined,
  client: boolean,
): { roomId: string | undefined; slot: Slot } {
  const report = manager.ownMembershipReport;
  if (roomId !== undefined && client && roomId !== report.roomId)
    throw new TypeError(`callMembers$: roomId ${roomId} is not the manager's room ${report.roomId}`);
  if (slot !== undefined && (slot.application !== report.slot.application || slot.id !== report.slot.id))
    throw new TypeError(
      `callMembers$: slot ${slot.application}#${slot.id} is not the manager's slot ${report.slot.application}#${report.slot.id}`,
    );
  return { roomId: client ? report.roomId : roomId, slot: slot ?? report.slot };
}

function withOwn(
  base: Observable<CallMembersSnapshot>,
  manager: OwnMembershipReporter,
  slot: Slot,
  scheduler: SchedulerLike,
): Observable<CallMembersSnapshot> {
  return new Observable<CallMembersSnapshot>((subscriber) => {
    let snapshot: CallMembersSnapshot | undefined;
    let report: OwnMembershipReport | undefined;
    let last: CallMembersSnapshot | undefined;
    const publish = (at?: number): void => {
      if (!snapshot) return;
      // Before the source knows the room, nobody is listed, ourselves included: "not known yet".
      const members = snapshot.synced ? mergeOwnMembership(snapshot.members, report, slot) : snapshot.members;
      if (
        last &&
        last.synced === snapshot.synced &&
        last.rejected === snapshot.rejected &&
        last.members === members
      )
        return;
      last =
        members === snapshot.members && at === undefined
          ? snapshot
          : { ...snapshot, members, at: at ?? snapshot.at };
      subscriber.next(last);
    };
    // The report first: the source's current snapshot (replayed on subscription) is merged at once.
    const reports = manager.ownMembershipReport$.subscribe({
      next: (next) => {
        report = next;
        publish(scheduler.now());
      },
      // A disposed manager vouches for nothing any more: the view as it is.
      complete: () => {
        report = undefined;
        publish(scheduler.now());
      },
      error: () => {
        report = undefined;
        publish(scheduler.now());
      },
    });
    const snapshots = base.subscribe({
      next: (next) => {
        snapshot = next;
        publish();
      },
      error: (error: unknown) => subscriber.error(error),
      complete: () => subscriber.complete(),
    });
    return () => {
      snapshots.unsubscribe();
      reports.unsubscribe();
    };
  });
}

const overlays = new WeakMap<object, WeakMap<OwnMembershipReporter, Observable<CallMembersSnapshot>>>();

/** The shared overlay of `base` (a shared evaluation) with `manager`'s report. */
export function sharedOwnOverlay(
  base: Observable<CallMembersSnapshot>,
  manager: OwnMembershipReporter,
  slot: Slot,
  scheduler: SchedulerLike,
): Observable<CallMembersSnapshot> {
  let byManager = overlays.get(base);
  if (!byManager) overlays.set(base, (byManager = new WeakMap()));
  let overlay = byManager.get(manager);
  if (!overlay) {
    overlay = withOwn(base, manager, slot, scheduler).pipe(
      share({
        connector: () => new ReplaySubject<CallMembersSnapshot>(1),
        resetOnError: true,
        resetOnComplete: true,
        resetOnRefCountZero: true,
      }),
    );
    byManager.set(manager, overlay);
  }
  return overlay;
}
