/**
 * The membership state machine's vocabulary: what it holds (MachineState), what it is fed (MachineEvent)
 * and what it asks its driver to do (Command). Plain data only, so a test can copy a state and explore
 * every continuation from it.
 */
import type { DelayedEventAction, PendingDelayedEvent } from "../../backends/types.js";
import type { ErrorClass, MembershipError, Operation } from "../../errors.js";
import type { MembershipContent, MembershipFields } from "../../membership/content.js";
import type { LeaveResult, LeftReason, MembershipState, Support } from "../../manager/state.js";
import type { Budget } from "../budget.js";
import type { Timing, TimingOptions } from "../config.js";
import type { LinkTiming } from "../linkTiming.js";

/** What never changes during a manager's life: who we are and what the backend can do. */
export interface MachineEnv {
  readonly roomId: string;
  readonly stateKey: string;
  readonly autoRejoin: boolean;
  /** The app's timing options, resolved again when the server makes us lower the delay. */
  readonly timingOptions: TimingOptions;
  /** Optional backend abilities. */
  readonly canList: boolean;
  readonly canLookUp: boolean;
  readonly canRead: boolean;
  readonly canProbe: boolean;
  /** The backend can read our own room membership (`m.room.member`). */
  readonly canReadRoomMembership?: boolean;
  /** Which membership format to write (format.ts); default "state". */
  readonly format?: MembershipFormat;
  /** Sticky format: how long each membership and delayed leave stays sticky (at most 1 h). */
  readonly stickyDurationMs?: number;
  /** Sticky format: where the server or host has no sticky events, join in the state format instead (said so). */
  readonly stickyFallback?: boolean;
  /** Delegate the delayed leave (MSC4195) with these timings; undefined: never (delegation.ts). */
  readonly delegation?: DelegationTiming;
}

/** How memberships go on the wire: MSC3401 state events, or MSC4143 sticky events (format.ts). */
export type MembershipFormat = "state" | "sticky";

/** Where a sticky request goes: the sticky key (our member id) and how long it stays sticky. */
export interface StickyTarget {
  key: string;
  durationMs: number;
}

/** How a delegated delayed leave is kept (core/machine/delegation.ts). */
export interface DelegationTiming {
  /** The delegated leave's delay: MSC4195 asks for at least 1 h. */
  readonly delayMs: number;
  /** Our own restarts of it while delegated (a safety net should the service die unseen). */
  readonly heartbeatIntervalMs: number;
  /** Every this many delegated restarts, delegate again: the check that the service still answers. */
  readonly checkEvery: number;
  /** First wait before trying again after the service did not answer; doubles, at most `maxRetryMs`. */
  readonly retryMs: number;
  readonly maxRetryMs: number;
}

/** One request the driver runs through the backend. */
export type Request =
  /** `overMembership`: we hold a membership it could overwrite if the server ignored the delay. */
  /** `sticky`: a delayed sticky event with that content (the sticky format); else `{}` at our state key. */
  | {
      kind: "schedule";
      delayMs: number;
      overMembership?: boolean;
      sticky?: StickyTarget & { content: Record<string, unknown> };
    }
  | { kind: "delayed"; delayId: string; action: DelayedEventAction }
  /** `sticky`: a sticky event (the sticky format); else the state event at our key. */
  | { kind: "write"; content: Record<string, unknown>; sticky?: StickyTarget }
  | { kind: "list" }
  | { kind: "lookup"; delayId: string }
  /** Our membership as the server holds it: the state at our key, or (`eventId`) our sticky event by id. */
  | { kind: "read"; eventId?: string }
  /** Our own `m.room.member`: its `membership` ("join", "leave", "ban", ...), or undefined. */
  | { kind: "read-room-membership" }
  | { kind: "probe" }
  /** MSC4195: hand this delayed leave over to the SFU's service (the driver adds room, slot, member, url). */
  | { kind: "delegate"; delayId: string };

/** How a task's request ended. */
export type Outcome =
  | { ok: true; value: unknown; sentAt: number }
  | { ok: false; cls: ErrorClass; error: unknown; aborted?: boolean; deferred?: boolean; timedOut?: boolean };

/** Which failures a task retries itself (the rest go to its owner). */
export type RetryRule =
  /** One attempt. */
  | "once"
  /** Busy or unreachable server (core/policy isRetryable). */
  | "retryable"
  /** The heartbeat: busy or unreachable, but not answers we do not recognise. */
  | "restart"
  /** Everything but a real "gone": a refused cancel leaves the delayed leave pending. */
  | "not-gone"
  /** Firing our delayed leave: only clear answers of a busy or unreachable server. */
  | "leave-send";

