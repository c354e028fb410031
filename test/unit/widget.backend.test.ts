import { describe, expect, it, jest } from "@jest/globals";
import { WidgetApiResponseError } from "matrix-widget-api";
import {
  classifyError,
  WidgetBackend,
  WidgetCapabilityError,
  widgetCapabilities,
  type WidgetApiLike,
} from "../../src/index.js";

const ALICE = { userId: "@alice:example.org", deviceId: "DEV1" };
const KEY = "_@alice:example.org_DEV1_m.call";
const STATE_CAP = `org.matrix.msc2762.send.state_event:org.matrix.msc3401.call.member#${KEY}`;
const SEND_DELAYED = "org.matrix.msc4157.send.delayed_event";
const UPDATE_DELAYED = "org.matrix.msc4157.update_delayed_event";
const RECEIVE = "org.matrix.msc2762.receive.state_event:org.matrix.msc3401.call.member";
const RECEIVE_MEMBER = "org.matrix.msc2762.receive.state_event:m.room.member";

describe("widgetCapabilities", () => {
  it("lists exactly the state send at our key, the two MSC4157 capabilities and reading memberships back", () => {
    // Reading back (issue 25): the manager watches its own key; `readState: false` opts out.
    expect(widgetCapabilities(ALICE)).toEqual([
      STATE_CAP,
      SEND_DELAYED,
      UPDATE_DELAYED,
      RECEIVE,
      RECEIVE_MEMBER,
    ]);
    expect(widgetCapabilities({ ...ALICE, readState: false })).toEqual([
      STATE_CAP,
      SEND_DELAYED,
      UPDATE_DELAYED,
    ]);
  });

  it("follows the slot and the room version like the manager's state key", () => {
    expect(widgetCapabilities({ ...ALICE, slot: { application: "m.call", id: "standup" } })[0]).toBe(
      "org.matrix.msc2762.send.state_event:org.matrix.msc3401.call.member#_@alice:example.org_DEV1_m.callstandup",
    );
    expect(widgetCapabilities({ ...ALICE, roomVersion: "org.matrix.msc3757.11" })[0]).toBe(
      "org.matrix.msc2762.send.state_event:org.matrix.msc3401.call.member#@alice:example.org_DEV1_m.call",
    );
  });

  it("adds the timeline capability only for an explicit room", () => {
    expect(widgetCapabilities({ ...ALICE, roomId: "!r:example.org" })).toEqual([
      STATE_CAP,
      SEND_DELAYED,
      UPDATE_DELAYED,
      "org.matrix.msc2762.timeline:!r:example.org",
      RECEIVE,
      RECEIVE_MEMBER,
    ]);
    expect(widgetCapabilities({ ...ALICE, readState: true })).toEqual([
      STATE_CAP,
      SEND_DELAYED,
      UPDATE_DELAYED,
      RECEIVE,
      RECEIVE_MEMBER,
    ]);
  });
});

interface Fake extends WidgetApiLike {
  calls: unknown[][];
  granted: Set<string>;
  transport: { timeoutSeconds?: number };
}

function fakeWidgetApi(granted: string[] = [STATE_CAP, SEND_DELAYED, UPDATE_DELAYED, RECEIVE]): Fake {
  const calls: unknown[][] = [];
  const fake = {
    calls,
    granted: new Set(granted),
    transport: { timeoutSeconds: 10 },
    hasCapability: (cap: string) => fake.granted.has(cap),
    sendStateEvent: jest.fn(async (...args: unknown[]) => {
      calls.push(["sendStateEvent", ...args]);
      return args[4] !== undefined ? { room_id: "!r", delay_id: "syd_1" } : { room_id: "!r", event_id: "$e" };
    }),
    restartScheduledDelayedEvent: jest.fn(async (id: string) => {
      calls.push(["restart", id]);
      return {};
    }),
    sendScheduledDelayedEvent: jest.fn(async (id: string) => {
      calls.push(["send", id]);
      return {};
    }),
    cancelScheduledDelayedEvent: jest.fn(async (id: string) => {
      calls.push(["cancel", id]);
      return {};
    }),
    readStateEvents: jest.fn(async (...args: unknown[]) => {
      calls.push(["readStateEvents", ...args]);
      return [];
    }),
  };
  return fake as unknown as Fake;
}

const REQ = { roomId: "!r", eventType: "org.matrix.msc3401.call.member", stateKey: KEY, content: {} };

