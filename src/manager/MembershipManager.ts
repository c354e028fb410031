import log, { type Logger } from "loglevel";
import {
  asyncScheduler,
  BehaviorSubject,
  distinctUntilChanged,
  map,
  Subject,
  type Observable,
  type SchedulerLike,
  type Subscription,
} from "rxjs";
import type { DelayedEventStatus, MembershipBackend } from "../backends/types.js";
import { budgetLimits, fullBudget, takeToken, type Budget, type BudgetLimits } from "../core/budget.js";
import {
  MIN_DELAY_MS,
  refreshIntervalMs,
  resolveTiming,
  type Timing,
  type TimingOptions,
} from "../core/config.js";
import {
  changedKeys,
  goneCause,
  lateIdDeadlines,
  mayWriteMembership,
  membershipExpiresAt,
  recoveryPauseMs,
} from "../core/decisions.js";
import {
  initialLink,
  linkBounds,
  onAnswered,
  onLocalTimeout,
  type LinkBounds,
  type LinkTiming,
} from "../core/linkTiming.js";
import { lostDelayedLeaveCause } from "../core/lostDelayedLeave.js";
import {
  isRetryable,
  onLeaveSendFailure,
  onRestartFailure,
  onScheduleFailure,
  isUnrecognised,
  laneWaitLimits,
  retryWaitMs,
} from "../core/policy.js";
import {
  classifyError,
  LocalTimeoutError,
  MembershipConfigError,
  MembershipError,
  type ErrorClass,
  type MembershipErrorCode,
  type Operation,
} from "../errors.js";
import {
  CALL_MEMBER_EVENT_TYPE,
  DEFAULT_SLOT,
  LEFT_CONTENT,
  makeMembershipContent,
  membershipStateKey,
  sameContent,
  type CallIntent,
  type MembershipContent,
  type MembershipFields,
  type Slot,
  type Transport,
} from "../membership/content.js";
import type { SourceLike } from "../membership/observer.js";
import { leaveTimeoutMs, validateManagerOptions } from "../core/validate.js";
import { redactingLogger } from "../log/redact.js";
import { Canceller, Clock, type CancelSignal } from "./clock.js";
import { watchRoomState } from "./roomStateWatch.js";
import {
  sameState,
  statusOf,
  type LeftReason,
  type LeaveResult,
  type MembershipState,
  type Status,
  type Support,
} from "./state.js";

export interface MembershipManagerOptions extends TimingOptions {
  /** How requests reach the server: ClientBackend (a MatrixClient) or WidgetBackend (widget mode). */
  backend: MembershipBackend;
  /** The call's room, `!opaque:server` (or `!opaque` from room v12). */
  roomId: string;
  /** Our Matrix user id, `@localpart:server`; must be the backend's own user when it knows it. */
  userId: string;
  /** Our device id; with userId and slot it makes our membership's state key. */
  deviceId: string;
  /** Which call in the room. Default DEFAULT_SLOT, the room-wide call Element Call joins. */
  slot?: Slot;
  /** The room's version; MSC3757/MSC3779 rooms use state keys without the leading underscore. */
  roomVersion?: string;
  /** Default `{type: "livekit", focus_selection: "oldest_membership"}`. */
  focusActive?: Transport;
  /** Written as `foci_preferred`: the transports we offer, in order of preference. Default []. */
  fociPreferred?: Transport[];
  /** Written as `m.call.intent` ("audio", "video") when set. */
  callIntent?: CallIntent;
  /** Extra keys merged into our membership content; the session's own fields win on collision. */
  applicationData?: Record<string, unknown>;
  /** Join again by itself after the server fired our leave or removed our membership. Default true. */
  autoRejoin?: boolean;
  /**
   * The room's state as a synced view shows it: a started `MatrixClient`, or
   * `widgetStateSource(widgetApi, roomId)` in widget mode. With it the manager notices when the room no
   * longer holds our membership although our own delayed leave is alive (another tab of this device
   * left, or a client wrote `{}` at our key) and puts it back (autoRejoin), instead of waiting for the
   * next hourly refresh. Without it, only a 404 on `restart` tells us our membership is gone.
   */
  roomState?: SourceLike;
  /** How long our membership may be missing from `roomState` before we act (sync lag). Default 1000. */
  membershipGraceMs?: number;
  /** All timers run on this scheduler (tests pass a VirtualTimeScheduler). Default asyncScheduler. */
  scheduler?: SchedulerLike;
  /**
   * Where the manager logs; wrapped so that access tokens (and delay ids above debug) are redacted.
   * Default: loglevel's "matrixrtc-membership" logger.
   */
  logger?: Logger;
  /** Source of jitter, for deterministic tests. Default Math.random. */
  random?: () => number;
}

/** What an app may change without leaving. */
export type MembershipUpdate = Partial<
  Pick<MembershipManagerOptions, "callIntent" | "fociPreferred" | "focusActive" | "applicationData">
>;

type WriteKind = "reassert" | "refresh" | "fresh";
const WRITE_RANK: Record<WriteKind, number> = { reassert: 0, refresh: 1, fresh: 2 };

/** One join, from join() until it ends (leave, failure, a fired leave we may not rejoin, dispose). */
interface Call {
  /** Aborted when the call ends: no more membership writes, rejoins or retries. */
  readonly abort: Canceller;
  /** Aborted separately: during leave() the heartbeat goes on until in-flight writes have settled. */
  readonly heartbeatAbort: Canceller;
  heartbeatLoop?: Promise<void>;
  delayId?: string;
  /** "armed": a delayed leave is pending on the server; "none": degraded mode without delayed events. */
  delayed: "pending" | "armed" | "none";
  /** Send time of the last schedule/restart that succeeded; the server fires at the earliest delay after it. */
  armedAt?: number;
  /** The in-flight schedule attempt (settles, never rejects); leave() waits for it to learn the id. */
  scheduling?: Promise<void>;
  membershipAttempted: boolean;
  wantedWrite?: WriteKind;
  writer?: Promise<void>;
  lastSent?: MembershipContent;
  /** When the last membership write was confirmed (scheduler time). */
  lastWrittenAt?: number;
  createdTs?: number;
  confirmedVersion: number;
  /** Wakes the heartbeat early (after a membership write, to catch servers whose own writes cancel). */
  wake?: () => void;
  /**
   * Since when each lane has been failing without a success. Two lanes: a heartbeat that works must
   * not hide membership writes that keep failing (and the reverse).
   */
  failingDelayedSince?: number;
  failingStateSince?: number;
  /** Unrecognised answers to scheduling in a row (an odd status, a host's untyped error). */
  unrecognisedSchedules: number;
  /** When the last recovery of a lost delayed leave started: recoveries are rate-bounded. */
  lastRecoveryAt?: number;
  /** When others stop listing our last confirmed membership (created_ts + expires). */
  expiresAt?: number;
  /** Our membership expired for others while writes kept failing; cleared by the next write. */
  expired: boolean;
  /** Degraded after unrecognised answers and scheduling again: writes go on with the short expiry. */
  rearming?: boolean;
  cancelRearm?: () => void;
  /** When the server fires our leave if no further restart gets through (armedAt + delay). */
  leaveDeadline?: number;
  /** The time the predicted-leave timer is set for (undefined: no timer). */
  watchingUntil?: number;
  cancelProbablyLeft?: () => void;
  cancelRefresh?: () => void;
  lowerings: number;
}

type Attempt<T> =
  | { ok: true; value: T; sentAt: number }
  | { ok: false; cls: ErrorClass; error: unknown; aborted?: boolean; deferred?: boolean };

const DEFAULT_FOCUS: Transport = { type: "livekit", focus_selection: "oldest_membership" };
const MAX_DELAY_LOWERINGS = 8;

/**
 * Keeps one device's MatrixRTC membership alive: a delayed leave first, then the membership, then
 * `restart` heartbeats on their own lane (never behind a state send), and a clean leave that fires the
 * delayed leave. See README "How it works" for the sequence.
 */
export class MembershipManager {
  /** The call's room (from the options). */
  readonly roomId: string;
  /** Our user id (from the options). */
  readonly userId: string;
  /** Our device id (from the options). */
  readonly deviceId: string;
  /** State key of our membership event, built from userId, deviceId, slot and room version. */
  readonly stateKey: string;

  private readonly backend: MembershipBackend;
  private readonly options: MembershipManagerOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly autoRejoin: boolean;
  private readonly fields: MembershipFields;
  private fieldsVersion = 0;
  private timing: Timing;

  private readonly stateSubject = new BehaviorSubject<MembershipState>({ kind: "idle" });
  private readonly probablyLeftSubject = new BehaviorSubject<boolean>(false);
  private readonly delayIdSubject = new BehaviorSubject<string | undefined>(undefined);
  private readonly ownMembershipSubject = new BehaviorSubject<MembershipContent | undefined>(undefined);
  private readonly supportSubject: BehaviorSubject<Support>;
  private readonly errorSubject = new Subject<MembershipError>();