/** Which abort a task obeys. */
export type TaskScope = "call" | "heartbeat" | "manager" | "detached";

/** Who gets a task's outcome (core/machine/continuations.ts). */
export type Purpose =
  | { kind: "probe" }
  | { kind: "cancel-stale" }
  | { kind: "restart" }
  /** `lifetimeMs`: how long the write counts for others (`expires`, or the stickiness it was sent with). */
  | {
      kind: "write";
      write: WriteKind;
      content: MembershipContent;
      version: number;
      lifetimeMs?: number;
    }
  | { kind: "lookup" }
  | { kind: "read-replaced" }
  /** Does the server still hold our membership? (the room view said it is missing, or a periodic check) */
  | { kind: "read-holds"; content: MembershipContent; why: "view" | "interval" }
  /** Are we still in the room? (our own `m.room.member`, read now and then without a room view) */
  | { kind: "read-room-membership" }
  /** The server's timestamp of our fresh membership: `created_ts` for later writes, the server's clock. */
  | { kind: "stamp"; content: MembershipContent; sentAt: number; answeredAt: number }
  /**
   * A delayed leave of ours another replaced, cancelled until it surely fired (replacedLeaves.ts).
   * `firesFrom`: the earliest it could fire (its last restart + delay); `sayAt`: not confirmed by then, it
   * probably fired (`said`: said, and writes wait for this cancel to end); `callId`: the call whose key
   * it writes.
   */
  | { kind: "cancel-replaced"; firesFrom: number; sayAt: number; callId: number; said?: boolean }
  | { kind: "list"; windowUntil: number }
  | { kind: "cancel-orphan"; delayId: string; late: boolean }
  | { kind: "cancel-after-dispose" }
  | { kind: "leave-cancel" }
  | { kind: "leave-send" }
  | { kind: "leave-empty" }
  | { kind: "leave-cancel-after-empty" }
  /** Delegating a delayed leave (`check`: again, to learn that the service still answers). */
  | { kind: "delegate"; delayId: string; why: "switch" | "check" }
  /** After a leave: a delayed `{}` that outlasts a membership write still on its way (late-writes.ts). */
  | { kind: "late-write-guard"; result: LeaveResult }
  /** After the guard's horizon: does our key still hold a write of ours that landed late (lateWrites.ts)? */
  | { kind: "guard-check"; contents: Record<string, unknown>[] }
  /** ... where we cannot read it: is the guard still there (we send it)? */
  | { kind: "guard-send"; delayId: string }
  /** ... it does: `{}` over it. */
  | { kind: "guard-cleanup" };

/** A request with its retries: waits for the budget, sends, backs off, until it ends. */
export interface Task {
  readonly id: number;
  readonly purpose: Purpose;
  readonly request: Request;
  readonly op: Operation;
  readonly scope: TaskScope;
  readonly retry: RetryRule;
  /** undefined: the adaptive timeout of delayed-event requests (it is measured); else a fixed one. */
  readonly timeoutMs?: number;
  /** Backoff ceiling. */
  readonly capMs: number;
  /** Retries stop after this time (a cancel is moot once the delayed leave surely fired). */
  readonly until?: number;
  /** Checked before every attempt: a membership write waits for a live delayed leave. */
  readonly guardWrite?: boolean;
  /** Counts towards the call's give-up bound and expiry check. */
  readonly lane?: "state" | "delayed";
  /** Spends a token of the request budget before each attempt (every request but the support probe). */
  readonly budgeted: boolean;
  /** Its first attempt is what the app asked for: it draws on the app's bucket (core/budget.ts). */
  readonly intent?: boolean;
  /** The bucket the token it waits for was reserved from (phase "budget"). */
  reserved?: "own" | "intent";
  /** Its answers (and local timeouts) measure the link (core/linkTiming.ts). */
  readonly measures: boolean;
  /** The call it belongs to (scope "call" or "heartbeat"). */
  readonly callId?: number;
  phase: "budget" | "sent" | "backoff";
  /** End of the budget wait or the backoff. */
  wakeAt?: number;
  reqId?: number;
  sentAt?: number;
  /** Answered failures so far (the backoff exponent). */
  attempt: number;
}

