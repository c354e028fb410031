import { describe, expect, it } from "@jest/globals";
import {
  ConnectionError,
  HTTPError,
  MatrixError,
  UnsupportedDelayedEventsEndpointError,
} from "matrix-js-sdk";
import { WidgetApiResponseError } from "matrix-widget-api";
import { classifyError } from "../../src/index.js";
import {
  DelayedEventWidgetDriver,
  matrixApiErrorOf,
  type DriverClient,
} from "../../src/widget-host/index.js";

const ROOM = "!home:example.org";

function fakeClient(): DriverClient & { calls: unknown[][] } {
  const calls: unknown[][] = [];
  const client = {
    calls,
    sendStateEvent: async (...a: unknown[]) => (calls.push(["sendStateEvent", ...a]), { event_id: "$s" }),
    sendEvent: async (...a: unknown[]) => (calls.push(["sendEvent", ...a]), { event_id: "$m" }),
    _unstable_sendDelayedStateEvent: async (...a: unknown[]) => (
      calls.push(["delayedState", ...a]),
      { delay_id: "syd_s" }
    ),
    _unstable_sendDelayedEvent: async (...a: unknown[]) => (
      calls.push(["delayedEvent", ...a]),
      { delay_id: "syd_m" }
    ),
    _unstable_restartScheduledDelayedEvent: async (id: string) => (calls.push(["restart", id]), {}),
    _unstable_sendScheduledDelayedEvent: async (id: string) => (calls.push(["send", id]), {}),
    _unstable_cancelScheduledDelayedEvent: async (id: string) => (calls.push(["cancel", id]), {}),
    roomState: async (roomId: string) => [
      { type: "org.matrix.msc3401.call.member", state_key: "_a", content: { x: 1 }, room_id: roomId },
      { type: "org.matrix.msc3401.call.member", state_key: "_b", content: {}, room_id: roomId },
      { type: "m.room.name", state_key: "", content: { name: "n" }, room_id: roomId },
    ],
  };
  return client as unknown as DriverClient & { calls: unknown[][] };
}

describe("DelayedEventWidgetDriver: requests", () => {
  it("sends state and room events now, in the widget's room unless one is named", async () => {
    const client = fakeClient();
    const driver = new DelayedEventWidgetDriver(client, { roomId: ROOM });
    await expect(driver.sendEvent("t.state", { a: 1 }, "key")).resolves.toEqual({
      roomId: ROOM,
      eventId: "$s",
    });
    await expect(driver.sendEvent("m.room.message", { body: "hi" }, null, "!other:x")).resolves.toEqual({
      roomId: "!other:x",
      eventId: "$m",
    });
    expect(client.calls).toEqual([
      ["sendStateEvent", ROOM, "t.state", { a: 1 }, "key"],
      ["sendEvent", "!other:x", null, "m.room.message", { body: "hi" }],
    ]);
  });

  it("an empty state key is a state event, not a room event", async () => {
    const client = fakeClient();
    await new DelayedEventWidgetDriver(client, { roomId: ROOM }).sendDelayedEvent(500, "t", {}, "");
    expect(client.calls).toEqual([["delayedState", ROOM, { delay: 500 }, "t", {}, ""]]);
  });

  it("sends delayed state and room events with the delay", async () => {
    const client = fakeClient();
    const driver = new DelayedEventWidgetDriver(client, { roomId: ROOM });
    await expect(driver.sendDelayedEvent(8000, "t.state", {}, "key")).resolves.toEqual({
      roomId: ROOM,
      delayId: "syd_s",
    });
    await expect(driver.sendDelayedEvent(9000, "m.room.message", { body: "later" })).resolves.toEqual({
      roomId: ROOM,
      delayId: "syd_m",
    });
    expect(client.calls).toEqual([
      ["delayedState", ROOM, { delay: 8000 }, "t.state", {}, "key"],
      ["delayedEvent", ROOM, { delay: 9000 }, null, "m.room.message", { body: "later" }],
    ]);
  });

  it("cancel / restart / send, and updateDelayedEvent with every spelling (refresh = restart)", async () => {
    const client = fakeClient();
    const driver = new DelayedEventWidgetDriver(client, { roomId: ROOM });
    await driver.cancelScheduledDelayedEvent("a");
    await driver.restartScheduledDelayedEvent("b");
    await driver.sendScheduledDelayedEvent("c");
    await driver.updateDelayedEvent("d", "refresh");
    await driver.updateDelayedEvent("e", "restart");
    await driver.updateDelayedEvent("f", "send");
    await driver.updateDelayedEvent("g", "cancel");
    await expect(driver.updateDelayedEvent("h", "bogus" as never)).rejects.toThrow(/unsupported/);
    expect(client.calls).toEqual([
      ["cancel", "a"],
      ["restart", "b"],
      ["send", "c"],
      ["restart", "d"],
      ["restart", "e"],
      ["send", "f"],
      ["cancel", "g"],
    ]);
  });

  it("reads room state filtered by type and key", async () => {
    const driver = new DelayedEventWidgetDriver(fakeClient(), { roomId: ROOM });
    const all = await driver.readRoomState(ROOM, "org.matrix.msc3401.call.member", undefined);
    expect(all.map((e) => e.state_key)).toEqual(["_a", "_b"]);
    const one = await driver.readRoomState(ROOM, "org.matrix.msc3401.call.member", "_b");
    expect(one).toHaveLength(1);
    expect(one[0]).toMatchObject({ room_id: ROOM, content: {} });
  });

  it("knows the widget's room and any extra ones", () => {
    expect(
      new DelayedEventWidgetDriver(fakeClient(), { roomId: ROOM, knownRooms: ["!x:y"] }).getKnownRooms(),
    ).toEqual([ROOM, "!x:y"]);
  });
});

