import type { Logger } from "loglevel";
import type { Subscription } from "rxjs";
import { CALL_MEMBER_EVENT_TYPE, isLeftContent, sameContent } from "../membership/content.js";
import { toRoomStateSource, type RoomStateSnapshot, type SourceLike } from "../membership/observer.js";
import type { Clock } from "./clock.js";

export interface RoomStateWatchOptions {
  roomId: string;
  userId: string;
  /** Our membership's state key. */
  stateKey: string;
  /** How long the view may take to show our own write before we stop trusting it (a sync round trip). */
  graceMs: number;
  /** When the manager's last membership write was confirmed, and what it wrote (undefined: none held). */
  held: () => { since: number; content: Record<string, unknown> } | undefined;
  /** The view shows no membership at our key although we hold one: the machine checks and repairs. */
  onMissing: () => void;
  /** The view started (or stopped) showing our own writes: while it does, it watches our key for us. */
  onLive: (live: boolean) => void;
  /** Our own room membership as the view shows it (leave, ban), when it is not `join`. */
  onRoomMembership?: (membership: string) => void;
}

/**
 * Watch our own key in a view of the room (a synced `MatrixClient`, the widget host's state pushes). The
 * server's answers to our own requests cannot show that someone else, or another tab of this device,
 * replaced our membership with `{}` while our delayed leave lives on; the room's state can.
 *
 * The view is trusted ("live") only once it has shown our own last write: a client that does not sync,
 * or a host that does not push, shows nothing, and the machine then reads our key itself. While live, a
 * missing membership is reported at once; before the view caught up with our write, only after
 * `graceMs` (it may lag by a sync). Only a missing membership counts, never a different one, so two tabs
 * of one device in one call do not fight.
 */
export function watchRoomState(
  source: SourceLike,
  options: RoomStateWatchOptions,
  clock: Clock,
  log: Logger,
): RoomStateWatch {
  let latest: RoomStateSnapshot | undefined;
  /** The write the view has caught up with (its confirmation time), if any. */
  let seenWriteAt: number | undefined;
  let live = false;
  let cancelCheck: (() => void) | undefined;

  const setLive = (value: boolean) => {
    if (live === value) return;
    live = value;
    options.onLive(value);
  };

  // Our key's content, kept from snapshot to snapshot: the whole call is read only from a snapshot
  // without `changes` (the first one, a source that only gives full lists); otherwise only the events
  // that changed are looked at, so a sync costs the watch O(events in it), not O(call).
  let ownContent: Record<string, unknown> | undefined;
  let firstSnapshot = true;
  const contentOf = (e: { content: unknown }): Record<string, unknown> | undefined =>
    typeof e.content === "object" && e.content !== null ? (e.content as Record<string, unknown>) : undefined;
  const follow = (snapshot: RoomStateSnapshot): void => {
    const changes = firstSnapshot ? undefined : snapshot.changes;
    firstSnapshot = false;
    if (changes) {
      for (const e of changes.events)
        if (e.type === CALL_MEMBER_EVENT_TYPE && e.state_key === options.stateKey) ownContent = contentOf(e);
      return;
    }
    ownContent = undefined;
    for (const e of snapshot.callMemberEvents)
      if (e.type === CALL_MEMBER_EVENT_TYPE && e.state_key === options.stateKey) ownContent = contentOf(e);
  };

  const judge = (): void => {
    cancelCheck?.();
    cancelCheck = undefined;
    const snapshot = latest;
    const held = options.held();
    if (!snapshot?.synced || !held) return; // nothing to compare yet (joining, rejoining, leaving)
    const own = ownContent;
    if (own && sameContent(own, held.content)) {
      seenWriteAt = held.since;
      return setLive(true);
    }
    const present = own !== undefined && !isLeftContent(own);
    const caughtUp = seenWriteAt === held.since;
    if (caughtUp && !present) return options.onMissing();
    if (caughtUp) return; // another tab's membership at our key: others list this device
    // The view has not shown our last write yet: give it the grace period, then stop trusting it.
    const wait = held.since + options.graceMs - clock.now();
    if (wait > 0) {
      cancelCheck = clock.after(wait, judge);
      return;
    }
    const wasLive = live;
    if (wasLive) log.debug("the room view did not show our last write in time; reading our key instead");
    setLive(false);
    // A view that used to show our writes and now shows none: ask (the machine reads our key first).
    if (wasLive && !present) options.onMissing();
  };

  const subscription = toRoomStateSource(source, options.roomId, clock.scheduler).subscribe({
    next: (snapshot) => {
      latest = snapshot;
      follow(snapshot);
      const membership = snapshot.synced ? snapshot.membershipOf(options.userId) : undefined;
      if (membership !== undefined && membership !== "join") options.onRoomMembership?.(membership);
      judge();
    },
    error: (error: unknown) => {
      log.warn("the room state view failed; no longer watching it", error);
      setLive(false);
    },
    complete: () => setLive(false),
  });
  subscription.add(() => cancelCheck?.());
  /** The manager wrote again: look at the view with the new write in mind. */
  return Object.assign(subscription, { recheck: judge });
}

/** The subscription `watchRoomState` returns: also told when the manager's held membership changes. */
export type RoomStateWatch = Subscription & { recheck(): void };
