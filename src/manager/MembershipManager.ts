import log, { type Logger } from "loglevel";
import {
  asyncScheduler,
  distinctUntilChanged,
  map,
  Subject,
  type Observable,
  type SchedulerLike,
} from "rxjs";
import type { MembershipBackend } from "../backends/types.js";
import { resolveTiming, type EffectiveTiming, type TimingOptions } from "../core/config.js";
import { heartbeatTimingOf } from "../core/machine/resources.js";
import { heldMembership, initialState, nextWakeAt, predictedLeaveAt, step } from "../core/machine/step.js";
import type { Command, MachineEnv, MachineEvent, MachineState, Request } from "../core/machine/types.js";
import { leaveTimeoutMs, validateManagerOptions } from "../core/validate.js";
import { delegationTiming } from "../core/delegationTiming.js";
import { classifyError, LocalTimeoutError, MembershipConfigError, MembershipError } from "../errors.js";
import { redactingLogger } from "../log/redact.js";
import { LazyBehavior } from "./lazyBehavior.js";
import {
  CALL_MEMBER_EVENT_TYPE,
  DEFAULT_SLOT,
  LEFT_CONTENT,
  membershipStateKey,
  type CallIntent,
  type MembershipContent,
  type Slot,
  type Transport,
} from "../membership/content.js";
import type { SourceLike } from "../membership/observer.js";
import { RTC_MEMBER_EVENT_TYPE } from "../membership/rtcMember.js";
import { freshMemberId, validateFormatOptions } from "./format.js";
import { OwnReportBook } from "./ownReport.js";
import type { OwnMembershipReport } from "../membership/own.js";
import { Clock, readsWallClock } from "./clock.js";
import { pageFor, watchPage, type PageLifecycle } from "./pageLifecycle.js";
import { RequestTrace, type RequestTraceSink } from "./requestTrace.js";
import { watchRoomState, type RoomStateWatch } from "./roomStateWatch.js";
import { statusOf, type LeaveResult, type MembershipState, type Status, type Support } from "./state.js";

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
   * Overrides the room view the manager watches its own membership in. By default it uses the backend's
   * (`ClientBackend`: the client's synced room, once it syncs; `WidgetBackend`: the host's state pushes),
   * and where no view shows our own writes it reads our key from the server every
   * `membershipCheckIntervalMs`. Either way it notices when the room no longer holds our membership
   * although our delayed leave is alive (another tab of this device left, someone wrote `{}` at our
   * key) and puts it back (autoRejoin). Give a started `MatrixClient`, or `widgetStateSource(widgetApi,
   * roomId)`, or any `RoomStateSource`.
   */
  roomState?: SourceLike;
  /** How long the room view may take to show our own write before we stop trusting it. Default 1000. */
  membershipGraceMs?: number;
  /**
   * The device's wall clock, only compared with the server's (a `clock-skew` warning); never written
   * into an event or used for a deadline. Default `Date.now`, or the scheduler's clock when it is
   * virtual.
   */
  wallClock?: () => number;
  /** All timers run on this scheduler (tests pass a VirtualTimeScheduler). Default asyncScheduler. */
  scheduler?: SchedulerLike;
  /**
   * Where the manager logs; wrapped so that access tokens (and delay ids above debug) are redacted.
   * Default: loglevel's "matrixrtc-membership" logger.
   */
  logger?: Logger;
  /** Source of jitter, for deterministic tests. Default Math.random. */
  random?: () => number;
  /**
   * Leave at once when the page goes away (`pagehide`: the tab closed or navigated away, a widget's
   * iframe removed; `freeze`): the delayed leave is fired with a request that outlives the page (fetch
   * `keepalive`; in widget mode, the widget API's message to the host), so others see the device leave
   * within a round trip instead of one delay, and the next page load finds nothing to clean up. After a
   * back/forward cache restore (`pageshow` with `persisted`) or a `resume`, the manager joins again
   * (autoRejoin). Default true where a browser `window` exists; nothing happens in Node (see
   * `leaveOnExit`). `false` turns it off; a `PageLifecycle` names the window (and document) to listen
   * on (tests).
   */
  leaveOnPageHide?: boolean | PageLifecycle;
  /**
   * How the membership goes on the wire. `"state"` (default): the `org.matrix.msc3401.call.member` state
   * event at our device's key, as Element Call's default mode and matrix-js-sdk's `MembershipManager`
   * write. `"sticky"`: an MSC4143 `org.matrix.msc4143.rtc.member` sticky event (MSC4354), as matrix-js-sdk
   * 43 writes with `unstableSendStickyEvents` and Element Call 0.26 in `matrix_2_0` mode; it needs a
   * server with `org.matrix.msc4354` (Synapse ≥ 1.163 with `msc4354_enabled`) or a widget host that grants
   * MSC4407's `send.sticky_event`, else the call fails with `sticky-events-unsupported` (never a plain
   * event that nobody reads as a membership). Same API, states, errors and guarantees in both.
   */
  membershipFormat?: "state" | "sticky";
  /**
   * Sticky format only: the member id (the sticky key, and the seed of the LiveKit identity). Default: a
   * fresh random one per `join()` (MSC4143: unguessable, new each join); see `memberId`.
   */
  memberId?: string;
  /**
   * Sticky format only: how long each membership stays sticky, at most (and default) 3 600 000 ms, the
   * server's cap. The membership is sent again before that (after a restart of the delayed leave). Shorter
   * values are for tests.
   */
  stickyDurationMs?: number;
  /**
   * Sticky format only: `"state"` joins in the state format instead where the server or host has no
   * sticky events (said on `errors$` with code `sticky-events-unsupported`, and in `support$`);
   * default `"none"`: the call fails with that error.
   */
  stickyFallback?: "state" | "none";
  /**
   * Opt-in request trace: one line per request sent and per answer or local timeout ("→ #3 schedule
   * the delayed leave (delay 10000 ms, timeout 2000 ms)", "← #3 schedule the delayed leave ok in 12 ms:
   * leave#1"). Redacted: no access token, and delay ids appear as "leave#N". Default: none.
   */
  trace?: RequestTraceSink;
  /**
   * Delegated delayed leave (MSC4195): hand the delayed leave over to the SFU's token service, which
   * restarts it while the SFU has us and sends it the moment the SFU loses us; meanwhile the manager
   * uses a 1 h delay restarted every 5 min. "auto" (the default) delegates when the app names the SFU
   * (`sfuUrl`) and the backend can ask (ClientBackend; WidgetBackend through its host, MSC4533), falls
   * back to the normal timing when the service refuses, stops answering or the delegated leave is
   * gone, and tries again later after no answer. "off": never. `support.delayedLeaveHolder` says who
   * holds the leave.
   */
  delegation?: "auto" | "off";
  /**
   * The LiveKit SFU's URL as its token service answered it (`url` of `/get_token`): the service checks
   * that a delegation names its own SFU. Without it, "auto" delegation is off.
   */
  sfuUrl?: string;
  /**
   * The delegated leave's delay and our own restarts of it. Default 3 600 000 (MSC4195's minimum) and
   * 300 000 (Element Call's). Shorter values are for tests against a service that accepts them.
   */
  delegatedDelayMs?: number;
  delegatedHeartbeatIntervalMs?: number;
}

