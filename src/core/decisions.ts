/**
 * The manager's remaining decisions that depend only on times and flags, as pure functions (no
 * promises, timers, I/O or clock reads: the current time is an argument). With src/core/policy.ts
 * (what each answer means, how long to wait), budget.ts (how many requests) and linkTiming.ts (how long
 * to wait for one), this is the manager's whole join / heartbeat / leave / error policy.
 */

export interface WriteGuardInput {
  now: number;
  /** "armed": a delayed leave of ours is pending; "none": degraded mode. */
  delayed: "pending" | "armed" | "none";
  /** Degraded after unrecognised answers and scheduling again: writes continue meanwhile. */
  rearming: boolean;
  /** Send time of the last schedule/restart that succeeded (the server fires a delay after it). */
  armedAt?: number;
  delayMs: number;
  /** The local timeout of one request: a write must land before the delayed leave can fire. */
  timeoutMs: number;
  /** Until then an orphan delayed leave of ours may still fire (a schedule of unknown outcome). */
  orphanWindowUntil: number;
  /** Whether the backend can list our delayed events (and so find and cancel such an orphan). */
  canListDelayed: boolean;
}

/**
 * May a membership write go out now? Only with a live delayed leave behind it that cannot fire
 * before the write lands, or in degraded mode; and, where orphans can be found and cancelled, not
 * while one may still fire and wipe what we write.
 */
export function mayWriteMembership(i: WriteGuardInput): boolean {
  if (i.canListDelayed && i.now < i.orphanWindowUntil) return false;
  if (i.delayed === "none" || i.rearming) return true;
  if (i.delayed !== "armed" || i.armedAt === undefined) return false;
  return i.now + i.timeoutMs < i.armedAt + i.delayMs;
}

/**
 * A restart answered "gone": did the server fire our leave (our membership is gone too), or lose the
 * delayed leave while it should still be pending? Judged by time, not by any flag: a stale flag turned
 * a 404 after our own write (Synapse < 1.127) into another fresh rejoin, forever.
 */
export function goneCause(now: number, armedAt: number, delayMs: number): "fired" | "lost" {
  return now >= armedAt + delayMs ? "fired" : "lost";
}

/** How long a recovery waits so that recoveries start at most once per `minGapMs` (0: go now). */
export function recoveryPauseMs(now: number, lastRecoveryAt: number | undefined, minGapMs: number): number {
  return lastRecoveryAt === undefined ? 0 : Math.max(0, lastRecoveryAt + minGapMs - now);
}

/**
 * A delay id that arrived late (after our timeout, or for a schedule we had given up on): the server
 * created it between the send and now, so it fires between `sentAt + delay` and `now + delay`.
 * Cancelling it matters until then (plus one request); if no cancel is confirmed by `latestFire`, it
 * has probably wiped our membership.
 */
export function lateIdDeadlines(
  sentAt: number | undefined,
  arrivedAt: number,
  delayMs: number,
  timeoutMs: number,
): { latestFire: number; cancelUntil: number; earliestFire?: number } {
  return {
    earliestFire: sentAt === undefined ? undefined : sentAt + delayMs,
    latestFire: arrivedAt + delayMs,
    cancelUntil: arrivedAt + delayMs + timeoutMs,
  };
}

/** When others stop listing a membership (js-sdk: created_ts + expires); undefined if unreadable. */
export function membershipExpiresAt(content: Record<string, unknown>): number | undefined {
  const at = Number(content.created_ts) + Number(content.expires);
  return Number.isFinite(at) ? at : undefined;
}

/** The keys of `patch` whose values differ from `current` (an unchanged update writes nothing). */
export function changedKeys<K extends string>(
  patch: Partial<Record<K, unknown>>,
  current: Partial<Record<K, unknown>>,
  keys: readonly K[],
): K[] {
  return keys.filter(
    (k) => patch[k] !== undefined && JSON.stringify(patch[k]) !== JSON.stringify(current[k]),
  );
}
