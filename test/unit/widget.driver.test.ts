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
  HostRefusalError,
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
    const ids = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let next = 0;
    client._unstable_sendDelayedStateEvent = async () => ({ delay_id: ids[next++] });
    const driver = new DelayedEventWidgetDriver(client, { roomId: ROOM });
    for (const _ of ids) await driver.sendDelayedEvent(5000, "t", {}, "k");
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

describe("DelayedEventWidgetDriver: a widget manages only the delayed events it scheduled", () => {
  const refused = { httpStatus: 404, data: { errcode: "M_NOT_FOUND" } };

  it("refuses an id it never scheduled like a server (404 M_NOT_FOUND: gone), without a request", async () => {
    const client = fakeClient();
    const driver = new DelayedEventWidgetDriver(client, { roomId: ROOM });
    for (const action of ["cancel", "restart", "send", "refresh"] as const) {
      const error = await driver.updateDelayedEvent("syd_other", action).catch((e: unknown) => e);
      expect(error).toMatchObject(refused);
      expect(driver.processError(error)).toMatchObject({
        matrix_api_error: { http_status: 404, response: { errcode: "M_NOT_FOUND" } },
      });
      expect(classifyError(asWidgetSees(driver, error), "restart")).toEqual({ kind: "gone" });
    }
    expect(client.calls).toEqual([]);
  });

  it("another driver (another widget) cannot manage this one's ids", async () => {
    const client = fakeClient();
    const callWidget = new DelayedEventWidgetDriver(client, { roomId: ROOM });
    const other = new DelayedEventWidgetDriver(client, { roomId: ROOM });
    const { delayId } = await callWidget.sendDelayedEvent(5000, "t", {}, "k");
    await expect(other.sendScheduledDelayedEvent(delayId)).rejects.toMatchObject(refused);
    await expect(other.cancelScheduledDelayedEvent(delayId)).rejects.toMatchObject(refused);
    await callWidget.restartScheduledDelayedEvent(delayId);
    expect(client.calls.slice(1)).toEqual([["restart", delayId]]);
  });

  it("forgets an id once sent or cancelled, or when the server says it is gone", async () => {
    const client = fakeClient();
    const ids = ["s1", "s2", "s3"];
    client._unstable_sendDelayedStateEvent = async () => ({ delay_id: ids.shift()! });
    const driver = new DelayedEventWidgetDriver(client, { roomId: ROOM });
    for (let i = 0; i < 3; i++) await driver.sendDelayedEvent(5000, "t", {}, "k");
    await driver.sendScheduledDelayedEvent("s1");
    await driver.cancelScheduledDelayedEvent("s2");
    client._unstable_restartScheduledDelayedEvent = async () => {
      throw new MatrixError({ errcode: "M_NOT_FOUND", error: "gone" }, 404);
    };
    await expect(driver.restartScheduledDelayedEvent("s3")).rejects.toMatchObject({ httpStatus: 404 });
    client.calls.length = 0;
    for (const id of ["s1", "s2", "s3"])
      await expect(driver.restartScheduledDelayedEvent(id)).rejects.toBeInstanceOf(HostRefusalError);
    expect(client.calls).toEqual([]);
  });

  it("a failure that is not 'gone' keeps the id (the widget retries)", async () => {
    const client = fakeClient();
    const driver = new DelayedEventWidgetDriver(client, { roomId: ROOM });
    const { delayId } = await driver.sendDelayedEvent(5000, "t", {}, "k");
    const restart = client._unstable_restartScheduledDelayedEvent;
    client._unstable_restartScheduledDelayedEvent = async () => {
      throw new MatrixError({ errcode: "M_UNKNOWN", error: "busy" }, 502);
    };
    await expect(driver.restartScheduledDelayedEvent(delayId)).rejects.toMatchObject({ httpStatus: 502 });
    client._unstable_restartScheduledDelayedEvent = restart;
    await driver.restartScheduledDelayedEvent(delayId);
    expect(client.calls.at(-1)).toEqual(["restart", delayId]);
  });
});

describe("DelayedEventWidgetDriver.widgetClosed", () => {
  it("sends the widget's pending delayed leaves ({} state), not its other delayed events", async () => {
    const client = fakeClient();
    const ids = ["leave1", "msg", "notLeave", "leave2", "otherType"];
    client._unstable_sendDelayedStateEvent = async () => ({ delay_id: ids.shift()! });
    client._unstable_sendDelayedEvent = async () => ({ delay_id: ids.shift()! });
    const driver = new DelayedEventWidgetDriver(client, { roomId: ROOM });
    await driver.sendDelayedEvent(5000, "org.matrix.msc3401.call.member", {}, "_a");
    await driver.sendDelayedEvent(5000, "m.room.message", {});
    await driver.sendDelayedEvent(5000, "t.state", { a: 1 }, "k");
    await driver.sendDelayedEvent(9000, "org.matrix.msc3401.call.member", {}, "_b");
    await driver.sendDelayedEvent(5000, "m.room.topic", {}, ""); // {} but not a membership
    await driver.sendScheduledDelayedEvent("leave2"); // the widget left that one itself
    client.calls.length = 0;
    await expect(driver.widgetClosed()).resolves.toEqual({ sent: 1, gone: 0, failed: 0 });
    expect(client.calls).toEqual([["send", "leave1"]]);
    // Sent once: a second close has nothing left to send.
    await expect(driver.widgetClosed()).resolves.toEqual({ sent: 0, gone: 0, failed: 0 });
    expect(client.calls).toHaveLength(1);
  });

  it("counts 'gone' answers, never throws, and is bounded by its timeout (aborting what hangs)", async () => {
    const client = fakeClient();
    const ids = ["gone", "hangs", "fails"];
    client._unstable_sendDelayedStateEvent = async () => ({ delay_id: ids.shift()! });
    const driver = new DelayedEventWidgetDriver(client, { roomId: ROOM });
    for (let i = 0; i < 3; i++)
      await driver.sendDelayedEvent(5000, "org.matrix.msc3401.call.member", {}, `k${i}`);
    let aborted = false;
    client._unstable_sendScheduledDelayedEvent = (id: string, opts?: { abortSignal?: AbortSignal }) => {
      if (id === "gone") return Promise.reject(new MatrixError({ errcode: "M_NOT_FOUND" }, 404));
      if (id === "fails") return Promise.reject(new ConnectionError("fetch failed"));
      return new Promise((_, reject) =>
        opts?.abortSignal?.addEventListener("abort", () => ((aborted = true), reject(new Error("aborted")))),
      );
    };
    const started = Date.now();
    await expect(driver.widgetClosed({ timeoutMs: 100 })).resolves.toEqual({ sent: 0, gone: 1, failed: 2 });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(aborted).toBe(true);
  });
});

