import { MatrixError } from "matrix-js-sdk";
import { BehaviorSubject, type Observable, type SchedulerLike } from "rxjs";
import { CALL_MEMBER_EVENT_TYPE } from "../../src/membership/content.js";
import { RTC_MEMBER_EVENT_TYPE } from "../../src/membership/rtcMember.js";
import { StickyEventsUnsupportedError } from "../../src/errors.js";
import type {
  DelegateDelayedLeaveRequest,
  DelayedEventAction,
  MembershipBackend,
  RequestOptions,
  StateEventRequest,
  StateEventSnapshot,
  StickyEventRequest,
  SupportHint,
} from "../../src/backends/types.js";

/**
 * Sticky events (MSC4354) live beside state in the same map, under a key of their own per sticky key
 * (readers key them by sender, type and sticky key; the fake has one sender): the newest event with that
 * sticky key is what others read, until its stickiness ends.
 */
export const stickyMapKey = (stickyKey: string) => `sticky:${stickyKey}`;

/** "probe": reads of our key; "list": our delayed events. */
type Op = "schedule" | "state" | DelayedEventAction | "probe" | "list" | "delegate";

/**
 * A token service's delegation (MSC4195) as the fake server plays it: `confirm` takes delegations of a
 * delay of at least `minDelayMs` and restarts them (at 80 % of the delay) while `connected`, sending
 * the leave when the test calls `sfuDisconnect()`; `refuse` answers 400; `unsupported` 404; `dead`
 * never answers and restarts nothing.
 */
export interface FakeDelegation {
  mode: "confirm" | "refuse" | "unsupported" | "dead";
  minDelayMs: number;
  /** delay id → the service's restart timer. */
  jobs: Map<string, () => void>;
  /** Every delegation request: the delay id and what it was answered. */
  asks: { at: number; delayId: string; answer: "ok" | "400" | "404" | "none" }[];
}

/** How the fake server treats one request: answer normally, fail, hang, or process and lose the answer. */
export type Fault =
  | { kind: "error"; error: () => unknown }
  | { kind: "hang" }
  | { kind: "lose-response" }
  | { kind: "slow"; ms: number }
  /** Processed on time, its answer `ms` late (a congested way back, a proxy holding the answer). */
  | { kind: "slow-answer"; ms: number }
  /** The server processes the request, but the answer we get is an error (a mangled 200, a proxy). */
  | { kind: "process-then-error"; error: () => unknown };

export interface Delayed {
  /** The map key it writes (a state key, or `stickyMapKey` of a sticky delayed event). */
  stateKey: string;
  content: Record<string, unknown>;
  delayMs: number;
  sendTs: number;
  cancelTimer: () => void;
  /** A delayed sticky event: its sticky key and stickiness. */
  sticky?: { key: string; durationMs: number };
  /** The `origin` of the request that created it (which client: the randomized world's tabs). */
  origin?: string;
}

/** Why a pending delayed event stopped being pending (other than firing on time, `fire`). */
export type RemovalCause =
  /** A cancel or send request (`by` is its log entry). */
  | "cancel"
  | "send"
  /** The server forgot it (`lose`), or a state write at its key cancelled it (another user's; before 1.127 also its owner's). */
  | "lost"
  | "write-cancelled"
  /** The delegation service sent it (the SFU lost the participant). */
  | "service-send";

/** One sticky event the server holds, by event id. */
interface StickyEvent {
  mapKey: string;
  content: Record<string, unknown>;
  ts: number;
}

export interface LogEntry {
  at: number;
  op: Op;
  stateKey?: string;
  delayId?: string;
  content?: Record<string, unknown>;
  outcome: "ok" | "error" | "hang" | "lost";
  /** Sent with a request that outlives the page (RequestOptions.keepAlive). */
  keepAlive?: true;
  /** Which client sent it, when a test tags it (the randomized world's tabs share one server). */
  origin?: string;
}

export function matrixError(
  status: number,
  errcode: string,
  extra: Record<string, unknown> = {},
  headers?: Record<string, string>,
) {
  return new MatrixError(
    { errcode, error: String(extra.error ?? errcode), ...extra },
    status,
    "http://fake",
    undefined,
    new Headers(headers),
  );
}

