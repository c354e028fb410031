/** Scheduling delayed events: parameter parsing, check order, both error dialects, limits, idempotency. */
import { afterEach, describe, expect, it } from "@jest/globals";
import {
  SYNAPSE_PRESETS,
  startTestHomeserver,
  type Clock,
  type Credentials,
  type TestHomeserver,
  type TestHomeserverOptions,
} from "../../../src/testing/index.js";
import {
  CALL_MEMBER,
  delayQuery,
  NO_LIMITS,
  raw,
  scheduleState,
  sendPath,
  statePath,
  UNSTABLE,
} from "./helpers.js";

interface Setup {
  hs: TestHomeserver;
  alice: Credentials;
  bob: Credentials;
  roomId: string;
}

const servers: TestHomeserver[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function setup(options: TestHomeserverOptions = {}): Promise<Setup> {
  const hs = await startTestHomeserver({ ...NO_LIMITS, ...options });
  servers.push(hs);
  const alice = await hs.createUser("alice");
  const bob = await hs.createUser("bob");
  const roomId = await hs.createRoom(alice.accessToken);
  await hs.joinRoom(bob.accessToken, roomId);
  return { hs, alice, bob, roomId };
}

const put = (
  s: Setup,
  delay: number | string,
  opts: { token?: string | null; raw?: string; key?: string; body?: unknown } = {},
) =>
  raw(s.hs, "PUT", statePath(s.roomId, CALL_MEMBER, opts.key ?? "k"), {
    token: opts.token === null ? undefined : (opts.token ?? s.alice.accessToken),
    raw: opts.raw,
    body: opts.raw === undefined ? (opts.body ?? {}) : undefined,
    query: delayQuery(delay),
  });

describe("delay parameter", () => {
  it("accepts integers (0 included) on v3, r0 and unstable prefixes, and both empty-key state forms", async () => {
    const s = await setup();
    const enc = encodeURIComponent(s.roomId);
    const paths = [
      statePath(s.roomId, CALL_MEMBER, "k"),
      `/_matrix/client/r0/rooms/${enc}/state/${CALL_MEMBER}/k`,
      `/_matrix/client/unstable/rooms/${enc}/state/${CALL_MEMBER}/k`,
      `/_matrix/client/v3/rooms/${enc}/state/${CALL_MEMBER}`,
      `/_matrix/client/v3/rooms/${enc}/state/${CALL_MEMBER}/`,
      sendPath(s.roomId, "m.custom", "t1"),
    ];
    for (const path of paths) {
      const res = await raw(s.hs, "PUT", path, {
        token: s.alice.accessToken,
        body: {},
        query: delayQuery(60_000),
      });
      expect(res.status).toBe(200);
      expect(res.body.delay_id).toMatch(/^syd_[A-Za-z]{20}$/);
    }
    const post = await raw(s.hs, "POST", `/_matrix/client/v3/rooms/${enc}/send/m.custom`, {
      token: s.alice.accessToken,
      body: {},
      query: delayQuery(60_000),
    });
    expect(post.status).toBe(200);
    const keys = s.hs.pendingDelayedEvents().map((d) => d.stateKey);
    expect(keys).toEqual(["k", "k", "k", "", "", undefined, undefined]);
    expect((await put(s, 0)).status).toBe(200);
  });

  it.each(["abc", "1.5", "", "10ms"])("rejects the non-integer %p with M_INVALID_PARAM", async (value) => {
    const s = await setup();
    const res = await put(s, value);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      errcode: "M_INVALID_PARAM",
      error: "Query parameter org.matrix.msc4140.delay must be an integer",
    });
  });

  it("rejects negative delays, even when the feature is disabled", async () => {
    const s = await setup({ delayedEvents: false });
    const res = await put(s, -5);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      errcode: "M_INVALID_PARAM",
      error: "Query parameter org.matrix.msc4140.delay must be a positive integer.",
    });
  });
});

