/**
 * MSC4354 sticky events sent for a widget (MSC4407): the client methods that send them, what a widget
 * may ask for, and which of its delayed sticky events are delayed leaves (the ones the host sends when
 * the widget goes away).
 *
 * Sticky sends go through matrix-js-sdk's `_unstable_sendStickyEvent` / `_unstable_sendStickyDelayedEvent`
 * (the `org.matrix.msc4354.sticky_duration_ms` query on `/send`, and `org.matrix.msc4140.delay` beside it).
 * Both first check that the server's `/versions` names `org.matrix.msc4354` (and `org.matrix.msc4140` for
 * the delayed one): a server without sticky events would take the query as nothing and send a plain
 * event, which no reader takes for a membership. The merged MSC4140 scheduling endpoint has no sticky
 * parameter, so delayed sticky events never go there; their restarts, sends and cancels do (a delay id is
 * a delay id).
 */
import { HostRefusalError } from "./errors.js";

/** The sticky send methods of matrix-js-sdk's `MatrixClient` (optional: a client double may lack them). */
export interface StickySendClient {
  /** Sends a sticky room event now (MSC4354). */
  _unstable_sendStickyEvent?(
    roomId: string,
    stickDuration: number,
    threadId: string | null,
    eventType: string,
    // js-sdk types timeline content per event type; any content goes through.
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    content: any,
  ): Promise<{
    /** The sent event's id. */
    event_id: string;
  }>;
  /** Schedules a delayed sticky room event (MSC4140 + MSC4354). */
  _unstable_sendStickyDelayedEvent?(
    roomId: string,
    stickDuration: number,
    delayOpts: { delay: number },
    threadId: string | null,
    eventType: string,
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as above
    content: any,
  ): Promise<{
    /** The scheduled event's delay id. */
    delay_id: string;
  }>;
}

/** The MatrixRTC membership as a sticky event (MSC4143). */
export const RTC_MEMBER_EVENT_TYPE = "org.matrix.msc4143.rtc.member";

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * A widget's `sticky_duration_ms`: a positive integer number of ms (matrix-widget-api passes on whatever
 * the widget sent; 0 and other falsy values it already sends as a plain event). Longer than an hour is
 * the server's to cap (Synapse and the MSC cap the stickiness at 1 h), not refused.
 */
export function checkStickyDuration(value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0)
    throw new HostRefusalError(400, {
      errcode: "M_INVALID_PARAM",
      error: "sticky_duration_ms must be a positive integer number of milliseconds",
    });
  return value;
}

/**
 * The host's client has no sticky send method. No Matrix error details, on purpose: matrix-js-sdk's
 * widget client reports a refusal without them as "sticky events unsupported" (as it does when the host's
 * own server lacks them), and a call widget then says it needs sticky events instead of retrying.
 */
export function stickyUnsupported(): Error {
  return new Error("This host's client cannot send sticky events (MSC4354)");
}

/**
 * Whether a delayed sticky event is a MatrixRTC delayed leave: an `org.matrix.msc4143.rtc.member` event
 * that ends a membership. matrix-js-sdk 43 sends `{ slot_id, msc4354_sticky_key }`, Element Call 0.26.1
 * (a later js-sdk) `{ msc4354_sticky_key }`: no application, transports or member; the MSC4143 text says
 * `member.membership: "leave"`.
 */
export function isStickyLeave(eventType: string, content: unknown): boolean {
  if (eventType !== RTC_MEMBER_EVENT_TYPE || !isRecord(content)) return false;
  const member = content.member;
  if (isRecord(member) && member.membership === "leave") return true;
  return !("application" in content) && !("transports" in content) && !("member" in content);
}
