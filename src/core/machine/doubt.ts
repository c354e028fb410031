/**
 * Schedules of unknown outcome and the membership they may take down. A schedule of the heartbeat lane
 * whose answer never came (or whose error may have come after the server acted) may have made a delayed
 * leave at our key whose id we never learned: it fires `{}` a delay after it reached the server. Where the
 * backend can list our delayed events, a sweep finds and cancels it (orphans.ts). But while no listing
 * gets through, or where nothing can list, nothing tells us whether it fired: from the earliest moment it
 * can (ScheduleDoubt.firesFrom) until it surely has (`until`), we say we probably left, write nothing it
 * could take down unseen, and once that is over (or a listing sent after it could still arrive found and
 * cancelled everything of ours we did not know), a fresh write puts the membership back and says so.
 *
 * Found by the randomized invariants (Synapse < 1.127, no eyes): our own write cancelled the join's
 * delayed leave; the recovery's schedule reached the server just before the network went down, its answer
 * never came and no listing got through; the delayed leave it made fired over our membership while we
 * said `reconnecting` with probablyLeft false, and the membership went back later saying nothing.
 */
import { isSticky } from "./format.js";
import { probablyFiredUncancelled } from "./orphans.js";
import { resumeWrites } from "./writes.js";
import type { CallState, MachineState, ScheduleDoubt } from "./types.js";
import type { Ctx } from "./context.js";

/**
 * Can what the doubtful schedule made take down this call's membership? In the state format every call
 * of ours writes the same key; in the sticky format each call has its own, and only its own schedules'.
 */
function reaches(c: Ctx, d: ScheduleDoubt, call: CallState): boolean {
  return !isSticky(c) || d.callId === call.id;
}

/**
 * A delayed leave a schedule of ours of unknown outcome made may fire over this call's membership now,
 * and nothing would see it: a membership written now could be taken down unseen, so none goes out.
 */
export function doubtHoldsWrites(c: Ctx, call: CallState): boolean {
  return (
    c.s.unknownSchedules?.some(
      (u) =>
        u.doubt !== undefined && u.doubt.firesFrom <= c.now && c.now < u.until && reaches(c, u.doubt, call),
    ) ?? false
  );
}

/**
 * A sweep listed our delayed events (the listing sent at `listedAt`) and every one at our key it did not
 * know is cancelled. A schedule that reached the server before that listing was sent made nothing that is
 * still pending; one that can no longer arrive is settled. One that may still arrive later fires a delay
 * after the listing at the earliest.
 * (A listing says nothing of one that fired before it: the probable leave said then stands, and the fresh
 * write it asked for, held until now, goes.)
 */
export function onListedAll(c: Ctx, listedAt: number): void {
  let changed = false;
  for (const u of c.s.unknownSchedules ?? []) {
    const d = u.doubt;
    if (!d) continue;
    if (listedAt >= d.arrivesBy) {
      u.doubt = undefined;
      changed = true;
    } else if (listedAt + d.delayMs > d.firesFrom) {
      d.firesFrom = listedAt + d.delayMs;
      d.reached = false;
      changed = true;
    }
  }
  if (changed) resumeWrites(c, c.s.call);
}

/** When a doubt begins (its probable fire is said) or ends (held writes go). */
export function doubtWakeAt(s: MachineState): number | undefined {
  let at: number | undefined;
  if (!s.unknownSchedules) return at;
  for (const u of s.unknownSchedules) {
    if (!u.doubt) continue;
    const t = u.doubt.reached ? u.until : Math.min(u.doubt.firesFrom, u.until);
    if (at === undefined || t < at) at = t;
  }
  return at;
}

export function onDoubtWake(c: Ctx): void {
  const list = c.s.unknownSchedules;
  if (!list) return;
  let ended = false;
  for (const u of list) {
    const d = u.doubt;
    if (!d) continue;
    if (u.until <= c.now) {
      ended = true;
      continue;
    }
    if (d.reached || c.now < d.firesFrom) continue;
    d.reached = true;
    // Others may see us gone from now on, and we could not tell: say so (a call without a membership
    // written has nothing to say; one written while this lasts says it as it lands, writes.ts).
    const call = c.s.call;
    if (call && reaches(c, d, call))
      probablyFiredUncancelled(
        c,
        "a delayed leave a schedule of ours may have made (no answer, and no listing found it)",
        "may have fired",
      );
  }
  // (What is past `until` surely fired or never existed: forgotten, as everywhere unknownSchedules is read.)
  const open = list.filter((u) => u.until > c.now);
  c.s.unknownSchedules = open.length > 0 ? open : undefined;
  if (ended) resumeWrites(c, c.s.call);
}