/**
 * A backend that is also a tiny homeserver on virtual time: it holds room state and pending delayed
 * events and fires them when due, so unit tests assert on what the server holds, not on our own model.
 */
export class FakeServer implements MembershipBackend {
  readonly state = new Map<string, Record<string, unknown>>();
  readonly delayed = new Map<string, Delayed>();
  readonly log: LogEntry[] = [];
  /** Every content ever written at a key, in order (to check for resurrection and flapping). */
  readonly history: {
    at: number;
    stateKey: string;
    content: Record<string, unknown>;
    by: "client" | "delayed";
  }[] = [];
  latencyMs = 20;
  /** Requests sent while down hang forever (a cut network). */
  down = false;
  maxDelayMs?: number;
  dialect: "1.157" | "legacy" = "1.157";
  delayedEventsEnabled = true;
  /**
   * Servers before Synapse 1.127: the owner's own state changes (its writes, and its delayed events when
   * they are sent) cancel their pending delayed state at that key.
   */
  ownWritesCancel = false;
  /** The request being processed now (its log entry), while the server model runs it. */
  processing?: LogEntry;
  /** Told of every pending delayed event that stops being pending other than by firing (`fire`). */
  onRemoved?: (delayId: string, d: Readonly<Delayed>, cause: RemovalCause, by?: LogEntry) => void;
  supportHint?: SupportHint;
  /** MSC4354: off, a sticky request is refused as our backends refuse it (nothing is sent). */
  stickyEventsEnabled = true;
  /** Sticky events by id (reads, redactions), and when each sticky key's current event stops counting. */
  readonly stickyEvents = new Map<string, StickyEvent>();
  readonly stickyExpiresAt = new Map<string, number>();
  /** The event id of each key's current sticky event. */
  private readonly currentSticky = new Map<string, string>();
  /** Set to play a token service behind the server (`delegateDelayedLeave`); unset: 404. */
  delegation?: FakeDelegation;
  private faults: { op: Op; times: number; fault: Fault }[] = [];
  private readonly viewers: (() => void)[] = [];
  private nextId = 1;

  constructor(private readonly scheduler: SchedulerLike) {}

  now(): number {
    return this.scheduler.now();
  }

  /** Make the next `times` requests of `op` go wrong. */
  inject(op: Op, fault: Fault, times = 1): void {
    this.faults.push({ op, times, fault });
  }

  clearFaults(): void {
    this.faults = [];
  }

  count(op: Op, outcome?: LogEntry["outcome"]): number {
    return this.log.filter((e) => e.op === op && (!outcome || e.outcome === outcome)).length;
  }

  pendingFor(stateKey: string): string[] {
    return [...this.delayed.entries()].filter(([, d]) => d.stateKey === stateKey).map(([id]) => id);
  }

  /** Forget a delayed event silently (as a server losing it would). */
  lose(delayId: string): void {
    this.remove(delayId, "lost");
  }

  private remove(delayId: string, cause: RemovalCause): Delayed | undefined {
    const d = this.delayed.get(delayId);
    if (!d) return undefined;
    d.cancelTimer();
    this.delayed.delete(delayId);
    this.onRemoved?.(delayId, d, cause, this.processing);
    return d;
  }

  /** Someone else writes our key: Synapse cancels our pending delayed state there. */
  foreignWrite(stateKey: string, content: Record<string, unknown>): void {
    this.writeState(stateKey, content, "client");
    for (const id of this.pendingFor(stateKey)) this.remove(id, "write-cancelled");
  }

  /**
   * The room's state as a synced client of `sender` would see it, `lagMs` after each write (a sync
   * round trip), for the manager's `roomState` option (via `eventsStateSource`).
   */
  roomStateView(sender: string, lagMs = 50): Observable<unknown[]> {
    const view = new BehaviorSubject(this.stateEvents(sender));
    this.viewers.push(() => this.after(lagMs, () => view.next(this.stateEvents(sender))));
    return view;
  }