  // The public observables are built on first use: most apps read two or three of them, and a
  // process with thousands of managers should not pay for the rest.
  private lazyStatus$?: Observable<Status>;
  private lazyProbablyLeft$?: Observable<boolean>;
  private lazyDelayId$?: Observable<string | undefined>;
  private lazyErrors$?: Observable<MembershipError>;
  private lazySupport$?: Observable<Support>;
  private lazyOwnMembership$?: Observable<MembershipContent | undefined>;
  private lazyState$?: Observable<MembershipState>;

  /** The whole state; replays the current value. */
  get state$(): Observable<MembershipState> {
    return (this.lazyState$ ??= this.stateSubject.asObservable());
  }
  /** The coarse status (connecting, connected, ...); replays the current value. */
  get status$(): Observable<Status> {
    return (this.lazyStatus$ ??= this.stateSubject.pipe(map(statusOf), distinctUntilChanged()));
  }
  /** True when the server has probably fired our leave (no restart got through in time). */
  get probablyLeft$(): Observable<boolean> {
    return (this.lazyProbablyLeft$ ??= this.probablyLeftSubject.pipe(distinctUntilChanged()));
  }
  /** The delay id of our pending delayed leave (debug only: it can be used without a token). */
  get delayId$(): Observable<string | undefined> {
    return (this.lazyDelayId$ ??= this.delayIdSubject.pipe(distinctUntilChanged()));
  }
  /** The membership content the server holds for us, as far as we know. */
  get ownMembership$(): Observable<MembershipContent | undefined> {
    return (this.lazyOwnMembership$ ??= this.ownMembershipSubject.asObservable());
  }
  /** What the server supports (delayed events, delay in use, its maximum). */
  get support$(): Observable<Support> {
    return (this.lazySupport$ ??= this.supportSubject.asObservable());
  }
  /** Every error as it happens (does not replay). */
  get errors$(): Observable<MembershipError> {
    return (this.lazyErrors$ ??= this.errorSubject.asObservable());
  }