describe("DelayedEventWidgetDriver: reads from the synced room, or the server", () => {
  const ev = (type: string, stateKey: string | undefined, content: object, id: string) => ({
    getEffectiveEvent: () => ({
      type,
      ...(stateKey !== undefined ? { state_key: stateKey } : {}),
      content,
      event_id: id,
    }),
    getType: () => type,
    getStateKey: () => stateKey,
    getId: () => id,
    getRoomId: () => ROOM,
    getContent: () => content,
  });
  const local = [
    ev("org.matrix.msc3401.call.member", "_a", { local: true }, "$1"),
    ev("org.matrix.msc3401.call.member", "_b", {}, "$2"),
  ];
  const timeline = [
    ev("m.reaction", undefined, { n: 1 }, "$t1"),
    ev("m.room.message", undefined, { msgtype: "m.text" }, "$t2"),
    ev("m.reaction", undefined, { n: 2 }, "$t3"),
    ev("m.reaction", undefined, { n: 3 }, "$t4"),
  ];
  function synced(syncState: string | null, membership = "join") {
    const client = fakeClient();
    let serverReads = 0;
    const roomState = client.roomState;
    Object.assign(client, {
      roomState: (roomId: string) => (serverReads++, roomState(roomId)),
      getSyncState: () => syncState,
      getRoom: (roomId: string) =>
        roomId === ROOM
          ? {
              getMyMembership: () => membership,
              currentState: { getStateEvents: (type: string) => local.filter((e) => e.getType() === type) },
              getLiveTimeline: () => ({ getEvents: () => timeline }),
            }
          : null,
    });
    return { driver: new DelayedEventWidgetDriver(client, { roomId: ROOM }), serverReads: () => serverReads };
  }

  it("a syncing client that joined the room answers from its room, without a request", async () => {
    const { driver, serverReads } = synced("SYNCING");
    const events = await driver.readRoomState(ROOM, "org.matrix.msc3401.call.member", "_a");
    expect(events).toEqual([
      {
        type: "org.matrix.msc3401.call.member",
        state_key: "_a",
        content: { local: true },
        event_id: "$1",
        room_id: ROOM,
      },
    ]);
    expect(await driver.readStateEvents("org.matrix.msc3401.call.member", undefined, 0, null)).toHaveLength(
      2,
    );
    expect(serverReads()).toBe(0);
  });

  it("a client that does not sync, is not live, or is not in the room reads from the server", async () => {
    for (const [state, membership] of [
      [null, "join"],
      ["ERROR", "join"],
      ["RECONNECTING", "join"],
      ["SYNCING", "leave"],
    ] as const) {
      const { driver, serverReads } = synced(state, membership);
      const events = await driver.readRoomState(ROOM, "org.matrix.msc3401.call.member", "_a");
      expect(events).toEqual([
        { type: "org.matrix.msc3401.call.member", state_key: "_a", content: { x: 1 }, room_id: ROOM },
      ]);
      expect(serverReads()).toBe(1);
    }
  });

  it("read_events: a state key reads the current state; room events come newest first, by limit, since, msgtype", async () => {
    const { driver } = synced("SYNCING");
    await expect(
      driver.readRoomTimeline(ROOM, "org.matrix.msc3401.call.member", undefined, "_b", 0, undefined),
    ).resolves.toMatchObject([{ state_key: "_b", event_id: "$2" }]);
    const ids = async (...a: [string | undefined, number, string | undefined]) =>
      (await driver.readRoomTimeline(ROOM, "m.reaction", a[0], undefined, a[1], a[2])).map((e) => e.event_id);
    expect(await ids(undefined, 0, undefined)).toEqual(["$t4", "$t3", "$t1"]);
    expect(await ids(undefined, 2, undefined)).toEqual(["$t4", "$t3"]);
    expect(await ids(undefined, 0, "$t3")).toEqual(["$t4"]);
    expect(
      (await driver.readRoomTimeline(ROOM, "m.room.message", "m.notice", undefined, 0, undefined)).length,
    ).toBe(0);
  });

  it("a client with neither a synced room nor an HTTP API refuses a timeline read instead of answering []", async () => {
    const driver = new DelayedEventWidgetDriver(fakeClient(), { roomId: ROOM });
    await expect(driver.readRoomEvents("m.reaction", undefined, 10, null)).rejects.toThrow(/no synced view/);
  });
});
