/**
 * Every error class, produced by the real test homeserver (or its fault injection), carried by the
 * host driver's processError across the widget transport, must reach the widget-side manager as the
 * same class it would have over HTTP.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@jest/globals";
import { WidgetApiResponseError } from "matrix-widget-api";
import {
  classifyError,
  sendStateCapability,
  widgetCapabilities,
  CALL_MEMBER_EVENT_TYPE,
} from "../../../src/index.js";
import type { TestHomeserverOptions } from "../../../src/testing/index.js";
import { quietWidgetLogs } from "../../helpers/widgetBus.js";
import { waitFor } from "../../helpers/matrix.js";
import { sleep, startWidgetWorld, type WidgetCall, type WidgetWorld } from "./harness.js";

let restoreConsole: () => void;
beforeAll(() => {
  restoreConsole = quietWidgetLogs();
});
afterAll(() => restoreConsole());

let world: WidgetWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

async function start(options: TestHomeserverOptions = {}): Promise<WidgetWorld> {
  world = await startWidgetWorld(options);
  return world;
}

async function joined(c: WidgetCall): Promise<void> {
  c.manager.join();
  await waitFor(() => c.manager.status === "connected" && c.pending().length === 1, 5000, "joined");
}

/** Resolves once the server has answered one more restart with 200. */
async function anotherRestart(w: WidgetWorld, timeoutMs = 3000): Promise<number> {
  const ok = () => w.hs.requests.filter((r) => r.route === "delayed.restart" && r.status === 200).length;
  const before = ok();
  return waitFor(() => ok() > before, timeoutMs, "a successful restart");
}

function widgetError(error: unknown): WidgetApiResponseError {
  expect(error).toBeInstanceOf(WidgetApiResponseError);
  return error as WidgetApiResponseError;
}