describe("DelayedEventWidgetDriver: capability validation", () => {
  const requested = new Set([
    "org.matrix.msc2762.send.state_event:org.matrix.msc3401.call.member#_@a:x_D_m.call",
    "org.matrix.msc4157.send.delayed_event",
    "org.matrix.msc4157.update_delayed_event",
  ]);

  it("approves nothing by default: the host must list what a widget may do", async () => {
    const driver = new DelayedEventWidgetDriver(fakeClient(), { roomId: ROOM });
    await expect(driver.validateCapabilities(requested)).resolves.toEqual(new Set());
  });

  it("an allow-list approves the intersection; patterns must match a whole capability", async () => {
    const driver = new DelayedEventWidgetDriver(fakeClient(), {
      roomId: ROOM,
      validateCapabilities: [
        "org.matrix.msc4157.send.delayed_event",
        /org\.matrix\.msc2762\.send\.state_event:.*/,
        /msc4157/,
      ],
    });
    await expect(driver.validateCapabilities(requested)).resolves.toEqual(
      new Set([
        "org.matrix.msc2762.send.state_event:org.matrix.msc3401.call.member#_@a:x_D_m.call",
        "org.matrix.msc4157.send.delayed_event",
      ]),
    );
  });

  it("a function decides (sync or async), but can never approve what was not requested", async () => {
    const driver = new DelayedEventWidgetDriver(fakeClient(), {
      roomId: ROOM,
      validateCapabilities: async (req) =>
        [...req].filter((c) => !c.includes("update")).concat(["m.always_on_screen"]),
    });
    await expect(driver.validateCapabilities(requested)).resolves.toEqual(
      new Set([
        "org.matrix.msc2762.send.state_event:org.matrix.msc3401.call.member#_@a:x_D_m.call",
        "org.matrix.msc4157.send.delayed_event",
      ]),
    );
  });
});

/** What the widget sees: matrix-widget-api turns the host's error reply into this. */
function asWidgetSees(driver: DelayedEventWidgetDriver, error: unknown): WidgetApiResponseError {
  return new WidgetApiResponseError("Error updating delayed event", driver.processError(error) ?? {});
}

describe("DelayedEventWidgetDriver.processError", () => {
  const driver = new DelayedEventWidgetDriver(fakeClient(), { roomId: ROOM });

  it("a MatrixError carries status, every header, url and the whole body", () => {
    const e = new MatrixError(
      { errcode: "M_LIMIT_EXCEEDED", error: "Too Many Requests", retry_after_ms: 1500 },
      429,
      "http://hs/_matrix/client/unstable/org.matrix.msc4140/delayed_events/syd/restart",
      undefined,
      new Headers({ "Retry-After": "2", "Content-Type": "application/json" }),
    );
    expect(driver.processError(e)).toEqual({
      matrix_api_error: {
        http_status: 429,
        http_headers: { "retry-after": "2", "content-type": "application/json" },
        url: "http://hs/_matrix/client/unstable/org.matrix.msc4140/delayed_events/syd/restart",
        response: { errcode: "M_LIMIT_EXCEEDED", error: "Too Many Requests", retry_after_ms: 1500 },
      },
    });
    expect(classifyError(asWidgetSees(driver, e), "restart")).toEqual({
      kind: "rate-limited",
      retryAfterMs: 2000,
    });
  });

  it("keeps the MSC4140 extras of the legacy dialect", () => {
    const e = new MatrixError(
      {
        errcode: "M_UNKNOWN",
        error: "The requested delay exceeds the allowed maximum.",
        "org.matrix.msc4140.errcode": "M_MAX_DELAY_EXCEEDED",
        "org.matrix.msc4140.max_delay": 5000,
      },
      400,
    );
    expect(classifyError(asWidgetSees(driver, e), "schedule-leave")).toEqual({
      kind: "max-delay",
      maxDelayMs: 5000,
    });
  });

  it("404 M_NOT_FOUND on restart is gone", () => {
    const e = new MatrixError({ errcode: "M_NOT_FOUND", error: "Delayed event not found" }, 404);
    expect(classifyError(asWidgetSees(driver, e), "restart")).toEqual({ kind: "gone" });
  });

  it("a non-JSON HTTP failure keeps its status", () => {
    const e = new HTTPError("Server returned 502 error", 502, new Headers({ "content-type": "text/html" }));
    const mae = matrixApiErrorOf(e)!;
    expect(mae).toMatchObject({ http_status: 502, response: { errcode: "M_UNKNOWN" } });
    expect(classifyError(asWidgetSees(driver, e), "restart")).toEqual({ kind: "server", status: 502 });
  });

  it("a connection error has no details (the widget sees only the message)", () => {
    expect(driver.processError(new ConnectionError("fetch failed"))).toBeUndefined();
    expect(driver.processError(new Error("boom"))).toBeUndefined();
    expect(driver.processError("boom")).toBeUndefined();
  });

  it("js-sdk's 'server does not support delayed events' becomes 404 M_UNRECOGNIZED: unsupported", () => {
    const e = new UnsupportedDelayedEventsEndpointError(
      "Server does not support the delayed events API",
      "sendDelayedStateEvent",
    );
    expect(driver.processError(e)).toMatchObject({
      matrix_api_error: { http_status: 404, response: { errcode: "M_UNRECOGNIZED" } },
    });
    expect(classifyError(asWidgetSees(driver, e), "schedule-leave")).toMatchObject({ kind: "unsupported" });
    expect(classifyError(asWidgetSees(driver, e), "restart")).toMatchObject({ kind: "unsupported" });
  });
});
