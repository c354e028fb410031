/**
 * The delegation duty of the test token service: accepts a delegation after checking it (the delay id
 * is the user's and in that room, when the service can look it up as the user; the delay is at least
 * the minimum), keeps at most one job per (room, slot, member, user) — a newer delegation replaces the
 * older, which then does nothing more — and plays the SFU's side through `connected()` /
 * `disconnected()`. `pause()`/`resume()` stop and restart every job (a service that stopped answering).
 */
import { DelegationJob, type JobIdentity } from "./job.js";
import type { ServiceHomeserver } from "./homeserver.js";
import { matrixError, type DelegationAsk, type ErrorAnswer } from "./requests.js";
import type { DelegationOptions, DelegationRecord, SfuParticipant } from "./types.js";

const HOUR = 3600_000;
/** Ended delegations kept for `delegations({ includeEnded: true })`. */
const HISTORY_LIMIT = 1000;

export type ResolvedDelegationOptions = Required<
  Omit<DelegationOptions, "restartHeadroomMs" | "connectTimeoutMs">
> &
  Pick<DelegationOptions, "restartHeadroomMs" | "connectTimeoutMs">;

export function resolveDelegationOptions(options: DelegationOptions): ResolvedDelegationOptions {
  return {
    auth: options.auth ?? "appservice",
    minDelayMs: options.minDelayMs ?? HOUR,
    retryMs: options.retryMs ?? 1000,
    requestTimeoutMs: options.requestTimeoutMs ?? 5000,
    ...(options.restartHeadroomMs !== undefined ? { restartHeadroomMs: options.restartHeadroomMs } : {}),
    ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
  };
}

const keyOf = (j: { roomId: string; slotId: string; memberId?: string; deviceId?: string; userId: string }) =>
  JSON.stringify([j.roomId, j.slotId, j.memberId ?? `device:${j.deviceId ?? ""}`, j.userId]);

/** Every field the participant names equals the delegation's. */
function matches(p: SfuParticipant, j: JobIdentity): boolean {
  return (
    p.userId === j.userId &&
    (p.memberId === undefined || p.memberId === j.memberId) &&
    (p.deviceId === undefined || p.deviceId === j.deviceId) &&
    (p.roomId === undefined || p.roomId === j.roomId) &&
    (p.slotId === undefined || p.slotId === j.slotId)
  );
}

/** Two participant descriptions that can name the same participant. */
function overlaps(a: SfuParticipant, b: SfuParticipant): boolean {
  const same = (x?: string, y?: string) => x === undefined || y === undefined || x === y;
  return (
    a.userId === b.userId &&
    same(a.memberId, b.memberId) &&
    same(a.deviceId, b.deviceId) &&
    same(a.roomId, b.roomId) &&
    same(a.slotId, b.slotId)
  );
}

export class DelegationService {
  private readonly jobs = new Map<string, DelegationJob>();
  private readonly history: DelegationJob[] = [];
  private present: SfuParticipant[] = [];
  private paused = false;
  private closed = false;

  public constructor(
    public readonly options: ResolvedDelegationOptions,
    private readonly homeserver: ServiceHomeserver,
  ) {}

  /** Checks and takes on a delegation; the answer to send (200 `{}` or an error). */
  public async delegate(
    ask: DelegationAsk,
  ): Promise<{ status: 200; body: Record<string, never> } | ErrorAnswer> {
    let delayMs: number;
    if (this.options.auth === "appservice") {
      const found = await this.homeserver.lookup(ask.userId, ask.delayId);
      if (found.kind === "not-found") return matrixError(400, "M_INVALID_PARAM", "Unknown `delay_id`");
      if (found.kind === "failed")
        return matrixError(503, "M_UNKNOWN", "Unable to look up the delayed event");
      if (found.roomId !== ask.roomId) {
        return matrixError(400, "M_INVALID_PARAM", "The delayed event belongs to another room");
      }
      delayMs = found.delayMs;
    } else {
      if (ask.claimedDelayMs === undefined) {
        return matrixError(
          400,
          "M_BAD_JSON",
          "`delay_timeout` is needed: this service cannot look the delay up",
        );
      }
      delayMs = ask.claimedDelayMs;
    }
    if (delayMs < this.options.minDelayMs) {
      return matrixError(
        400,
        "M_INVALID_PARAM",
        `The delayed leave's delay (${delayMs} ms) is under the minimum of ${this.options.minDelayMs} ms`,
      );
    }
    if (this.closed) return matrixError(503, "M_UNKNOWN", "Service is shutting down");
    const identity: JobIdentity = {
      via: ask.via,
      userId: ask.userId,
      roomId: ask.roomId,
      slotId: ask.slotId,
      ...(ask.memberId !== undefined ? { memberId: ask.memberId } : {}),
      ...(ask.deviceId !== undefined ? { deviceId: ask.deviceId } : {}),
      delayId: ask.delayId,
    };
    const key = keyOf(identity);
    this.jobs.get(key)?.end("replaced");
    const headroomMs = this.options.restartHeadroomMs ?? Math.round(delayMs / 5);
    const job = new DelegationJob(
      identity,
      {
        delayMs,
        headroomMs: Math.min(headroomMs, delayMs),
        connectTimeoutMs: this.options.connectTimeoutMs ?? Math.min(HOUR, delayMs),
        retryMs: this.options.retryMs,
      },
      {
        manage: (delayId, action, signal) =>
          this.homeserver.manage(
            delayId,
            action,
            this.options.auth === "appservice" ? ask.userId : undefined,
            signal,
          ),
        onEnded: (ended) => this.retire(key, ended),
      },
    );
    this.jobs.set(key, job);
    if (this.paused) job.pause();
    job.start(this.present.some((p) => matches(p, identity)));
    return { status: 200, body: {} };
  }

  private retire(key: string, job: DelegationJob): void {
    if (this.jobs.get(key) === job) this.jobs.delete(key);
    this.history.push(job);
    if (this.history.length > HISTORY_LIMIT) this.history.splice(0, this.history.length - HISTORY_LIMIT);
  }

  /** The SFU has the participant: waiting delegations start restarting (and new ones start connected). */
  public connected(p: SfuParticipant): void {
    this.present.push(p);
    for (const job of [...this.jobs.values()]) if (matches(p, job.identity)) job.connected();
  }

  /** The SFU lost the participant: their delegations send the leave now. */
  public disconnected(p: SfuParticipant): void {
    this.present = this.present.filter((q) => !overlaps(p, q));
    for (const job of [...this.jobs.values()]) if (matches(p, job.identity)) job.disconnected();
  }

  public records(includeEnded: boolean): DelegationRecord[] {
    const active = [...this.jobs.values()].map((j) => j.snapshot());
    return includeEnded ? [...this.history.map((j) => j.snapshot()), ...active] : active;
  }

  public pause(): void {
    this.paused = true;
    for (const job of this.jobs.values()) job.pause();
  }

  public resume(): void {
    this.paused = false;
    for (const job of [...this.jobs.values()]) job.resume();
  }

  /** Ends every job without another request. */
  public close(): void {
    this.closed = true;
    for (const job of [...this.jobs.values()]) job.end("closed");
  }
}
