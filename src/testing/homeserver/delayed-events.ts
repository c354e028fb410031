/**
 * The delayed-event table and its single timer. Knows nothing about HTTP:
 * the API layer decides who may do what; this decides what is pending, what is due and in which order.
 */
import type { JsonObject } from "./errors.js";
import type { Clock } from "./options.js";
import { localpartOf } from "./users.js";
import { MAX_TIMER_MS } from "../../core/limits.js";

/** A pending delayed event as the server holds it. */
export interface DelayedEventRecord {
  /** Server-assigned id used by the management routes (a bearer capability where they need no token). */
  delayId: string;
  /** The user who scheduled it; the event is sent as this user. */
  userId: string;
  /** The device (access token) that scheduled it. */
  deviceId: string;
  /** Room the event will be sent to. */
  roomId: string;
  /** Type of the event to send. */
  type: string;
  /** Set for delayed state events, absent for message events. */
  stateKey?: string;
  /** Content of the event to send. */
  content: JsonObject;
  /** MSC4354: sent as a sticky event with this duration (Synapse's `sticky_duration_ms` column). */
  stickyDurationMs?: number;
  /** The delay as scheduled; `restart` re-arms with it and it never changes. */
  delayMs: number;
  /** When it is due (ms since epoch). */
  sendTs: number;
}

interface Row extends DelayedEventRecord {
  /** Taken by the timer or a `send` action: no longer manageable (404), still counted for the limit. */
  processing: boolean;
}

export interface DelayedEventSink {
  /** Sends the event as its owner and returns its event id; throws when the pipeline refuses it. */
  send(row: DelayedEventRecord, originServerTs: number | undefined): string | void;
}

/** How a row left the schedule (merged MSC4140 keeps these as finalised delayed events). */
export type ScheduleExit =
  { kind: "sent"; eventId: string | void } | { kind: "cancelled" } | { kind: "error"; error: unknown };

// Node timers overflow above 2^31-1 ms; longer waits re-arm when they wake.

export class DelayedEventScheduler {
  private readonly rows = new Map<string, Row>();
  private timer: unknown;
  private running = true;
  /** Told whenever a row is sent, cancelled or dropped after a failed send (not on `lose`). */
  public onFinalised: ((row: DelayedEventRecord, exit: ScheduleExit) => void) | undefined;

  public constructor(
    private readonly clock: () => Clock,
    private readonly sink: DelayedEventSink,
  ) {}

  public add(record: DelayedEventRecord): void {
    this.rows.set(record.delayId, { ...record, processing: false });
    this.reschedule();
  }

  /** Rows of a localpart, including ones being sent (Synapse's per-user count). */
  public countFor(userId: string): number {
    const localpart = localpartOf(userId);
    let count = 0;
    for (const row of this.rows.values()) if (localpartOf(row.userId) === localpart) count += 1;
    return count;
  }

  /**
   * Time until enough of the user's rows are due to bring them under `limit` again, or null when that
   * moment has already passed (the blockers are overdue or being sent) — Synapse's `retry_after_ms: null`.
   */
  public retryAfterForLimit(userId: string, limit: number, now: number): number | null {
    const localpart = localpartOf(userId);
    const sendTimes = [...this.rows.values()]
      .filter((row) => localpartOf(row.userId) === localpart)
      .map((row) => row.sendTs)
      .sort((a, b) => a - b);
    const blocker = sendTimes[sendTimes.length - limit];
    if (blocker === undefined) return null;
    const wait = blocker - now;
    return wait > 0 ? wait : null;
  }

  /** A pending (not processing) row, optionally only if owned by `ownerUserId`'s localpart. */
  public pending(delayId: string, ownerUserId?: string): DelayedEventRecord | undefined {
    const row = this.rows.get(delayId);
    if (!row || row.processing) return undefined;
    if (ownerUserId !== undefined && localpartOf(row.userId) !== localpartOf(ownerUserId)) return undefined;
    return row;
  }

  public cancel(delayId: string): void {
    const row = this.rows.get(delayId);
    this.rows.delete(delayId);
    this.reschedule();
    if (row) this.onFinalised?.(row, { kind: "cancelled" });
  }

  public restart(delayId: string): void {
    const row = this.rows.get(delayId);
    if (!row) return;
    row.sendTs = this.clock().now() + row.delayMs;
    this.reschedule();
  }

