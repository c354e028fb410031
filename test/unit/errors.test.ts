import { describe, expect, it } from "@jest/globals";
import { ConnectionError, MatrixError, UnsupportedDelayedEventsEndpointError } from "matrix-js-sdk";
import { WidgetApiResponseError } from "matrix-widget-api";
import { classifyError, isTransient, LocalTimeoutError, type Operation } from "../../src/errors.js";

/** A whole second, so an HTTP date (second resolution) round-trips exactly. */
const NOW = Date.UTC(2025, 5, 1, 12, 0, 0);

function mxError(
  status: number,
  body: Record<string, unknown>,
  headers?: Record<string, string>,
): MatrixError {
  return new MatrixError(
    { errcode: "M_UNKNOWN", error: "x", ...body },
    status,
    "https://hs.example/_matrix/client/v1/delayed_events",
    undefined,
    headers ? new Headers(headers) : undefined,
  );
}

/** What matrix-widget-api rejects with when the host answers with a Matrix error. */
function widgetError(
  status: number,
  response: Record<string, unknown>,
  headers?: Record<string, string>,
): WidgetApiResponseError {
  return new WidgetApiResponseError(String(response.error ?? "widget error"), {
    matrix_api_error: {
      http_status: status,
      // Element X (matrix-rust-sdk) sends no headers at all; Element Web copies the response's.
      ...(headers ? { http_headers: headers } : {}),
      url: "https://hs.example/_matrix/client/v1/delayed_events",
      response: { errcode: "M_UNKNOWN", error: "x", ...response },
    },
  } as ConstructorParameters<typeof WidgetApiResponseError>[1]);
}

const DELAYED_OPS: Operation[] = ["restart", "send-leave", "cancel"];
const ALL_OPS: Operation[] = ["schedule-leave", "restart", "send-leave", "cancel", "send-state"];

describe("classifyError: rate limiting", () => {
  it("429 with Retry-After in seconds", () => {
    const e = mxError(429, { errcode: "M_LIMIT_EXCEEDED" }, { "Retry-After": "2" });
    expect(classifyError(e, "restart", NOW)).toEqual({ kind: "rate-limited", retryAfterMs: 2000 });
  });

  it("429 with Retry-After as an HTTP date", () => {
    const e = mxError(
      429,
      { errcode: "M_LIMIT_EXCEEDED" },
      { "Retry-After": new Date(NOW + 5000).toUTCString() },
    );
    expect(classifyError(e, "send-state", NOW)).toEqual({ kind: "rate-limited", retryAfterMs: 5000 });
  });

  it("429 with an HTTP date in the past waits 0, not a negative time", () => {
    const e = mxError(
      429,
      { errcode: "M_LIMIT_EXCEEDED" },
      { "Retry-After": new Date(NOW - 5000).toUTCString() },
    );
    expect(classifyError(e, "restart", NOW)).toEqual({ kind: "rate-limited", retryAfterMs: 0 });
  });

  it("429 with retry_after_ms in the body", () => {
    const e = mxError(429, { errcode: "M_LIMIT_EXCEEDED", retry_after_ms: 300 });
    expect(classifyError(e, "restart", NOW)).toEqual({ kind: "rate-limited", retryAfterMs: 300 });
  });

  it("the header wins over the body", () => {
    const e = mxError(429, { errcode: "M_LIMIT_EXCEEDED", retry_after_ms: 300 }, { "Retry-After": "4" });
    expect(classifyError(e, "restart", NOW)).toEqual({ kind: "rate-limited", retryAfterMs: 4000 });
  });

  it("429 with retry_after_ms: null has no time (the manager backs off)", () => {
    const e = mxError(429, { errcode: "M_LIMIT_EXCEEDED", retry_after_ms: null });
    const c = classifyError(e, "restart", NOW);
    expect(c).toEqual({ kind: "rate-limited", retryAfterMs: undefined });
    expect(isTransient(c)).toBe(true);
  });

  it("429 with a garbage Retry-After and nothing else has no time", () => {
    const e = mxError(429, { errcode: "M_LIMIT_EXCEEDED" }, { "Retry-After": "soon" });
    expect(classifyError(e, "restart", NOW)).toEqual({ kind: "rate-limited", retryAfterMs: undefined });
  });

  it("M_LIMIT_EXCEEDED without a 429 status is still rate limiting", () => {
    const e = mxError(400, { errcode: "M_LIMIT_EXCEEDED", retry_after_ms: 700 });
    expect(classifyError(e, "send-state", NOW)).toEqual({ kind: "rate-limited", retryAfterMs: 700 });
  });
});

