/**
 * The membership lane: one write in flight at a time, later wishes coalesced into the next write, none
 * without a live delayed leave behind it; refreshes at half the expiry window.
 */
import type { MembershipContent } from "../../membership/content.js";
import { isRetryable } from "../policy.js";
import {
  lifetimeMs,
  membershipContent,
  refreshAfterMs,
  refreshAfterRestart,
  wantsStamp,
  writeRequest,
  writesRenew,
} from "./format.js";
import { serverNow, setOwnMembership, setProbablyLeft, setState, toError, type Ctx } from "./context.js";
import { failCall, unseenLeaveMayFire, writeIsProtected } from "./calls.js";
import { wakeHeartbeat } from "./heartbeat.js";
import { startLeaveJob } from "./leave.js";
import { probablyFiredUncancelled } from "./orphans.js";
import { startTask } from "./tasks.js";
import type { CallState, Outcome, Task, WriteKind } from "./types.js";
import { askStamp, joinedState, scheduleCheck } from "./watch.js";

const WRITE_RANK: Record<WriteKind, number> = { reassert: 0, refresh: 1, fresh: 2 };

/** Ask for a write of at least `kind` without starting one (the next writer run takes it). */
export function wantWrite(call: CallState, kind: WriteKind): void {
  if (!call.wantedWrite || WRITE_RANK[kind] > WRITE_RANK[call.wantedWrite]) call.wantedWrite = kind;
}

/** Ask for a write and start the writer if none is running. */
export function writeMembership(c: Ctx, call: CallState, kind: WriteKind): void {
  wantWrite(call, kind);
  if (call.writer === undefined) runWriter(c, call);
}

/**
 * Time to send our membership again before it stops counting. In the sticky format it goes only after
 * a restart of the delayed leave sent from now on has succeeded (as matrix-js-sdk's sticky manager
 * does): a membership re-sent after the server fired our leave would stand with nothing to remove it.
 */
export function refreshMembership(c: Ctx, call: CallState): void {
  if (refreshAfterRestart(c) && call.delayed === "armed" && !call.heartbeatStopped) {
    call.restartBeforeWrite = c.now;
    wantWrite(call, "refresh");
    wakeHeartbeat(c, call);
    return;
  }
  writeMembership(c, call, "refresh");
}

/** A write held back (no live delayed leave, an orphan window) may go now. */
export function resumeWrites(c: Ctx, call: CallState | undefined): void {
  if (call && !call.ended && call.wantedWrite && call.writer === undefined) runWriter(c, call);
}

function runWriter(c: Ctx, call: CallState): void {
  if (!call.wantedWrite || call.ended) return;
  // No write without a live delayed leave behind it; markArmed and the sweep resume deferred writes.
  if (!writeIsProtected(c, call)) return;
  // A refresh or update right after a fresh join waits for its server timestamp (one read), or it would
  // go out without created_ts and move us behind members who joined later (the stamp resumes it).
  if (call.stamping && call.wantedWrite !== "fresh" && call.lastSent) return;
  // A refresh that waits for a restart (refreshMembership): the heartbeat's success resumes it.
  if (call.restartBeforeWrite !== undefined && call.wantedWrite === "refresh") {
    const restarted = call.delayed !== "armed" || (call.armedAt ?? -Infinity) >= call.restartBeforeWrite;
    if (!restarted) return;
  }
  call.restartBeforeWrite = undefined;
  const kind = call.wantedWrite;
  call.wantedWrite = undefined;
  const version = c.s.fieldsVersion;
  const content =
    kind === "reassert" && call.lastSent
      ? call.lastSent
      : // When the server holds no membership of ours, the next one is a fresh join (a new created_ts).
        makeContent(c, call, kind === "fresh" || !call.lastSent);
  // The join's first write, or one an update() asked for, is the app's (its own bucket).
  const intent = !call.membershipAttempted || !!call.updateAsked;
  call.updateAsked = undefined;
  call.membershipAttempted = true;
  const lifetime = lifetimeMs(c, expiryWindowMs(c, call));
  const task = startTask(c, {
    intent,
    purpose: { kind: "write", write: kind, content, version, lifetimeMs: lifetime },
    request: writeRequest(c, call, content, lifetime),
    op: "send-state",
    scope: "call",
    callId: call.id,
    retry: "retryable",
    capMs: c.s.timing.retryMaxMs,
    timeoutMs: c.s.timing.stateRequestTimeoutMs,
    guardWrite: true,
    lane: "state",
  });
  // The task may have ended at once (deferred); then its outcome is already queued.
  call.writer = task.id;
}