describe("check order", () => {
  it("auth → JSON body → delay parsing", async () => {
    const s = await setup();
    expect((await put(s, "x", { token: null, raw: "{" })).body.errcode).toBe("M_MISSING_TOKEN");
    expect((await put(s, "x", { token: "bogus", raw: "{" })).body.errcode).toBe("M_UNKNOWN_TOKEN");
    expect((await put(s, "x", { raw: "{" })).body).toEqual({
      errcode: "M_NOT_JSON",
      error: "Content not JSON.",
    });
    expect((await put(s, "x", { raw: "[1]" })).body).toEqual({
      errcode: "M_BAD_JSON",
      error: "Content must be a JSON object.",
    });
    expect((await put(s, "x")).body.errcode).toBe("M_INVALID_PARAM");
  });

  it("1.157: rc_message before disabled/max, then room, then shape, then the count", async () => {
    const s = await setup({ maxDelayMs: 1000, maxScheduledPerUser: 1 });
    // Room and shape come after max delay.
    const unknownRoom = await raw(s.hs, "PUT", statePath("!none:localhost", CALL_MEMBER, "k"), {
      token: s.alice.accessToken,
      body: {},
      query: delayQuery(5000),
    });
    expect(unknownRoom.status).toBe(403);
    const unknownRoomOk = await raw(s.hs, "PUT", statePath("!none:localhost", CALL_MEMBER, "k"), {
      token: s.alice.accessToken,
      body: {},
      query: delayQuery(500),
    });
    expect(unknownRoomOk.status).toBe(404);
    expect(unknownRoomOk.body).toEqual({
      errcode: "M_NOT_FOUND",
      error: "Could not find room_version for !none:localhost",
    });
    // Shape (m.room.message needs string body/msgtype) comes before the count limit.
    await scheduleState(s.hs, s.alice, s.roomId, "first", 500);
    const shape = await raw(s.hs, "PUT", sendPath(s.roomId, "m.room.message", "t"), {
      token: s.alice.accessToken,
      body: { msgtype: "m.text" },
      query: delayQuery(500),
    });
    expect(shape.body).toEqual({ errcode: "M_UNKNOWN", error: "'body' not in content" });
    expect((await put(s, 500)).status).toBe(429);

    // A full rc_message bucket hides "disabled" and "too long" (checked after it in 1.157).
    s.hs.configure({ delayedEvents: false, rateLimits: { message: { perSecond: 0.001, burstCount: 1 } } });
    expect((await put(s, 5000)).status).toBe(403);
    const limited = await put(s, 5000);
    expect(limited.status).toBe(429);
    expect(limited.body.errcode).toBe("M_LIMIT_EXCEEDED");
  });

  it("legacy: disabled/max are checked before rc_message", async () => {
    const s = await setup({
      errorDialect: "legacy",
      maxDelayMs: 1000,
      rateLimits: { message: { perSecond: 0.001, burstCount: 1 } },
    });
    expect((await put(s, 500)).status).toBe(200);
    // Bucket now full, but the max-delay error still wins.
    expect((await put(s, 5000)).status).toBe(400);
    expect((await put(s, 500)).status).toBe(429);
  });
});