export type WriteKind = "reassert" | "refresh" | "fresh";

/** The delayed-leave lane of one call. */
export type DelayedLane =
  /** Cancelling the delayed leave of a failed leave before joining again. */
  | { k: "cancel-stale" }
  /** Scheduling a delayed leave (a schedule in flight, or waiting for the budget or a backoff). */
  | {
      k: "schedule";
      after: "join" | "rearm" | "recover";
      /** The backoff exponent: answered failures so far. */
      step: number;
      /** Waiting until then: for a token of the request budget, or a backoff. */
      wakeAt?: number;
      /** "open": an earlier schedule of this call is still on its way (its answer is adopted if it comes). */
      waitingFor?: "budget" | "backoff" | "open";
      /** The bucket the awaited token was reserved from. */
      reserved?: "own" | "intent";
      /** A schedule of this lane went out already (its retries are the manager's own). */
      sentOnce?: boolean;
      /** The schedule request in flight. */
      reqId?: number;
    }
  /** Armed: the next restart is due at `armedAt + heartbeatIntervalMs` (or `wokenAt`). */
  | { k: "beat"; refusals: number; wakeAt?: number }
  /** A restart (with its quick retries) is running. */
  | { k: "restart"; refusals: number; taskId: number }
  /** A refusal we do not recognise: back off, then probe the same delayed leave again. */
  | { k: "refused"; refusals: number; wakeAt: number }
  /** A restart said "gone": asking the server what became of it, or reading our key. */
  | { k: "lookup"; byTime: "fired" | "lost" }
  | { k: "read-replaced"; replaced?: string }
  /** The "gone" was wrong (still pending): pause, then restart it again. */
  | { k: "pending-pause"; wakeAt: number }
  /** Recoveries are spaced: wait before scheduling a replacement. */
  | { k: "recover-pause"; wakeAt: number; replaced?: string; fired: boolean }
  /** Degraded: no delayed leave; `rearmAt` tries again after unrecognised answers. */
  | { k: "degraded"; rearmAt?: number }
  /** Stopped (the call ended, or the heartbeat was stopped by leave). */
  | { k: "stopped" };

/** One join, from join() until it ends (leave, failure, a fired leave we may not rejoin, dispose). */
export interface CallState {
  /** Tells this call from a later one (tasks and requests name the call they belong to). */
  readonly id: number;
  /** No more membership writes, rejoins or retries (leave() ends the call but keeps the heartbeat). */
  ended: boolean;
  heartbeatStopped: boolean;
  lane: DelayedLane;
  delayId?: string;
  delayed: "pending" | "armed" | "none";
  armedAt?: number;
  /** A schedule attempt is in flight: leave() waits for it to learn the id. */
  scheduling: boolean;
  membershipAttempted: boolean;
  wantedWrite?: WriteKind;
  /** The task id of the membership write in flight. */
  writer?: number;
  lastSent?: MembershipContent;
  lastWrittenAt?: number;
  /**
   * The server's `origin_server_ts` of our first membership event in this call, once read back: later
   * writes carry it as `created_ts` (so we keep our place among the oldest members). Undefined until
   * then: writes carry no `created_ts`, and readers use each event's own server timestamp.
   */
  createdTs?: number;
  /** update() asked for the next write (it is the app's request: core/budget.ts INTENT_LIMITS). */
  updateAsked?: boolean;
  /** A read of our fresh membership's server timestamp is running: other writes wait for it. */
  stamping?: boolean;
  /** Writes without `created_ts` alternate `expires` by 1 ms, or servers would drop an identical refresh. */
  plainWrites?: number;
  /** The next periodic read of our key (no live room view to watch it). */
  checkAt?: number;
  /** Sweep for a dead predecessor's leftovers once a delayed leave of ours is armed (first call only). */
  sweepPredecessors?: boolean;
  /** Periodic checks so far: every ROOM_MEMBERSHIP_EVERY-th also reads our room membership. */
  checks?: number;
  confirmedVersion: number;
  failingDelayedSince?: number;
  failingStateSince?: number;
  unrecognisedSchedules: number;
  /** Schedules in a row whose delay the server ignored (it wrote our `{}` at once). */
  ignoredSchedules?: number;
  lastRecoveryAt?: number;
  /** When others stop listing our membership (elapsed-time clock, like every deadline here). */
  expiresAt?: number;
  expired: boolean;
  rearming: boolean;
  /** When the server fires our leave if no further restart gets through. */
  leaveDeadline?: number;
  /** probablyLeft is raised at leaveDeadline (undefined: not watching). */
  watchLeave: boolean;
  refreshAt?: number;
  /** Write again once a delayed leave that can no longer be restarted has fired. */
  refreshAfterFireAt?: number;
  lowerings: number;
  /** A membership check asked for by the room-state view is running. */
  checkingMissing?: boolean;
  /** Who holds the delayed leave, and a switch of holder under way (core/machine/delegation.ts). */
  delegation?: DelegationLane;
  /** The page went away and we fired our delayed leave: parked, sending nothing, until it is shown (pageExit.ts). */
  hidden?: boolean;
  /** Sticky format: this call's member id, its memberships' sticky key (fresh per join). */
  memberId?: string;
  /** Sticky format: the event id of our last membership write (read back by id). */
  lastEventId?: string;
  /** Sticky format: a refresh waits for a restart sent at or after this time (format.ts). */
  restartBeforeWrite?: number;
  /** The last restart of `delayId` whose outcome we never learned: it may still be processed (lateRestarts.ts). */
  unansweredRestart?: { delayId: string; sentAt: number };
}

