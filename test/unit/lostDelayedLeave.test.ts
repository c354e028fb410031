/** The verdict on a delayed leave a restart found gone (src/core/lostDelayedLeave.ts), as a table. */
import { describe, expect, it } from "@jest/globals";
import type { DelayedEventStatus } from "../../src/backends/types.js";
import { lostDelayedLeaveCause, type LostDelayedLeaveCause } from "../../src/core/lostDelayedLeave.js";

const sent: DelayedEventStatus = { status: "finalised", outcome: "sent", eventId: "$e", finalisedTs: 5 };
const cancelled: DelayedEventStatus = { status: "finalised", outcome: "cancelled", finalisedTs: 5 };
const failed: DelayedEventStatus = {
  status: "finalised",
  outcome: "error",
  finalisedTs: 5,
  error: { errcode: "M_FORBIDDEN" },
};
const pending: DelayedEventStatus = { status: "pending", delayMs: 10_000, delayedSinceTs: 1 };
const unknownKept: DelayedEventStatus = { status: "unknown", tracksFinalised: true };
const unknownSynapse: DelayedEventStatus = { status: "unknown", tracksFinalised: false };

const TABLE: [string, DelayedEventStatus | undefined, "fired" | "lost", LostDelayedLeaveCause][] = [
  ["no lookup, after the due time", undefined, "fired", "fired"],
  ["no lookup, before the due time", undefined, "lost", "lost"],
  ["sent, though time says not due (another session used send)", sent, "lost", "fired"],
  ["sent, after the due time", sent, "fired", "fired"],
  ["cancelled by a write, after the due time", cancelled, "fired", "cancelled"],
  ["cancelled by a write, before it", cancelled, "lost", "cancelled"],
  ["the server failed to send it: our membership stands", failed, "fired", "lost"],
  ["still pending: the gone answer was wrong", pending, "fired", "pending"],
  ["unknown to a server that keeps finalised events", unknownKept, "fired", "lost"],
  ["unknown to Synapse's pending-only lookup: time decides", unknownSynapse, "fired", "fired"],
  ["unknown to Synapse's pending-only lookup, before the due time", unknownSynapse, "lost", "lost"],
];

describe("lostDelayedLeaveCause", () => {
  it.each(TABLE)("%s", (_name, lookup, byTime, want) => {
    expect(lostDelayedLeaveCause(lookup, byTime)).toBe(want);
  });
});
