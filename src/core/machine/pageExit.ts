/**
 * Leaving when the page goes away (issue 22 part 1): a browser tab closed or navigated away, a widget's
 * iframe removed, a page put in the back/forward cache or frozen. The driver reports `page-hide`
 * (pagehide, freeze) and `page-show` (pageshow from the back/forward cache, resume); this module
 * decides what to fire and what the call does after.
 *
 * On hide, the delayed leave of our call is fired at once: the driver sends it with a request that
 * outlives the page (fetch `keepalive`; in a widget, the widget API's message to its host), so others
 * see us leave within a round trip instead of one delay. Nothing waits for the answer: the page may be
 * gone before it comes. The call is then parked: it holds no delayed leave and no membership, and
 * sends nothing (a page that lives on in the back/forward cache or frozen must not write a membership
 * with no delayed leave behind it, nor restart the id it fired). On show it joins again (a new delayed
 * leave, then a fresh membership); with `autoRejoin: false` it is `left` at once and stays out.
 *
 * Not fired, so the delayed leave does its work one delay later:
 * - while a membership write is in flight, or one whose answer never came may still land (lateWrites.ts):
 *   it could land after the `{}` and stay, with no delayed leave behind it, until its `expires` (hours);
 *   left alone, the delayed leave removes what lands within the delay;
 * - before a membership was ever sent (nothing to take down), and with no delayed leave known to be
 *   ours (joining, degraded mode, recovering).
 * A leave already under way fires its delayed leave too (its own request may die with the page), and
 * goes on as it was.
 */
import { resetDelegation } from "./delegation.js";
import { LATE_WRITE_HORIZON_MS } from "../limits.js";
import { endCall } from "./calls.js";
import { log, setDelayId, setOwnMembership, setProbablyLeft, setState, type Ctx } from "./context.js";
import { startSchedule } from "./schedule.js";
import { abortIdleTasks } from "./tasks.js";
import { wantWrite } from "./writes.js";
import type { CallState, MachineState } from "./types.js";

/** The delay id to fire now that the page goes away, or undefined when firing is not safe or moot (pure). */
export function delayIdToFireOnHide(s: MachineState, now: number): string | undefined {
  if (s.disposed) return undefined;
  if (s.lateWrites?.some((w) => w.sentAt + LATE_WRITE_HORIZON_MS > now)) return undefined;
  const job = s.leave;
  const leaving = s.leaveCall;
  if (job && leaving) {
    // Before the leave job fires (or while its send is on the way); not when it cancels (nothing was
    // written) or writes {} itself (the delayed leave is gone, or its send failed).
    const early = job.step !== "cancel" && job.step !== "empty" && job.step !== "cancel-after-empty";
    if (early && firable(leaving)) return leaving.delayId;
  }
  const call = s.call;
  if (!call || call.ended || call.hidden || call.delayed !== "armed") return undefined;
  return firable(call) ? call.delayId : undefined;
}

function firable(call: CallState): boolean {
  return call.delayId !== undefined && call.membershipAttempted && call.writer === undefined;
}

/** The page is going away: fire our delayed leave, and park the call until the page is shown. */
export function onPageHide(c: Ctx): void {
  const delayId = delayIdToFireOnHide(c.s, c.now);
  if (delayId === undefined) {
    log(c, "debug", "the page is going away; no delayed leave to fire now (it fires by itself)");
    return;
  }
  log(c, "info", "the page is going away: firing our delayed leave now");
  c.out.push({ type: "leave-on-hide", delayId });
  const call = c.s.call;
  // A leave job goes on as it was: it confirms the leave if the page lives on.
  if (call && !call.ended && !c.s.leave && call.delayId === delayId) park(c, call);
}

function park(c: Ctx, call: CallState): void {
  call.delayId = undefined;
  call.delayed = "pending";
  call.lastSent = undefined;
  call.watchLeave = false;
  call.refreshAt = call.refreshAfterFireAt = call.checkAt = undefined;
  call.wantedWrite = undefined;
  call.expiresAt = undefined;
  call.expired = false;
  resetDelegation(c, call);
  setDelayId(c, undefined);
  setOwnMembership(c, undefined);
  setProbablyLeft(c, true);
  if (!c.env.autoRejoin) {
    c.s.wantJoined = false;
    endCall(c, call);
    c.s.call = undefined;
    setState(c, { kind: "left", reason: "page-hidden" });
    return;
  }
  // No restart of the id we fired, no write until a new delayed leave is armed: the heartbeat's idle
  // retries end now, a restart in flight is ignored when it answers (the lane moved on).
  call.hidden = true;
  call.heartbeatStopped = true;
  call.lane = { k: "stopped" };
  abortIdleTasks(c);
  setState(c, { kind: "reconnecting", reason: "page-hidden", probablyLeft: true });
}

/** The page is back (back/forward cache restore, resume): join again if we parked the call. */
export function onPageShow(c: Ctx): void {
  const call = c.s.call;
  if (!call || call.ended || !call.hidden || c.s.leave) return;
  log(c, "info", "the page is back: joining the call again");
  call.hidden = undefined;
  call.heartbeatStopped = false;
  // The server holds `{}` at our key: the next membership is a fresh join, once a delayed leave is armed.
  wantWrite(call, "fresh");
  startSchedule(c, call, "recover");
}