/**
 * The delegation lane of a call (core/machine/delegation.ts). `holder`: whose restarts keep the
 * delayed leave the heartbeat lane tracks alive: ours alone ("self", the normal timing), or the SFU's
 * service as well ("delegated", the long delay). A switch schedules the other kind of delayed leave
 * first (`schedule`), has it delegated when switching to "delegated" (`delegate`), and swaps it into
 * the heartbeat lane only then (`ready`, at the lane's next idle moment), cancelling the old one: one
 * of them is pending at every moment.
 */
export interface DelegationLane {
  holder: "self" | "delegated";
  step: "idle" | "schedule" | "delegate" | "ready" | "check";
  /** The holder a switch under way leads to. */
  target?: "self" | "delegated";
  /** The switch's new delayed leave, once scheduled. */
  newId?: string;
  newSentAt?: number;
  newDelayMs?: number;
  /** Not before this time: the next attempt to delegate (after the service did not answer). */
  retryAt?: number;
  /** The service did not answer this many times in a row. */
  failures: number;
  /** Refused (400) for this call: no more attempts. */
  refused?: boolean;
  /** Delegated restarts since the last delegation check. */
  beats: number;
  /** A check came to nothing: falling back to "self" (tried again at each beat until it is done). */
  fallBack?: boolean;
}

/** The leave job, step by step (core/machine/leave.ts). */
export interface LeaveJob {
  step:
    | "settle"
    | "late-cancels"
    | "heartbeat"
    | "sweep"
    | "cancel"
    | "send"
    | "empty"
    | "cancel-after-empty"
    | "orphans"
    | "guard";
  /** Give up waiting for late cancels at this time (or, in `orphans`, the orphan window's end). */
  wakeAt?: number;
  /** In `orphans`: the result said once the window is past. */
  result?: LeaveResult;
  delayId?: string;
  /**
   * Cleaning up after a failure (a membership write landed after the call failed, with no delayed
   * leave to remove it): the state stays `failed` until the app calls leave() or join().
   */
  quiet?: boolean;
}

/** An orphan sweep (core/machine/orphans.ts). */
export interface Sweep {
  step: "list" | "wait-open" | "cancel";
  /** Only for a dead predecessor's leftovers (orphans.ts sweepPredecessors): a leave need not wait. */
  predecessors?: boolean;
  keep?: string;
  windowUntil: number;
  wakeAt?: number;
  orphans?: PendingDelayedEvent[];
  /** Cancels still running. */
  cancelling: number;
  /** When the listing it acts on was sent (what was pending at our key then, it lists). */
  listedAt?: number;
  /** A cancel of what it listed was not confirmed (given up, or aborted): that one may still fire. */
  unconfirmed?: boolean;
}

/** A schedule request whose answer we stopped waiting for (our local timeout) but still listen to. */
export interface OpenSchedule {
  reqId: number;
  callId: number;
  sentAt: number;
  delayMs: number;
  /** The local timeout passed: an id arriving now is late. */
  late: boolean;
  /** Abort it then (a delay after the send, or one request timeout after dispose). */
  abortAt?: number;
  /** A switch of holder's schedule (delegation.ts): never adopted by the heartbeat lane. */
  switchTo?: "self" | "delegated";
  /** The blind re-asserts (`reassertAt`) its unknown outcome asked for: moot once its answer comes. */
  reasserts?: number[];
}