describe("widget mode: errors from the server reach the manager classified", () => {
  it("404 on restart (the server lost our delayed leave): a new delayed leave, still joined", async () => {
    const w = await start();
    const c = await w.call({ manager: { delayedLeaveDelayMs: 2000 } });
    await joined(c);
    const lost = c.pending()[0].delayId;
    w.hs.loseDelayedEvent(lost);
    await waitFor(() => c.errors.some((e) => e.code === "delayed-leave-lost"), 3000, "delayed-leave-lost");
    await waitFor(() => c.pending().length === 1 && c.pending()[0].delayId !== lost, 3000, "rescheduled");

    const failure = c.backend.failures.find((f) => f.op === "restart")!;
    const e = widgetError(failure.error);
    expect(e.message).toBe("Error updating delayed event");
    expect(e.data.matrix_api_error).toMatchObject({
      http_status: 404,
      url: expect.stringContaining("/delayed_events/"),
      response: { errcode: "M_NOT_FOUND" },
    });
    expect(classifyError(e, "restart")).toEqual({ kind: "gone" });
    expect(c.joinedOnServer()).toBe(true);
    expect(c.manager.probablyLeft).toBe(false);
  });

  it("429 with Retry-After (Element Web shape): waits what the header says, then heartbeats again", async () => {
    const w = await start();
    const c = await w.call({ manager: { delayedLeaveDelayMs: 4000 } });
    // (4 s: a heartbeat's hinted wait is capped at a quarter of the delay, so 1 s fits.)
    await joined(c);
    w.hs.faults.add({
      route: "delayed.restart",
      times: 1,
      respond: {
        status: 429,
        body: { errcode: "M_LIMIT_EXCEEDED", error: "Too Many Requests", retry_after_ms: 300 },
        headers: { "Retry-After": "1" },
      },
    });
    await waitFor(() => c.errors.some((e) => e.code === "rate-limited"), 3000, "rate-limited");
    const rl = c.errors.find((e) => e.code === "rate-limited")!;
    // The header (1 s) wins over the body's retry_after_ms, as over HTTP.
    expect(rl.errorClass).toEqual({ kind: "rate-limited", retryAfterMs: 1000 });
    const e = widgetError(c.backend.failures.find((f) => f.op === "restart")!.error);
    expect(e.data.matrix_api_error?.http_status).toBe(429);
    expect(e.data.matrix_api_error?.http_headers["retry-after"]).toBe("1");
    // The retry waits the header's second (the 429 was answered a few ms before we got here).
    expect(await anotherRestart(w)).toBeGreaterThanOrEqual(900);
    expect(c.joinedOnServer()).toBe(true);
    expect(c.pending()).toHaveLength(1);
  });

  it("429 without headers (Element X shape): falls back to the body's retry_after_ms", async () => {
    const w = await start();
    const c = await w.call({ manager: { delayedLeaveDelayMs: 2000 } });
    await joined(c);
    w.hs.faults.add({
      route: "delayed.restart",
      times: 1,
      respond: {
        status: 429,
        body: { errcode: "M_LIMIT_EXCEEDED", error: "Too Many Requests", retry_after_ms: 250 },
      },
    });
    await waitFor(() => c.errors.some((e) => e.code === "rate-limited"), 3000, "rate-limited");
    expect(c.errors.find((e) => e.code === "rate-limited")!.errorClass).toEqual({
      kind: "rate-limited",
      retryAfterMs: 250,
    });
    const e = widgetError(c.backend.failures.find((f) => f.op === "restart")!.error);
    expect(e.data.matrix_api_error?.http_headers["retry-after"]).toBeUndefined();
    // And with neither header nor body hint: a plain backoff, still rate-limited.
    w.hs.faults.add({
      route: "delayed.restart",
      times: 1,
      respond: { status: 429, body: { errcode: "M_LIMIT_EXCEEDED", error: "Too Many Requests" } },
    });
    await waitFor(
      () => c.errors.filter((e) => e.code === "rate-limited").length === 2,
      3000,
      "second rate-limited",
    );
    expect(c.errors.filter((e) => e.code === "rate-limited")[1].errorClass).toEqual({ kind: "rate-limited" });
    await anotherRestart(w);
    expect(c.joinedOnServer()).toBe(true);
    expect(c.pending()).toHaveLength(1);
  });

  it("the real rate limiter's 429 on scheduling arrives with Retry-After and retry_after_ms", async () => {
    const w = await start({
      rateLimits: { message: { perSecond: 1, burstCount: 1 }, delayedEventMgmt: null },
    });
    // Use up the message bucket so that the delayed leave's PUT is limited.
    const c = await w.call({ manager: { delayedLeaveDelayMs: 2000 } });
    await c.pair.widgetApi
      .sendStateEvent(CALL_MEMBER_EVENT_TYPE, c.manager.stateKey, {})
      .catch(() => undefined);
    c.manager.join();
    await waitFor(() => c.errors.some((e) => e.code === "rate-limited"), 3000, "rate-limited");
    const e = widgetError(c.backend.failures.find((f) => f.op === "schedule")!.error);
    expect(e.data.matrix_api_error).toMatchObject({
      http_status: 429,
      response: { errcode: "M_LIMIT_EXCEEDED" },
    });
    expect(e.data.matrix_api_error?.http_headers["retry-after"]).toMatch(/^\d+$/);
    const cls = classifyError(e, "schedule-leave");
    expect(cls.kind).toBe("rate-limited");
    await waitFor(() => c.manager.status === "connected", 8000, "connected after the wait");
  }, 15_000);

  it("max delay, legacy dialect: 400 M_MAX_DELAY_EXCEEDED with max_delay lowers the delay to it", async () => {
    const w = await start({ errorDialect: "legacy", maxDelayMs: 1500 });
    const c = await w.call({ manager: { delayedLeaveDelayMs: 2000 } });
    await joined(c);
    expect(c.pending()[0].delayMs).toBe(1500);
    expect(c.errors.map((e) => e.code)).toContain("max-delay-lowered");
    expect(c.support.at(-1)).toMatchObject({ delayedEvents: true, delayMs: 1500, maxDelayMs: 1500 });
    const e = widgetError(c.backend.failures.find((f) => f.op === "schedule")!.error);
    expect(e.data.matrix_api_error).toMatchObject({
      http_status: 400,
      response: { errcode: "M_UNKNOWN", "org.matrix.msc4140.errcode": "M_MAX_DELAY_EXCEEDED" },
    });
  });

  it("max delay, Synapse 1.157 dialect: 403 M_FORBIDDEN without a maximum halves the delay", async () => {
    const w = await start({ maxDelayMs: 1500 });
    const c = await w.call({ manager: { delayedLeaveDelayMs: 2000 } });
    await joined(c);
    expect(c.pending()[0].delayMs).toBe(1000);
    expect(c.errors.map((e) => e.code)).toContain("max-delay-lowered");
    const e = widgetError(c.backend.failures.find((f) => f.op === "schedule")!.error);
    expect(e.data.matrix_api_error).toMatchObject({ http_status: 403, response: { errcode: "M_FORBIDDEN" } });
    expect(classifyError(e, "schedule-leave")).toEqual({ kind: "max-delay" });
  });

  it("max delay, Synapse ≥1.161 dialect: 400 ORG.MATRIX.MSC4140_DELAY_TOO_LARGE lowers the delay to the maximum in its text", async () => {
    const w = await start({ errorDialect: "1.161", maxDelayMs: 1500 });
    const c = await w.call({ manager: { delayedLeaveDelayMs: 2000 } });
    await joined(c);
    expect(c.pending()[0].delayMs).toBe(1500);
    expect(c.errors.map((e) => e.code)).toContain("max-delay-lowered");
    const e = widgetError(c.backend.failures.find((f) => f.op === "schedule")!.error);
    expect(e.data.matrix_api_error).toMatchObject({
      http_status: 400,
      response: { errcode: "ORG.MATRIX.MSC4140_DELAY_TOO_LARGE" },
    });
  });

  it("the widget transport's own timeout ('Request timed out') is a network error, retried", async () => {
    const w = await start();
    const c = await w.call({
      manager: { delayedLeaveDelayMs: 3000, requestTimeoutMs: 1000 },
      transportTimeoutMs: 300,
    });
    await joined(c);
    w.hs.faults.add({ route: "delayed.restart", times: 1, respond: "hang" });
    await waitFor(() => c.errors.some((e) => e.code === "network"), 4000, "network error");
    const failure = c.backend.failures.find((f) => f.op === "restart")!;
    expect((failure.error as Error).message).toBe("Request timed out");
    expect(c.errors.find((e) => e.code === "network")!.message).toContain("Request timed out");
    await anotherRestart(w);
    expect(c.joinedOnServer()).toBe(true);
    expect(c.pending()).toHaveLength(1);
  });

  it("plain host errors without details (connection dropped) are retried", async () => {
    const w = await start();
    const c = await w.call({ manager: { delayedLeaveDelayMs: 2000 } });
    await joined(c);
    w.hs.faults.add({ route: "delayed.restart", times: 1, respond: "drop" });
    await waitFor(() => c.backend.failures.some((f) => f.op === "restart"), 3000, "restart failure");
    const e = widgetError(c.backend.failures.find((f) => f.op === "restart")!.error);
    expect(e.message).toBe("Error updating delayed event");
    expect(e.data.matrix_api_error).toBeUndefined();
    expect(c.errors.find((x) => x.operation === "restart")?.code).toBe("unknown");
    await anotherRestart(w);
    expect(c.joinedOnServer()).toBe(true);
    expect(c.pending()).toHaveLength(1);
  });

  it("5xx from the server is a server error, retried", async () => {
    const w = await start();
    const c = await w.call({ manager: { delayedLeaveDelayMs: 2000 } });
    await joined(c);
    w.hs.faults.add({ route: "delayed.restart", times: 1, respond: { status: 502 } });
    await waitFor(() => c.errors.some((e) => e.code === "server"), 3000, "server error");
    expect(c.errors.find((e) => e.code === "server")!.errorClass).toEqual({ kind: "server", status: 502 });
    await anotherRestart(w);
    expect(c.joinedOnServer()).toBe(true);
  });

  it("delayed events off on the server: the host's js-sdk refuses, the widget sees unsupported → degraded", async () => {
    const w = await start({ delayedEvents: false });
    const c = await w.call();
    c.manager.join();
    await waitFor(() => c.manager.status === "connected", 5000, "connected");
    expect(c.manager.state).toEqual({ kind: "joined", delayedLeave: false });
    expect(c.support.at(-1)).toMatchObject({ delayedEvents: false });
    const e = widgetError(c.backend.failures.find((f) => f.op === "schedule")!.error);
    expect(e.data.matrix_api_error).toMatchObject({
      http_status: 404,
      response: { errcode: "M_UNRECOGNIZED" },
    });
    expect(c.joinedOnServer()).toBe(true);
    expect(c.pending()).toEqual([]);
    expect(await c.manager.leave({ timeoutMs: 5000 })).toEqual({ status: "left", via: "state-written" });
    expect(c.membership()).toEqual({});
  });
});