describe("error dialects", () => {
  it("1.157: disabled → 403 M_FORBIDDEN, /versions false, capability max_delay_ms 0", async () => {
    const s = await setup(SYNAPSE_PRESETS.disabled);
    const res = await put(s, 1000);
    expect(res.status).toBe(403);
    expect(res.body).toEqual({ errcode: "M_FORBIDDEN", error: "Sending delayed events has been disallowed" });
    const versions = await raw(s.hs, "GET", "/_matrix/client/versions");
    expect(versions.body.unstable_features["org.matrix.msc4140"]).toBe(false);
    const caps = await raw(s.hs, "GET", "/_matrix/client/v3/capabilities", { token: s.alice.accessToken });
    expect(caps.body.capabilities["org.matrix.msc4140.delayed_events"]).toEqual({
      max_delay_ms: 0,
      max_scheduled: 100,
    });
  });

  it("1.157: a per-user limit of 0 also turns the feature off", async () => {
    const s = await setup({ maxScheduledPerUser: 0 });
    expect((await put(s, 1000)).status).toBe(403);
    expect(
      (await raw(s.hs, "GET", "/_matrix/client/versions")).body.unstable_features["org.matrix.msc4140"],
    ).toBe(false);
  });

  it("1.157: too long → 403 M_FORBIDDEN with both numbers in the message, no extra fields", async () => {
    const s = await setup({ maxDelayMs: 10_000 });
    const res = await put(s, 10_001);
    expect(res.status).toBe(403);
    expect(res.body).toEqual({
      errcode: "M_FORBIDDEN",
      error: "The requested delay (10001ms) exceeds the allowed maximum (10000ms)",
    });
    expect((await put(s, 10_000)).status).toBe(200);
  });

  it("legacy: disabled → 400 M_UNKNOWN + M_MAX_DELAY_UNSUPPORTED", async () => {
    const s = await setup({ errorDialect: "legacy", delayedEvents: false });
    const res = await put(s, 1000);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      errcode: "M_UNKNOWN",
      error: "Delayed events are not supported on this server",
      "org.matrix.msc4140.errcode": "M_MAX_DELAY_UNSUPPORTED",
    });
  });

  it("legacy: too long → 400 M_UNKNOWN + M_MAX_DELAY_EXCEEDED + max_delay; no capability", async () => {
    const s = await setup({ ...SYNAPSE_PRESETS["1.156"], maxDelayMs: 10_000 });
    const res = await put(s, 20_000);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      errcode: "M_UNKNOWN",
      error: "The requested delay exceeds the allowed maximum.",
      "org.matrix.msc4140.errcode": "M_MAX_DELAY_EXCEEDED",
      "org.matrix.msc4140.max_delay": 10_000,
    });
    const caps = await raw(s.hs, "GET", "/_matrix/client/v3/capabilities", { token: s.alice.accessToken });
    expect(caps.body.capabilities["org.matrix.msc4140.delayed_events"]).toBeUndefined();
  });
});

describe("per-user count limit", () => {
  it("429 with retry_after_ms until the blocking event is due, and Retry-After in whole seconds", async () => {
    const s = await setup({ maxScheduledPerUser: 2 });
    await scheduleState(s.hs, s.alice, s.roomId, "a", 60_000);
    await scheduleState(s.hs, s.alice, s.roomId, "b", 4_500);
    // Another device of the same user counts too.
    const second = await s.hs.loginDevice("alice");
    const res = await put(s, 1000, { token: second.accessToken });
    expect(res.status).toBe(429);
    expect(res.body.errcode).toBe("M_LIMIT_EXCEEDED");
    expect(res.body.error).toBe("The maximum number of delayed events has been reached.");
    expect(res.body.retry_after_ms).toBeGreaterThan(4_000);
    expect(res.body.retry_after_ms).toBeLessThanOrEqual(4_500);
    expect(res.headers.get("retry-after")).toBe("5");
    // Bob has his own allowance.
    expect((await put(s, 1000, { token: s.bob.accessToken })).status).toBe(200);
  });

  it("retry_after_ms is null and Retry-After absent when the blockers are already overdue", async () => {
    let now = 1_000_000;
    // A clock whose timers never fire: rows become overdue without being sent ("being processed").
    const stuck: Clock = { now: () => now, setTimeout: () => 0, clearTimeout: () => undefined };
    const s = await setup({ maxScheduledPerUser: 1, clock: stuck });
    await scheduleState(s.hs, s.alice, s.roomId, "a", 1000);
    now += 5000;
    const res = await put(s, 1000);
    expect(res.status).toBe(429);
    expect(res.body.retry_after_ms).toBeNull();
    expect(res.headers.get("retry-after")).toBeNull();
  });

  it("the legacy dialect has no count limit", async () => {
    const s = await setup({ errorDialect: "legacy", maxScheduledPerUser: 1 });
    await scheduleState(s.hs, s.alice, s.roomId, "a", 60_000);
    expect((await put(s, 60_000)).status).toBe(200);
  });
});

