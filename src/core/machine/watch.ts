/**
 * Eyes on our own key. "Connected" claims what others see, and the server's answers to our own requests
 * cannot show that another writer (another tab of this device, a page that died without leaving, a
 * moderator) replaced our membership while our delayed leave lives on. Two ways to see it:
 *
 * - the room view (a synced client, the widget host's state pushes): live once it has shown our own last
 *   write (the driver feeds `view` events and `membership-missing`, src/manager/roomStateWatch.ts);
 * - without a live view, a read of our key every `membershipCheckIntervalMs` while we hold a membership.
 *
 * With neither (a widget host that refused every read capability), `joined` says so
 * (`membershipWatched: false`) instead of claiming what it cannot vouch for.
 *
 * Also here: the server's timestamp of our first membership event (a `stamp` read after a fresh write),
 * which later writes carry as `created_ts` and which tells the server's clock from the device's.
 */
import { MembershipError } from "../../errors.js";
import type { StateEventSnapshot } from "../../backends/types.js";
import { sameContent } from "../../membership/content.js";
import type { MembershipState } from "../../manager/state.js";
import { CLOCK_SKEW_MARGIN_MS } from "../limits.js";
import {
  emitError,
  log,
  setDelayId,
  setOwnMembership,
  setProbablyLeft,
  setState,
  type Ctx,
} from "./context.js";
import { endCall } from "./calls.js";
import { askOnce, startTask } from "./tasks.js";
import { resumeWrites } from "./writes.js";
import { readRequest } from "./format.js";
import type { CallState, Outcome, Task } from "./types.js";

/** Can we read our key back at all (the backend has a read, and did not say it lost it)? */
export function canReadKey(c: Ctx): boolean {
  return c.env.canRead && c.s.readable;
}

/** Can the manager see another writer remove our membership? */
export function watchesMembership(c: Ctx): boolean {
  return c.s.viewLive || canReadKey(c);
}

/** The `joined` state, saying so when nobody watches our key. */
export function joinedState(c: Ctx, delayedLeave: boolean): MembershipState {
  return watchesMembership(c)
    ? { kind: "joined", delayedLeave }
    : { kind: "joined", delayedLeave, membershipWatched: false };
}

/** What we can vouch for changed: a `joined` state says it again. */
function restateJoined(c: Ctx): void {
  const st = c.s.out.state;
  if (st.kind === "joined") setState(c, joinedState(c, st.delayedLeave));
}

/** The next periodic read, if the call holds a membership nobody else watches for us. */
export function scheduleCheck(c: Ctx, call: CallState): void {
  call.checkAt =
    !call.ended && call.lastSent && !c.s.viewLive && canReadKey(c) && readRequest(c, call)
      ? c.now + c.s.timing.membershipCheckIntervalMs
      : undefined;
}

export function checkWakeAt(call: CallState): number | undefined {
  return call.checkAt;
}

/**
 * Without a room view, every ROOM_MEMBERSHIP_EVERY-th check also reads our own room membership: a kicked
 * or banned user's reads of room state answer the state as it was when they left (Synapse), and the
 * server keeps restarting a non-member's delayed leave, so nothing else would tell.
 */
export const ROOM_MEMBERSHIP_EVERY = 4;

/** Time for the periodic read of our key. */
export function onCheckWake(c: Ctx, call: CallState): void {
  call.checkAt = undefined;
  const sent = call.lastSent;
  const read = readRequest(c, call);
  if (call.ended || !sent || c.s.viewLive || !canReadKey(c) || call.checkingMissing || !read) return;
  call.checks = (call.checks ?? 0) + 1;
  if (c.env.canReadRoomMembership && call.checks % ROOM_MEMBERSHIP_EVERY === 0)
    askOnce(c, { kind: "read-room-membership" }, { kind: "read-room-membership" }, "send-state", {
      callId: call.id,
    });
  call.checkingMissing = true;
  askOnce(c, { kind: "read-holds", content: sent, why: "interval" }, read, "send-state", {
    callId: call.id,
  });
}

/** The room view started (or stopped) watching our key. */
export function onView(c: Ctx, live: boolean): void {
  if (c.s.viewLive === live) return;
  c.s.viewLive = live;
  log(c, "debug", live ? "the room view watches our membership" : "the room view no longer watches it");
  const call = c.s.call;
  if (call && !call.ended) scheduleCheck(c, call);
  restateJoined(c);
}

/** The backend said it cannot read our key (a widget host refused the capability). */
export function onUnreadable(c: Ctx): void {
  if (!c.s.readable) return;
  c.s.readable = false;
  log(c, "warn", "our membership cannot be read back: nobody can notice another writer removing it");
  const call = c.s.call;
  if (call) call.checkAt = undefined;
  restateJoined(c);
}