  private stateEvents(sender: string): unknown[] {
    const events: unknown[] = [
      {
        type: "m.room.member",
        state_key: sender,
        sender,
        content: { membership: "join" },
        origin_server_ts: 0,
      },
    ];
    for (const [stateKey, content] of this.state) {
      const at = this.history.findLast((h) => h.stateKey === stateKey)?.at ?? this.now();
      events.push({
        type: CALL_MEMBER_EVENT_TYPE,
        state_key: stateKey,
        sender,
        content,
        origin_server_ts: at,
        event_id: `$${stateKey}-${at}`,
      });
    }
    return events;
  }

  /**
   * Another tab of our own device writes our key: on Synapse >= 1.127 nothing of ours is cancelled
   * (before, `ownWritesCancel`, it is: writeState).
   */
  sameDeviceWrite(stateKey: string, content: Record<string, unknown>): void {
    this.writeState(stateKey, content, "client");
  }

  private after(ms: number, fn: () => void): () => void {
    const sub = this.scheduler.schedule(fn, ms);
    return () => sub.unsubscribe();
  }

  private writeState(stateKey: string, content: Record<string, unknown>, by: "client" | "delayed"): void {
    const before = this.state.get(stateKey);
    this.state.set(stateKey, content);
    this.history.push({ at: this.now(), stateKey, content, by });
    // Before Synapse 1.127 a change of state at a key (a write, or a delayed event sent there) cancels
    // its sender's own pending delayed state there too; an identical one changes nothing. (Sticky events
    // are not state: nothing is cancelled.)
    if (
      this.ownWritesCancel &&
      !stateKey.startsWith(stickyMapKey("")) &&
      JSON.stringify(before) !== JSON.stringify(content)
    )
      for (const id of this.pendingFor(stateKey)) this.remove(id, "write-cancelled");
    for (const notify of this.viewers) notify();
  }

  private fire(id: string): void {
    const d = this.delayed.get(id);
    if (!d) return;
    this.delayed.delete(id);
    this.deliver(d, "delayed");
  }

  /** A delayed event is sent: a state event, or a sticky event (a new one, with its own stickiness). */
  private deliver(d: Omit<Delayed, "cancelTimer" | "sendTs">, by: "client" | "delayed"): void {
    if (d.sticky) this.writeSticky(d.sticky.key, d.content, d.sticky.durationMs, by);
    else this.writeState(d.stateKey, d.content, by);
  }

  /** A sticky event arrives: it is the current one for its key (the newest), sticky for `durationMs`. */
  private writeSticky(
    stickyKey: string,
    content: Record<string, unknown>,
    durationMs: number,
    by: "client" | "delayed",
  ): string {
    const mapKey = stickyMapKey(stickyKey);
    const eventId = `$sticky${this.nextId++}`;
    this.stickyEvents.set(eventId, { mapKey, content, ts: this.now() });
    this.currentSticky.set(mapKey, eventId);
    this.stickyExpiresAt.set(mapKey, this.now() + Math.min(durationMs, 3_600_000));
    this.writeState(mapKey, content, by);
    return eventId;
  }

  /**
   * What others read at a key now: the state there, or the current sticky event while it is sticky
   * (undefined once its stickiness ended).
   */
  contentAt(key: string): Record<string, unknown> | undefined {
    const expiresAt = this.stickyExpiresAt.get(key);
    if (expiresAt !== undefined && expiresAt <= this.now()) return undefined;
    return this.state.get(key);
  }

  /** A moderator redacts the current sticky event of `mapKey`: its content is emptied (read as left). */
  redactCurrentSticky(mapKey: string): boolean {
    const eventId = this.currentSticky.get(mapKey);
    const event = eventId === undefined ? undefined : this.stickyEvents.get(eventId);
    if (!event) return false;
    event.content = {};
    this.writeState(mapKey, {}, "client");
    return true;
  }