describe("widget mode: refused capabilities", () => {
  it("no delayed-event capabilities: degraded mode visible in support$, joined without a delayed leave", async () => {
    const w = await start();
    const key = (c: WidgetCall) => sendStateCapability(CALL_MEMBER_EVENT_TYPE, c.manager.stateKey);
    const c = await w.call({
      driver: { validateCapabilities: [/^org\.matrix\.msc2762\.send\.state_event:.*/] },
    });
    expect(c.pair.widgetApi.hasCapability(key(c))).toBe(true);
    c.manager.join();
    await waitFor(() => c.manager.status === "connected", 5000, "connected");
    // The host refused reading call memberships too: the manager cannot watch its own key and says so.
    expect(c.manager.state).toEqual({ kind: "joined", delayedLeave: false, membershipWatched: false });
    const support = c.support.at(-1)!;
    expect(support.delayedEvents).toBe(false);
    expect(support.reason).toMatch(/refused.*org\.matrix\.msc4157\./);
    expect(c.errors.map((e) => e.code)).toContain("delayed-events-unsupported");
    expect(c.joinedOnServer()).toBe(true);
    expect(c.pending()).toEqual([]);
    expect(w.hs.requests.some((r) => r.route === "state.put.delayed")).toBe(false);
    expect(await c.manager.leave({ timeoutMs: 5000 })).toEqual({ status: "left", via: "state-written" });
    expect(c.membership()).toEqual({});
  });

  it("send.delayed_event granted but update_delayed_event refused: nothing is scheduled (it could not be managed)", async () => {
    const w = await start();
    const c = await w.call({
      driver: {
        validateCapabilities: (requested) =>
          [...requested].filter((cap) => cap !== "org.matrix.msc4157.update_delayed_event"),
      },
    });
    c.manager.join();
    await waitFor(() => c.manager.status === "connected", 5000, "connected");
    expect(c.manager.state).toEqual({ kind: "joined", delayedLeave: false });
    expect(c.support.at(-1)).toMatchObject({ delayedEvents: false });
    expect(w.hs.requests.some((r) => r.route === "state.put.delayed")).toBe(false);
    expect(c.pending()).toEqual([]);
  });

  it("update granted but send.delayed_event refused: the host's refusal is unsupported → degraded", async () => {
    const w = await start();
    const c = await w.call({
      driver: {
        validateCapabilities: (requested) =>
          [...requested].filter((cap) => cap !== "org.matrix.msc4157.send.delayed_event"),
      },
    });
    c.manager.join();
    await waitFor(() => c.manager.status === "connected", 5000, "connected");
    expect(c.manager.state).toEqual({ kind: "joined", delayedLeave: false });
    const e = widgetError(c.backend.failures.find((f) => f.op === "schedule")!.error);
    expect(e.message).toBe("Missing capability for org.matrix.msc4157.send.delayed_event");
    expect(c.pending()).toEqual([]);
  });

  it("state capability refused: a typed failed state, quickly, not a hang", async () => {
    const w = await start();
    const c = await w.call({
      driver: {
        validateCapabilities: [
          "org.matrix.msc4157.send.delayed_event",
          "org.matrix.msc4157.update_delayed_event",
        ],
      },
    });
    const t0 = Date.now();
    c.manager.join();
    await waitFor(() => c.manager.state.kind === "failed", 2000, "failed");
    expect(Date.now() - t0).toBeLessThan(1000);
    const state = c.manager.state;
    if (state.kind !== "failed") throw new Error("unreachable");
    expect(state.error.code).toBe("forbidden");
    expect(state.error.operation).toBe("send-state");
    await sleep(200);
    expect(c.membership()).toBeUndefined();
    expect(c.pending()).toEqual([]);
  });

  it("room_id sent without the timeline capability: a typed failure, not endless retries", async () => {
    const w = await start();
    const c = await w.call({ backend: { sendRoomId: true } });
    c.manager.join();
    await waitFor(() => c.manager.state.kind === "failed", 2000, "failed");
    const state = c.manager.state;
    if (state.kind !== "failed") throw new Error("unreachable");
    expect(state.error.code).toBe("forbidden");
    expect(state.error.message).toContain("Unable to access room timeline");
  });

  it("room_id with the timeline capability works", async () => {
    const w = await start();
    const key = { userId: w.alice.userId, deviceId: w.alice.deviceId };
    const c = await w.call({
      backend: { sendRoomId: true },
      capabilities: widgetCapabilities({ ...key, roomId: w.roomId }),
    });
    await joined(c);
    expect(c.joinedOnServer()).toBe(true);
  });
});

