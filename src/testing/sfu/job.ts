/**
 * One delegated delayed leave, as MSC4195 asks of the server holding it and as lk-jwt-service's
 * DelayedEventJob does it: wait for the participant to connect to the SFU (at most `connectTimeoutMs`,
 * then send the leave: they never came); once connected, restart at once (the client's own restart
 * may be long ago) and then `headroom` before each expiry; when the SFU reports them gone, send the
 * leave. A failed restart or send is retried after a growing wait, never past the delay (restart) or
 * past the delay's end, at least 1 s and at most 1 h (send). A restart answered 404 (the event is gone)
 * or 409 (finalised) ends the job; a send answered 404 or 409 means someone was first. Every wait is a
 * timer the job owns; `pause()` drops them and any request in flight (a service that stopped
 * answering), `resume()` picks the state up again, `end()` releases everything.
 */
import type { ManageAnswer } from "./homeserver.js";
import type { DelegationOutcome, DelegationRecord, DelegationState, DelegationVia } from "./types.js";

const MAX_TIMER_MS = 2 ** 31 - 1;
const MAX_RETRY_MS = 60_000;
const HOUR = 3600_000;

export interface JobTimings {
  delayMs: number;
  headroomMs: number;
  connectTimeoutMs: number;
  retryMs: number;
}

export interface JobIdentity {
  via: DelegationVia;
  userId: string;
  roomId: string;
  slotId: string;
  memberId?: string;
  deviceId?: string;
  delayId: string;
}

export interface JobDeps {
  /** One restart/send attempt on the homeserver. */
  manage(delayId: string, action: "restart" | "send", signal: AbortSignal): Promise<ManageAnswer>;
  /** The job ended (the service moves it to its history). */
  onEnded(job: DelegationJob): void;
}

type Timer = ReturnType<typeof setTimeout>;

export class DelegationJob {
  private state: DelegationState = "waiting";
  private outcome: DelegationOutcome | undefined;
  private readonly createdAt = Date.now();
  private deadline: number;
  private connectDeadline: number;
  private sendUntil = 0;
  private restarts = 0;
  private lastRestartAt: number | undefined;
  private endedAt: number | undefined;
  /** Bumped on every transition and pause: a stale timer or answer finds it changed and does nothing. */
  private generation = 0;
  private readonly timers = new Set<Timer>();
  private inflight: AbortController | undefined;
  private paused = false;

  public constructor(
    public readonly identity: JobIdentity,
    private readonly timings: JobTimings,
    private readonly deps: JobDeps,
  ) {
    // lk-jwt-service's guess too: the client scheduled (or restarted) the event just before delegating.
    this.deadline = this.createdAt + timings.delayMs;
    this.connectDeadline = this.createdAt + timings.connectTimeoutMs;
  }

  public get ended(): boolean {
    return this.state === "ended";
  }

  public snapshot(): DelegationRecord {
    return {
      ...this.identity,
      delayMs: this.timings.delayMs,
      state: this.state,
      ...(this.outcome ? { outcome: this.outcome } : {}),
      createdAt: this.createdAt,
      restarts: this.restarts,
      ...(this.lastRestartAt !== undefined ? { lastRestartAt: this.lastRestartAt } : {}),
      deadline: this.deadline,
      ...(this.endedAt !== undefined ? { endedAt: this.endedAt } : {}),
    };
  }

  /** Begins the duty; `present` says whether the SFU already has the participant. */
  public start(present: boolean): void {
    if (present) this.enterConnected();
    else this.enterWaiting();
  }

  /** The SFU reports the participant (again). */
  public connected(): void {
    if (this.state === "waiting") this.enterConnected();
  }

  /** The SFU reports the participant gone: send the leave. */
  public disconnected(): void {
    if (this.state === "waiting" || this.state === "connected") this.enterSending();
  }

  /** The service stops answering: drop every timer and request; nothing happens until `resume()`. */
  public pause(): void {
    if (this.paused || this.ended) return;
    this.paused = true;
    this.release();
  }

