/**
 * Finalised delayed events (MSC4140 as merged, "Retention of finalised delayed events"): what became of
 * a delayed event after it left the schedule, so `GET …/delayed_events/{delay_id}` can answer and a
 * repeated or conflicting management action can get 200 or 409 instead of 404.
 */
import type { DelayedEventRecord, ScheduleExit } from "./delayed-events.js";
import { MatrixHttpError, type JsonObject } from "./errors.js";
import { localpartOf } from "./users.js";

export type FinalisedOutcome =
  | { kind: "sent"; eventId: string }
  | { kind: "cancelled" }
  /** The send failed (auth rules, rate limit...): descheduled with the error's standard error body. */
  | { kind: "error"; error: JsonObject };

export interface FinalisedDelayedEvent extends DelayedEventRecord {
  /** When the timer last (re)started: `sendTs - delayMs` at the moment it was finalised. */
  scheduledAt: number;
  finalisedTs: number;
  outcome: FinalisedOutcome;
}

export interface FinalisedRetention {
  maxAgeMs: number;
  maxPerUser: number;
}

export class FinalisedDelayedEvents {
  // Insertion order is finalisation order, which makes pruning the oldest first cheap.
  private readonly rows = new Map<string, FinalisedDelayedEvent>();

  public constructor(
    private readonly retention: () => FinalisedRetention,
    private readonly now: () => number,
  ) {}

  public record(row: DelayedEventRecord, outcome: FinalisedOutcome): void {
    const finalisedTs = this.now();
    this.rows.delete(row.delayId);
    this.rows.set(row.delayId, {
      ...row,
      content: row.content,
      scheduledAt: row.sendTs - row.delayMs,
      finalisedTs,
      outcome,
    });
    this.prune(row.userId);
  }

  /** The finalised event if it is still retained and owned by `userId`'s localpart. */
  public get(delayId: string, userId: string): FinalisedDelayedEvent | undefined {
    this.prune();
    const row = this.rows.get(delayId);
    if (!row || localpartOf(row.userId) !== localpartOf(userId)) return undefined;
    return row;
  }

  /** Drops rows older than the retention age, then (for `userId`) the oldest beyond the count. */
  private prune(userId?: string): void {
    const { maxAgeMs, maxPerUser } = this.retention();
    const oldest = this.now() - maxAgeMs;
    for (const [id, row] of this.rows) {
      if (row.finalisedTs > oldest) break;
      this.rows.delete(id);
    }
    if (userId === undefined) return;
    const localpart = localpartOf(userId);
    const mine = [...this.rows.values()].filter((row) => localpartOf(row.userId) === localpart);
    for (const row of mine.slice(0, Math.max(0, mine.length - maxPerUser))) this.rows.delete(row.delayId);
  }
}

/** The scheduler's exit as stored: errors keep their standard error body (`{errcode, error}`). */
export function toFinalisedOutcome(exit: ScheduleExit): FinalisedOutcome {
  if (exit.kind === "cancelled") return { kind: "cancelled" };
  if (exit.kind === "sent") return { kind: "sent", eventId: exit.eventId ?? "" };
  const error = exit.error;
  if (error instanceof MatrixHttpError) return { kind: "error", error: error.body() };
  return { kind: "error", error: { errcode: "M_UNKNOWN", error: String(error) } };
}