describe("delayed events withdrawn mid-call", () => {
  // The heartbeat's restart is refused as "unsupported" mid-call (404 M_UNRECOGNIZED on both management
  // routes; a host answering "Missing capability" after renegotiation is the widget-side equivalent).
  // The delayed leave armed before can no longer be restarted and fires; the manager must go to
  // degraded mode and write the membership again once that leave is past (this once left it `{}`).
  it("an 'unsupported' heartbeat mid-call: the membership comes back after the old leave fires", async () => {
    const w = await start();
    const c = await w.call({ manager: { delayedLeaveDelayMs: 2000 } });
    await joined(c);
    const unrecognized = {
      status: 404,
      body: { errcode: "M_UNRECOGNIZED", error: "Unrecognized request" },
    };
    w.hs.faults.add({ route: "delayed.restart", respond: unrecognized });
    w.hs.faults.add({ route: "delayed.legacy", respond: unrecognized });
    await waitFor(
      () => c.manager.state.kind === "joined" && !c.manager.state.delayedLeave,
      4000,
      "degraded mode",
    );
    // The old delayed leave is still pending on the server and fires; the manager must notice and rejoin.
    await sleep(2000 + 2500);
    expect(c.joinedOnServer()).toBe(true);
    expect(c.manager.state).toEqual({ kind: "joined", delayedLeave: false });
  });
});