  /** The service answers again: carry on from the state it was in. */
  public resume(): void {
    if (!this.paused) return;
    this.paused = false;
    // Timers armed while paused (a delegation accepted then) are dropped and armed afresh.
    this.release();
    if (this.state === "waiting") this.armWaiting();
    else if (this.state === "connected") this.restart(0);
    else if (this.state === "sending") this.send(0);
  }

  /** Ends the job without another request (replaced, or the service closes). */
  public end(outcome: DelegationOutcome): void {
    if (this.ended) return;
    this.release();
    this.state = "ended";
    this.outcome = outcome;
    this.endedAt = Date.now();
    this.deps.onEnded(this);
  }

  private release(): void {
    this.generation++;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.inflight?.abort();
    this.inflight = undefined;
  }

  private transition(state: DelegationState): void {
    this.release();
    this.state = state;
  }

  private after(ms: number, fn: () => void): void {
    const generation = this.generation;
    const timer = setTimeout(
      () => {
        this.timers.delete(timer);
        if (generation === this.generation && !this.paused) fn();
      },
      Math.min(Math.max(0, ms), MAX_TIMER_MS),
    );
    this.timers.add(timer);
  }

  /** Attempt `attempt`'s wait: retryMs × 1.5^attempt, ±50 %, at most a minute (lk-jwt-service's backoff). */
  private backoff(attempt: number): number {
    const base = Math.min(this.timings.retryMs * 1.5 ** attempt, MAX_RETRY_MS);
    return Math.round(base * (0.5 + Math.random()));
  }

  private enterWaiting(): void {
    this.transition("waiting");
    this.armWaiting();
  }

  private armWaiting(): void {
    const now = Date.now();
    this.after(this.connectDeadline - now, () => this.enterSending());
    // MSC4195: a wait longer than the delay must keep the event alive meanwhile (lk-jwt-service waits
    // min(1 h, delay) and restarts nothing before the connect).
    if (this.timings.connectTimeoutMs > this.timings.delayMs) {
      this.after(this.deadline - this.timings.headroomMs - now, () => this.restart(0));
    }
  }

  private enterConnected(): void {
    this.transition("connected");
    this.restart(0);
  }

  private enterSending(): void {
    this.transition("sending");
    this.sendUntil = Date.now() + Math.min(HOUR, Math.max(1000, this.deadline - Date.now()));
    this.send(0);
  }

  private async attempt(action: "restart" | "send"): Promise<ManageAnswer | undefined> {
    if (this.paused) return undefined;
    const generation = this.generation;
    const abort = new AbortController();
    this.inflight = abort;
    // A throw (no homeserver configured) counts as no answer: retried like a network error.
    const answer = await this.deps
      .manage(this.identity.delayId, action, abort.signal)
      .catch((): ManageAnswer => ({ status: 0 }));
    if (this.inflight === abort) this.inflight = undefined;
    // Answers to a request the job no longer cares about (a transition or pause came first) are dropped.
    return generation === this.generation && !this.paused ? answer : undefined;
  }

  private restart(attempt: number): void {
    if (Date.now() >= this.deadline) return this.end("expired");
    void this.attempt("restart").then((answer) => {
      if (!answer) return;
      if (answer.status >= 200 && answer.status < 300) {
        this.restarts++;
        this.lastRestartAt = Date.now();
        this.deadline = this.lastRestartAt + this.timings.delayMs;
        this.after(this.deadline - this.timings.headroomMs - Date.now(), () => this.restart(0));
        return;
      }
      if (answer.status === 404) return this.end("not-found");
      if (answer.status === 409) return this.end("finalised");
      const wait = answer.retryAfterMs ?? this.backoff(attempt);
      this.after(Math.min(wait, this.deadline - Date.now()), () => this.restart(attempt + 1));
    });
  }

  private send(attempt: number): void {
    void this.attempt("send").then((answer) => {
      if (!answer) return;
      if (answer.status >= 200 && answer.status < 300) return this.end("sent");
      if (answer.status === 404 || answer.status === 409) return this.end("already-final");
      const wait = answer.retryAfterMs ?? this.backoff(attempt);
      if (Date.now() + wait > this.sendUntil) return this.end("send-failed");
      this.after(wait, () => this.send(attempt + 1));
    });
  }
}
