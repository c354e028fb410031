/**
 * The lookup parser over every answer layout seen for `GET …/delayed_events/{delay_id}`, and the
 * classification of the errors the merged shape and Synapse after 1.157 add.
 */
import { describe, expect, it } from "@jest/globals";
import { MatrixError } from "matrix-js-sdk";
import { parseDelayedEventLookup } from "../../src/backends/mergedDelayedEvents.js";
import { classifyError } from "../../src/errors.js";

const BASE = {
  delay_id: "d",
  room_id: "!r:hs",
  type: "org.matrix.msc3401.call.member",
  state_key: "k",
  content: {},
};

describe("parseDelayedEventLookup", () => {
  it("MSC text, pending", () => {
    expect(parseDelayedEventLookup({ ...BASE, delay_ms: 1000, scheduled_at: 5000 })).toEqual({
      status: "pending",
      delayMs: 1000,
      delayedSinceTs: 5000,
    });
  });

  it("Synapse 1.163.2's unstable lookup (delay_ms, delayed_since_ts) and the older delay/running_since", () => {
    const want = { status: "pending", delayMs: 1000, delayedSinceTs: 5000 };
    expect(parseDelayedEventLookup({ ...BASE, delay_ms: 1000, delayed_since_ts: 5000 })).toEqual(want);
    expect(parseDelayedEventLookup({ ...BASE, delay: 1000, running_since: 5000 })).toEqual(want);
  });

  it("MSC text, finalised: sent on time, sent early (manual), failed, cancelled", () => {
    const at = { ...BASE, delay_ms: 1000, scheduled_at: 5000 };
    expect(parseDelayedEventLookup({ ...at, finalised_ts: 6000, event_id: "$e" })).toEqual({
      status: "finalised",
      outcome: "sent",
      eventId: "$e",
      finalisedTs: 6000,
      manual: false,
    });
    expect(parseDelayedEventLookup({ ...at, finalised_ts: 5500, event_id: "$e" })).toMatchObject({
      manual: true,
    });
    expect(
      parseDelayedEventLookup({
        ...at,
        finalised_ts: 6000,
        error: { errcode: "M_FORBIDDEN", error: "no", x: 1 },
      }),
    ).toEqual({
      status: "finalised",
      outcome: "error",
      finalisedTs: 6000,
      error: { errcode: "M_FORBIDDEN", error: "no" },
    });
    expect(parseDelayedEventLookup({ ...at, finalised_ts: 5200 })).toEqual({
      status: "finalised",
      outcome: "cancelled",
      finalisedTs: 5200,
    });
  });

  it("nested finalised object (issue 14's reading)", () => {
    const at = { ...BASE, delay_ms: 1000, delayed_since_ts: 5000 };
    expect(
      parseDelayedEventLookup({ ...at, finalised: { finalised_ts: 6000, event_id: "$e" } }),
    ).toMatchObject({
      outcome: "sent",
      eventId: "$e",
      manual: false,
    });
    expect(parseDelayedEventLookup({ ...at, finalised: { finalised_ts: 5100 } })).toMatchObject({
      outcome: "cancelled",
    });
  });

  it("rejects answers that say nothing usable", () => {
    expect(() => parseDelayedEventLookup([])).toThrow(TypeError);
    expect(() => parseDelayedEventLookup({ ...BASE, delay_ms: 1000 })).toThrow(TypeError);
  });
});

describe("classification of the new answers", () => {
  const err = (status: number, body: Record<string, unknown>) => new MatrixError(body, status);

  it("Synapse 1.163's 400 ORG.MATRIX.MSC4140_DELAY_TOO_LARGE is max-delay, with the maximum from the message", () => {
    const e = err(400, {
      errcode: "ORG.MATRIX.MSC4140_DELAY_TOO_LARGE",
      error: "The requested delay (90000000ms) exceeds the allowed maximum (86400000ms)",
    });
    expect(classifyError(e, "schedule-leave")).toEqual({ kind: "max-delay", maxDelayMs: 86_400_000 });
  });

  it("merged 403 M_FORBIDDEN over the maximum is max-delay", () => {
    const e = err(403, {
      errcode: "M_FORBIDDEN",
      error: "The requested delay (2000ms) exceeds the allowed maximum (1000ms)",
    });
    expect(classifyError(e, "schedule-leave")).toEqual({ kind: "max-delay" });
  });

  it("409 on a management action is gone; the lookup a backend attached rides along", () => {
    const plain = err(409, { errcode: "M_UNKNOWN", error: "conflict" });
    expect(classifyError(plain, "restart")).toEqual({ kind: "gone" });
    const withLookup = Object.assign(err(409, { errcode: "M_UNKNOWN", error: "conflict" }), {
      delayedEventStatus: { status: "finalised", outcome: "cancelled", finalisedTs: 1 },
    });
    expect(classifyError(withLookup, "cancel")).toEqual({
      kind: "gone",
      finalised: { status: "finalised", outcome: "cancelled", finalisedTs: 1 },
    });
  });
});
