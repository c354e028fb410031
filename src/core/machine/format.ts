/**
 * The membership format, as a seam: what each request is, and how long a write holds. The machine is
 * one whichever format it speaks (the lanes, budgets, recovery, orphans, the late-write guard, the eyes);
 * it asks this module only:
 *
 * - what the delayed leave is (`scheduleRequest`): `{}` at our state key, or a delayed sticky event with
 *   only `slot_id` and our sticky key (MSC4143's "left");
 * - what a membership write is (`writeRequest`, `membershipContent`): the state event at our key, or a
 *   sticky `m.rtc.member` event keyed by this call's member id;
 * - what the fallback leave is (`leaveContent`): `{}`, or the same content as the delayed leave;
 * - how long a write counts for others (`lifetimeMs`) and when to send it again (`refreshAfterMs`): the
 *   state format's `expires`, or the stickiness (at most 1 h) the event was sent with;
 * - how to read our membership back (`readRequest`): our state key, or our last sticky event by id
 *   (nobody else can write our sticky key; a moderator's redaction empties the event);
 * - which listed delayed events are ours (`ownsListed`), and whether a dead page's can hurt us.
 *
 * The sticky format's member id is fresh per call (the driver passes one with `join`), so a dead page's
 * delayed leave or another tab of this device never touches our membership.
 */
import { makeMembershipContent, LEFT_CONTENT, type MembershipContent } from "../../membership/content.js";
import { makeRtcMemberContent, MAX_STICKY_DURATION_MS, rtcLeaveContent } from "../../membership/rtcMember.js";
import { isLeftContent, sameContent } from "../../membership/content.js";
import type { PendingDelayedEvent } from "../../backends/types.js";
import { refreshIntervalMs } from "../config.js";
import type { Ctx } from "./context.js";
import type { CallState, MembershipFormat, Request } from "./types.js";

/** The format in force (the app's, unless it fell back to state). */
export function formatOf(c: Ctx): MembershipFormat {
  return c.s.format ?? c.env.format ?? "state";
}

export function isSticky(c: Ctx): boolean {
  return formatOf(c) === "sticky";
}

/** How long the sticky format's events stay sticky (the app's option, at most 1 h). */
export function stickyDurationMs(c: Ctx): number {
  return Math.min(c.env.stickyDurationMs ?? MAX_STICKY_DURATION_MS, MAX_STICKY_DURATION_MS);
}

/** A call's sticky key (its member id). */
function keyOf(call: CallState | undefined): string {
  return call?.memberId ?? "";
}

/** The delayed leave of `call` (or of a leave's guard), scheduled with `delayMs`. */
export function scheduleRequest(
  c: Ctx,
  call: CallState | undefined,
  delayMs: number,
  overMembership = false,
): Request {
  if (isSticky(c)) {
    const key = keyOf(call);
    return {
      kind: "schedule",
      delayMs,
      sticky: { key, durationMs: stickyDurationMs(c), content: rtcLeaveContent(c.s.fields.slot, key) },
    };
  }
  return overMembership ? { kind: "schedule", delayMs, overMembership } : { kind: "schedule", delayMs };
}

/** The membership content of `call`: state (`created_ts` and `expires`, see writes.ts) or sticky. */
export function membershipContent(
  c: Ctx,
  call: CallState,
  createdTs: number | undefined,
  serverNow: number,
  windowMs: number,
): MembershipContent {
  if (isSticky(c)) return makeRtcMemberContent(c.s.fields, keyOf(call)) as unknown as MembershipContent;
  return makeMembershipContent(c.s.fields, createdTs, serverNow, windowMs);
}

/** The write of `content` for `call`, counting for `lifetimeMs`. */
export function writeRequest(
  c: Ctx,
  call: CallState | undefined,
  content: Record<string, unknown>,
  lifetimeMs: number,
): Request {
  if (isSticky(c)) return { kind: "write", content, sticky: { key: keyOf(call), durationMs: lifetimeMs } };
  return { kind: "write", content };
}

/** The fallback leave of `call`: written when its delayed leave is gone. */
export function leaveContent(c: Ctx, call: CallState | undefined): Record<string, unknown> {
  return isSticky(c) ? rtcLeaveContent(c.s.fields.slot, keyOf(call)) : { ...LEFT_CONTENT };
}

/**
 * How long a write counts for others, given the state format's expiry window: that window (`expires`),
 * or the stickiness, which a server caps at 1 h (the window too, in degraded mode).
 */
export function lifetimeMs(c: Ctx, windowMs: number): number {
  return isSticky(c) ? Math.min(windowMs, stickyDurationMs(c)) : windowMs;
}

/**
 * When to write again, after a write that counts for `lifetime`: half the state format's window (it
 * tracks real time), or the stickiness less the time a restart and a write may take (the refresh waits
 * for a restart first: at most one heartbeat interval).
 */
export function refreshAfterMs(c: Ctx, lifetime: number): number {
  if (!isSticky(c)) return refreshIntervalMs(lifetime);
  const t = c.s.timing;
  const margin = Math.min(lifetime / 2, t.heartbeatIntervalMs + t.requestTimeoutMs + t.stateRequestTimeoutMs);
  return Math.max(1, Math.round(lifetime - margin));
}

/** Every sticky write is a new event (new stickiness); an identical state event is dropped by servers. */
export function writesRenew(c: Ctx): boolean {
  return isSticky(c);
}

/** Does the periodic refresh wait for a restart of the delayed leave first (js-sdk's sticky order)? */
export function refreshAfterRestart(c: Ctx): boolean {
  return isSticky(c);
}

/** How to read our membership back now (undefined: nothing to read it by). */
export function readRequest(c: Ctx, call: CallState | undefined): Request | undefined {
  if (!isSticky(c)) return { kind: "read" };
  return call?.lastEventId === undefined ? undefined : { kind: "read", eventId: call.lastEventId };
}

/**
 * What a read shows counts as removed by someone else: another content at our state key (another tab, a
 * moderator), or a sticky event of ours emptied by a redaction.
 */
export function removedByOthers(c: Ctx, current: Record<string, unknown>, lastSent: unknown): boolean {
  if (isSticky(c)) return isLeftContent(current);
  return !sameContent(current, lastSent);
}

/** Is this listed delayed event one of `call`'s delayed leaves? */
export function ownsListed(c: Ctx, e: PendingDelayedEvent, call: CallState | undefined): boolean {
  if (e.roomId !== c.env.roomId) return false;
  if (isSticky(c))
    return e.stateKey === undefined && e.stickyKey !== undefined && e.stickyKey === keyOf(call);
  return e.stateKey === c.env.stateKey;
}

/** Can a dead page's delayed leave hurt our membership (state: same key; sticky: never, keys are fresh)? */
export function predecessorsCanHurt(c: Ctx): boolean {
  return !isSticky(c);
}

/** The server's timestamp of a fresh membership is worth a read (state: later writes carry `created_ts`). */
export function wantsStamp(c: Ctx): boolean {
  return !isSticky(c);
}