describe("WidgetBackend", () => {
  it("schedules the delayed leave with send_event + delay, without room_id by default", async () => {
    const api = fakeWidgetApi();
    const backend = new WidgetBackend(api);
    await expect(backend.sendDelayedStateEvent({ ...REQ, delayMs: 8000 })).resolves.toBe("syd_1");
    expect(api.calls).toEqual([["sendStateEvent", REQ.eventType, KEY, {}, undefined, 8000]]);
  });

  it("passes room_id when asked to", async () => {
    const api = fakeWidgetApi();
    const backend = new WidgetBackend(api, { sendRoomId: true });
    await backend.sendDelayedStateEvent({ ...REQ, delayMs: 8000 });
    await backend.sendStateEvent({ ...REQ, content: { a: 1 } });
    expect(api.calls).toEqual([
      ["sendStateEvent", REQ.eventType, KEY, {}, "!r", 8000],
      ["sendStateEvent", REQ.eventType, KEY, { a: 1 }, "!r"],
    ]);
  });

  it("maps restart/send/cancel to the three update_delayed_event calls", async () => {
    const api = fakeWidgetApi();
    const backend = new WidgetBackend(api);
    await backend.updateDelayedEvent("syd_a", "restart");
    await backend.updateDelayedEvent("syd_b", "send");
    await backend.updateDelayedEvent("syd_c", "cancel");
    expect(api.calls).toEqual([
      ["restart", "syd_a"],
      ["send", "syd_b"],
      ["cancel", "syd_c"],
    ]);
  });

  it("lets the host's errors through untouched", async () => {
    const api = fakeWidgetApi();
    const error = new WidgetApiResponseError("Error updating delayed event", {
      matrix_api_error: {
        http_status: 404,
        http_headers: {},
        url: "",
        response: { errcode: "M_NOT_FOUND", error: "Delayed event not found" },
      },
    });
    api.restartScheduledDelayedEvent = async () => {
      throw error;
    };
    await expect(new WidgetBackend(api).updateDelayedEvent("syd", "restart")).rejects.toBe(error);
  });

  it("does not schedule a delayed leave it could not manage (update capability refused)", async () => {
    const api = fakeWidgetApi([STATE_CAP, SEND_DELAYED]);
    const err = await new WidgetBackend(api).sendDelayedStateEvent({ ...REQ, delayMs: 8000 }).catch((e) => e);
    expect(err).toBeInstanceOf(WidgetCapabilityError);
    expect(api.calls).toEqual([]);
    expect(classifyError(err, "schedule-leave")).toMatchObject({ kind: "unsupported" });
  });

  it("treats a host that ignores `delay` (no delay_id) as not supporting delayed events", async () => {
    const api = fakeWidgetApi();
    api.sendStateEvent = (async () => ({ room_id: "!r", event_id: "$sent-now" })) as never;
    const err = await new WidgetBackend(api).sendDelayedStateEvent({ ...REQ, delayMs: 8000 }).catch((e) => e);
    expect(err).toBeInstanceOf(WidgetCapabilityError);
    expect(classifyError(err, "schedule-leave")).toMatchObject({ kind: "unsupported" });
  });

  it("rejects at once on an aborted signal", async () => {
    const api = fakeWidgetApi();
    const signal = AbortSignal.abort(new Error("gone"));
    await expect(new WidgetBackend(api).updateDelayedEvent("syd", "restart", { signal })).rejects.toThrow(
      "gone",
    );
    expect(api.calls).toEqual([]);
  });

  it("sets the transport timeout", () => {
    const api = fakeWidgetApi();
    new WidgetBackend(api, { transportTimeoutMs: 1500 });
    expect(api.transport.timeoutSeconds).toBe(1.5);
  });

  describe("probeSupport reports what the host refused", () => {
    it("everything granted: no objection", async () => {
      await expect(new WidgetBackend(fakeWidgetApi(), { membership: ALICE }).probeSupport()).resolves.toEqual(
        {},
      );
    });

    it("no delayed-event capabilities: delayedEvents false with a reason", async () => {
      const hint = await new WidgetBackend(fakeWidgetApi([STATE_CAP, RECEIVE]), {
        membership: ALICE,
      }).probeSupport();
      expect(hint).toEqual({
        delayedEvents: false,
        reason: `the widget host refused ${SEND_DELAYED} and ${UPDATE_DELAYED}`,
      });
    });

    it("only the update capability refused is just as unusable", async () => {
      const hint = await new WidgetBackend(fakeWidgetApi([STATE_CAP, SEND_DELAYED, RECEIVE]), {
        membership: ALICE,
      }).probeSupport();
      expect(hint).toMatchObject({
        delayedEvents: false,
        reason: `the widget host refused ${UPDATE_DELAYED}`,
      });
    });

    it("no state capability for our key: canSendState false", async () => {
      const other = STATE_CAP.replace("DEV1", "DEV2");
      const hint = await new WidgetBackend(fakeWidgetApi([other, SEND_DELAYED, UPDATE_DELAYED, RECEIVE]), {
        membership: ALICE,
      }).probeSupport();
      expect(hint).toEqual({ canSendState: false });
    });

    it("a capability for the whole event type covers our key", async () => {
      const all = "org.matrix.msc2762.send.state_event:org.matrix.msc3401.call.member";
      const hint = await new WidgetBackend(fakeWidgetApi([all, SEND_DELAYED, UPDATE_DELAYED, RECEIVE]), {
        stateKey: KEY,
      }).probeSupport();
      expect(hint).toEqual({});
    });

    it("no read capability: canReadState false (the manager cannot watch its own key)", async () => {
      const hint = await new WidgetBackend(fakeWidgetApi([STATE_CAP, SEND_DELAYED, UPDATE_DELAYED]), {
        membership: ALICE,
      }).probeSupport();
      expect(hint).toEqual({ canReadState: false });
    });

    it("without a membership key the state capability is not judged", async () => {
      const hint = await new WidgetBackend(fakeWidgetApi([SEND_DELAYED, UPDATE_DELAYED])).probeSupport();
      expect(hint).toEqual({});
    });
  });
});