/** A schedule of ours whose outcome we do not know (MachineState.unknownSchedules). */
export interface UnknownSchedule {
  reqId: number;
  /** By then what it may have made surely fired. */
  until: number;
  /** The heartbeat lane's (a switch's says its probable fire at `until`, delegation.ts): see ScheduleDoubt. */
  doubt?: ScheduleDoubt;
}

/**
 * What a heartbeat lane's schedule of unknown outcome may do to our membership (doubt.ts): from
 * `firesFrom` until its `until`, a delayed leave it made that nothing found may fire `{}` over it,
 * unseen. Then we say we probably left, and write nothing that it could take down unseen.
 */
export interface ScheduleDoubt {
  callId: number;
  delayMs: number;
  /** The last moment it could have reached the server (its abort, or the error that answered it). */
  arrivesBy: number;
  /**
   * The earliest a delayed leave it made can fire unfound: a delay after its send, or after the send of
   * the last listing whose orphans were all cancelled (one it made before that was listed, and cancelled).
   */
  firesFrom: number;
  /** `firesFrom` passed: said (or there was no membership to say it of). */
  reached?: boolean;
}

/**
 * The outputs the machine reads back (it dedupes state and probablyLeft, and merges support patches);
 * delayId and ownMembership are only published (commands), never read, so they are not kept.
 */
export interface Outputs {
  state: MembershipState;
  probablyLeft: boolean;
  support: Support;
}

export interface MachineState {
  timing: Timing;
  fields: MembershipFields;
  fieldsVersion: number;
  wantJoined: boolean;
  disposed: boolean;
  call?: CallState;
  /** The call a leave job is ending (it may differ from `call` after join() during leave). */
  leave?: LeaveJob;
  leaveCall?: CallState;
  leaveReason: LeftReason;
  /** The delayed leave of a leave that failed (refused {}): cancelled before the next join. */
  staleDelayId?: string;
  /**
   * Send times of membership writes whose outcome we never learned (our local timeout, no answer): each
   * may still be processed later, until LATE_WRITE_HORIZON_MS after it was sent.
   */
  lateWrites?: { sentAt: number; content: Record<string, unknown> }[];
  /** A leave's guard against those (a delayed `{}`): cancelled before the next join. */
  guardDelayId?: string;
  /** Sticky format: the member ids (sticky keys) of the stale delayed leave and of the guard. */
  staleMemberId?: string;
  guardMemberId?: string;
  /**
   * State format: once the guard's horizon is past, check that no late write of ours stands (`contents`:
   * what those writes carried). Servers before Synapse 1.127 let our own late write cancel the guard
   * (lateWrites.ts).
   */
  guardCheck?: { at: number; contents: Record<string, unknown>[] };
  /** The format in force when it differs from the app's (the sticky format fell back to state). */
  format?: MembershipFormat;
  /** The member id the next call takes (the driver's fresh one, or the app's). */
  nextMemberId?: string;
  /** The second sweep for a dead predecessor's delayed leaves (orphans.ts sweepPredecessors). */
  predecessorSweepAt?: number;
  /** This manager started a call before (a predecessor's leftovers are swept at the first one only). */
  joinedBefore?: boolean;
  /**
   * Delayed events at our key that are not ours, as the last predecessor sweep listed them (with when
   * their delay last started): one not restarted by the next sweep belongs to a page that is dead.
   */
  predecessorSeen?: { delayId: string; since?: number }[];
  /** Predecessor sweeps still to run after the next one (bounded). */
  predecessorSweepsLeft?: number;
  /** Predecessor judgements put off because a schedule of ours was open (bounded by PREDECESSOR_SWEEPS). */
  predecessorDeferrals?: number;
  knownMaxDelayMs?: number;
  orphanWindowUntil: number;
  /**
   * Schedules of ours whose outcome we do not know (no answer in time, or an error that may have come
   * after the server acted): each may have made a delayed leave at our key whose id we never learned, up
   * to `until` (by then it surely fired). An orphan sweep takes an unknown delayed event at our key for
   * ours only while one of these is open: otherwise it is another tab's of this device (orphans.ts).
   */
  unknownSchedules?: UnknownSchedule[];
  sweep?: Sweep;
  sweepAgain: boolean;
  learnedIds?: string[];
  /**
   * Ids a sweep cancelled (or is cancelling) as not ours: a late answer naming one is never adopted,
   * since what it names is gone (bounded like learnedIds).
   */
  sweptIds?: string[];
  budget?: Budget;
  /** The app's own bucket (core/budget.ts INTENT_LIMITS). */
  intentBudget?: Budget;
  link?: LinkTiming;
  tasks: Task[];
  open: OpenSchedule[];
  /** Late ids being cancelled (their tasks): leave waits for them, within bounds. */
  /** Schedules whose outcome we never learned: re-assert the membership once they could have fired. */
  reassertAt?: number[];
  /** ... where nothing looks for what they made (a switch of holder's): say it probably fired, and rejoin. */
  probableFiresAt?: number[];
  /** Late delayed leaves being cancelled: if no cancel is confirmed by `at`, it probably fired. */
  orphanDeadlines?: { delayId: string; at: number }[];
  out: Outputs;
  nextId: number;
  /** The server's clock minus our elapsed-time clock, once learned from a timestamp the server gave. */
  serverOffsetMs?: number;
  /**
   * How far `serverOffsetMs` may be off: half the round trip it was learnt over (the server stamped the
   * event somewhere between our send and its answer). Judgements of when others stop listing us take
   * the earliest the server's clock allows.
   */
  serverOffsetSlackMs?: number;
  /** The room view (a synced client, the host's state pushes) has shown our own writes: it watches our key. */
  viewLive: boolean;
  /** false once the backend said it cannot read our key back (a widget host refused the capability). */
  readable: boolean;
  /** The device's clock was found too far from the server's (said once). */
  skewReported?: boolean;
  /** The normal timing, kept while `timing` is a delegated leave's (core/machine/delegation.ts). */
  normalTiming?: Timing;
  /** The service answered 404 (no delegation there): none for the manager's life. */
  delegationUnsupported?: boolean;
}

