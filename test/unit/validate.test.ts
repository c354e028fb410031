/**
 * Issue 11 items 1 and 8: the pure validators, table-driven. What comes in from the server (schedule
 * answers, listings, capabilities) and from the app (ids, timing, the leave timeout).
 */
import { describe, expect, it } from "@jest/globals";
import { MAX_TIMER_MS, resolveTiming, type TimingOptions } from "../../src/core/config.js";
import {
  IDENTITY_RULES,
  leaveTimeoutMs,
  readDelayedEventList,
  readDelayId,
  readMaxDelayMs,
  readStateContent,
  validateIdentity,
  type IdentityInput,
} from "../../src/core/validate.js";
import {
  classifyError,
  isTransient,
  MalformedResponseError,
  MembershipConfigError,
} from "../../src/errors.js";
import { ClientBackend, type ClientLike } from "../../src/backends/client.js";
import { WidgetBackend, WidgetCapabilityError, type WidgetApiLike } from "../../src/backends/widget.js";
import { harness } from "../helpers/managerHarness.js";

describe("readDelayId", () => {
  it.each<[string, unknown]>([
    ["missing", {}],
    ["a number", { delay_id: 5 }],
    ["null", { delay_id: null }],
    ["empty", { delay_id: "" }],
    ["an object", { delay_id: { id: "syd_x" } }],
    ["an array", { delay_id: ["syd_x"] }],
    ["whitespace", { delay_id: "syd x" }],
    ["a newline", { delay_id: "syd\nx" }],
    ["too long", { delay_id: "x".repeat(256) }],
    ["a path", { delay_id: "../../../rooms" }],
    ["a slash", { delay_id: "a/b" }],
    ["a dot segment", { delay_id: ".." }],
    ["a single dot", { delay_id: "." }],
    ["a percent escape", { delay_id: "%2e%2e" }],
    ["a query", { delay_id: "syd?x=1" }],
    ["a fragment", { delay_id: "syd#x" }],
    ["non-ASCII", { delay_id: "syd_é" }],
    ["a null answer", null],
    ["a string answer", "syd_x"],
  ])("%s: a MalformedResponseError, classified as a transient server error", (_name, answer) => {
    let thrown: unknown;
    try {
      readDelayId(answer);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(MalformedResponseError);
    const cls = classifyError(thrown, "schedule-leave");
    expect(cls).toEqual({ kind: "server", status: 200, malformed: true });
    expect(isTransient(cls)).toBe(true);
  });

  it("accepts Synapse's ids and other ids made of characters that stay one path segment", () => {
    expect(readDelayId({ delay_id: "syd_abcDEF" })).toBe("syd_abcDEF");
    expect(readDelayId({ delay_id: "syd_" + "aZ".repeat(10) })).toBe("syd_" + "aZ".repeat(10));
    for (const id of ["0f8fad5b-d9cb-469f-a165-70867728950e", "YWJj+ZA==", "a.b~c", "x:y@z!", "..."])
      expect(readDelayId({ delay_id: id })).toBe(id);
    expect(readDelayId({ delay_id: "x".repeat(255) })).toHaveLength(255);
  });
});

describe("readDelayedEventList", () => {
  it("reads Synapse's and the newer draft's shape, skipping entries that name nothing", () => {
    const entries = [
      { delay_id: "syd_1", room_id: "!r:hs", state_key: "k" },
      { delay_id: "syd_2", room_id: "!r:hs" },
      { delay_id: 3, room_id: "!r:hs" },
      { delay_id: "../../../rooms", room_id: "!r:hs" },
      null,
      "x",
      { room_id: "!r:hs" },
    ];
    const want = [
      { delayId: "syd_1", roomId: "!r:hs", stateKey: "k" },
      { delayId: "syd_2", roomId: "!r:hs", stateKey: undefined },
    ];
    expect(readDelayedEventList({ delayed_events: entries })).toEqual(want);
    expect(readDelayedEventList({ scheduled: entries, finalised: [] })).toEqual(want);
    expect(readDelayedEventList({ delayed_events: [] })).toEqual([]);
  });

  it.each<[string, unknown]>([
    ["null", null],
    ["no list", {}],
    ["an object for the list", { delayed_events: { a: 1 } }],
    ["a string for the list", { delayed_events: "none" }],
    ["an array answer", []],
  ])("%s: MalformedResponseError", (_name, answer) => {
    expect(() => readDelayedEventList(answer)).toThrow(MalformedResponseError);
  });
});

describe("readMaxDelayMs", () => {
  const caps = (max: unknown) => ({ "org.matrix.msc4140.delayed_events": { max_delay_ms: max } });
  it.each<[string, unknown, ReturnType<typeof readMaxDelayMs>]>([
    ["a limit", caps(60_000), { maxDelayMs: 60_000 }],
    ["a fractional limit", caps(1500.7), { maxDelayMs: 1500 }],
    ["zero: disabled", caps(0), { disabled: true }],
    ["negative: disabled", caps(-1), { disabled: true }],
    ["past any timer: no limit", caps(1e12), {}],
    ["Infinity: no limit", caps(Infinity), {}],
    ["NaN: ignored", caps(NaN), {}],
    ["a string: ignored", caps("60000"), {}],
    ["no capability", {}, {}],
    ["a capability that is not an object", { "org.matrix.msc4140.delayed_events": true }, {}],
    ["null", null, {}],
  ])("%s", (_name, answer, want) => {
    expect(readMaxDelayMs(answer)).toEqual(want);
  });
});

it("readStateContent wants an object", () => {
  expect(readStateContent({ a: 1 })).toEqual({ a: 1 });
  for (const bad of [null, [], "x", 5]) expect(() => readStateContent(bad)).toThrow(MalformedResponseError);
});

describe("validateIdentity (one rule per row)", () => {
  const good: IdentityInput = {
    userId: "@alice:example.org",
    roomId: "!abc:example.org",
    deviceId: "DEVICE",
  };
  it.each<[string, Partial<IdentityInput>]>([
    ["a port", { userId: "@alice:example.org:8448" }],
    ["an IPv4 server", { userId: "@alice:127.0.0.1:8008" }],
    ["an IPv6 server", { userId: "@alice:[::1]:8008" }],
    ["a historical localpart", { userId: "@Alice_=/+.x:hs" }],
    ["a room v12 id without server", { roomId: "!r3yR-ZB-3qL0lhv0BqBnH9dbWcQYkaFmTj4rwTFBQyo" }],
    ["a room id with a port", { roomId: "!abc:example.org:8448" }],
    ["_ in the device id", { deviceId: "DEV_ICE" }],
    ["# and : in the device id", { deviceId: "a#b:c" }],
  ])("accepts %s", (_name, patch) => {
    expect(() => validateIdentity({ ...good, ...patch })).not.toThrow();
  });

  it.each<[string, Partial<IdentityInput>, RegExp]>([
    [
      "userId without @ and server",
      { userId: "alice" },
      /^userId must be a Matrix user id, @localpart:server/,
    ],
    ["userId without server", { userId: "@alice" }, /^userId must be a Matrix user id/],
    ["userId with an empty server", { userId: "@alice:" }, /^userId must be a Matrix user id/],
    ["userId with an empty localpart", { userId: "@:hs" }, /^userId must be a Matrix user id/],
    ["userId with a space", { userId: "@al ice:hs" }, /^userId must be a Matrix user id/],
    ["userId with _ in the server", { userId: "@alice:h_s" }, /^userId must be a Matrix user id/],
    ["userId past 255 bytes", { userId: `@${"a".repeat(260)}:hs` }, /^userId must be at most 255 bytes/],
    ["roomId not-a-room", { roomId: "not-a-room" }, /^roomId must be a Matrix room id, !opaque:server/],
    ["roomId alias", { roomId: "#room:hs" }, /^roomId must be a Matrix room id/],
    ["roomId bare !", { roomId: "!" }, /^roomId must be a Matrix room id/],
    ["roomId empty server", { roomId: "!abc:" }, /^roomId must be a Matrix room id/],
    ["roomId with a space", { roomId: "!a c:hs" }, /^roomId must be a Matrix room id/],
    [
      "deviceId with a space",
      { deviceId: "MY DEVICE" },
      /^deviceId must be a non-empty device id without spaces/,
    ],
    ["deviceId with a newline", { deviceId: "DEV\nICE" }, /^deviceId must be/],
    ["deviceId with a tab", { deviceId: "DEV\tICE" }, /^deviceId must be/],
    ["a state key past 255 bytes", { deviceId: "D".repeat(240) }, /^the state key \(built from userId/],
    ["empty userId", { userId: "" }, /^userId must be a non-empty string/],
    ["empty deviceId", { deviceId: "" }, /^deviceId must be a non-empty string/],
  ])("rejects %s", (_name, patch, message) => {
    expect(() => validateIdentity({ ...good, ...patch })).toThrow(MembershipConfigError);
    expect(() => validateIdentity({ ...good, ...patch })).toThrow(message);
  });

  it("rejects a userId that is not the client's own, when the backend knows it", () => {
    expect(() => validateIdentity(good, "@bob:example.org")).toThrow(
      /userId "@alice:example.org" must be the client's own user \("@bob:example.org"\)/,
    );
    expect(() => validateIdentity(good, "@alice:example.org")).not.toThrow();
    expect(() => validateIdentity(good, undefined)).not.toThrow();
    expect(() => validateIdentity(good, null)).not.toThrow();
  });

  it("every rule names its field", () => {
    for (const r of IDENTITY_RULES) expect(r.rule.length).toBeGreaterThan(10);
  });

  it("the manager's constructor applies them, and asks the backend whose user it is", () => {
    expect(() => harness({ userId: "alice" })).toThrow(/userId must be a Matrix user id/);
    expect(() => harness({ userId: "@alice" })).toThrow(/userId must be a Matrix user id/);
    expect(() => harness({ roomId: "not-a-room" })).toThrow(/roomId must be a Matrix room id/);
    expect(() => harness({ deviceId: "A B" })).toThrow(/deviceId must be/);
    expect(() => harness({ membershipGraceMs: 1e12 })).toThrow(
      /membershipGraceMs must be between 0 and 2147483647 ms/,
    );
    expect(() => harness({ membershipGraceMs: -1 })).toThrow(/membershipGraceMs must be/);
    expect(() => harness({ membershipGraceMs: 0 })).not.toThrow();
    expect(() =>
      harness((s) => ({ backend: Object.assign(s, { ownUserId: () => "@bob:localhost" }) })),
    ).toThrow(/must be the client's own user/);
  });
});

describe("resolveTiming (one rule per row)", () => {
  it.each<[string, TimingOptions, RegExp]>([
    [
      "stateRequestTimeoutMs past a timer",
      { stateRequestTimeoutMs: 1e12 },
      /^stateRequestTimeoutMs must be at most 2147483647 ms/,
    ],
    [
      "delayedLeaveDelayMs past a timer",
      { delayedLeaveDelayMs: 3e9 },
      /^delayedLeaveDelayMs must be at most 2147483647 ms/,
    ],
    ["requestTimeoutMs past a timer", { requestTimeoutMs: 2 ** 31 }, /^requestTimeoutMs must be at most/],
    ["retryMaxMs past a timer", { retryMaxMs: 1e10 }, /^retryMaxMs must be at most/],
    ["membershipExpiryMs 1", { membershipExpiryMs: 1 }, /^membershipExpiryMs must be at least 2000 ms/],
    [
      "degradedMembershipExpiryMs 10",
      { degradedMembershipExpiryMs: 10 },
      /^degradedMembershipExpiryMs must be at least 2000 ms/,
    ],
    ["delayedLeaveDelayMs 100", { delayedLeaveDelayMs: 100 }, /^delayedLeaveDelayMs must be at least 500 ms/],
    [
      "requestTimeoutMs 1",
      { requestTimeoutMs: 1 },
      /^requestTimeoutMs must be at least 100 ms \(smaller steps make a request loop\)/,
    ],
    [
      "stateRequestTimeoutMs 1",
      { stateRequestTimeoutMs: 1 },
      /^stateRequestTimeoutMs must be at least 100 ms/,
    ],
    ["heartbeatIntervalMs 1", { heartbeatIntervalMs: 1 }, /^heartbeatIntervalMs must be at least 100 ms/],
    ["retryMaxMs 50", { retryBaseMs: 10, retryMaxMs: 50 }, /^retryMaxMs must be at least 100 ms/],
    [
      "delayedLeaveDelayMs 1000.5",
      { delayedLeaveDelayMs: 1000.5 },
      /^delayedLeaveDelayMs must be a whole number/,
    ],
    [
      "delayedLeaveDelayMs NaN",
      { delayedLeaveDelayMs: NaN },
      /^delayedLeaveDelayMs must be a positive number/,
    ],
    [
      "membershipExpiryMs Infinity",
      { membershipExpiryMs: Infinity },
      /^membershipExpiryMs must be a positive number/,
    ],
  ])("rejects %s", (_name, opts, message) => {
    expect(() => resolveTiming(opts)).toThrow(MembershipConfigError);
    expect(() => resolveTiming(opts)).toThrow(message);
  });

  it("accepts the edges", () => {
    expect(() => resolveTiming({ delayedLeaveDelayMs: 500 })).not.toThrow();
    expect(() => resolveTiming({ membershipExpiryMs: 2000, degradedMembershipExpiryMs: 2000 })).not.toThrow();
    expect(() => resolveTiming({ stateRequestTimeoutMs: MAX_TIMER_MS })).not.toThrow();
    expect(() => resolveTiming({ giveUpAfterMs: Infinity })).not.toThrow();
    expect(() => resolveTiming({ giveUpAfterMs: 1e12 })).not.toThrow();
  });
});

describe("leave timeoutMs", () => {
  it.each<[unknown, number | undefined | "error"]>([
    [undefined, undefined],
    [Infinity, undefined],
    [0, 0],
    [5000, 5000],
    [MAX_TIMER_MS, MAX_TIMER_MS],
    [MAX_TIMER_MS + 1, "error"],
    [1e12, "error"],
    [-1, "error"],
    [NaN, "error"],
    [-Infinity, "error"],
    ["5000", "error"],
  ])("%p -> %p", (value, want) => {
    const got = leaveTimeoutMs(value);
    if (want === "error") {
      expect(got).toBeInstanceOf(MembershipConfigError);
      expect((got as Error).message).toMatch(
        /^leave timeoutMs must be between 0 and 2147483647 ms, or Infinity/,
      );
    } else expect(got).toBe(want);
  });

  it("leave({ timeoutMs: Infinity }) waits for the leave instead of timing out after 1 ms", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    h.manager.join();
    await h.time.until(() => h.manager.status === "connected", 5000, 10);
    h.server.inject("send", { kind: "hang" });
    let result: unknown;
    void h.manager.leave({ timeoutMs: Infinity }).then((r) => (result = r));
    await h.time.advance(50);
    expect(result).toBeUndefined();
    // The hung send times out locally and is retried; the leave then goes out.
    await h.time.until(() => result !== undefined, 10_000, 10);
    expect(result).toEqual({ status: "left", via: expect.any(String) });
    h.manager.dispose();
  });

  it("leave({ timeoutMs: NaN }) rejects without leaving", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    h.manager.join();
    await h.time.until(() => h.manager.status === "connected", 5000, 10);
    await expect(h.manager.leave({ timeoutMs: NaN })).rejects.toThrow(MembershipConfigError);
    expect(h.manager.status).toBe("connected");
    h.manager.dispose();
  });
});

describe("the backends share readDelayId", () => {
  const REQ = {
    roomId: "!r:hs",
    eventType: "org.matrix.msc3401.call.member",
    stateKey: "k",
    content: {},
    delayMs: 1000,
  };

  function widgetApi(answer: unknown): WidgetApiLike {
    return {
      hasCapability: () => true,
      sendStateEvent: async () => answer,
      restartScheduledDelayedEvent: async () => ({}),
      sendScheduledDelayedEvent: async () => ({}),
      cancelScheduledDelayedEvent: async () => ({}),
    } as unknown as WidgetApiLike;
  }

  it.each<[string, unknown]>([
    ["a number", { delay_id: 5 }],
    ["null", { delay_id: null }],
    ["an empty string", { delay_id: "" }],
    ["an object", { delay_id: {} }],
  ])(
    "widget mode, delay_id %s: a malformed answer (retried), not a refused capability",
    async (_n, answer) => {
      const backend = new WidgetBackend(widgetApi(answer));
      await expect(backend.sendDelayedStateEvent(REQ)).rejects.toBeInstanceOf(MalformedResponseError);
    },
  );

  it("widget mode, no delay_id at all: the host ignored `delay` (degraded mode, as before)", async () => {
    const backend = new WidgetBackend(widgetApi({ room_id: "!r:hs", event_id: "$e" }));
    const error = await backend.sendDelayedStateEvent(REQ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WidgetCapabilityError);
    expect(classifyError(error, "schedule-leave").kind).toBe("unsupported");
  });

  function client(overrides: Partial<Record<keyof ClientLike, unknown>>): ClientLike {
    return {
      _unstable_sendDelayedStateEvent: async () => ({ delay_id: "syd_ok" }),
      _unstable_getDelayedEvents: async () => ({ delayed_events: [] }),
      getCapabilities: async () => ({}),
      doesServerSupportUnstableFeature: async () => true,
      getStateEvent: async () => ({}),
      ...overrides,
    } as unknown as ClientLike;
  }

  it.each<[string, unknown]>([
    ["missing", { event_id: "$e" }],
    ["a number", { delay_id: 5 }],
    ["null", { delay_id: null }],
    ["an empty string", { delay_id: "" }],
    ["an object", { delay_id: {} }],
  ])("client mode, delay_id %s: MalformedResponseError", async (_n, answer) => {
    const backend = new ClientBackend(client({ _unstable_sendDelayedStateEvent: async () => answer }));
    await expect(backend.sendDelayedStateEvent(REQ)).rejects.toBeInstanceOf(MalformedResponseError);
  });

  it("client mode checks listings, capabilities and state reads, and knows its user", async () => {
    const bad = new ClientBackend(
      client({
        _unstable_getDelayedEvents: async () => ({ delayed_events: "nope" }),
        getStateEvent: async () => "text",
        getCapabilities: async () => ({ "org.matrix.msc4140.delayed_events": { max_delay_ms: "60000" } }),
        getUserId: () => "@alice:hs",
      }),
    );
    await expect(bad.listDelayedEvents()).rejects.toBeInstanceOf(MalformedResponseError);
    await expect(
      bad.readStateEvent({ roomId: "!r:hs", eventType: "t", stateKey: "k" }),
    ).rejects.toBeInstanceOf(MalformedResponseError);
    expect(await bad.probeSupport()).toEqual({ delayedEvents: true });
    expect(bad.ownUserId()).toBe("@alice:hs");
    const off = new ClientBackend(
      client({ getCapabilities: async () => ({ "org.matrix.msc4140.delayed_events": { max_delay_ms: 0 } }) }),
    );
    expect(await off.probeSupport()).toMatchObject({ delayedEvents: false, maxDelayMs: 0 });
    expect(new ClientBackend(client({})).ownUserId()).toBeUndefined();
  });
});