describe("classifyError: the delayed event is gone", () => {
  it.each(DELAYED_OPS)("404 M_NOT_FOUND on %s is gone", (op) => {
    expect(classifyError(mxError(404, { errcode: "M_NOT_FOUND" }), op, NOW)).toEqual({ kind: "gone" });
  });

  it.each(DELAYED_OPS)("409 (newer MSC4140) on %s is gone", (op) => {
    expect(classifyError(mxError(409, { errcode: "M_UNKNOWN" }), op, NOW)).toEqual({ kind: "gone" });
  });

  it("404 M_NOT_FOUND on send-state is not gone: the request itself is wrong", () => {
    const c = classifyError(mxError(404, { errcode: "M_NOT_FOUND" }), "send-state", NOW);
    expect(c).toEqual({ kind: "rejected", status: 404, errcode: "M_NOT_FOUND" });
    expect(isTransient(c)).toBe(false);
  });

  it("409 on send-state is not gone", () => {
    expect(classifyError(mxError(409, {}), "send-state", NOW)).toMatchObject({
      kind: "rejected",
      status: 409,
    });
  });

  it("404 M_UNRECOGNIZED on a delayed-event action means the endpoint is missing", () => {
    expect(classifyError(mxError(404, { errcode: "M_UNRECOGNIZED" }), "restart", NOW)).toMatchObject({
      kind: "unsupported",
    });
    expect(classifyError(mxError(404, { errcode: "M_UNRECOGNIZED" }), "send-state", NOW)).toMatchObject({
      kind: "rejected",
    });
  });
});

describe("classifyError: delay limits and support", () => {
  it("legacy 400 M_UNKNOWN + M_MAX_DELAY_EXCEEDED with max_delay", () => {
    const e = mxError(400, {
      error: "The requested delay exceeds the allowed maximum.",
      "org.matrix.msc4140.errcode": "M_MAX_DELAY_EXCEEDED",
      "org.matrix.msc4140.max_delay": 5000,
    });
    expect(classifyError(e, "schedule-leave", NOW)).toEqual({ kind: "max-delay", maxDelayMs: 5000 });
  });

  it("legacy M_MAX_DELAY_EXCEEDED without max_delay", () => {
    const e = mxError(400, { "org.matrix.msc4140.errcode": "M_MAX_DELAY_EXCEEDED" });
    expect(classifyError(e, "schedule-leave", NOW)).toEqual({ kind: "max-delay", maxDelayMs: undefined });
  });

  it("legacy M_MAX_DELAY_EXCEEDED with a nonsense max_delay ignores it", () => {
    const e = mxError(400, {
      "org.matrix.msc4140.errcode": "M_MAX_DELAY_EXCEEDED",
      "org.matrix.msc4140.max_delay": "5000",
    });
    expect(classifyError(e, "schedule-leave", NOW)).toEqual({ kind: "max-delay", maxDelayMs: undefined });
  });

  it("M_MAX_DELAY_UNSUPPORTED: delayed events are off", () => {
    const e = mxError(400, { "org.matrix.msc4140.errcode": "M_MAX_DELAY_UNSUPPORTED" });
    const c = classifyError(e, "schedule-leave", NOW);
    expect(c).toMatchObject({ kind: "unsupported" });
    expect(isTransient(c)).toBe(false);
  });

  it("Synapse 1.157: 403 'exceeds the allowed maximum' on schedule-leave is max-delay", () => {
    const e = mxError(403, {
      errcode: "M_FORBIDDEN",
      error: "The requested delay (20000ms) exceeds the allowed maximum (10000ms)",
    });
    expect(classifyError(e, "schedule-leave", NOW)).toEqual({ kind: "max-delay" });
  });

  it("Synapse ≥1.161: 400 ORG.MATRIX.MSC4140_DELAY_TOO_LARGE is max-delay, the maximum read from the text", () => {
    // The exact answer of real Synapse 1.163.2 (test/conformance/recorded/1.163.2.json, "delay-maximum").
    const e = mxError(400, {
      errcode: "ORG.MATRIX.MSC4140_DELAY_TOO_LARGE",
      error: "The requested delay (172800000ms) exceeds the allowed maximum (86400000ms)",
    });
    expect(classifyError(e, "schedule-leave", NOW)).toEqual({ kind: "max-delay", maxDelayMs: 86_400_000 });
    const bare = mxError(400, { errcode: "ORG.MATRIX.MSC4140_DELAY_TOO_LARGE", error: "too large" });
    expect(classifyError(bare, "schedule-leave", NOW)).toEqual({ kind: "max-delay", maxDelayMs: undefined });
  });

  it("Synapse 1.157: 403 'has been disallowed' on schedule-leave is unsupported", () => {
    const e = mxError(403, { errcode: "M_FORBIDDEN", error: "Sending delayed events has been disallowed" });
    expect(classifyError(e, "schedule-leave", NOW)).toMatchObject({ kind: "unsupported" });
  });

  it("a 403 on send-state is forbidden, whatever the wording", () => {
    for (const error of ["You don't have permission", "exceeds the allowed maximum", "has been disallowed"]) {
      const c = classifyError(mxError(403, { errcode: "M_FORBIDDEN", error }), "send-state", NOW);
      expect(c).toMatchObject({ kind: "forbidden" });
      expect(isTransient(c)).toBe(false);
    }
  });

  it("UnsupportedDelayedEventsEndpointError from matrix-js-sdk is unsupported", () => {
    const e = new UnsupportedDelayedEventsEndpointError(
      "Server does not support the delayed events API",
      "sendDelayedStateEvent",
    );
    expect(classifyError(e, "schedule-leave", NOW)).toMatchObject({ kind: "unsupported" });
    expect(classifyError(e, "restart", NOW)).toMatchObject({ kind: "unsupported" });
  });
});