/** What the machine is fed. */
export type MachineEvent =
  /** `memberId`: the sticky format's member id for the call this join starts (fresh per join). */
  | { type: "join"; memberId?: string }
  | { type: "leave" }
  | {
      type: "update";
      patch: Partial<
        Pick<MembershipFields, "callIntent" | "fociPreferred" | "focusActive" | "applicationData">
      >;
    }
  | { type: "dispose" }
  /** A request ended (ok, failed, or our local timeout: `timedOut`). */
  | { type: "answer"; reqId: number; ok: true; value: unknown }
  | { type: "answer"; reqId: number; ok: false; error: unknown; timedOut?: boolean }
  /** A schedule answered after our local timeout (the driver kept listening). */
  | { type: "late-answer"; reqId: number; ok: true; value: unknown }
  | { type: "late-answer"; reqId: number; ok: false; error: unknown }
  /** The time the machine asked to be woken at has come (any of its deadlines). */
  | { type: "tick" }
  /** The room's synced view has shown no membership of ours for the grace period. */
  | { type: "membership-missing" }
  /** Whether the room view is watching our key (it showed our own last write), or not (any more). */
  | { type: "view"; live: boolean }
  /** Our own room membership is no longer `join` (a kick, a ban, a leave of the room). */
  | { type: "room-membership"; membership: string }
  /** The page is going away (pagehide, freeze), or is back (pageshow from the bfcache, resume): pageExit.ts. */
  | { type: "page-hide" }
  | { type: "page-show" };

/** What the machine asks of its driver, in order. */
export type Command =
  | { type: "send"; reqId: number; request: Request; timeoutMs: number; keepLate: boolean }
  | { type: "abort"; reqId: number }
  | { type: "state"; state: MembershipState }
  | { type: "probably-left"; value: boolean }
  | { type: "delay-id"; value: string | undefined }
  | { type: "own-membership"; value: MembershipContent | undefined }
  | { type: "support"; value: Support }
  | { type: "error"; error: MembershipError }
  | { type: "log"; level: "debug" | "info" | "warn" | "error"; message: string; detail?: unknown }
  | { type: "leave-done"; result: LeaveResult }
  /** An update() was taken: wait for this fields version, or (undefined) nothing to wait for. */
  | { type: "update-accepted"; version: number | undefined }
  /** update() promises up to this fields version are on the server. */
  | { type: "updates-confirmed"; version: number }
  | { type: "updates-rejected"; error: MembershipError }
  /** Fire this delayed leave with a request that outlives the page (fetch keepalive); nothing waits for it. */
  | { type: "leave-on-hide"; delayId: string };
