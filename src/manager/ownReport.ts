/**
 * The manager's report of its own membership (`OwnMembershipReport`, src/membership/own.ts), kept from
 * what the machine publishes: each write the server accepted (`own-membership` with content), the server
 * no longer holding it (`own-membership` undefined: a confirmed leave, a fired or removed membership), and
 * the state (`held` only while `joined`). Lists asked for with `manager` merge it in, so that the first
 * list an app reads after `connected` includes our device, and the first after `leave()` does not.
 *
 * Small on purpose (a process may run thousands of managers): a few writes per membership, a few gone
 * memberships, one subject made on first use.
 */
import type { Observable } from "rxjs";
import type { Slot } from "../membership/content.js";
import type { OwnMembershipRecord, OwnMembershipReport, OwnWrite } from "../membership/own.js";
import { LazyBehavior } from "./lazyBehavior.js";

/** Writes kept per membership: a view lags by a sync or two, not by hours of refreshes. */
const WRITES_KEPT = 3;
/** Gone memberships kept (the sticky format's member id is fresh per join: one per recent call). */
const GONE_KEPT = 4;

/** What the manager knows of one write the server accepted. */
export interface ConfirmedWrite {
  format: "state" | "sticky";
  /** Our state key, or the call's member id. */
  key: string;
  content: Record<string, unknown>;
  /** The event id the server answered, when it gave one. */
  eventId: string | undefined;
  /** Wall clock (the manager's `wallClock`) at the answer. */
  at: number;
  /** When others stop listing it (wall clock), when known. */
  expiresAt: number | undefined;
}

export class OwnReportBook {
  private current?: OwnMembershipRecord;
  private gone: readonly OwnMembershipRecord[] = [];
  private readonly reports: LazyBehavior<OwnMembershipReport>;
  private closed = false;

  constructor(base: { roomId: string; userId: string; deviceId: string; slot: Slot }) {
    this.reports = new LazyBehavior<OwnMembershipReport>({ ...base, gone: this.gone });
  }

  /** The current report. */
  get value(): OwnMembershipReport {
    return this.reports.value;
  }

  /** Every report, the current one first; completes at `close()`. */
  get report$(): Observable<OwnMembershipReport> {
    return this.reports.asObservable();
  }

  /** The server accepted a membership write. */
  confirmed(write: ConfirmedWrite): void {
    const previous =
      this.current && this.current.format === write.format && this.current.key === write.key
        ? this.current
        : undefined;
    if (this.current && !previous) this.retire(this.current);
    // The machine keeps the last event id it was answered; a write answered without one must not take
    // the previous write's.
    const eventId =
      write.eventId !== undefined && previous?.writes.at(-1)?.eventId !== write.eventId
        ? write.eventId
        : undefined;
    const entry: OwnWrite =
      eventId === undefined ? { content: write.content } : { content: write.content, eventId };
    this.current = {
      format: write.format,
      key: write.key,
      // concat and a literal allocate exactly (a spread into a new array reserves room for 17).
      writes: previous ? previous.writes.slice(1 - WRITES_KEPT).concat(entry) : [entry],
      confirmedAt: write.at,
      ...(write.expiresAt !== undefined ? { expiresAt: write.expiresAt } : {}),
    };
  }

  /** The server no longer holds our membership (as far as the machine knows). */
  removed(): void {
    if (!this.current) return;
    this.retire(this.current);
    this.current = undefined;
  }

  /**
   * Publish the report for this state: `held` only while `joined`; `firstEventTs`, the server's timestamp
   * of the held membership's first event, when the machine read it back. Emits only when it changed.
   */
  publish(joined: boolean, firstEventTs: number | undefined): void {
    if (this.closed) return;
    let held = joined ? this.current : undefined;
    if (held && held.firstEventTs !== firstEventTs) {
      const { firstEventTs: _old, ...record } = held;
      held = firstEventTs === undefined ? record : { ...record, firstEventTs };
      this.current = held;
    }
    const report = this.reports.value;
    if (held === report.held && this.gone === report.gone) return;
    const { held: _held, ...rest } = report;
    this.reports.next(held ? { ...rest, held, gone: this.gone } : { ...rest, gone: this.gone });
  }

  /** The manager is disposed: it vouches for nothing any more. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.current = undefined;
    this.gone = [];
    const { held: _held, ...rest } = this.reports.value;
    this.reports.next({ ...rest, gone: this.gone });
    this.reports.complete();
  }

  /** A membership the server no longer holds: its writes are stale wherever a view still shows them. */
  private retire(record: OwnMembershipRecord): void {
    // One record per place: a later membership at the same state key adds its writes to the earlier's.
    const same = this.gone.find((g) => g.format === record.format && g.key === record.key);
    const merged = same
      ? { ...record, writes: [...same.writes, ...record.writes].slice(-WRITES_KEPT) }
      : record;
    this.gone = [...this.gone.filter((g) => g !== same), merged].slice(-GONE_KEPT);
  }
}