describe("classifyError: transient failures", () => {
  it("ConnectionError from matrix-js-sdk is network", () => {
    const e = new ConnectionError("fetch failed", new TypeError("fetch failed"));
    for (const op of ALL_OPS) expect(classifyError(e, op, NOW)).toEqual({ kind: "network" });
  });

  it.each([500, 502, 503, 504])("%i is a server error", (status) => {
    for (const op of ALL_OPS) {
      const c = classifyError(mxError(status, {}), op, NOW);
      expect(c).toEqual({ kind: "server", status });
      expect(isTransient(c)).toBe(true);
    }
  });

  it("the widget transport's 'Request timed out' is network", () => {
    expect(classifyError(new Error("Request timed out"), "restart", NOW)).toEqual({ kind: "network" });
  });

  it("our own LocalTimeoutError is network", () => {
    expect(classifyError(new LocalTimeoutError(400), "restart", NOW)).toEqual({ kind: "network" });
  });

  it("fetch's TypeError 'fetch failed' with cause ECONNRESET is network", () => {
    const cause = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
    const e = new TypeError("fetch failed", { cause });
    expect(classifyError(e, "send-state", NOW)).toEqual({ kind: "network" });
  });

  it("an ECONNRESET cause under a different message is still network", () => {
    const cause = Object.assign(new Error("socket"), { code: "ECONNRESET" });
    expect(classifyError(new TypeError("terminated", { cause }), "restart", NOW)).toEqual({
      kind: "network",
    });
  });

  it("a plain host Error('Error updating delayed event') is unknown, treated as transient", () => {
    const c = classifyError(new Error("Error updating delayed event"), "restart", NOW);
    expect(c).toEqual({ kind: "unknown" });
    expect(isTransient(c)).toBe(true);
  });

  it("non-Error throwables are unknown", () => {
    expect(classifyError("boom", "restart", NOW)).toEqual({ kind: "unknown" });
    expect(classifyError(undefined, "restart", NOW)).toEqual({ kind: "unknown" });
    expect(classifyError(null, "restart", NOW)).toEqual({ kind: "unknown" });
  });
});