  private wantJoined = false;
  private call?: Call;
  private leaveJob?: Promise<LeaveResult>;
  /** Why the running leave job leaves (the `left` state's reason). */
  private leaveReason: LeftReason = "user";
  private roomStateWatch?: Subscription;
  private readonly disposeController = new Canceller();
  private knownMaxDelayMs?: number;
  /** Schedule requests answered after our timeout: their ids are being cancelled. */
  private readonly lateSchedules = new Set<Promise<void>>();
  /** Until then, a schedule whose outcome we never learned may still fire (an orphan). */
  private orphanWindowUntil = 0;
  private sweeping?: Promise<void>;
  private sweepAgain = false;
  private updateWaiters: { version: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  /** The request budget (src/core/budget.ts): every request takes a token. */
  /** undefined: a full bucket (most managers never spend it; a process may hold thousands). */
  private budget?: Budget;
  /** The adaptive local timeout of delayed-event requests (src/core/linkTiming.ts). */
  /** undefined until the first measurement: the configured timeout. */
  private link?: LinkTiming;
  /** Schedule requests still open: aborted one request timeout after dispose(), so a process can exit. */
  private openSchedules?: Map<AbortController, Promise<unknown>>;
  /**
   * Every delay id a schedule of ours returned (recent ones): a sweep must never take one of them for
   * an orphan (its answer may reach us just after the listing did; late ones are cancelled anyway).
   */
  private learnedIds?: Set<string>;
  /** The delayed leave of a leave that failed (refused {}): cancelled before the next join. */
  private staleDelayId?: string;

  constructor(options: MembershipManagerOptions) {
    for (const key of ["roomId", "userId", "deviceId"] as const)
      if (typeof options[key] !== "string" || options[key].length === 0)
        throw new MembershipConfigError(`${key} must be a non-empty string`);
    if (!options.backend) throw new MembershipConfigError("backend is required");
    validateManagerOptions(options, options.backend.ownUserId?.());
    this.options = options;
    this.timing = resolveTiming(options);
    this.backend = options.backend;
    this.roomId = options.roomId;
    this.userId = options.userId;
    this.deviceId = options.deviceId;
    const slot = options.slot ?? DEFAULT_SLOT;
    this.stateKey = membershipStateKey(options.userId, options.deviceId, slot, options.roomVersion);
    this.fields = {
      userId: options.userId,
      deviceId: options.deviceId,
      slot,
      focusActive: options.focusActive ?? DEFAULT_FOCUS,
      fociPreferred: options.fociPreferred ?? [],
      callIntent: options.callIntent,
      applicationData: options.applicationData,
    };
    this.clock = new Clock(options.scheduler ?? asyncScheduler);
    this.log = redactingLogger(options.logger ?? log.getLogger("matrixrtc-membership"));
    this.random = options.random ?? Math.random;
    this.autoRejoin = options.autoRejoin ?? true;
    this.supportSubject = new BehaviorSubject<Support>({
      delayedEvents: undefined,
      delayMs: this.timing.delayMs,
    });
    if (options.roomState)
      this.roomStateWatch = watchRoomState(
        options.roomState,
        {
          roomId: this.roomId,
          slot,
          userId: this.userId,
          deviceId: this.deviceId,
          graceMs: options.membershipGraceMs ?? 1000,
          heldSince: () => {
            const call = this.call;
            return call && !call.abort.signal.aborted && call.lastSent ? call.lastWrittenAt : undefined;
          },
          onMissing: () => void (this.call && this.membershipMissing(this.call)),
        },
        this.clock,
        this.log,
      );
  }

  /** Current values, for apps that do not want to subscribe. */
  get state(): MembershipState {
    return this.stateSubject.value;
  }
  /** The current Status (see `status$`). */
  get status(): Status {
    return statusOf(this.stateSubject.value);
  }
  /** The current value of `probablyLeft$`. */
  get probablyLeft(): boolean {
    return this.probablyLeftSubject.value;
  }
  /** The timing in force (the delay may have been lowered to the server's maximum). */
  get effectiveTiming(): Readonly<Timing> {
    return this.timing;
  }
  /** Earliest time (scheduler ms) the server could fire our leave if no further heartbeat gets through. */
  get predictedLeaveAt(): number | undefined {
    const call = this.call;
    return call?.delayed === "armed" && call.armedAt !== undefined
      ? call.armedAt + this.timing.delayMs
      : undefined;
  }
  /** True once `dispose()` was called: timers stopped, observables completed, `join()` throws. */
  get disposed(): boolean {
    return this.disposeController.signal.aborted;
  }

  /** Join the call. Idempotent; returns at once. Waits for a leave in progress to finish first. */
  join(): void {
    if (this.disposed) throw new MembershipConfigError("join() after dispose()");
    if (this.wantJoined) return;
    this.wantJoined = true;
    // A call that failed or was left may still hold a delayed leave: clean it up before joining again.
    if (!this.leaveJob && this.call) this.startLeaveJob(this.call);
    if (!this.leaveJob) this.startCall();
  }

  /**
   * Leave: fire the delayed leave (one request) or, if it is gone, write `{}`. Resolves with how it went
   * out, or `timed-out` after `timeoutMs` while retries go on until the server confirms or `dispose()`.
   */
  leave(options: { timeoutMs?: number } = {}): Promise<LeaveResult> {
    const timeoutMs = leaveTimeoutMs(options.timeoutMs);
    if (timeoutMs instanceof MembershipConfigError) return Promise.reject(timeoutMs);
    if (this.disposed) return Promise.resolve({ status: "disposed" });
    this.wantJoined = false;
    this.leaveReason = "user";
    if (!this.leaveJob) {
      if (!this.call && this.staleDelayId) {
        // A leave that failed left its delayed leave pending: this leave fires it.
        this.call = this.newCall();
        this.call.delayId = this.staleDelayId;
        this.call.membershipAttempted = true;
        this.staleDelayId = undefined;
      }
      if (!this.call) return Promise.resolve({ status: "left", via: "nothing-to-leave" });
      this.startLeaveJob(this.call);
    }
    const job = this.leaveJob!;
    if (timeoutMs === undefined) return job;
    return new Promise((resolve) => {
      const cancel = this.clock.after(timeoutMs, () => resolve({ status: "timed-out" }));
      void job.then((r) => {
        cancel();
        resolve(r);
      });
    });
  }

  /** Change what the membership says without leaving; resolves once the server holds it. */
  update(patch: MembershipUpdate): Promise<void> {
    if (this.disposed) return Promise.reject(new MembershipConfigError("update() after dispose()"));
    const keys = ["callIntent", "fociPreferred", "focusActive", "applicationData"] as const;
    // Only what differs from the fields in force counts: an unchanged update writes nothing.
    const changed = changedKeys(patch, this.fields, keys);
    if (changed.includes("callIntent")) this.fields.callIntent = patch.callIntent;
    if (changed.includes("fociPreferred")) this.fields.fociPreferred = patch.fociPreferred!;
    if (changed.includes("focusActive")) this.fields.focusActive = patch.focusActive!;
    if (changed.includes("applicationData")) this.fields.applicationData = patch.applicationData;
    const version = changed.length > 0 ? ++this.fieldsVersion : this.fieldsVersion;
    const call = this.call;
    // Not in a call (or not written yet): the next membership write carries the new fields.
    if (!call || call.abort.signal.aborted || !call.membershipAttempted) return Promise.resolve();
    // Nothing new: resolve once the fields in force are on the server (now, unless a write is pending).
    if (changed.length === 0 && call.confirmedVersion >= version) return Promise.resolve();
    const done = new Promise<void>((resolve, reject) =>
      this.updateWaiters.push({ version, resolve, reject }),
    );
    if (changed.length > 0) void this.writeMembership(call, "refresh");
    return done;
  }

  /** Stop every timer and subscription now. Sends nothing; pending promises settle. */
  dispose(): void {
    if (this.disposed) return;
    this.disposeController.abort();
    this.roomStateWatch?.unsubscribe();
    if (this.call) this.endCall(this.call);
    this.clock.dispose();
    // A schedule still open may yet answer with an id (cancelled then, see scheduleOnce); give it one
    // request timeout, then abort it so a hung request does not keep the process alive.
    const open = this.openSchedules;
    if (open && open.size > 0)
      this.clock.after(this.timing.requestTimeoutMs, () => {
        for (const c of open.keys()) c.abort(new DOMException("disposed", "AbortError"));
        open.clear();
      });
    this.rejectUpdates(new MembershipError("disposed", "gave-up", "config"));
    this.stateSubject.complete();
    this.probablyLeftSubject.complete();
    this.delayIdSubject.complete();
    this.ownMembershipSubject.complete();
    this.supportSubject.complete();
    this.errorSubject.complete();
  }

  /**
   * Retries on the delayed-leave lane (heartbeat, re-scheduling) back off at most to half a request
   * timeout: during an outage that is about one probe a second, and when the network returns the
   * rejoin starts within that step instead of after a long backoff.
   */
  private get rejoinRetryCapMs(): number {
    return Math.max(this.timing.retryBaseMs, this.timing.requestTimeoutMs / 2);
  }

  /** The local timeout of one delayed-event request: adapted to the link's round trip (linkTiming). */
  private get delayedTimeoutMs(): number {
    return this.link?.timeoutMs ?? this.timing.requestTimeoutMs;
  }

  /** What the delay allows the adaptive timeout (computed, not stored: managers are many). */
  private get linkBounds(): LinkBounds {
    return linkBounds(this.timing.requestTimeoutMs, this.timing.delayMs, this.timing.heartbeatIntervalMs);
  }

  private get budgetLimits(): BudgetLimits {
    return budgetLimits(this.timing.heartbeatIntervalMs);
  }

  /** The timing changed (the delay was lowered): the budget and the link's bounds follow it. */
  private retime(timing: Timing): void {
    this.timing = timing;
    const bounds = this.linkBounds;
    if (this.link)
      this.link = {
        ...this.link,
        timeoutMs: Math.min(bounds.maxMs, Math.max(bounds.baseMs, this.link.timeoutMs)),
      };
  }

  /** Take a token from the request budget; resolves false if `signal` aborted while waiting for it. */
  private spend(signal?: CancelSignal): Promise<boolean> | true {
    const limits = this.budgetLimits;
    const now = this.clock.now();
    const { budget, waitMs } = takeToken(this.budget ?? fullBudget(limits, now), limits, now);
    this.budget = budget;
    if (waitMs <= 0) return true;
    this.log.debug(`request budget spent; waiting ${waitMs} ms`);
    return this.clock.sleep(
      waitMs,
      ...(signal ? [signal, this.disposeController.signal] : [this.disposeController.signal]),
    );
  }

  /** Feed one request's outcome to the link timing; true when the link just turned out too slow. */
  private observeLink(sentAt: number, error?: unknown): void {
    const bounds = this.linkBounds;
    const link = this.link ?? initialLink(bounds);
    const before = link.tooSlow;
    const next =
      error instanceof LocalTimeoutError
        ? onLocalTimeout(link, bounds)
        : onAnswered(link, bounds, this.clock.now() - sentAt);
    // A fast link needs no state (the configured timeout): keep none, managers are many.
    const idle = !next.tooSlow && next.timeoutMs === bounds.baseMs && (next.srttMs ?? 0) * 2 <= bounds.baseMs;
    this.link = idle ? undefined : next;
    if (next.tooSlow && !before) {
      this.log.warn(`the link is too slow for a ${this.timing.delayMs} ms delay`);
      const error = new MembershipError(
        `the link's round trip does not fit the ${this.timing.delayMs} ms delay (timeout at its ceiling ${this.linkBounds.maxMs} ms)`,
        "link-too-slow",
        "schedule-leave",
        { kind: "network" },
      );
      this.emitError(error);
      const call = this.call;
      if (call && !call.abort.signal.aborted)
        this.setState({
          kind: "reconnecting",
          reason: "link-too-slow",
          probablyLeft: this.probablyLeftSubject.value,
        });
    }
  }

  /** Timers still pending (0 after dispose(); tests use it to prove nothing leaks). */
  get pendingTimers(): number {
    return this.clock.pendingTimers;
  }

  // ---------------------------------------------------------------------------------------------
  // Join: delayed leave first, then the membership; then the heartbeat on its own lane.
  // ---------------------------------------------------------------------------------------------

  private newCall(): Call {
    return {
      abort: new Canceller(),
      heartbeatAbort: new Canceller(),
      delayed: "pending",
      membershipAttempted: false,
      confirmedVersion: -1,
      lowerings: 0,
      unrecognisedSchedules: 0,
      expired: false,
    };
  }

  private startCall(): void {
    const call = this.newCall();
    this.call = call;
    this.setState({ kind: "joining", step: "delayed-leave" });
    void this.runCall(call);
  }

  private async runCall(call: Call): Promise<void> {
    void this.probeSupport(call);
    const stale = this.staleDelayId;
    if (stale) {
      // A failed leave left its delayed leave to fire; we join again, so it must go (it fires within
      // a delay from now at the latest: after that, a cancel is moot).
      this.staleDelayId = undefined;
      await this.cancelWhileItCanFire(stale, call.abort.signal);
      if (call.abort.signal.aborted) return;
    }
    if (!(await this.armDelayedLeave(call))) return;
    this.setState({ kind: "joining", step: "membership" });
    void this.writeMembership(call, "fresh");
    call.heartbeatLoop = this.heartbeat(call);
  }

  /**
   * Cancel one delayed leave of ours, retrying everything but a real "gone", for as long as a cancel
   * still matters: it fires within a delay from now at the latest, so after that a cancel is moot.
   */
  private async cancelWhileItCanFire(delayId: string, signal: CancelSignal): Promise<void> {
    const until = this.clock.now() + this.timing.delayMs + this.timing.requestTimeoutMs;
    await this.retrying(
      signal,
      "cancel",
      (s) => this.backend.updateDelayedEvent(delayId, "cancel", { signal: s }),
      undefined,
      this.rejoinRetryCapMs,
      undefined,
      () => this.clock.now() < until,
      notGone,
    );
  }

  /** Schedule a delayed leave, retrying; false if the call ended first. Falls back to degraded mode. */
  private async armDelayedLeave(call: Call): Promise<boolean> {
    // As in retrying(): only answered failures grow the backoff exponent.
    let backoffStep = 0;
    for (;;) {
      if (call.abort.signal.aborted) return false;
      if (call.delayed === "none") return true;
      const spent = this.spend(call.abort.signal);
      if (spent !== true && !(await spent)) return false;
      const result = await this.trackScheduling(call, this.scheduleOnce());
      // Record an id even when the call ended meanwhile: the leave job must send or cancel it.
      if (result.ok) call.delayId = result.value;
      if (call.abort.signal.aborted) return false;
      if (result.ok) {
        call.unrecognisedSchedules = 0;
        this.delayIdSubject.next(result.value);
        this.markArmed(call, result.sentAt);
        this.updateSupport({ delayedEvents: true });
        void this.sweepOrphans(result.value);
        return true;
      }
      const { cls } = result;
      const action = onScheduleFailure(cls, call.unrecognisedSchedules);
      if (isUnrecognised(cls)) call.unrecognisedSchedules++;
      if (
        action === "lower-delay" &&
        (await this.lowerDelay(call, cls.kind === "max-delay" ? cls.maxDelayMs : undefined))
      )
        continue;
      if (action === "lower-delay" || action === "degrade") {
        if (isUnrecognised(cls)) this.emitError(this.toError(cls, result.error, "schedule-leave"));
        this.enterDegraded(
          call,
          cls.kind === "unsupported"
            ? cls.reason
            : isUnrecognised(cls)
              ? `unrecognised answers to scheduling the delayed leave (${call.unrecognisedSchedules} in a row)`
              : "no usable delay",
          { retryLater: isUnrecognised(cls) },
        );
        return true;
      }
      if (action === "fail") {
        this.failCall(call, this.toError(cls, result.error, "schedule-leave"));
        return false;
      }
      if (
        !(await this.waitBeforeRetry(
          call,
          cls,
          result.error,
          result.error instanceof LocalTimeoutError && !this.link?.tooSlow ? backoffStep : backoffStep++,
          "schedule-leave",
          this.rejoinRetryCapMs,
        ))
      )
        return false;
    }
  }

  private trackScheduling<T>(call: Call, p: Promise<T>): Promise<T> {
    call.scheduling = p.then(
      () => undefined,
      () => undefined,
    );
    return p;
  }

  /**
   * One schedule request. It is not idempotent (every PUT creates a new delayed event), so it is not
   * aborted at our local timeout: an id that arrives later (even after dispose()) is cancelled, and an
   * attempt whose outcome we never learn gets our membership re-asserted after it could have fired.
   * It is aborted only when waiting for it is pointless: a delay after it was sent, or one request
   * timeout after dispose() (so a hung request cannot keep the process alive).
   */
  private async scheduleOnce(): Promise<Attempt<string>> {
    const sentAt = this.clock.now();
    const delayMs = this.timing.delayMs;
    const controller = new AbortController();
    // Set only once the local timeout passed (rare): a timer per schedule would cost every manager.
    let giveUp = () => {};
    let request: Promise<string>;
    try {
      request = this.backend.sendDelayedStateEvent(
        {
          roomId: this.roomId,
          eventType: CALL_MEMBER_EVENT_TYPE,
          stateKey: this.stateKey,
          content: { ...LEFT_CONTENT },
          delayMs,
        },
        { signal: controller.signal },
      );
    } catch (error) {
      request = Promise.reject(error);
    }
    let settled = false;
    const settling = request.then(
      (id) => {
        settled = true;
        this.forgetSchedule(controller);
        giveUp();
        // Only while a sweep may run (an orphan window): outside one, no listing can race this answer.
        if (this.clock.now() < this.orphanWindowUntil || this.sweeping) {
          const learned = (this.learnedIds ??= new Set());
          learned.add(id);
          if (learned.size > 64) learned.delete(learned.values().next().value!);
        }
        // The answer crossed the link: the round trip is a measurement even when it came too late.
        if (!this.disposed) this.observeLink(sentAt);
        return id;
      },
      () => {
        settled = true;
        this.forgetSchedule(controller);
        giveUp();
      },
    );
    if (!settled) (this.openSchedules ??= new Map()).set(controller, settling);
    try {
      const value = await this.clock.withTimeout(
        this.delayedTimeoutMs,
        this.disposeController.signal,
        () => request,
      );
      return { ok: true, value, sentAt };
    } catch (error) {
      const cls = classifyError(error, "schedule-leave", this.clock.now());
      if (!settled && (error instanceof LocalTimeoutError || this.disposed)) {
        if (error instanceof LocalTimeoutError) {
          this.observeLink(sentAt, error);
          // A delay after the send, its delayed leave (if any) has fired: stop waiting for the answer.
          giveUp = this.clock.after(sentAt + delayMs - this.clock.now(), () =>
            controller.abort(new LocalTimeoutError(delayMs)),
          );
        }
        const late: Promise<void> = request.then(
          (id) => (this.disposed ? this.cancelAfterDispose(id) : this.cancelOrphan(id, sentAt + delayMs)),
          () => undefined,
        );
        this.lateSchedules.add(late);
        void late.finally(() => this.lateSchedules.delete(late));
      }
      if (this.disposed) return { ok: false, cls, error };
      // The request may have reached the server and its delayed leave may fire: re-assert whatever
      // membership is current then (possibly a later call's).
      if (cls.kind === "network" || cls.kind === "server" || cls.kind === "unknown") {
        this.orphanWindowUntil = Math.max(this.orphanWindowUntil, sentAt + delayMs + this.delayedTimeoutMs);
        void this.sweepOrphans(this.call?.delayId);
        this.clock.after(delayMs + this.delayedTimeoutMs, () => {
          const current = this.call;
          if (current && !current.abort.signal.aborted && current.lastSent)
            void this.writeMembership(current, "reassert");
        });
      }
      return { ok: false, cls, error };
    }
  }

  private forgetSchedule(controller: AbortController): void {
    this.openSchedules?.delete(controller);
    if (this.openSchedules?.size === 0) this.openSchedules = undefined;
  }

  /**
   * A delay id that arrived after dispose(): nobody else will ever cancel it, and it would fire `{}`
   * into the next manager's membership (a remount). One cancel, bounded by one request timeout.
   */
  private async cancelAfterDispose(delayId: string): Promise<void> {
    this.log.debug("cancelling a delayed leave that arrived after dispose()");
    const controller = new AbortController();
    const stop = this.clock.after(this.timing.requestTimeoutMs, () => controller.abort());
    try {
      await this.backend.updateDelayedEvent(delayId, "cancel", { signal: controller.signal });
    } catch (error) {
      this.log.debug("could not cancel a delayed leave after dispose()", error);
    } finally {
      stop();
    }
  }

  /** A delayed leave nobody tracks any more would fire later and wipe a membership: cancel it. */
  private async cancelOrphan(delayId: string, firesAt?: number): Promise<void> {
    if (this.disposed) return;
    this.log.debug("cancelling orphaned delayed leave", delayId);
    // If the cancel is not confirmed by the time the orphan is surely due, it probably wiped our
    // membership. The server created it before its id reached us (now), so it fires a delay from now
    // at the latest (`firesAt`, a delay after the send, is the earliest).
    let confirmed = false;
    const { latestFire, cancelUntil } = lateIdDeadlines(
      firesAt === undefined ? undefined : firesAt - this.timing.delayMs,
      this.clock.now(),
      this.timing.delayMs,
      this.timing.requestTimeoutMs,
    );
    const latest = Math.max(firesAt ?? -Infinity, latestFire);
    const cancelDeadline =
      firesAt === undefined
        ? undefined
        : this.clock.after(latest - this.clock.now(), () => !confirmed && this.orphanProbablyFired());
    // Quick retries, but only while the orphan can still fire: after that a cancel is moot.
    const until = cancelUntil;
    const result = await this.retrying(
      this.disposeController.signal,
      "cancel",
      (signal) => this.backend.updateDelayedEvent(delayId, "cancel", { signal }),
      undefined,
      this.rejoinRetryCapMs,
      undefined,
      () => this.clock.now() < until,
      notGone,
    );
    if (!result.ok && !result.deferred && !result.aborted) {
      // "gone": it has fired already (or someone removed it): our membership may be wiped.
      cancelDeadline?.();
      this.orphanProbablyFired();
      return;
    }
    if (!result.ok && result.deferred) return; // the deadline timer decides
    confirmed = true;
    cancelDeadline?.();
  }

  /** An orphan we could not cancel in time fired: others see us gone; rejoin like after a fired leave. */
  private orphanProbablyFired(): void {
    const call = this.call;
    if (!call || call.abort.signal.aborted || !call.lastSent) return;
    this.log.warn("an orphaned delayed leave was due before we could cancel it: probably left");
    call.lastSent = undefined;
    this.ownMembershipSubject.next(undefined);
    this.setProbablyLeft(true);
    this.setState({ kind: "reconnecting", reason: "delayed-leave-fired", probablyLeft: true });
    void this.writeMembership(call, "fresh");
  }

  /**
   * Where the backend can list our pending delayed events, cancel every one at our key except `keep`:
   * it is an orphan from a schedule whose answer we never got, and would wipe our membership when it
   * fired. Only runs while such an orphan may exist; failures leave the re-assert as the fallback.
   */
  private sweepOrphans(keep: string | undefined): Promise<void> {
    if (!this.backend.listDelayedEvents || this.clock.now() >= this.orphanWindowUntil)
      return Promise.resolve();
    // One sweep at a time; a request for another while one runs makes it run once more.
    if (this.sweeping) {
      this.sweepAgain = true;
      return this.sweeping;
    }
    this.sweeping = this.sweepOnce(keep).finally(() => {
      this.sweeping = undefined;
      if (this.sweepAgain) {
        this.sweepAgain = false;
        void this.sweepOrphans(this.call?.delayId);
      }
    });
    return this.sweeping;
  }

  private async sweepOnce(keep: string | undefined): Promise<void> {
    const windowUntil = this.orphanWindowUntil;
    // Retried quickly, but only while an orphan could still fire.
    const listed = await this.retrying(
      this.disposeController.signal,
      "cancel",
      (signal) => this.backend.listDelayedEvents!({ signal }),
      undefined,
      this.rejoinRetryCapMs,
      undefined,
      () => this.clock.now() < windowUntil,
    );
    if (!listed.ok) {
      this.log.debug("could not list delayed events to find orphans", listed.error);
      return;
    }
    // A schedule still open may have created a listed id whose answer has not reached us yet: give
    // open schedules one request timeout to answer before judging what is an orphan.
    if (this.openSchedules && this.openSchedules.size > 0)
      await this.clock.sleep(
        this.delayedTimeoutMs,
        this.disposeController.signal,
        abortWhen(Promise.all(this.openSchedules.values())),
      );
    const orphans = listed.value.filter(
      (e) =>
        e.roomId === this.roomId &&
        e.stateKey === this.stateKey &&
        e.delayId !== keep &&
        e.delayId !== this.call?.delayId &&
        !this.learnedIds?.has(e.delayId),
    );
    await Promise.all(orphans.map((e) => this.cancelOrphan(e.delayId)));
    if (this.orphanWindowUntil === windowUntil) this.orphanWindowUntil = 0;
    const call = this.call;
    if (call && !call.abort.signal.aborted && call.wantedWrite && !call.writer)
      void this.writeMembership(call, call.wantedWrite);
  }

  private async lowerDelay(call: Call, serverMaxMs: number | undefined): Promise<boolean> {
    const current = this.timing.delayMs;
    const candidate = serverMaxMs ?? this.knownMaxDelayMs;
    const next = candidate !== undefined && candidate < current ? candidate : Math.floor(current / 2);
    if (next < MIN_DELAY_MS || ++call.lowerings > MAX_DELAY_LOWERINGS) return false;
    this.retime(resolveTiming(this.options, next));
    this.log.warn(`server refused a ${current} ms delay; using ${next} ms`);
    this.updateSupport({ delayMs: next, maxDelayMs: candidate ?? this.supportSubject.value.maxDelayMs });
    this.emitError(new MembershipError(`delay lowered to ${next} ms`, "max-delay-lowered", "schedule-leave"));
    return true;
  }

  private enterDegraded(call: Call, reason: string, { retryLater = false } = {}): void {
    this.log.warn(`joining without a delayed leave: ${reason}`);
    call.delayed = "none";
    call.rearming = false;
    this.updateSupport({ delayedEvents: false, reason });
    this.emitError(new MembershipError(reason, "delayed-events-unsupported", "schedule-leave"));
    // Answers we did not recognise say nothing about support: try again later, as a heartbeat would.
    if (retryLater)
      call.cancelRearm = this.clock.after(this.timing.retryMaxMs, () => {
        call.cancelRearm = undefined;
        void this.rearm(call);
      });
    if (call.wantedWrite && !call.writer) void this.writeMembership(call, call.wantedWrite);
  }

  /**
   * Degraded after unrecognised answers: schedule a delayed leave again. Meanwhile the membership keeps
   * its short degraded expiry and its refreshes (`rearming`); once armed, the heartbeat takes over.
   */
  private async rearm(call: Call): Promise<void> {
    if (call.abort.signal.aborted || call.delayed !== "none") return;
    call.delayed = "pending";
    call.rearming = true;
    call.unrecognisedSchedules = 0;
    if (!(await this.armDelayedLeave(call))) return;
    call.rearming = false;
    // TypeScript narrowed `delayed` to "pending" above; armDelayedLeave changed it.
    if ((call.delayed as Call["delayed"]) !== "armed" || call.abort.signal.aborted) return;
    this.log.info("a delayed leave is armed again; leaving degraded mode");
    // The normal expiry window from now on.
    void this.writeMembership(call, "refresh");
    call.heartbeatLoop = this.heartbeat(call);
  }

  private markArmed(call: Call, sentAt: number): void {
    call.delayed = "armed";
    call.armedAt = sentAt;
    call.failingDelayedSince = undefined;
    const leaveAt = sentAt + this.timing.delayMs;
    call.leaveDeadline = leaveAt;
    // One timer per call that follows the deadline: re-arming a timer on every heartbeat costs more.
    if (call.watchingUntil === undefined || leaveAt < call.watchingUntil) this.watchPredictedLeave(call);
    if (call.abort.signal.aborted) return; // leaving: just keep the delayed leave alive
    // A schedule or restart that succeeds after our membership landed proves we are in the call
    // (unless that membership has expired for others: only a write repairs that).
    if (call.lastSent && !call.expired) {
      this.setProbablyLeft(false);
      this.setState({ kind: "joined", delayedLeave: true });
    }
    // Writes deferred while the delayed leave was not known to be alive can go now.
    if (call.wantedWrite && !call.writer) void this.writeMembership(call, call.wantedWrite);
  }

  /** A membership write is safe only while a delayed leave is known to be pending long enough. */
  private writeIsProtected(call: Call): boolean {
    // (sweepOrphans and markArmed resume writes deferred here.)
    return mayWriteMembership({
      now: this.clock.now(),
      delayed: call.delayed,
      rearming: call.rearming ?? false,
      armedAt: call.armedAt,
      delayMs: this.timing.delayMs,
      timeoutMs: this.delayedTimeoutMs,
      orphanWindowUntil: this.orphanWindowUntil,
      canListDelayed: !!this.backend.listDelayedEvents,
    });
  }

  /** Fire onPredictedLeave at `call.leaveDeadline`, following it as heartbeats move it on. */
  private watchPredictedLeave(call: Call): void {
    call.cancelProbablyLeft?.();
    call.watchingUntil = call.leaveDeadline!;
    const cancel = this.clock.after(call.leaveDeadline! - this.clock.now(), () => {
      call.cancelProbablyLeft = call.watchingUntil = undefined;
      if (this.clock.now() < call.leaveDeadline!) this.watchPredictedLeave(call);
      else this.onPredictedLeave(call);
    });
    call.cancelProbablyLeft = () => {
      cancel();
      call.cancelProbablyLeft = call.watchingUntil = undefined;
    };
  }

  private onPredictedLeave(call: Call): void {
    if (call.abort.signal.aborted) return;
    this.log.warn("no heartbeat got through before the delayed leave was due: probably left");
    this.setProbablyLeft(true);
    this.setState({ kind: "reconnecting", reason: "heartbeat-failing", probablyLeft: true });
  }

  // ---------------------------------------------------------------------------------------------
  // Heartbeat: restart the delayed leave every interval, counted from the send of the last success.
  // ---------------------------------------------------------------------------------------------

  private async heartbeat(call: Call): Promise<void> {
    const signal = call.heartbeatAbort.signal;
    /** Answers in a row that were neither a success nor a real "gone" (src/core/policy.ts). */
    let refusals = 0;
    while (!signal.aborted && call.delayed === "armed") {
      const due = call.armedAt! + this.timing.heartbeatIntervalMs - this.clock.now();
      const sleep = this.clock.wakeableSleep(due, signal);
      call.wake = sleep.wake;
      await sleep.done;
      if (signal.aborted) return;
      this.checkExpiry(call);
      const delayId = call.delayId!;
      const result = await this.retrying(
        signal,
        "restart",
        (s) => this.backend.updateDelayedEvent(delayId, "restart", { signal: s }),
        call,
        this.rejoinRetryCapMs,
        undefined,
        undefined,
        // Quick retries for a busy or unreachable server; answers we do not recognise go to the
        // slower back-off below (they are no sign of a quick recovery).
        (cls) => isRetryable(cls) && !isUnrecognised(cls),
      );
      if (signal.aborted) return;
      if (result.ok) {
        refusals = 0;
        this.markArmed(call, result.sentAt);
        continue;
      }
      if (call.abort.signal.aborted) {
        // Leaving: the delayed leave is gone, so the leave job will write {} itself.
        if (result.cls.kind === "gone") call.delayId = undefined;
        return;
      }
      if (result.cls.kind === "unsupported") {
        // The delayed leave we armed can no longer be restarted and will fire: keep the membership
        // (short expiry from now on) and write it again once that leave is past.
        const firesBy = call.armedAt! + this.timing.delayMs + this.delayedTimeoutMs;
        call.cancelProbablyLeft?.();
        this.enterDegraded(call, result.cls.reason);
        this.setProbablyLeft(false);
        void this.writeMembership(call, "refresh");
        this.clock.after(firesBy - this.clock.now(), () => {
          if (!call.abort.signal.aborted) void this.writeMembership(call, "refresh");
        });
        return;
      }
      if (onRestartFailure(result.cls) === "back-off") {
        // Not a real "gone": our delayed leave may well be alive, and a new one plus a rewrite would
        // only abandon it. Report, wait (up to a heartbeat interval), and probe again.
        this.emitError(this.toError(result.cls, result.error, "restart"));
        const wait = retryWaitMs({
          cls: result.cls,
          localTimeout: false,
          attempt: refusals++,
          baseMs: this.timing.retryBaseMs,
          ...laneWaitLimits("refusal", this.timing),
          random: this.random,
        });
        if (!(await this.clock.sleep(wait, signal))) return;
        continue;
      }
      // gone (404 M_NOT_FOUND, 409): the server no longer holds our delayed leave, or says it is done.
      refusals = 0;
      await this.recoverLostDelayedLeave(call, result.cls);
    }
  }

  private async recoverLostDelayedLeave(call: Call, cls: ErrorClass): Promise<void> {
    // Where the server can say what became of it (MSC4140 as merged: the 409's lookup, or `GET` one),
    // believe the server. Otherwise judge by time, not by the probablyLeft flag: after a rejoin the flag
    // stays up until a restart succeeds, and on Synapse < 1.127 our own fresh write cancels the new
    // delayed leave, so a stale flag would turn that 404 into another fresh rejoin, forever.
    // Past the due time the verdict is "fired" anyway, so only a "gone" before it (where time cannot
    // tell fired early, cancelled or lost apart) costs a lookup: a recovery after an outage must not
    // wait a round trip for it.
    const byTime = goneCause(this.clock.now(), call.armedAt!, this.timing.delayMs);
    const lookup =
      cls.kind === "gone" && cls.finalised
        ? cls.finalised
        : byTime === "lost"
          ? await this.lookUpDelayedLeave(call.delayId)
          : undefined;
    const cause = lostDelayedLeaveCause(lookup, byTime);
    if (cause === "pending") {
      // The server still holds it: that "gone" was wrong. Keep the id (a replacement would leave it to
      // fire) and probe it again after a pause: the heartbeat is overdue by now, so without one this
      // would be a loop at the budget's rate.
      this.log.warn("a restart said our delayed leave was gone, but the server still holds it");
      this.emitError(
        new MembershipError("the server answered 'gone' for a pending delayed leave", "unknown", "restart"),
      );
      const pause = Math.max(this.timing.retryBaseMs, this.timing.heartbeatIntervalMs / 4);
      await this.clock.sleep(pause, call.heartbeatAbort.signal);
      return;
    }
    const fired = cause === "fired";
    const replaced = call.delayId;
    call.delayId = undefined;
    call.delayed = "pending";
    call.cancelProbablyLeft?.();
    this.delayIdSubject.next(undefined);
    if (fired) {
      this.setProbablyLeft(true);
      // The membership is gone from the server; we are not joined until a fresh one lands.
      call.lastSent = undefined;
      this.ownMembershipSubject.next(undefined);
      if (!this.autoRejoin) {
        this.log.warn("the server fired our delayed leave; autoRejoin is off, so we stay out");
        this.wantJoined = false;
        this.endCall(call);
        this.call = undefined;
        this.setState({ kind: "left", reason: "delayed-leave-fired" });
        return;
      }
      this.setState({ kind: "reconnecting", reason: "delayed-leave-fired", probablyLeft: true });
    } else if (await this.membershipReplaced(call)) {
      // Another user wrote our key (Synapse then cancels our delayed leave): our membership is gone.
      call.lastSent = undefined;
      this.ownMembershipSubject.next(undefined);
      this.emitError(
        new MembershipError(
          "our membership was removed or replaced by someone else",
          "membership-removed",
          "restart",
        ),
      );
      if (!this.autoRejoin) {
        this.wantJoined = false;
        this.endCall(call);
        this.call = undefined;
        this.setState({ kind: "left", reason: "membership-removed" });
        return;
      }
      this.setState({ kind: "reconnecting", reason: "membership-removed", probablyLeft: false });
    } else {
      this.emitError(
        new MembershipError(
          "the delayed leave is gone; scheduling a new one",
          "delayed-leave-lost",
          "restart",
        ),
      );
      this.setState({ kind: "reconnecting", reason: "delayed-leave-lost", probablyLeft: false });
    }
    // Whatever write was held back goes out as one write of the right kind once the new delayed leave
    // is armed (markArmed resumes it): never a held-back refresh with the old created_ts first.
    this.wantWrite(call, call.lastSent ? "reassert" : "fresh");
    // Recoveries are rate-bounded: a server that loses every delayed leave at once gets one new
    // schedule per heartbeat interval from us, not one per round trip.
    const pause = recoveryPauseMs(this.clock.now(), call.lastRecoveryAt, this.timing.heartbeatIntervalMs);
    call.lastRecoveryAt = this.clock.now() + pause;
    if (pause > 0 && !(await this.clock.sleep(pause, call.abort.signal))) return;
    // A "gone" we were wrong about would leave the replaced delayed leave to fire later: cancel it.
    if (!fired && replaced) void this.cancelReplaced(replaced);
    if (call.abort.signal.aborted || !(await this.armDelayedLeave(call))) return;
    // Never wait for the state send here: the new delayed leave needs its heartbeat.
    if (call.wantedWrite && !call.writer) void this.writeMembership(call, call.wantedWrite);
  }

  /**
   * What the server says became of one delayed event, where it can say (`backend.getDelayedEvent`:
   * MSC4140 as merged, Synapse ≥1.161's unstable lookup); undefined when it cannot, or did not answer
   * within one request timeout.
   */
  private async lookUpDelayedLeave(delayId: string | undefined): Promise<DelayedEventStatus | undefined> {
    if (!delayId || !this.backend.getDelayedEvent) return undefined;
    const spent = this.spend();
    if (spent !== true && !(await spent)) return undefined;
    try {
      return await this.clock.withTimeout(this.delayedTimeoutMs, this.disposeController.signal, (signal) =>
        this.backend.getDelayedEvent!(delayId, { signal }),
      );
    } catch (error) {
      this.log.debug("the delayed leave could not be looked up; judging by time", error);
      return undefined;
    }
  }

  /** One best-effort cancel of a delayed leave we replaced (a 404 M_NOT_FOUND is the expected answer). */
  private async cancelReplaced(delayId: string): Promise<void> {
    const spent = this.spend();
    if (spent !== true && !(await spent)) return;
    try {
      await this.clock.withTimeout(this.delayedTimeoutMs, this.disposeController.signal, (signal) =>
        this.backend.updateDelayedEvent(delayId, "cancel", { signal }),
      );
    } catch (error) {
      this.log.debug("the replaced delayed leave could not be cancelled (probably gone)", error);
    }
  }

  /** True only when the server is known to hold exactly `content` at our key (false if unknown). */
  private async serverHolds(content: MembershipContent): Promise<boolean> {
    if (!this.backend.readStateEvent) return false;
    const req = { roomId: this.roomId, eventType: CALL_MEMBER_EVENT_TYPE, stateKey: this.stateKey };
    const spent = this.spend();
    if (spent !== true && !(await spent)) return false;
    try {
      const current = await this.clock.withTimeout(
        this.delayedTimeoutMs,
        this.disposeController.signal,
        (signal) => this.backend.readStateEvent!(req, { signal }),
      );
      return current !== undefined && sameContent(current, content);
    } catch {
      return false;
    }
  }

  /** True when the server holds something other than what we last wrote (best effort; false if unknown). */
  private async membershipReplaced(call: Call): Promise<boolean> {
    if (!this.backend.readStateEvent || !call.lastSent) return false;
    const req = { roomId: this.roomId, eventType: CALL_MEMBER_EVENT_TYPE, stateKey: this.stateKey };
    try {
      const current = await this.clock.withTimeout(
        this.delayedTimeoutMs,
        this.disposeController.signal,
        (signal) => this.backend.readStateEvent!(req, { signal }),
      );
      return !sameContent(current ?? {}, call.lastSent);
    } catch {
      return false;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Room state (optional): our membership gone from the room while our delayed leave is alive.
  // ---------------------------------------------------------------------------------------------

  /** The room holds no membership of ours although we wrote one and our delayed leave is alive. */
  private async membershipMissing(call: Call): Promise<void> {
    // The view may lag more than the grace period behind our own write (a slow sync): ask the server
    // before rewriting, or a lag alone would flicker probablyLeft and give us a new created_ts.
    const sent = call.lastSent;
    if (sent && (await this.serverHolds(sent))) {
      this.log.debug("the room view lags behind our write; the server holds our membership");
      return;
    }
    if (call.abort.signal.aborted || call.lastSent !== sent || this.call !== call) return;
    this.log.warn("the room no longer holds our membership");
    call.lastSent = undefined;
    this.ownMembershipSubject.next(undefined);
    this.emitError(
      new MembershipError("our membership is gone from the room state", "membership-removed", "send-state"),
    );
    if (!this.autoRejoin) {
      // Clean up our delayed leave too; the app decides whether to join again.
      this.wantJoined = false;
      this.leaveReason = "membership-removed";
      if (!this.leaveJob) this.startLeaveJob(call);
      return;
    }
    // Others see us gone until the write lands; "certainly joined" again after the restart that follows.
    this.setProbablyLeft(true);
    this.setState({ kind: "reconnecting", reason: "membership-removed", probablyLeft: true });
    void this.writeMembership(call, "fresh");
  }

  // ---------------------------------------------------------------------------------------------
  // Membership writes: one in flight at a time, later requests coalesced into the next write.
  // ---------------------------------------------------------------------------------------------

  /** Ask for a write of at least `kind` without starting one (the next writer run takes it). */
  private wantWrite(call: Call, kind: WriteKind): void {
    if (!call.wantedWrite || WRITE_RANK[kind] > WRITE_RANK[call.wantedWrite]) call.wantedWrite = kind;
  }

  private writeMembership(call: Call, kind: WriteKind): Promise<void> {
    this.wantWrite(call, kind);
    if (!call.writer)
      call.writer = this.membershipWriter(call).finally(() => {
        call.writer = undefined;
      });
    return call.writer;
  }

  private async membershipWriter(call: Call): Promise<void> {
    const signal = call.abort.signal;
    while (call.wantedWrite && !signal.aborted) {
      // No write without a live delayed leave behind it; markArmed resumes deferred writes.
      if (!this.writeIsProtected(call)) return;
      const kind = call.wantedWrite;
      call.wantedWrite = undefined;
      const version = this.fieldsVersion;
      const content =
        kind === "reassert" && call.lastSent
          ? call.lastSent
          : // When the server holds no membership of ours, the next one is a fresh join (new created_ts).
            this.makeContent(call, kind === "fresh" || !call.createdTs || !call.lastSent);
      call.membershipAttempted = true;
      const result = await this.retrying(
        signal,
        "send-state",
        (s) =>
          this.backend.sendStateEvent(
            { roomId: this.roomId, eventType: CALL_MEMBER_EVENT_TYPE, stateKey: this.stateKey, content },
            { signal: s },
          ),
        call,
        this.timing.retryMaxMs,
        this.timing.stateRequestTimeoutMs,
        () => this.writeIsProtected(call),
      );
      if (this.disposed) return;
      if (!result.ok && result.deferred) {
        if (!call.wantedWrite || WRITE_RANK[kind] > WRITE_RANK[call.wantedWrite]) call.wantedWrite = kind;
        return;
      }
      if (!result.ok) {
        if (!result.aborted && !isRetryable(result.cls))
          this.failCall(call, this.toError(result.cls, result.error, "send-state"));
        return;
      }
      if (signal.aborted) return;
      call.lastSent = content;
      call.lastWrittenAt = this.clock.now();
      call.confirmedVersion = Math.max(call.confirmedVersion, version);
      this.ownMembershipSubject.next(content);
      this.resolveUpdates(call.confirmedVersion);
      this.scheduleRefresh(call);
      this.watchExpiry(call, content);
      if (call.delayed === "armed") {
        // After a rejoin, "certainly joined" waits for the restart that follows (markArmed).
        if (!this.probablyLeftSubject.value) this.setState({ kind: "joined", delayedLeave: true });
        // Servers before Synapse 1.127 cancel our delayed leave when we write state: check at once.
        call.wake?.();
      } else {
        this.setProbablyLeft(false);
        this.setState({ kind: "joined", delayedLeave: false });
      }
    }
  }

  /**
   * Others stop listing a membership at created_ts + expires. Remember when; checkExpiry() compares on
   * every heartbeat and every failed retry (no timer of its own: a timer per manager costs memory).
   */
  private watchExpiry(call: Call, content: MembershipContent): void {
    const expiresAt = membershipExpiresAt(content);
    if (expiresAt === undefined) return;
    call.expiresAt = expiresAt;
    if (call.expired) {
      call.expired = false;
      this.setProbablyLeft(false);
    }
  }

  /**
   * If writes kept failing until our membership's `expires` (while heartbeats may still work), others
   * no longer list us: we must not go on saying `connected`. Say we are probably out.
   */
  private checkExpiry(call: Call): void {
    if (call.expired || call.expiresAt === undefined || call.abort.signal.aborted) return;
    if (this.clock.now() < call.expiresAt) return;
    this.log.warn("our membership expired for others before a refresh got through");
    call.expired = true;
    this.setProbablyLeft(true);
    this.setState({ kind: "reconnecting", reason: "membership-expired", probablyLeft: true });
    this.emitError(
      new MembershipError(
        "our membership expired for others: no membership write got through before `expires`",
        "membership-expired",
        "send-state",
      ),
    );
  }

  private makeContent(call: Call, fresh: boolean): MembershipContent {
    const now = this.clock.now();
    if (fresh || call.createdTs === undefined) call.createdTs = now;
    const window =
      call.delayed === "none" || call.rearming
        ? this.timing.degradedMembershipExpiryMs
        : this.timing.membershipExpiryMs;
    return makeMembershipContent(this.fields, call.createdTs, now, window);
  }

  /** Refresh `expires` when half its window has passed, so it tracks real time. */
  private scheduleRefresh(call: Call): void {
    call.cancelRefresh?.();
    const window =
      call.delayed === "none" || call.rearming
        ? this.timing.degradedMembershipExpiryMs
        : this.timing.membershipExpiryMs;
    call.cancelRefresh = this.clock.after(refreshIntervalMs(window), () => {
      if (!call.abort.signal.aborted) void this.writeMembership(call, "refresh");
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Leave: stop the call, learn any in-flight delay id, then fire the delayed leave or write {}.
  // ---------------------------------------------------------------------------------------------

  private startLeaveJob(call: Call): void {
    const wasFailed = this.stateSubject.value.kind === "failed";
    this.endCall(call, { keepHeartbeat: true });
    if (!wasFailed || !this.wantJoined) this.setState({ kind: "leaving" });
    this.leaveJob = this.runLeave(call).then((result) => {
      this.leaveJob = undefined;
      if (this.call === call) this.call = undefined;
      if (this.disposed) return result;
      if (this.wantJoined) this.startCall();
      return result;
    });
  }

  private async runLeave(call: Call): Promise<LeaveResult> {
    const signal = this.disposeController.signal;
    // Requests in flight settle first (each has a local timeout), so our leave lands after them; the
    // heartbeat goes on meanwhile, or a slow write could land after our delayed leave fired.
    await call.scheduling;
    await call.writer;
    // Schedules answered after their timeout are being cancelled: wait for that, within bounds.
    if (this.lateSchedules.size > 0)
      await this.clock.sleep(
        this.timing.stateRequestTimeoutMs,
        signal,
        abortWhen(Promise.all(this.lateSchedules)),
      );
    call.heartbeatAbort.abort();
    await call.heartbeatLoop;
    await this.sweepOrphans(call.membershipAttempted ? call.delayId : undefined);
    // A sweep asked for while one ran runs once more: wait for that one too, or an orphan found by
    // it would still be pending when we say we left.
    while (this.sweeping) await this.sweeping;
    if (signal.aborted) return { status: "disposed" };
    let via: Extract<LeaveResult, { status: "left" }>["via"] = "nothing-to-leave";
    const delayId = call.delayId;
    if (!call.membershipAttempted) {
      if (delayId) {
        // Only success or a real "gone" ends this: a refused cancel (a proxy's 404, a 403) leaves the
        // delayed leave pending, to fire into our next membership. Retried with backoff.
        const r = await this.retrying(
          signal,
          "cancel",
          (s) => this.backend.updateDelayedEvent(delayId, "cancel", { signal: s }),
          undefined,
          this.timing.retryMaxMs,
          undefined,
          undefined,
          notGone,
        );
        if (!r.ok && r.aborted) return { status: "disposed" };
        via = "delayed-event-cancelled";
      }
    } else {
      let sent = false;
      if (delayId) {
        // Retry only answers of a busy or unreachable server; anything else (gone, refused, an answer
        // we do not recognise) falls back to writing {} at once (src/core/policy.ts).
        const r = await this.retrying(
          signal,
          "send-leave",
          (s) => this.backend.updateDelayedEvent(delayId, "send", { signal: s }),
          undefined,
          this.timing.retryMaxMs,
          undefined,
          undefined,
          (cls) => onLeaveSendFailure(cls) === "back-off",
        );
        if (!r.ok && r.aborted) return { status: "disposed" };
        if (!r.ok && r.cls.kind !== "gone") this.emitError(this.toError(r.cls, r.error, "send-leave"));
        sent = r.ok;
        via = "delayed-event-sent";
      }
      if (!sent) {
        const r = await this.retrying(
          signal,
          "send-state",
          (s) =>
            this.backend.sendStateEvent(
              {
                roomId: this.roomId,
                eventType: CALL_MEMBER_EVENT_TYPE,
                stateKey: this.stateKey,
                content: { ...LEFT_CONTENT },
              },
              { signal: s },
            ),
          undefined,
          this.timing.retryMaxMs,
          this.timing.stateRequestTimeoutMs,
        );
        if (!r.ok) {
          if (r.aborted) return { status: "disposed" };
          // Refused (403: no longer in the room) or rejected: say so, with the error.
          const error = this.toError(r.cls, r.error, "send-state");
          this.emitError(error);
          this.setState({ kind: "failed", error });
          // The delayed leave stays: its firing is now the only way our membership goes. But a later
          // join() must cancel it first, or it fires into the new membership.
          if (delayId) this.staleDelayId = delayId;
          return { status: "failed", error };
        }
        via = "state-written";
        // The send failed without a "gone": our delayed leave may still be pending. It would only
        // write {} again, but nothing of ours should stay behind: one best-effort cancel.
        if (delayId) {
          await this.cancelWhileItCanFire(delayId, signal);
          if (this.disposed) return { status: "disposed" };
        }
      }
    }
    this.delayIdSubject.next(undefined);
    this.ownMembershipSubject.next(undefined);
    this.setProbablyLeft(false);
    if (!this.wantJoined) this.setState({ kind: "left", reason: this.leaveReason });
    return { status: "left", via };
  }

  // ---------------------------------------------------------------------------------------------
  // Shared plumbing: retries, give-up bound, support probing, state changes.
  // ---------------------------------------------------------------------------------------------

  /**
   * Run one request until it succeeds, fails for good, or `signal` aborts. Transient failures wait
   * (Retry-After, or capped exponential backoff with jitter; a local timeout retries at once).
   */
  private async retrying<T>(
    signal: CancelSignal,
    op: Operation,
    fn: (signal: AbortSignal) => Promise<T>,
    call?: Call,
    capMs: number = this.timing.retryMaxMs,
    /** undefined: the adaptive timeout of delayed-event requests (src/core/linkTiming.ts). */
    timeoutMs?: number,
    /** Checked before every attempt; false stops with `deferred` (nothing sent). */
    guard?: () => boolean,
    /** Which failures to retry here; the others return to the caller. Default: src/core/policy.ts. */
    retryable: (cls: ErrorClass) => boolean = isRetryable,
  ): Promise<Attempt<T>> {
    // The backoff exponent grows only with answered failures: a local timeout already waited a whole
    // timeout, so a run of them (an outage) must not leave the first retry after it waiting long.
    let backoffStep = 0;
    const lane = op === "send-state" ? "state" : "delayed";
    for (;;) {
      if (signal.aborted) return { ok: false, cls: { kind: "network" }, error: signal.reason, aborted: true };
      if (guard && !guard())
        return {
          ok: false,
          cls: { kind: "network" },
          error: new Error("deferred"),
          aborted: true,
          deferred: true,
        };
      const spent = this.spend(signal);
      if (spent !== true && !(await spent))
        return { ok: false, cls: { kind: "network" }, error: signal.reason, aborted: true };
      if (guard && !guard())
        return {
          ok: false,
          cls: { kind: "network" },
          error: new Error("deferred"),
          aborted: true,
          deferred: true,
        };
      const sentAt = this.clock.now();
      const adaptive = timeoutMs === undefined;
      try {
        const value = await this.clock.withTimeout(
          timeoutMs ?? this.delayedTimeoutMs,
          this.disposeController.signal,
          fn,
        );
        if (adaptive) this.observeLink(sentAt);
        if (call && lane === "state") call.failingStateSince = undefined;
        else if (call) call.failingDelayedSince = undefined;
        return { ok: true, value, sentAt };
      } catch (error) {
        if (this.disposed) return { ok: false, cls: { kind: "network" }, error, aborted: true };
        const cls = classifyError(error, op, this.clock.now());
        // Only the delayed-event lane's own timeouts and real answers (an HTTP status) measure the
        // link: a connection reset after a long cut is not a round trip.
        if (adaptive && (error instanceof LocalTimeoutError || answered(cls)))
          this.observeLink(sentAt, error);
        if (!retryable(cls)) return { ok: false, cls, error };
        const step = error instanceof LocalTimeoutError ? backoffStep : backoffStep++;
        if (!(await this.waitBeforeRetry(call, cls, error, step, op, capMs, signal)))
          return { ok: false, cls, error, aborted: signal.aborted || this.disposed };
      }
    }
  }

  /** Report a transient failure and wait; false if the call ended or the give-up bound was reached. */
  private async waitBeforeRetry(
    call: Call | undefined,
    cls: ErrorClass,
    error: unknown,
    attempt: number,
    op: Operation,
    capMs: number,
    signal: CancelSignal = call!.abort.signal,
  ): Promise<boolean> {
    this.emitError(this.toError(cls, error, op));
    const now = this.clock.now();
    if (call) this.checkExpiry(call);
    if (call) {
      const lane = op === "send-state" ? "state" : "delayed";
      const since = lane === "state" ? (call.failingStateSince ??= now) : (call.failingDelayedSince ??= now);
      if (now - since >= this.timing.giveUpAfterMs) {
        this.failCall(
          call,
          new MembershipError(`gave up after failing for ${now - since} ms`, "gave-up", op, cls, {
            cause: error,
          }),
        );
        return false;
      }
    }
    const waitMs = retryWaitMs({
      cls,
      localTimeout: error instanceof LocalTimeoutError && !this.link?.tooSlow,
      attempt,
      baseMs: this.timing.retryBaseMs,
      // Which ceilings apply on which lane (how long a Retry-After may hold us) is core/policy's call.
      ...laneWaitLimits(op === "send-state" ? "state" : "delayed", this.timing, capMs),
      random: this.random,
    });
    this.log.debug(`${op} failed (${cls.kind}); retrying in ${waitMs} ms`);
    return this.clock.sleep(waitMs, signal);
  }

  private async probeSupport(call: Call): Promise<void> {
    if (!this.backend.probeSupport) return;
    try {
      const hint = await this.clock.withTimeout(
        this.timing.stateRequestTimeoutMs,
        this.disposeController.signal,
        (signal) => this.backend.probeSupport!({ signal }),
      );
      if (this.disposed) return;
      if (hint.maxDelayMs !== undefined && hint.maxDelayMs > 0) {
        this.knownMaxDelayMs = hint.maxDelayMs;
        this.updateSupport({ maxDelayMs: hint.maxDelayMs });
      }
      if (hint.canSendState === false && !call.abort.signal.aborted)
        this.failCall(
          call,
          new MembershipError(
            "the widget host refused to let us send our membership",
            "forbidden",
            "send-state",
          ),
        );
      else if (hint.delayedEvents === false && this.supportSubject.value.delayedEvents === undefined)
        this.updateSupport({ delayedEvents: false, reason: hint.reason });
    } catch (error) {
      this.log.debug("support probe failed", error);
    }
  }

  private failCall(call: Call, error: MembershipError): void {
    if (call.abort.signal.aborted) return;
    this.log.error(`membership failed: ${error.message}`);
    this.wantJoined = false;
    this.endCall(call);
    this.emitError(error);
    this.setState({ kind: "failed", error });
  }

  /** Stop the call's heartbeat, refresh and retries. In-flight requests still settle. */
  private endCall(call: Call, { keepHeartbeat = false } = {}): void {
    if (!call.abort.signal.aborted) call.abort.abort();
    if (!keepHeartbeat && !call.heartbeatAbort.signal.aborted) call.heartbeatAbort.abort();
    call.cancelProbablyLeft?.();
    call.cancelRefresh?.();
    call.cancelRearm?.();
    call.wantedWrite = undefined;
    this.rejectUpdates(
      new MembershipError("the call ended before the update was sent", "gave-up", "send-state"),
    );
  }

  private toError(cls: ErrorClass, cause: unknown, op: Operation): MembershipError {
    const code: MembershipErrorCode =
      cls.kind === "gone"
        ? "delayed-leave-lost"
        : cls.kind === "max-delay"
          ? "max-delay-lowered"
          : cls.kind === "unsupported"
            ? "delayed-events-unsupported"
            : cls.kind;
    const message = cause instanceof Error ? cause.message : String(cause);
    return new MembershipError(`${op}: ${message}`, code, op, cls, { cause });
  }

  private emitError(error: MembershipError): void {
    if (!this.disposed) this.errorSubject.next(error);
  }

  private resolveUpdates(confirmed: number): void {
    const done = this.updateWaiters.filter((w) => w.version <= confirmed);
    this.updateWaiters = this.updateWaiters.filter((w) => w.version > confirmed);
    for (const w of done) w.resolve();
  }

  private rejectUpdates(error: Error): void {
    const waiters = this.updateWaiters;
    this.updateWaiters = [];
    for (const w of waiters) w.reject(error);
  }

  private setState(state: MembershipState): void {
    if (this.disposed) return;
    const prev = this.stateSubject.value;
    if (sameState(prev, state)) return;
    this.log.debug(`state ${prev.kind} -> ${state.kind}`);
    this.stateSubject.next(state);
  }

  private setProbablyLeft(value: boolean): void {
    if (!this.disposed && this.probablyLeftSubject.value !== value) this.probablyLeftSubject.next(value);
  }

  private updateSupport(patch: Partial<Support>): void {
    if (!this.disposed) this.supportSubject.next({ ...this.supportSubject.value, ...patch });
  }
}

/** Retry everything but a real "gone": for cancels, where a refusal leaves the delayed leave pending. */
function notGone(cls: ErrorClass): boolean {
  return cls.kind !== "gone";
}

/** The server answered (with an error status): the round trip is a measurement. */
function answered(cls: ErrorClass): boolean {
  return cls.kind !== "network" && cls.kind !== "unknown";
}

/** A signal that aborts once `p` settles. */
function abortWhen(p: Promise<unknown>): CancelSignal {
  const controller = new Canceller();
  void p.finally(() => controller.abort());
  return controller.signal;
}