/** What an app may change without leaving. */
export type MembershipUpdate = Partial<
  Pick<MembershipManagerOptions, "callIntent" | "fociPreferred" | "focusActive" | "applicationData">
>;

const DEFAULT_FOCUS: Transport = { type: "livekit", focus_selection: "oldest_membership" };

/** A request the driver is running: its abort, its local timeout, whether a late answer still counts. */
interface InFlight {
  /** The machine's request id. */
  readonly reqId: number;
  readonly controller: AbortController;
  /** A schedule: its answer counts even after our timeout or an abort (its id must be cancelled). */
  readonly keepLate: boolean;
  timedOut: boolean;
  cancelTimer: () => void;
  /** When its local timeout fires (clock time): it feeds the machine by then, answered or not. */
  deadline: number;
  /**
   * Aborted when the request may no longer be *started* (RequestOptions.notAfter): at dispose(), and
   * for a schedule at its local timeout. Absent for what the machine sends after dispose().
   */
  readonly start?: AbortController;
}

/**
 * Keeps one device's MatrixRTC membership alive: a delayed leave first, then the membership, then
 * `restart` heartbeats on their own lane, and a clean leave that fires the delayed leave.
 *
 * This class is the driver of a pure state machine (src/core/machine/): it turns the app's calls,
 * the backend's answers and the clock into events, feeds them to `step()`, and runs the commands it
 * returns (send this request, publish this state, resolve this promise). Every decision is in the
 * machine; see README "How it works".
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
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly env: MachineEnv;
  private readonly machine: MachineState;
  /** Sticky format: the app's own member id, when it gave one. */
  private readonly memberIdOption?: string;

  // Subjects are made on first use (lazyBehavior.ts): most apps read two or three of them.
  private readonly stateSubject = new LazyBehavior<MembershipState>({ kind: "idle" });
  private readonly probablyLeftSubject = new LazyBehavior<boolean>(false);
  private readonly delayIdSubject = new LazyBehavior<string | undefined>(undefined);
  private readonly ownMembershipSubject = new LazyBehavior<MembershipContent | undefined>(undefined);
  private readonly supportSubject: LazyBehavior<Support>;
  /** Made when `errors$` is first read: errors before that have no subscriber anyway. */
  private errorSubject?: Subject<MembershipError>;
  /** What the server confirmed of our own membership, for lists asked for with `manager` (ownReport.ts). */
  private readonly own: OwnReportBook;

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
    return (this.lazyStatus$ ??= this.stateSubject
      .asObservable()
      .pipe(map(statusOf), distinctUntilChanged()));
  }
  /** True when the server has probably fired our leave (no restart got through in time). */
  get probablyLeft$(): Observable<boolean> {
    return (this.lazyProbablyLeft$ ??= this.probablyLeftSubject.asObservable().pipe(distinctUntilChanged()));
  }
  /** The delay id of our pending delayed leave (debug only: it can be used without a token). */
  get delayId$(): Observable<string | undefined> {
    return (this.lazyDelayId$ ??= this.delayIdSubject.asObservable().pipe(distinctUntilChanged()));
  }
  /** The membership content the server holds for us, as far as we know. */
  get ownMembership$(): Observable<MembershipContent | undefined> {
    return (this.lazyOwnMembership$ ??= this.ownMembershipSubject.asObservable());
  }
  /** What the server supports (delayed events, delay in use, its maximum). */
  get support$(): Observable<Support> {
    return (this.lazySupport$ ??= this.supportSubject.asObservable());
  }
  /** The current support (delegation included: `delayedLeaveHolder`, `delegation`). */
  get support(): Support {
    return this.supportSubject.value;
  }
  /** Every error as it happens (does not replay). */
  get errors$(): Observable<MembershipError> {
    if (!this.lazyErrors$) {
      this.errorSubject = new Subject<MembershipError>();
      if (this.isDisposed) this.errorSubject.complete();
      this.lazyErrors$ = this.errorSubject.asObservable();
    }
    return this.lazyErrors$;
  }
  /**
   * Our own membership as the server's answers confirmed it (not as any view of the room shows it): `held`
   * while `connected`, and the memberships the server no longer holds (`gone`). Pass the manager as
   * `manager` to `callMembers$`, `currentCallMembers`, `watchCallMembers` or `waitForCallMembers` and the
   * list merges it in: our device is in the first list read after `connected`, and not in the first read
   * after a confirmed `leave()`, whether or not the client's sync has caught up.
   */
  get ownMembershipReport(): OwnMembershipReport {
    return this.own.value;
  }
  /** Every `ownMembershipReport`, the current one first; published before the state it goes with. */
  get ownMembershipReport$(): Observable<OwnMembershipReport> {
    return this.own.report$;
  }

  private roomStateWatch?: RoomStateWatch;
  private closeRoomView?: () => void;
  private unwatchPage?: () => void;
  private readonly wallClock: () => number;
  private readonly sfuUrl?: string;
  private readonly slot: Slot;
  /** Aborted at dispose(): requests started before it may no longer be sent (RequestOptions.notAfter). */
  private readonly trace?: RequestTrace;
  private isDisposed = false;
  /** Requests in flight, by the machine's request id. */
  private requests?: InFlight[];
  /** Events fed while a step's commands run (a subscriber calling leave()): they run next, in order. */
  private queue?: MachineEvent[];
  private stepping = false;
  /** The one timer that brings the machine's next deadline back as a tick. */
  private wakeAt?: number;
  private cancelWake?: () => void;
  private leaveWaiters?: ((result: LeaveResult) => void)[];
  private updateAcceptors?: { resolve: () => void; reject: (e: Error) => void }[];
  private updateWaiters?: { version: number; resolve: () => void; reject: (e: Error) => void }[];

  constructor(options: MembershipManagerOptions) {
    for (const key of ["roomId", "userId", "deviceId"] as const)
      if (typeof options[key] !== "string" || options[key].length === 0)
        throw new MembershipConfigError(`${key} must be a non-empty string`);
    if (!options.backend) throw new MembershipConfigError("backend is required");
    validateManagerOptions(options, options.backend.ownUserId?.());
    const sticky = validateFormatOptions(options);
    const timing = resolveTiming(options);
    this.backend = options.backend;
    this.roomId = options.roomId;
    this.userId = options.userId;
    this.deviceId = options.deviceId;
    const slot = options.slot ?? DEFAULT_SLOT;
    this.slot = slot;
    this.stateKey = membershipStateKey(options.userId, options.deviceId, slot, options.roomVersion);
    this.own = new OwnReportBook({
      roomId: options.roomId,
      userId: options.userId,
      deviceId: options.deviceId,
      slot,
    });
    const scheduler = options.scheduler ?? asyncScheduler;
    this.clock = new Clock(scheduler);
    this.wallClock = options.wallClock ?? (readsWallClock(scheduler) ? Date.now : () => scheduler.now());
    this.log = redactingLogger(options.logger ?? log.getLogger("matrixrtc-membership"));
    if (options.trace) this.trace = new RequestTrace(options.trace, () => this.clock.now());
    this.random = options.random ?? Math.random;
    const delegation = delegationTiming(options, !!this.backend.delegateDelayedLeave);
    this.sfuUrl = options.sfuUrl;
    const support: Support = {
      delayedEvents: undefined,
      delayMs: timing.delayMs,
      ...(sticky ? { membershipFormat: "sticky" as const } : {}),
      ...(delegation ? { delayedLeaveHolder: "self" as const, delegation: "unknown" as const } : {}),
    };
    this.memberIdOption = options.memberId;
    this.supportSubject = new LazyBehavior<Support>(support);
    this.env = {
      roomId: options.roomId,
      stateKey: this.stateKey,
      autoRejoin: options.autoRejoin ?? true,
      timingOptions: options,
      canList: !!this.backend.listDelayedEvents,
      canLookUp: !!this.backend.getDelayedEvent,
      canRead: sticky ? !!this.backend.readEvent : !!(this.backend.readState ?? this.backend.readStateEvent),
      canProbe: !!this.backend.probeSupport,
      canReadRoomMembership: !!this.backend.readRoomMembership,
      ...(sticky
        ? {
            format: "sticky" as const,
            ...(options.stickyDurationMs !== undefined ? { stickyDurationMs: options.stickyDurationMs } : {}),
            stickyFallback: options.stickyFallback === "state",
          }
        : {}),
      ...(delegation ? { delegation } : {}),
    };
    this.machine = initialState(
      timing,
      {
        userId: options.userId,
        deviceId: options.deviceId,
        slot,
        focusActive: options.focusActive ?? DEFAULT_FOCUS,
        fociPreferred: options.fociPreferred ?? [],
        callIntent: options.callIntent,
        applicationData: options.applicationData,
      },
      support,
    );
    const view = options.roomState
      ? { source: options.roomState, close: undefined }
      : this.backend.watchRoom?.(this.roomId);
    if (view) {
      this.closeRoomView = view.close;
      this.roomStateWatch = watchRoomState(
        view.source,
        {
          roomId: this.roomId,
          userId: this.userId,
          stateKey: this.stateKey,
          graceMs: options.membershipGraceMs ?? 1000,
          // The sticky format's membership is no state event: the view only tells our room membership.
          held: () => (this.sticky ? undefined : heldMembership(this.machine)),
          onMissing: () => this.feed({ type: "membership-missing" }),
          onLive: (live) => this.feed({ type: "view", live }),
          onRoomMembership: (membership) => this.feed({ type: "room-membership", membership }),
        },
        this.clock,
        this.log,
      );
    }
    const page = pageFor(options.leaveOnPageHide);
    if (page)
      this.unwatchPage = watchPage(page, {
        hide: () => this.feed({ type: "page-hide" }),
        show: () => this.feed({ type: "page-show" }),
      });
  }

  /** Current values, for apps that do not want to subscribe. */
  get state(): MembershipState {
    return this.stateSubject.value;
  }
  /** True while the app wants to be in the call: `join()` was called, and no `leave()` since. */
  get joinRequested(): boolean {
    return this.machine.wantJoined;
  }
  /** The current Status (see `status$`). */
  get status(): Status {
    return statusOf(this.stateSubject.value);
  }
  /** The current value of `probablyLeft$`. */
  get probablyLeft(): boolean {
    return this.probablyLeftSubject.value;
  }
  /**
   * The timing in force (the delay may have been lowered to the server's maximum; an adaptive heartbeat's
   * interval and restart timeout follow the link: what they are now).
   */
  get effectiveTiming(): Readonly<EffectiveTiming> {
    const hb = heartbeatTimingOf(this.machine, this.clock.now());
    return {
      ...this.machine.timing,
      heartbeatIntervalMs: hb.intervalMs,
      restartTimeoutMs: hb.timeoutMs,
      heartbeatMarginMs: hb.marginMs,
    };
  }
  /** Earliest time (wall clock ms, as `wallClock` reads it) the server could fire our leave if no further heartbeat gets through. */
  get predictedLeaveAt(): number | undefined {
    // The machine's deadlines are on elapsed time; an app reads this on the wall clock (`wallClock`).
    const at = predictedLeaveAt(this.machine);
    return at === undefined ? undefined : at - this.clock.now() + this.wallClock();
  }
  /** True once `dispose()` was called: timers stopped, observables completed, `join()` throws. */
  get disposed(): boolean {
    return this.isDisposed;
  }
  /** Timers still pending (0 after dispose(); tests use it to prove nothing leaks). */
  get pendingTimers(): number {
    return this.clock.pendingTimers;
  }

  /**
   * Sticky format: the member id of the current call (its sticky key; fresh per `join()` unless the app
   * gave `memberId`), from `join()` until the call ends; undefined in the state format.
   */
  get memberId(): string | undefined {
    if (!this.sticky) return undefined;
    return (this.machine.call ?? this.machine.leaveCall)?.memberId;
  }

  /** Join the call. Idempotent; returns at once. Waits for a leave in progress to finish first. */
  join(): void {
    if (this.isDisposed) throw new MembershipConfigError("join() after dispose()");
    if (this.env.format === "sticky" && !this.machine.wantJoined)
      this.feed({ type: "join", memberId: this.memberIdOption ?? freshMemberId() });
    else this.feed({ type: "join" });
  }

  /** The sticky format is in force (the app's choice, and no fallback to state happened). */
  private get sticky(): boolean {
    return (this.machine.format ?? this.env.format) === "sticky";
  }

  /**
   * Leave: fire the delayed leave (one request) or, if it is gone, write `{}`. Resolves with how it went
   * out, `failed` when the server refused, or `timed-out` after `timeoutMs` while retries go on until
   * the server confirms or `dispose()`.
   */
  leave(options: { timeoutMs?: number } = {}): Promise<LeaveResult> {
    const timeoutMs = leaveTimeoutMs(options.timeoutMs);
    if (timeoutMs instanceof MembershipConfigError) return Promise.reject(timeoutMs);
    if (this.isDisposed) return Promise.resolve({ status: "disposed" });
    const job = new Promise<LeaveResult>((resolve) => (this.leaveWaiters ??= []).push(resolve));
    this.feed({ type: "leave" });
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
    if (this.isDisposed) return Promise.reject(new MembershipConfigError("update() after dispose()"));
    const done = new Promise<void>((resolve, reject) =>
      (this.updateAcceptors ??= []).push({ resolve, reject }),
    );
    this.feed({ type: "update", patch });
    return done;
  }

  /** Stop every timer and subscription now. Sends nothing; pending promises settle. */
  dispose(): void {
    if (this.isDisposed) return;
    this.feed({ type: "dispose" });
    this.isDisposed = true;
    this.unwatchPage?.();
    this.unwatchPage = undefined;
    const disposed = new DOMException("the manager was disposed", "AbortError");
    for (const entry of [...(this.requests ?? [])]) entry.start?.abort(disposed);
    this.roomStateWatch?.unsubscribe();
    this.roomStateWatch = undefined;
    this.closeRoomView?.();
    // Every timer goes; what the machine still waits for after dispose (a schedule still open may yet
    // answer with an id, which is cancelled; it is aborted one request timeout later) comes back below.
    this.clock.dispose();
    this.wakeAt = this.cancelWake = undefined;
    for (const entry of this.requests ?? []) {
      entry.cancelTimer = () => {};
      entry.deadline = Infinity; // its timer went with the clock's
    }
    this.rescheduleWake();
    this.stateSubject.complete();
    this.probablyLeftSubject.complete();
    this.delayIdSubject.complete();
    this.ownMembershipSubject.complete();
    this.supportSubject.complete();
    this.errorSubject?.complete();
    this.own.close();
  }

  // ---------------------------------------------------------------------------------------------
  // The driver: events in, commands out.
  // ---------------------------------------------------------------------------------------------

  private feed(event: MachineEvent): void {
    (this.queue ??= []).push(event);
    if (this.stepping) return;
    this.stepping = true;
    try {
      for (let next = this.queue.shift(); next; next = this.queue.shift()) {
        const commands = step(this.machine, this.env, next, this.clock.now(), this.random, this.wallClock());
        for (const command of commands) this.run(command);
      }
    } finally {
      this.stepping = false;
      this.queue = undefined;
    }
    // What a step learnt without a state change (our first event's server timestamp) is reported too.
    this.publishOwn(this.stateSubject.value);
    this.rescheduleWake();
  }

  /** Report our own membership for `state` (ownReport.ts): held only while joined. */
  private publishOwn(state: MembershipState): void {
    const createdTs = this.sticky ? undefined : this.machine.call?.createdTs;
    this.own.publish(state.kind === "joined", createdTs);
  }

  /** A membership write the server accepted (content), or the server no longer holding ours (undefined). */
  private noteOwn(content: MembershipContent | undefined): void {
    if (!content) return this.own.removed();
    const call = this.machine.call;
    const sticky = this.sticky;
    const key = sticky ? this.memberId : this.stateKey;
    if (key === undefined) return;
    this.own.confirmed({
      format: sticky ? "sticky" : "state",
      key,
      content: content as unknown as Record<string, unknown>,
      eventId: call?.lastEventId,
      at: this.wallClock(),
      // The machine's deadlines are on elapsed time; the report is on the wall clock, like the lists.
      expiresAt:
        call?.expiresAt === undefined ? undefined : call.expiresAt - this.clock.now() + this.wallClock(),
    });
  }

  /**
   * Keep the one wake timer on the machine's next deadline. Not armed while a request in flight will
   * feed the machine before it (its answer or its local timeout; every feed comes back here): the
   * deadline a heartbeat watches while its restart is out (the delayed leave's due time) would
   * otherwise be armed and cancelled on every heartbeat.
   */
  private rescheduleWake(): void {
    let at = nextWakeAt(this.machine);
    if (at !== undefined && this.requests)
      for (const entry of this.requests)
        if (!entry.timedOut && entry.deadline <= at) {
          at = undefined;
          break;
        }
    if (at === this.wakeAt) return;
    this.cancelWake?.();
    this.wakeAt = at;
    this.cancelWake =
      at === undefined
        ? undefined
        : this.clock.after(at - this.clock.now(), () => {
            this.wakeAt = this.cancelWake = undefined;
            this.feed({ type: "tick" });
          });
  }

  private run(command: Command): void {
    switch (command.type) {
      case "send":
        return this.send(command.reqId, command.request, command.timeoutMs, command.keepLate);
      case "abort": {
        const entry = this.inFlight(command.reqId);
        if (!entry) return;
        if (!entry.keepLate) {
          this.forget(command.reqId);
          this.trace?.aborted(command.reqId);
        } else entry.timedOut = true;
        entry.cancelTimer();
        entry.controller.abort(new DOMException("aborted", "AbortError"));
        return;
      }
      case "state":
        this.log.debug(`state ${this.stateSubject.value.kind} -> ${command.state.kind}`);
        // Before the state: whoever reacts to `connected` (or `left`) reads lists that already agree.
        this.publishOwn(command.state);
        return this.stateSubject.next(command.state);
      case "probably-left":
        return this.probablyLeftSubject.next(command.value);
      case "delay-id":
        return this.delayIdSubject.next(command.value);
      case "own-membership":
        this.noteOwn(command.value);
        this.ownMembershipSubject.next(command.value);
        // The view judges what it shows against our latest write (after this step's commands ran).
        this.roomStateWatch?.recheck();
        return;
      case "support":
        return this.supportSubject.next(command.value);
      case "error":
        return this.errorSubject?.next(command.error);
      case "log":
        if (command.detail === undefined) this.log[command.level](command.message);
        else this.log[command.level](command.message, command.detail);
        return;
      case "leave-done": {
        const waiters = this.leaveWaiters;
        this.leaveWaiters = undefined;
        for (const resolve of waiters ?? []) resolve(command.result);
        return;
      }
      case "update-accepted": {
        const acceptor = this.updateAcceptors?.shift();
        if (!acceptor) return;
        if (command.version === undefined) acceptor.resolve();
        else (this.updateWaiters ??= []).push({ version: command.version, ...acceptor });
        return;
      }
      case "updates-confirmed": {
        const waiters = this.updateWaiters;
        if (!waiters) return;
        this.updateWaiters = waiters.filter((w) => w.version > command.version);
        for (const w of waiters) if (w.version <= command.version) w.resolve();
        return;
      }
      case "updates-rejected": {
        const waiters = this.updateWaiters;
        this.updateWaiters = undefined;
        for (const w of waiters ?? []) w.reject(command.error);
        return;
      }
      case "leave-on-hide":
        return this.sendOnHide(command.delayId);
    }
  }

  /**
   * Fire our delayed leave as the page goes away, with a request that outlives the page. Nothing feeds
   * its answer back (the page may be gone by then; the machine has parked the call). Bounded by a state
   * request's timeout on the scheduler, and left alone by dispose(): an app that disposes the manager in
   * its own pagehide listener must not cancel it.
   */
  private sendOnHide(delayId: string): void {
    const timeoutMs = this.machine.timing.stateRequestTimeoutMs;
    const controller = new AbortController();
    const timer = this.clock.scheduler.schedule(
      () => controller.abort(new LocalTimeoutError(timeoutMs)),
      timeoutMs,
    );
    let pending: Promise<void>;
    try {
      pending = this.backend.updateDelayedEvent(delayId, "send", {
        signal: controller.signal,
        keepAlive: true,
      });
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending.then(
      () => {
        timer.unsubscribe();
        this.log.info("fired our delayed leave as the page went away");
      },
      (error: unknown) => {
        timer.unsubscribe();
        // Gone: fired already (by a quicker request of the same leave, or by the server).
        if (classifyError(error, "send-leave").kind === "gone")
          this.log.info("our delayed leave was already gone as the page went away");
        else
          this.log.warn("could not fire our delayed leave as the page went away (it fires by itself)", error);
      },
    );
  }

  /** Run one request through the backend with its local timeout; feed its answer back. */
  private send(reqId: number, request: Request, timeoutMs: number, keepLate: boolean): void {
    const controller = new AbortController();
    // Started before dispose(): nothing of it may go out after dispose() (a backend may still be asking
    // the server's /versions when it comes). A request whose answer still counts after its local timeout
    // (a schedule) is not aborted then, but it may no longer be *started* then either. What the machine
    // sends after dispose() (the cancel of a delay id that arrived late) is not held back. (One
    // controller per request rather than a manager-wide one combined with AbortSignal.any: a long-lived
    // signal keeps its listener and dependant tables, some 800 bytes per manager.)
    const start = this.isDisposed ? undefined : new AbortController();
    const entry: InFlight = {
      reqId,
      controller,
      keepLate,
      timedOut: false,
      cancelTimer: () => {},
      deadline: this.clock.now() + timeoutMs,
      ...(start ? { start } : {}),
    };
    // Usually one request in flight, rarely a few: an array costs less per request than a Map.
    if (this.requests) this.requests.push(entry);
    else this.requests = [entry];
    this.trace?.sent(reqId, request, timeoutMs);
    entry.cancelTimer = this.clock.after(timeoutMs, () => {
      entry.timedOut = true;
      this.trace?.timedOut(reqId, timeoutMs, keepLate);
      const error = new LocalTimeoutError(timeoutMs);
      if (keepLate) start?.abort(error);
      // A schedule is not idempotent: we keep listening for its answer (its id is cancelled then).
      if (!keepLate) {
        this.forget(reqId);
        controller.abort(error);
      }
      this.feed({ type: "answer", reqId, ok: false, error, timedOut: true });
    });
    let pending: Promise<unknown>;
    try {
      pending = this.call(request, controller.signal, start?.signal);
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending.then(
      (value) => this.settle(reqId, entry, true, value),
      (error: unknown) => this.settle(reqId, entry, false, error),
    );
  }

  private settle(reqId: number, entry: InFlight, ok: boolean, valueOrError: unknown): void {
    if (this.inFlight(reqId) !== entry) return;
    this.forget(reqId);
    entry.cancelTimer();
    this.trace?.answered(reqId, ok, valueOrError, entry.timedOut);
    const type = entry.timedOut ? "late-answer" : "answer";
    this.feed(
      ok ? { type, reqId, ok: true, value: valueOrError } : { type, reqId, ok: false, error: valueOrError },
    );
  }

  private inFlight(reqId: number): InFlight | undefined {
    return this.requests?.find((entry) => entry.reqId === reqId);
  }

  private forget(reqId: number): void {
    const list = this.requests;
    if (!list) return;
    const i = list.findIndex((entry) => entry.reqId === reqId);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.requests = undefined;
  }

  private call(request: Request, signal: AbortSignal, notAfter?: AbortSignal): Promise<unknown> {
    const key = { roomId: this.roomId, eventType: CALL_MEMBER_EVENT_TYPE, stateKey: this.stateKey };
    const b = this.backend;
    const opts = notAfter ? { signal, notAfter } : { signal };
    switch (request.kind) {
      case "schedule":
        if (request.sticky)
          return b.sendDelayedStickyEvent!(
            {
              roomId: this.roomId,
              eventType: RTC_MEMBER_EVENT_TYPE,
              stickyKey: request.sticky.key,
              content: request.sticky.content,
              durationMs: request.sticky.durationMs,
              delayMs: request.delayMs,
            },
            request.overMembership ? { ...opts, overMembership: true } : opts,
          );
        return b.sendDelayedStateEvent(
          { ...key, content: { ...LEFT_CONTENT }, delayMs: request.delayMs },
          request.overMembership ? { ...opts, overMembership: true } : opts,
        );
      case "delayed":
        return b.updateDelayedEvent(request.delayId, request.action, opts);
      case "write":
        if (request.sticky)
          return b.sendStickyEvent!(
            {
              roomId: this.roomId,
              eventType: RTC_MEMBER_EVENT_TYPE,
              stickyKey: request.sticky.key,
              content: request.content,
              durationMs: request.sticky.durationMs,
            },
            opts,
          );
        return b.sendStateEvent({ ...key, content: request.content }, opts);
      case "list":
        return b.listDelayedEvents!(opts);
      case "lookup":
        return b.getDelayedEvent!(request.delayId, opts);
      case "read":
        if (request.eventId !== undefined) return b.readEvent!(this.roomId, request.eventId, opts);
        if (b.readState) return b.readState(key, opts);
        return b.readStateEvent!(key, opts).then((content) =>
          content === undefined ? undefined : { content },
        );
      case "read-room-membership":
        return b.readRoomMembership!(this.roomId, this.userId, opts);
      case "probe":
        return b.probeSupport!(opts);
      case "delegate":
        return b.delegateDelayedLeave!(
          {
            url: this.sfuUrl!,
            roomId: this.roomId,
            slotId: `${this.slot.application}#${this.slot.id}`,
            // The sticky format's member id is the call's own (MSC4143); the state format has none.
            memberId: this.memberId ?? `${this.userId}:${this.deviceId}`,
            deviceId: this.deviceId,
            delayId: request.delayId,
          },
          opts,
        );
    }
  }
}