describe("classifyError: widget hosts", () => {
  it("missing delayed-event capability: unsupported on delayed-event ops", () => {
    const e = new Error("Missing capability for org.matrix.msc4157.send.delayed_event");
    expect(classifyError(e, "schedule-leave", NOW)).toMatchObject({ kind: "unsupported" });
    const u = new Error("Missing capability for org.matrix.msc4157.update_delayed_event");
    expect(classifyError(u, "restart", NOW)).toMatchObject({ kind: "unsupported" });
  });

  it("missing capability on send-state is forbidden (the host will not let us write our key)", () => {
    const e = new Error("Missing capability for org.matrix.msc4157.send.delayed_event");
    expect(classifyError(e, "send-state", NOW)).toMatchObject({ kind: "forbidden" });
  });

  it("Element Web: WidgetApiResponseError with headers, 429 Retry-After", () => {
    const e = widgetError(
      429,
      { errcode: "M_LIMIT_EXCEEDED", error: "Too many requests" },
      {
        "retry-after": "3",
        "content-type": "application/json",
      },
    );
    expect(classifyError(e, "restart", NOW)).toEqual({ kind: "rate-limited", retryAfterMs: 3000 });
  });

  it("Element Web: header names in any case", () => {
    const e = widgetError(429, { errcode: "M_LIMIT_EXCEEDED" }, { "Retry-After": "1" });
    expect(classifyError(e, "restart", NOW)).toEqual({ kind: "rate-limited", retryAfterMs: 1000 });
  });

  it("Element X: WidgetApiResponseError without headers, 429 with retry_after_ms", () => {
    const e = widgetError(429, { errcode: "M_LIMIT_EXCEEDED", retry_after_ms: 1500 });
    expect(classifyError(e, "restart", NOW)).toEqual({ kind: "rate-limited", retryAfterMs: 1500 });
  });

  it("Element X: 429 with neither", () => {
    const e = widgetError(429, { errcode: "M_LIMIT_EXCEEDED" });
    expect(classifyError(e, "restart", NOW)).toEqual({ kind: "rate-limited", retryAfterMs: undefined });
  });

  it.each(["with headers", "without headers"])("widget 404 M_NOT_FOUND %s: gone on restart", (which) => {
    const e = widgetError(
      404,
      { errcode: "M_NOT_FOUND", error: "Delayed event not found" },
      which === "with headers" ? { "content-type": "application/json" } : undefined,
    );
    expect(classifyError(e, "restart", NOW)).toEqual({ kind: "gone" });
    expect(classifyError(e, "send-state", NOW)).toMatchObject({ kind: "rejected", status: 404 });
  });

  it("widget 1.157 403 on schedule-leave: max-delay vs disallowed", () => {
    const over = widgetError(403, {
      errcode: "M_FORBIDDEN",
      error: "The requested delay (20000ms) exceeds the allowed maximum (10000ms)",
    });
    expect(classifyError(over, "schedule-leave", NOW)).toEqual({ kind: "max-delay" });
    const off = widgetError(403, {
      errcode: "M_FORBIDDEN",
      error: "Sending delayed events has been disallowed",
    });
    expect(classifyError(off, "schedule-leave", NOW)).toMatchObject({ kind: "unsupported" });
  });

  it("widget legacy M_MAX_DELAY_EXCEEDED carries max_delay", () => {
    const e = widgetError(400, {
      "org.matrix.msc4140.errcode": "M_MAX_DELAY_EXCEEDED",
      "org.matrix.msc4140.max_delay": 8000,
    });
    expect(classifyError(e, "schedule-leave", NOW)).toEqual({ kind: "max-delay", maxDelayMs: 8000 });
  });

  it("widget 5xx is a server error", () => {
    expect(classifyError(widgetError(502, {}), "restart", NOW)).toEqual({ kind: "server", status: 502 });
  });

  it("a MatrixError rebuilt from widget data (RoomWidgetClient) classifies the same", () => {
    const e = MatrixError.fromWidgetApiErrorData({
      http_status: 429,
      http_headers: { "retry-after": "2" },
      url: "",
      response: { errcode: "M_LIMIT_EXCEEDED", error: "slow down" },
    });
    expect(classifyError(e, "restart", NOW)).toEqual({ kind: "rate-limited", retryAfterMs: 2000 });
  });

  it("a WidgetApiResponseError without matrix_api_error falls back to its message", () => {
    const e = new WidgetApiResponseError("Request timed out", {});
    expect(classifyError(e, "restart", NOW)).toEqual({ kind: "network" });
    const u = new WidgetApiResponseError("Error updating delayed event", {});
    expect(classifyError(u, "restart", NOW)).toEqual({ kind: "unknown" });
  });
});
