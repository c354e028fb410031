import type { Logger } from "loglevel";
import type { Subscription } from "rxjs";
import type { Slot } from "../membership/content.js";
import { ownMembership$, type SourceLike } from "../membership/observer.js";
import type { Clock } from "./clock.js";

export interface RoomStateWatchOptions {
  roomId: string;
  slot: Slot;
  userId: string;
  deviceId: string;
  /** How long our membership may be missing from the view before we act (the view lags by a sync). */
  graceMs: number;
  /** When the manager's last membership write was confirmed, if it believes the room holds it now. */
  heldSince: () => number | undefined;
  /** The room has shown no membership of ours for `graceMs`, and we wrote one at least that long ago. */
  onMissing: () => void;
}

/**
 * Watch our own device's membership in a synced view of the room (a `MatrixClient`, or the widget's
 * state updates). The server's answers to our own requests cannot show that someone else, or another
 * tab of this device, replaced it with `{}` while our delayed leave lives on; the room's state can.
 * Only a missing membership counts, never a different one, so two tabs in one call do not fight.
 */
export function watchRoomState(
  source: SourceLike,
  options: RoomStateWatchOptions,
  clock: Clock,
  log: Logger,
): Subscription {
  let cancel: (() => void) | undefined;
  const check = (): void => {
    cancel = undefined;
    const since = options.heldSince();
    if (since === undefined) return; // joining, rejoining or leaving: nothing to compare yet
    // The view may not have caught up with our own last write yet.
    const wait = since + options.graceMs - clock.now();
    if (wait > 0) cancel = clock.after(wait, check);
    else options.onMissing();
  };
  const subscription = ownMembership$(source, {
    roomId: options.roomId,
    slot: options.slot,
    userId: options.userId,
    deviceId: options.deviceId,
    scheduler: clock.scheduler,
  }).subscribe({
    next: (own) => {
      cancel?.();
      cancel = own ? undefined : clock.after(options.graceMs, check);
    },
    error: (error: unknown) => log.warn("the room state view failed; no longer watching it", error),
  });
  subscription.add(() => cancel?.());
  return subscription;
}