  /** Start (or restart) a delayed event's delay; a new one takes the origin of the request creating it. */
  private arm(id: string, d: Omit<Delayed, "cancelTimer" | "sendTs">): void {
    const sendTs = this.now() + d.delayMs;
    const cancelTimer = this.after(d.delayMs, () => this.fire(id));
    const origin = d.origin ?? this.processing?.origin;
    this.delayed.set(id, { ...d, sendTs, cancelTimer, ...(origin === undefined ? {} : { origin }) });
  }

  /** Run one request through latency, faults and the server model. */
  private request<T>(
    op: Op,
    process: () => T,
    meta: Partial<LogEntry> = {},
    opts?: RequestOptions,
  ): Promise<T> {
    const entry: LogEntry = { at: this.now(), op, outcome: "ok", ...meta };
    this.log.push(entry);
    const slot = this.faults.find((f) => f.op === op && f.times > 0);
    if (slot) slot.times--;
    const fault = slot?.fault;
    if (this.down || fault?.kind === "hang") {
      entry.outcome = "hang";
      return new Promise<T>((_, reject) =>
        opts?.signal?.addEventListener("abort", () => reject(opts.signal!.reason)),
      );
    }
    const half = this.latencyMs / 2 + (fault?.kind === "slow" ? fault.ms : 0);
    return new Promise<T>((resolve, reject) => {
      this.after(half, () => {
        if (this.down) {
          entry.outcome = "hang";
          return;
        }
        if (fault?.kind === "error") {
          entry.outcome = "error";
          const error = fault.error();
          this.after(this.latencyMs / 2, () => reject(error));
          return;
        }
        let value: T;
        this.processing = entry;
        try {
          value = process();
        } catch (error) {
          entry.outcome = "error";
          this.after(this.latencyMs / 2, () => reject(error));
          return;
        } finally {
          this.processing = undefined;
        }
        if (fault?.kind === "lose-response") {
          entry.outcome = "lost";
          return;
        }
        if (fault?.kind === "process-then-error") {
          entry.outcome = "error";
          const error = fault.error();
          this.after(this.latencyMs / 2, () => reject(error));
          return;
        }
        const back = this.latencyMs / 2 + (fault?.kind === "slow-answer" ? fault.ms : 0);
        this.after(back, () => (this.down ? undefined : resolve(value)));
      });
    });
  }

  sendDelayedStateEvent(
    req: StateEventRequest & { delayMs: number },
    opts?: RequestOptions,
  ): Promise<string> {
    return this.request(
      "schedule",
      () => {
        if (!this.delayedEventsEnabled)
          throw this.dialect === "legacy"
            ? matrixError(400, "M_UNKNOWN", { "org.matrix.msc4140.errcode": "M_MAX_DELAY_UNSUPPORTED" })
            : matrixError(403, "M_FORBIDDEN", { error: "Sending delayed events has been disallowed" });
        if (this.maxDelayMs !== undefined && req.delayMs > this.maxDelayMs)
          throw this.dialect === "legacy"
            ? matrixError(400, "M_UNKNOWN", {
                error: "The requested delay exceeds the allowed maximum.",
                "org.matrix.msc4140.errcode": "M_MAX_DELAY_EXCEEDED",
                "org.matrix.msc4140.max_delay": this.maxDelayMs,
              })
            : matrixError(403, "M_FORBIDDEN", {
                error: `The requested delay (${req.delayMs}ms) exceeds the allowed maximum (${this.maxDelayMs}ms)`,
              });
        const id = `syd_${this.nextId++}`;
        this.arm(id, { stateKey: req.stateKey, content: req.content, delayMs: req.delayMs });
        return id;
      },
      { stateKey: req.stateKey, content: req.content },
      opts,
    );
  }