  /**
   * The `send` action: take the row out now and send it; errors propagate and the row is gone either
   * way, unless `keepOnError` (merged MSC4140: a failed manual send stays scheduled).
   */
  public sendNow(delayId: string, opts: { keepOnError?: boolean } = {}): void {
    const row = this.rows.get(delayId);
    if (!row) return;
    row.processing = true;
    this.reschedule();
    let eventId: string | void;
    try {
      eventId = this.sink.send(row, undefined);
    } catch (error) {
      if (opts.keepOnError) {
        row.processing = false;
        this.reschedule();
      } else {
        this.rows.delete(delayId);
        this.onFinalised?.(row, { kind: "error", error });
      }
      throw error;
    }
    this.rows.delete(delayId);
    this.onFinalised?.(row, { kind: "sent", eventId });
  }

  /** Pending rows of the user (all devices, all rooms), due soonest first. */
  public listFor(userId: string): DelayedEventRecord[] {
    const localpart = localpartOf(userId);
    return this.all().filter((row) => localpartOf(row.userId) === localpart);
  }

  /** Every pending row, due soonest first. */
  public all(): DelayedEventRecord[] {
    return [...this.rows.values()]
      .filter((row) => !row.processing)
      .sort((a, b) => a.sendTs - b.sendTs)
      .map(({ processing: _processing, ...record }) => record);
  }

  /**
   * Auto-cancel (A.8): the current state at (room, type, key) changed, written by `senderUserId`.
   * Pending delayed state at exactly that key owned by another localpart is deleted; with
   * `includeOwn` (≤1.126) the writer's own rows go too.
   */
  public onStateChanged(
    roomId: string,
    type: string,
    stateKey: string,
    senderUserId: string,
    includeOwn: boolean,
  ): void {
    const sender = localpartOf(senderUserId);
    let changed = false;
    for (const [id, row] of this.rows) {
      if (row.processing || row.stateKey === undefined) continue;
      if (row.roomId !== roomId || row.type !== type || row.stateKey !== stateKey) continue;
      if (!includeOwn && localpartOf(row.userId) === sender) continue;
      this.rows.delete(id);
      this.onFinalised?.(row, { kind: "cancelled" });
      changed = true;
    }
    if (changed) this.reschedule();
  }

  /** The server silently forgets a row (fault injection). */
  public lose(delayId: string): void {
    this.rows.delete(delayId);
    this.reschedule();
  }

  /** Server down: nothing fires until `start`. */
  public stop(): void {
    this.running = false;
    this.clearTimer();
  }

  /** Server up: overdue rows fire at once (synchronously, before serving), in send_ts order. */
  public start(): void {
    this.running = true;
    this.fireDue();
  }

  private clearTimer(): void {
    if (this.timer !== undefined) this.clock().clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** One timer, armed for the earliest pending send_ts. */
  private reschedule(): void {
    this.clearTimer();
    if (!this.running) return;
    let next = Infinity;
    for (const row of this.rows.values()) if (!row.processing && row.sendTs < next) next = row.sendTs;
    if (next === Infinity) return;
    const clock = this.clock();
    const wait = Math.min(MAX_TIMER_MS, Math.max(0, next - clock.now()));
    this.timer = clock.setTimeout(() => {
      this.timer = undefined;
      this.fireDue();
    }, wait);
  }

  /** Takes every due row, sends them in send_ts order; per batch only the first success per state key. */
  private fireDue(): void {
    const now = this.clock().now();
    const due = [...this.rows.values()]
      .filter((row) => !row.processing && row.sendTs <= now)
      .sort((a, b) => a.sendTs - b.sendTs);
    for (const row of due) row.processing = true;
    const sentKeys = new Set<string>();
    for (const row of due) {
      const key =
        row.stateKey === undefined ? undefined : `${row.roomId}\u0000${row.type}\u0000${row.stateKey}`;
      try {
        if (key === undefined || !sentKeys.has(key)) {
          const eventId = this.sink.send(row, row.sendTs);
          if (key !== undefined) sentKeys.add(key);
          this.onFinalised?.(row, { kind: "sent", eventId });
        } else {
          // Superseded by an earlier row of the same batch at the same key: never sent.
          this.onFinalised?.(row, { kind: "cancelled" });
        }
      } catch (error) {
        // Synapse logs and drops: no retry, nothing reaches the client (merged: kept as finalised).
        this.onFinalised?.(row, { kind: "error", error });
      } finally {
        this.rows.delete(row.delayId);
      }
    }
    this.reschedule();
  }
}
