/**
 * The sticky memberships a widget has been handed (MSC4407: the host pushes the room's current sticky
 * events as `send_event` when it grants `org.matrix.msc4407.receive.sticky_event`, then each new one as it
 * arrives), kept as matrix-js-sdk keeps its room's sticky map: the current event per (sender, sticky key),
 * by MSC4354's rule (the one that expires last, then the highest event id, as `CallMemberStore` picks),
 * each stamped with when it stops being sticky on our clock (`expiresAt`: the host's remaining time, TTL,
 * counted from when we got it). Stamped on receipt because the TTL is relative to then: a reader that
 * comes later (a new subscriber's full read) must not count it from its own "now".
 *
 * Expired events are dropped when the table has doubled since the last sweep (amortized O(1) per event)
 * and never handed out. Pure: time comes in as an argument.
 */
import loglevel from "loglevel";
import {
  RTC_MEMBER_EVENT_TYPE,
  stickyExpiresAt,
  stickyKeyOf,
  stickyServerExpiry,
  stickyWins,
} from "./sticky.js";

const log = loglevel.getLogger("matrixrtc-membership");

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

interface Held {
  /** Our copy of the event, with `expiresAt`. */
  readonly event: Record<string, unknown>;
  readonly expiresAt: number;
  readonly serverExpiry: number;
  readonly eventId: string | undefined;
}

/**
 * Whether a pushed room event is a sticky membership of `roomId`: an `org.matrix.msc4143.rtc.member`
 * event with no state key and a sticky field (`msc4354_sticky`, or the merged name `sticky`). A plain
 * `rtc.member` event (a server without MSC4354 sent it) is no membership for anyone: not taken.
 */
export function isPushedStickyMembership(raw: unknown, roomId: string): raw is Record<string, unknown> {
  if (!isRecord(raw) || raw.type !== RTC_MEMBER_EVENT_TYPE) return false;
  if (raw.state_key !== undefined && raw.state_key !== null) return false;
  if (raw.room_id !== undefined && raw.room_id !== roomId) return false;
  return isRecord(raw.msc4354_sticky) || isRecord(raw.sticky);
}

/** The current sticky membership per (sender, sticky key), as pushed to a widget. */
export class PushedStickyEvents {
  private readonly byKey = new Map<string, Held>();
  private sweepAt = 64;

  /** How many events are held (expired ones included until the next sweep). */
  get size(): number {
    return this.byKey.size;
  }

  /**
   * Take a sticky membership received at `now`. Returns our stamped copy when it became the current
   * event of its key (the observer must read it), undefined when it changed nothing: a copy of the held
   * event (a host may hand one event over twice: from its timeline and from its sticky map), one that
   * loses to the held one, one already expired, or one with no usable sticky duration (said at debug).
   */
  take(raw: Record<string, unknown>, now: number): Record<string, unknown> | undefined {
    const rawId = raw.event_id;
    const eventId = typeof rawId === "string" ? rawId : undefined;
    const expiresAt = stickyExpiresAt(raw, now);
    if (expiresAt === undefined) {
      log.debug(
        `sticky membership ${eventId ?? "(no event id)"} ignored: no positive sticky duration_ms (malformed)`,
      );
      return undefined;
    }
    if (expiresAt <= now) return undefined;
    const sender = raw.sender;
    const stickyKey = stickyKeyOf(raw.content);
    // Without a sender or a sticky key it is no membership, but the store reports it (malformed):
    // keyed by its event id; without one it cannot even be told from a copy of itself.
    let key: string;
    if (typeof sender === "string" && sender !== "" && stickyKey !== undefined)
      key = `${sender}\n${stickyKey}`;
    else if (eventId !== undefined) key = `\n${eventId}`;
    else {
      log.debug("sticky membership without a sender, sticky key or event id ignored (malformed)");
      return undefined;
    }
    const serverExpiry = stickyServerExpiry(raw);
    const held = this.byKey.get(key);
    if (held && held.expiresAt > now) {
      if (eventId !== undefined && held.eventId === eventId) return undefined;
      if (!stickyWins({ serverExpiry, eventId }, held)) return undefined;
    }
    const event: Record<string, unknown> = { ...raw, expiresAt };
    // The store tells a sticky event by its missing state key.
    delete event.state_key;
    this.byKey.set(key, { event, expiresAt, serverExpiry, eventId });
    if (this.byKey.size >= this.sweepAt) this.sweep(now);
    return event;
  }

  /** The unexpired current events at `now`. */
  current(now: number): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const held of this.byKey.values()) if (held.expiresAt > now) out.push(held.event);
    return out;
  }

  /** Forget everything (the source closed). */
  clear(): void {
    this.byKey.clear();
  }

  private sweep(now: number): void {
    for (const [key, held] of this.byKey) if (held.expiresAt <= now) this.byKey.delete(key);
    this.sweepAt = Math.max(64, 2 * this.byKey.size);
  }
}