  /** MSC4354 + MSC4140: a delayed sticky event (the sticky format's delayed leave); op "schedule". */
  sendDelayedStickyEvent(
    req: StickyEventRequest & { delayMs: number },
    opts?: RequestOptions,
  ): Promise<string> {
    const mapKey = stickyMapKey(req.stickyKey);
    if (!this.stickyEventsEnabled) return this.refuseSticky("schedule", mapKey, req.content, opts);
    return this.request(
      "schedule",
      () => {
        if (req.eventType !== RTC_MEMBER_EVENT_TYPE) throw matrixError(400, "M_BAD_JSON");
        if (!this.delayedEventsEnabled)
          throw matrixError(403, "M_FORBIDDEN", { error: "Sending delayed events has been disallowed" });
        if (this.maxDelayMs !== undefined && req.delayMs > this.maxDelayMs)
          throw matrixError(403, "M_FORBIDDEN", {
            error: `The requested delay (${req.delayMs}ms) exceeds the allowed maximum (${this.maxDelayMs}ms)`,
          });
        const id = `syd_${this.nextId++}`;
        this.arm(id, {
          stateKey: mapKey,
          content: req.content,
          delayMs: req.delayMs,
          sticky: { key: req.stickyKey, durationMs: req.durationMs },
        });
        return id;
      },
      { stateKey: mapKey, content: req.content },
      opts,
    );
  }

  /** MSC4354: a sticky event now (the sticky format's join, refresh, fallback leave); op "state". */
  sendStickyEvent(req: StickyEventRequest, opts?: RequestOptions): Promise<string> {
    const mapKey = stickyMapKey(req.stickyKey);
    if (!this.stickyEventsEnabled) return this.refuseSticky("state", mapKey, req.content, opts);
    return this.request(
      "state",
      () => {
        if (req.eventType !== RTC_MEMBER_EVENT_TYPE) throw matrixError(400, "M_BAD_JSON");
        return this.writeSticky(req.stickyKey, req.content, req.durationMs, "client");
      },
      { stateKey: mapKey, content: req.content },
      opts,
    );
  }

  /** Refused before anything is sent, as the backends refuse a server without MSC4354 (logged, not processed). */
  private refuseSticky(op: Op, mapKey: string, content: Record<string, unknown>, opts?: RequestOptions) {
    return this.request(
      op,
      () => {
        throw new StickyEventsUnsupportedError("the server does not advertise org.matrix.msc4354");
      },
      { stateKey: mapKey, content },
      opts,
    );
  }

  /** One sticky event by id (a redacted one reads `{}`); op "probe", like every read of our membership. */
  readEvent(roomId: string, eventId: string, opts?: RequestOptions) {
    return this.request(
      "probe",
      (): StateEventSnapshot | undefined => {
        const e = this.stickyEvents.get(eventId);
        return e ? { content: e.content, originServerTs: e.ts, eventId } : undefined;
      },
      { stateKey: this.stickyEvents.get(eventId)?.mapKey },
      opts,
    );
  }

  sendStateEvent(req: StateEventRequest, opts?: RequestOptions): Promise<void> {
    return this.request(
      "state",
      () => {
        const current = this.state.get(req.stateKey);
        if (current && JSON.stringify(current) === JSON.stringify(req.content)) return; // deduplicated
        this.writeState(req.stateKey, req.content, "client");
      },
      { stateKey: req.stateKey, content: req.content },
      opts,
    );
  }

  updateDelayedEvent(delayId: string, action: DelayedEventAction, opts?: RequestOptions): Promise<void> {
    return this.request(
      action,
      () => {
        const d = this.delayed.get(delayId);
        if (!d) throw matrixError(404, "M_NOT_FOUND", { error: "Delayed event not found" });
        if (action === "restart") {
          d.cancelTimer();
          this.arm(delayId, d);
        } else {
          this.remove(delayId, action);
          if (action === "send") this.deliver(d, "delayed");
        }
      },
      { delayId, ...(opts?.keepAlive ? { keepAlive: true as const } : {}) },
      opts,
    );
  }

  listDelayedEvents(opts?: RequestOptions) {
    return this.request(
      "list",
      () =>
        [...this.delayed.entries()].map(([delayId, d]) =>
          d.sticky
            ? {
                delayId,
                roomId: "!room:localhost",
                type: RTC_MEMBER_EVENT_TYPE,
                stickyKey: d.sticky.key,
                delayedSinceTs: d.sendTs - d.delayMs,
              }
            : {
                delayId,
                roomId: "!room:localhost",
                stateKey: d.stateKey,
                delayedSinceTs: d.sendTs - d.delayMs,
              },
        ),
      {},
      opts,
    );
  }