describe("idempotency and schedule-time checks", () => {
  it("a retried /send txn id returns the same delay_id and schedules once; /state always schedules anew", async () => {
    const s = await setup();
    const path = sendPath(s.roomId, "m.custom", "same-txn");
    const a = await raw(s.hs, "PUT", path, {
      token: s.alice.accessToken,
      body: { n: 1 },
      query: delayQuery(60_000),
    });
    const b = await raw(s.hs, "PUT", path, {
      token: s.alice.accessToken,
      body: { n: 1 },
      query: delayQuery(60_000),
    });
    expect(b.body.delay_id).toBe(a.body.delay_id);
    expect(s.hs.pendingDelayedEvents()).toHaveLength(1);
    const x = await scheduleState(s.hs, s.alice, s.roomId, "k", 60_000);
    const y = await scheduleState(s.hs, s.alice, s.roomId, "k", 60_000);
    expect(x).not.toBe(y);
    expect(s.hs.pendingDelayedEvents()).toHaveLength(3);
  });

  it("does not check membership or power levels when scheduling", async () => {
    const s = await setup();
    const carol = await s.hs.createUser("carol");
    const id = await scheduleState(
      s.hs,
      carol,
      s.roomId,
      "m.whatever",
      60_000,
      { topic: "t" },
      "m.room.topic",
    );
    expect(s.hs.pendingDelayedEvents()[0]).toMatchObject({ delayId: id, userId: carol.userId });
  });

  it("stores owner, device, room, type, key, content, delay and send time", async () => {
    const s = await setup();
    const before = Date.now();
    const id = await scheduleState(s.hs, s.bob, s.roomId, "kk", 30_000, { x: [1, 2] });
    const [row] = s.hs.pendingDelayedEvents();
    expect(row).toEqual({
      delayId: id,
      userId: s.bob.userId,
      deviceId: s.bob.deviceId,
      roomId: s.roomId,
      type: CALL_MEMBER,
      stateKey: "kk",
      content: { x: [1, 2] },
      delayMs: 30_000,
      sendTs: expect.any(Number),
    });
    expect(row.sendTs).toBeGreaterThanOrEqual(before + 30_000);
  });
});

describe("GET delayed_events", () => {
  it("lists the requester's pending rows (all devices), soonest first, with Synapse's field names", async () => {
    const s = await setup();
    const second = await s.hs.loginDevice("alice");
    const late = await scheduleState(s.hs, s.alice, s.roomId, "late", 60_000, { a: 1 });
    const soon = await scheduleState(s.hs, second, s.roomId, "soon", 30_000);
    await scheduleState(s.hs, s.bob, s.roomId, "bobs", 10_000);
    const msg = await raw(s.hs, "PUT", sendPath(s.roomId, "m.custom", "t"), {
      token: s.alice.accessToken,
      body: {},
      query: delayQuery(45_000),
    });
    const res = await raw(s.hs, "GET", `${UNSTABLE}/delayed_events`, {
      token: s.alice.accessToken,
      query: { status: "x" },
    });
    expect(res.status).toBe(200);
    const items = res.body.delayed_events;
    expect(items.map((i: { delay_id: string }) => i.delay_id)).toEqual([soon, msg.body.delay_id, late]);
    expect(items[2]).toEqual({
      delay_id: late,
      room_id: s.roomId,
      type: CALL_MEMBER,
      state_key: "late",
      delay: 60_000,
      running_since: expect.any(Number),
      content: { a: 1 },
    });
    expect("state_key" in items[1]).toBe(false);
  });

  it("needs a token and refuses guests", async () => {
    const s = await setup();
    expect((await raw(s.hs, "GET", `${UNSTABLE}/delayed_events`)).body.errcode).toBe("M_MISSING_TOKEN");
    const guest = await s.hs.createUser("visitor", { guest: true });
    const res = await raw(s.hs, "GET", `${UNSTABLE}/delayed_events`, { token: guest.accessToken });
    expect(res.status).toBe(403);
    expect(res.body.errcode).toBe("M_GUEST_ACCESS_FORBIDDEN");
    // Guests may still schedule.
    await s.hs.joinRoom(guest.accessToken, s.roomId);
    expect((await put(s, 1000, { token: guest.accessToken })).status).toBe(200);
  });
});