/** A membership write ended. */
export function onWriteDone(c: Ctx, call: CallState | undefined, task: Task, outcome: Outcome): void {
  if (task.purpose.kind !== "write") return;
  const { write: kind, content, version, lifetimeMs: lifetime } = task.purpose;
  if (call && call.writer === task.id) call.writer = undefined;
  if (!call || c.s.disposed) return;
  if (!outcome.ok && outcome.deferred) {
    wantWrite(call, kind);
    return;
  }
  if (!outcome.ok) {
    if (!outcome.aborted && !isRetryable(outcome.cls))
      failCall(c, call, toError(outcome.cls, outcome.error, "send-state"));
    return;
  }
  if (call.ended) {
    // A write that landed after the call failed, with no delayed leave left to remove it (an armed
    // one fires within the delay, the heartbeat being stopped): take it down again, quietly (the state
    // stays `failed`). Found by the model test (test/unit/machine.model.test.ts).
    if (c.s.out.state.kind === "failed" && c.s.call === call && !c.s.leave && call.delayed !== "armed")
      startLeaveJob(c, call, true);
    return;
  }
  // Re-asserting the very content the server may still hold changes nothing there (servers drop an
  // identical state event): its expiry and refresh stay as they were. (A sticky event is always new.)
  const same = !writesRenew(c) && kind === "reassert" && call.lastSent === content;
  call.lastSent = content;
  call.lastWrittenAt = c.now;
  // The sticky format reads its membership back by event id.
  if (typeof outcome.value === "string") call.lastEventId = outcome.value;
  call.confirmedVersion = Math.max(call.confirmedVersion, version);
  setOwnMembership(c, content);
  c.out.push({ type: "updates-confirmed", version: call.confirmedVersion });
  if (!same || call.expiresAt === undefined) {
    const window = writesRenew(c) ? (lifetime ?? expiryWindowMs(c, call)) : expiryWindowMs(c, call);
    call.refreshAt = c.now + refreshAfterMs(c, window);
    watchExpiry(c, call, content, outcome.sentAt, window);
  }
  // Until our membership's server timestamp is known, ask for it: it becomes created_ts of later writes
  // and tells the server's clock from this device's.
  if (call.createdTs === undefined && content.created_ts === undefined && wantsStamp(c))
    askStamp(c, call, content, outcome.sentAt);
  scheduleCheck(c, call);
  // On its way when an untracked delayed leave of ours could start firing over it: it may be taken down
  // any moment, unseen. Not `joined`: probably left, and a fresh write once that is over.
  if (unseenLeaveMayFire(c, call))
    return probablyFiredUncancelled(
      c,
      "our membership landed while a delayed leave of ours nothing found or cancelled",
      "could fire over it unseen",
    );
  if (call.delayed === "armed") {
    // After a rejoin, "certainly joined" waits for the restart that follows (markArmed).
    if (!c.s.out.probablyLeft) setState(c, joinedState(c, true));
    // Servers before Synapse 1.127 cancel our delayed leave when we write state: check at once.
    wakeHeartbeat(c, call);
  } else if (call.delayed === "pending" && !call.rearming) {
    // The delayed leave behind this write was found gone while the write was on its way (writes go
    // only while one is armed), and its replacement is not armed yet: others list us again, but
    // nothing would remove the membership, so we are not `joined` until markArmed says so (found by
    // the randomized invariants with the adaptive heartbeat's latency steps: "joined" for 120 ms with
    // nothing pending; test/unit/manager.honest.test.ts, "issue 22 (a slow link)").
    setProbablyLeft(c, false);
    const st = c.s.out.state;
    if (st.kind === "reconnecting" && st.probablyLeft) setState(c, { ...st, probablyLeft: false });
  } else {
    setProbablyLeft(c, false);
    setState(c, joinedState(c, false));
  }
  runWriter(c, call);
}

function expiryWindowMs(c: Ctx, call: CallState): number {
  return call.delayed === "none" || call.rearming
    ? c.s.timing.degradedMembershipExpiryMs
    : c.s.timing.membershipExpiryMs;
}

/**
 * Our membership's content. What others judge (`created_ts`, `expires`) rests on the server's clock,
 * never on this device's, which may be hours off: a fresh membership carries no `created_ts` (readers
 * take the event's `origin_server_ts`, as matrix-js-sdk's own first write does); once its timestamp was
 * read back, later writes carry it, with `expires` reaching one window past the server's now.
 */
function makeContent(c: Ctx, call: CallState, fresh: boolean): MembershipContent {
  const window = expiryWindowMs(c, call);
  if (fresh) call.createdTs = undefined;
  const now = serverNow(c);
  if (writesRenew(c)) return membershipContent(c, call, undefined, 0, window);
  if (call.createdTs !== undefined && now !== undefined)
    return membershipContent(c, call, call.createdTs, now, window);
  // Never read back: each write's own server timestamp counts. An identical refresh would be dropped by
  // the server as a duplicate (and extend nothing): alternate `expires` by a millisecond.
  const plain = call.plainWrites ?? 0;
  call.plainWrites = plain + 1;
  return membershipContent(c, call, undefined, 0, window + (plain % 2));
}

/**
 * Others stop listing a membership at created_ts + expires (or the event's timestamp + expires), on the
 * server's clock; checkExpiry compares on every heartbeat. On our elapsed-time clock that is one window
 * after the content was made (with created_ts: `expires` was computed from the server's now then), or
 * after the send at the earliest (without: the server stamps the event once it arrives).
 */
function watchExpiry(
  c: Ctx,
  call: CallState,
  content: MembershipContent,
  sentAt: number,
  lifetime: number,
): void {
  // A sticky event stops counting when its stickiness ends: at the earliest `lifetime` after our send
  // (the server starts it when the event arrives).
  const expires = writesRenew(c) ? lifetime : Number(content.expires);
  if (!Number.isFinite(expires)) return;
  const created = Number(content.created_ts);
  const offset = c.s.serverOffsetMs;
  // With created_ts: the earliest the server's clock can reach it (the offset is known to within half
  // the round trip it was learnt over; a slow answer must not make us say `connected` past it).
  const expiresAt =
    Number.isFinite(created) && offset !== undefined
      ? created + expires - offset - (c.s.serverOffsetSlackMs ?? 0)
      : sentAt + expires;
  call.expiresAt = expiresAt;
  if (call.expired) {
    call.expired = false;
    setProbablyLeft(c, false);
  }
}