/** A fresh membership landed: ask the server for its timestamp (once per call, when we can read). */
export function askStamp(c: Ctx, call: CallState, content: CallState["lastSent"], sentAt: number): void {
  const read = readRequest(c, call);
  if (!content || !canReadKey(c) || !read) return;
  call.stamping = true;
  // Not on the heartbeat's clock: a state read's timeout, retried while a slow or busy server answers,
  // within two of them (the writes that wait for it are held no longer than that).
  startTask(c, {
    purpose: { kind: "stamp", content, sentAt, answeredAt: c.now },
    request: read,
    op: "send-state",
    scope: "call",
    callId: call.id,
    retry: "retryable",
    capMs: c.s.timing.retryMaxMs,
    timeoutMs: c.s.timing.stateRequestTimeoutMs,
    until: c.now + 2 * c.s.timing.stateRequestTimeoutMs,
    measures: false,
  });
}

export function onStampDone(c: Ctx, call: CallState | undefined, task: Task, outcome: Outcome): void {
  if (task.purpose.kind !== "stamp") return;
  if (call) call.stamping = undefined;
  learnStamp(c, call, task, outcome);
  // Writes that waited for it go now (with created_ts if it was learnt, without otherwise).
  resumeWrites(c, call);
}

function learnStamp(c: Ctx, call: CallState | undefined, task: Task, outcome: Outcome): void {
  if (task.purpose.kind !== "stamp") return;
  if (!outcome.ok) return log(c, "debug", "could not read back our membership's timestamp", outcome.error);
  const read = outcome.value as StateEventSnapshot | undefined;
  const ts = read?.originServerTs;
  // Only our own event's timestamp (another write may have landed since): then it is `created_ts`.
  if (
    !read ||
    typeof ts !== "number" ||
    !Number.isFinite(ts) ||
    !sameContent(read.content, task.purpose.content)
  )
    return;
  const { sentAt, answeredAt } = task.purpose;
  // The server stamped it between our send and its answer: the middle is the best estimate.
  c.s.serverOffsetMs = Math.round(ts - (sentAt + answeredAt) / 2);
  c.s.serverOffsetSlackMs = Math.ceil((answeredAt - sentAt) / 2);
  if (call && !call.ended && call.createdTs === undefined && call.lastSent === task.purpose.content)
    call.createdTs = ts;
  checkSkew(c);
}

/** Our own room membership, read now and then. */
export function onRoomMembershipRead(c: Ctx, outcome: Outcome): void {
  if (!outcome.ok) return log(c, "debug", "could not read our room membership", outcome.error);
  const membership = outcome.value;
  if (typeof membership === "string") onRoomMembership(c, membership);
}

/**
 * Our room membership is no longer `join`: kicked (leave by someone else), banned, or we left the room
 * from elsewhere. Others stop listing us at once; the call is over, whatever autoRejoin says, and the
 * manager stops its requests. (The delayed leave it leaves pending fires within one delay; a server
 * refuses it then, as it refuses every write of a non-member.)
 */
export function onRoomMembership(c: Ctx, membership: string): void {
  if (membership === "join") return;
  const call = c.s.call;
  if (!call || call.ended || c.s.leave) return;
  const reason = membership === "ban" ? "banned from" : "no longer in";
  log(c, "warn", `we are ${reason} the room (membership ${membership}): the call is over`);
  c.s.wantJoined = false;
  call.lane = { k: "stopped" };
  endCall(c, call);
  call.checkAt = undefined;
  c.s.call = undefined;
  setDelayId(c, undefined);
  setOwnMembership(c, undefined);
  setProbablyLeft(c, false);
  emitError(
    c,
    new MembershipError(
      `we are ${reason} the room (membership ${membership})`,
      "removed-from-room",
      "config",
    ),
  );
  setState(c, { kind: "left", reason: "removed-from-room" });
}

/** Say so, once, when the device's clock and the server's disagree by more than the margins allow. */
function checkSkew(c: Ctx): void {
  const offset = c.s.serverOffsetMs;
  if (offset === undefined || c.s.skewReported) return;
  const skewMs = c.wallNow - (c.now + offset);
  if (Math.abs(skewMs) <= CLOCK_SKEW_MARGIN_MS) return;
  c.s.skewReported = true;
  const side = skewMs > 0 ? "ahead of" : "behind";
  const message =
    `this device's clock is ${Math.round(Math.abs(skewMs) / 1000)} s ${side} the server's: our own ` +
    `memberships rest on the server's clock, but what this device judges by its clock (others' expiry) is off`;
  log(c, "warn", message);
  emitError(c, new MembershipError(message, "clock-skew", "config"));
}