  readStateEvent(req: Omit<StateEventRequest, "content">, opts?: RequestOptions) {
    return this.request("probe", () => this.state.get(req.stateKey), { stateKey: req.stateKey }, opts);
  }

  /** The event at a key with its server timestamp (the time of the last write there). */
  readState(req: Omit<StateEventRequest, "content">, opts?: RequestOptions) {
    return this.request(
      "probe",
      () => {
        const content = this.state.get(req.stateKey);
        if (content === undefined) return undefined;
        const at = this.history.findLast((h) => h.stateKey === req.stateKey)?.at ?? this.now();
        return { content, originServerTs: at };
      },
      { stateKey: req.stateKey },
      opts,
    );
  }

  /** Start a delegation service behind the server. */
  startDelegation(mode: FakeDelegation["mode"] = "confirm", minDelayMs = 3_600_000): FakeDelegation {
    this.delegation = { mode, minDelayMs, jobs: new Map(), asks: [] };
    return this.delegation;
  }

  /**
   * The SFU lost the participant: the service sends every delegated leave it holds (or those `only`
   * picks: one participant's, when several share the SFU).
   */
  sfuDisconnect(only?: (delayId: string, origin: string | undefined) => boolean): void {
    const service = this.delegation;
    if (!service) return;
    for (const [delayId, stop] of [...service.jobs]) {
      if (only && !only(delayId, this.delayed.get(delayId)?.origin)) continue;
      stop();
      service.jobs.delete(delayId);
      const d = this.remove(delayId, "service-send");
      if (d) this.writeState(d.stateKey, d.content, "delayed");
    }
  }

  /** The service stops (or starts again) answering; a dead service's jobs restart nothing. */
  setDelegationMode(mode: FakeDelegation["mode"]): void {
    const service = this.delegation!;
    service.mode = mode;
    if (mode === "dead") {
      for (const stop of service.jobs.values()) stop();
      service.jobs.clear();
    }
  }

  delegateDelayedLeave(req: DelegateDelayedLeaveRequest, opts?: RequestOptions): Promise<void> {
    const service = this.delegation;
    const ask = {
      at: this.now(),
      delayId: req.delayId,
      answer: "none" as FakeDelegation["asks"][number]["answer"],
    };
    service?.asks.push(ask);
    if (service?.mode === "dead") {
      this.log.push({ at: this.now(), op: "delegate", delayId: req.delayId, outcome: "hang" });
      return new Promise<void>((_, reject) =>
        opts?.signal?.addEventListener("abort", () => reject(opts.signal!.reason)),
      );
    }
    return this.request(
      "delegate",
      () => {
        if (!service || service.mode === "unsupported") {
          ask.answer = "404";
          throw matrixError(404, "M_NOT_FOUND", { error: "Not found" });
        }
        const d = this.delayed.get(req.delayId);
        if (service.mode === "refuse" || !d || d.delayMs < service.minDelayMs) {
          ask.answer = "400";
          throw matrixError(400, "M_INVALID_PARAM", { error: "refused" });
        }
        ask.answer = "ok";
        service.jobs.get(req.delayId)?.();
        const restartEvery = Math.round(d.delayMs * 0.8);
        const tick = (): (() => void) =>
          this.after(restartEvery, () => {
            const live = this.delayed.get(req.delayId);
            if (!live) return service.jobs.delete(req.delayId);
            live.cancelTimer();
            this.arm(req.delayId, live);
            service.jobs.set(req.delayId, tick());
          });
        service.jobs.set(req.delayId, tick());
      },
      { delayId: req.delayId },
      opts,
    );
  }

  probeSupport(): Promise<SupportHint> {
    if (this.supportHint) return Promise.resolve(this.supportHint);
    return Promise.resolve(
      this.delayedEventsEnabled
        ? { delayedEvents: true, maxDelayMs: this.dialect === "1.157" ? this.maxDelayMs : undefined }
        : { delayedEvents: false },
    );
  }
}
