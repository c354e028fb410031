/**
 * What happened to a delayed leave the server no longer lets us restart (404 `M_NOT_FOUND` or 409)?
 * Pure: the lookup answer (MSC4140 as merged: `GET …/delayed_events/{id}`, or the 409's attached
 * lookup) and the time-based guess go in, one verdict comes out.
 *
 * - `fired`: the server sent our leave (`{}` is in the room): rejoin with a fresh membership.
 * - `cancelled`: someone's write at our key cancelled it (another user, or another session of ours):
 *   read the room to tell a replaced membership from one that still stands.
 * - `lost`: the server no longer holds it but our membership still stands: schedule a new one and
 *   re-assert.
 * - `pending`: the lookup says it is still scheduled: the "gone" answer was wrong; keep the id and
 *   probe again later instead of replacing it (a replacement would leave it to fire).
 *
 * Without a lookup, or when the server cannot tell a finalised event from an unknown one (Synapse's
 * unstable lookup answers 404 once an event is sent or cancelled), the time decides: a "gone" after the
 * due time means it fired.
 */
import type { DelayedEventStatus } from "../backends/types.js";

/** The verdict on a delayed leave that a restart found gone. */
export type LostDelayedLeaveCause = "fired" | "cancelled" | "lost" | "pending";

/** Judge by the lookup where it says something; by `byTime` where it does not. */
export function lostDelayedLeaveCause(
  lookup: DelayedEventStatus | undefined,
  byTime: "fired" | "lost",
): LostDelayedLeaveCause {
  if (!lookup) return byTime;
  switch (lookup.status) {
    case "pending":
      return "pending";
    case "finalised":
      // A failed send left our membership standing (the server could not write `{}`).
      return lookup.outcome === "sent" ? "fired" : lookup.outcome === "cancelled" ? "cancelled" : "lost";
    case "unknown":
      // A server that keeps finalised events would have said "sent" or "cancelled": it lost it.
      return lookup.tracksFinalised ? "lost" : byTime;
  }
}
