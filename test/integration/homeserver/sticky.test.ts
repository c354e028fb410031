/**
 * MSC4354 sticky events on the test homeserver, as Synapse 1.163.2 serves them (`stickyEvents: true`) and
 * with the merged text's names (`SYNAPSE_PRESETS.merged`): the parameter, the field, the TTL, the cap,
 * delayed + sticky, the /sync section and its limits, `/versions`, CORS. Asserted on what the server
 * holds and what another user's /sync delivers. The same behaviour is compared with real Synapse by the
 * `sticky-*` conformance scenarios (test/conformance/scenarios.ts).
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import {
  createManualClock,
  startTestHomeserver,
  SYNAPSE_PRESETS,
  type Credentials,
  type TestHomeserver,
  type TestHomeserverOptions,
} from "../../../src/testing/index.js";
import { delayQuery, mgmt, NO_LIMITS, raw, sendPath, statePath } from "./helpers.js";

const STICKY = "org.matrix.msc4354.sticky_duration_ms";
const TTL = "msc4354_sticky_duration_ttl_ms";
const TYPE = "org.matrix.msc4143.rtc.member";
const HOUR = 3_600_000;

interface World {
  hs: TestHomeserver;
  alice: Credentials;
  bob: Credentials;
  roomId: string;
}

const servers: TestHomeserver[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((hs) => hs.close()));
});

async function world(options: TestHomeserverOptions = {}): Promise<World> {
  const hs = await startTestHomeserver({ ...NO_LIMITS, ...options });
  servers.push(hs);
  const alice = await hs.createUser("alice");
  const bob = await hs.createUser("bob");
  const roomId = await hs.createRoom(alice.accessToken);
  await hs.joinRoom(bob.accessToken, roomId);
  return { hs, alice, bob, roomId };
}

let txn = 0;
const send = (w: World, query: Record<string, string | number>, content: object = {}, as = w.alice) =>
  raw(w.hs, "PUT", sendPath(w.roomId, TYPE, `t${++txn}`), { token: as.accessToken, body: content, query });

/** One /sync as `user` (timeout 0 unless given); the room's entry or undefined. */
async function sync(
  w: World,
  user: Credentials,
  opts: { since?: string; limit?: number; timeout?: number } = {},
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
): Promise<{ room: any; next: string }> {
  const query: Record<string, string | number> = { timeout: opts.timeout ?? 0 };
  if (opts.since !== undefined) query.since = opts.since;
  if (opts.limit !== undefined) query.filter = JSON.stringify({ room: { timeline: { limit: opts.limit } } });
  const res = await raw(w.hs, "GET", "/_matrix/client/v3/sync", { token: user.accessToken, query });
  expect(res.status).toBe(200);
  return { room: res.body.rooms.join[w.roomId], next: res.body.next_batch as string };
}

const contentsOf = (events: { content: { n?: unknown } }[] | undefined): unknown[] =>
  (events ?? []).map((e) => e.content.n);

describe("sticky events off (Synapse's default)", () => {
  it("ignores the parameter, even a bad one: a plain event, no TTL, no sync section, flag false", async () => {
    const w = await world();
    const versions = await raw(w.hs, "GET", "/_matrix/client/versions");
    expect(versions.body.unstable_features["org.matrix.msc4354"]).toBe(false);
    expect((await send(w, { [STICKY]: 600_000 }, { n: 1 })).status).toBe(200);
    expect((await send(w, { [STICKY]: "abc" }, { n: 2 })).status).toBe(200);
    const sent = w.hs.timeline(w.roomId).filter((e) => e.type === TYPE);
    expect(sent.map((e) => e.content.n)).toEqual([1, 2]);
    for (const event of sent) {
      expect(event.msc4354_sticky).toBeUndefined();
      expect(event.unsigned[TTL]).toBeUndefined();
    }
    const carol = await w.hs.createUser("carol");
    await w.hs.joinRoom(carol.accessToken, w.roomId);
    const { room } = await sync(w, carol, { limit: 1 });
    expect(room.msc4354_sticky).toBeUndefined();
  });
});

describe("sticky events on (Synapse 1.163.2's unstable names)", () => {
  it("sends a sticky event: top-level msc4354_sticky, the sticky key left in content, the TTL in unsigned", async () => {
    const clock = createManualClock();
    const w = await world({ stickyEvents: true, clock });
    expect(
      (await raw(w.hs, "GET", "/_matrix/client/versions")).body.unstable_features["org.matrix.msc4354"],
    ).toBe(true);
    const res = await send(w, { [STICKY]: 600_000 }, { n: 1, msc4354_sticky_key: "member-1" });
    expect(res.status).toBe(200);
    clock.advance(1000);
    const event = await raw(
      w.hs,
      "GET",
      `/_matrix/client/v3/rooms/${encodeURIComponent(w.roomId)}/event/${res.body.event_id}`,
      {
        token: w.bob.accessToken,
      },
    );
    expect(event.body.msc4354_sticky).toEqual({ duration_ms: 600_000 });
    expect(event.body.content).toEqual({ n: 1, msc4354_sticky_key: "member-1" });
    expect(event.body.unsigned[TTL]).toBe(599_000);
    expect(event.body.unsigned.age).toBe(1000);
    // /messages and the server's own view carry the same.
    const messages = await raw(
      w.hs,
      "GET",
      `/_matrix/client/v3/rooms/${encodeURIComponent(w.roomId)}/messages`,
      {
        token: w.bob.accessToken,
        query: { dir: "b", limit: 1 },
      },
    );
    expect(messages.body.chunk[0].unsigned[TTL]).toBe(599_000);
    expect(w.hs.timeline(w.roomId).at(-1)?.msc4354_sticky).toEqual({ duration_ms: 600_000 });
  });

  it("parses the duration like Synapse's parse_integer and refuses what it refuses, with its texts", async () => {
    const w = await world({ stickyEvents: true });
    const bad = async (value: string): Promise<unknown> => (await send(w, { [STICKY]: value })).body;
    const notInteger = {
      errcode: "M_INVALID_PARAM",
      error: `Query parameter ${STICKY} must be an integer`,
    };
    expect(await bad("abc")).toEqual(notInteger);
    expect(await bad("1.5")).toEqual(notInteger);
    expect(await bad("")).toEqual(notInteger);
    expect(await bad("-1")).toEqual({
      errcode: "M_INVALID_PARAM",
      error: `Query parameter ${STICKY} must be a positive integer.`,
    });
    // Beyond 2^53 − 1 the event's canonical JSON is refused when it is created.
    expect(await bad("9007199254740992")).toEqual({
      errcode: "M_BAD_JSON",
      error: "JSON integer out of range",
    });
    // The sticky parameter is parsed before the delay: its error wins; the body before both.
    expect((await send(w, { [STICKY]: "abc", ...delayQuery("xyz") })).body).toEqual(notInteger);
    const notJson = await raw(w.hs, "PUT", sendPath(w.roomId, TYPE, "nj"), {
      token: w.alice.accessToken,
      raw: "{nope",
      query: { [STICKY]: "abc" },
    });
    expect(notJson.body.errcode).toBe("M_NOT_JSON");
    // Python int() spellings are fine.
    for (const [value, expected] of [
      ["60_000", 60_000],
      ["+5000", 5000],
      [" 7000 ", 7000],
    ] as const) {
      const ok = await send(w, { [STICKY]: value });
      expect(ok.status).toBe(200);
      expect(w.hs.timeline(w.roomId).at(-1)?.msc4354_sticky).toEqual({ duration_ms: expected });
    }
    // Nothing refused reached the room.
    expect(w.hs.timeline(w.roomId).filter((e) => e.type === TYPE)).toHaveLength(3);
  });

  it("caps the stickiness at 1 h but keeps the asked duration in the field; 0 is a field without stickiness", async () => {
    const clock = createManualClock();
    const w = await world({ stickyEvents: true, clock });
    await send(w, { [STICKY]: 2 * HOUR }, { n: "long" });
    await send(w, { [STICKY]: 0 }, { n: "zero" });
    clock.advance(10);
    const [long, zero] = w.hs.timeline(w.roomId).slice(-2);
    expect(long.msc4354_sticky).toEqual({ duration_ms: 2 * HOUR });
    expect(long.unsigned[TTL]).toBe(HOUR - 10);
    expect(zero.msc4354_sticky).toEqual({ duration_ms: 0 });
    expect(zero.unsigned[TTL]).toBeUndefined();
    // A newly joined user gets the capped one (still sticky), not the zero one.
    const carol = await w.hs.createUser("carol");
    const before = await sync(w, carol);
    await w.hs.joinRoom(carol.accessToken, w.roomId);
    const { room } = await sync(w, carol, { since: before.next, limit: 1 });
    expect(contentsOf(room.msc4354_sticky.events)).toEqual(["long"]);
    // After the hour it is gone from the section and its TTL from unsigned; the field stays.
    clock.advance(HOUR);
    const dave = await w.hs.createUser("dave");
    const daveBefore = await sync(w, dave);
    await w.hs.joinRoom(dave.accessToken, w.roomId);
    const late = await sync(w, dave, { since: daveBefore.next, limit: 1 });
    expect(late.room.msc4354_sticky).toBeUndefined();
    const expired = w.hs.timeline(w.roomId).find((e) => e.content.n === "long");
    expect(expired?.unsigned[TTL]).toBeUndefined();
    expect(expired?.msc4354_sticky).toEqual({ duration_ms: 2 * HOUR });
  });

  it("ignores the parameter on /state, even a bad value (Synapse 1.163 reads it on /send only)", async () => {
    const w = await world({ stickyEvents: true });
    for (const value of ["600000", "abc"]) {
      const res = await raw(w.hs, "PUT", statePath(w.roomId, "org.example.state", value), {
        token: w.alice.accessToken,
        body: { v: value },
        query: { [STICKY]: value },
      });
      expect(res.status).toBe(200);
    }
    for (const event of w.hs.timeline(w.roomId).filter((e) => e.type === "org.example.state")) {
      expect(event.msc4354_sticky).toBeUndefined();
    }
  });

  it("POST /send (no txn id) takes the parameter too", async () => {
    const w = await world({ stickyEvents: true });
    const res = await raw(
      w.hs,
      "POST",
      `/_matrix/client/v3/rooms/${encodeURIComponent(w.roomId)}/send/${TYPE}`,
      {
        token: w.alice.accessToken,
        body: { n: 1 },
        query: { [STICKY]: 500_000 },
      },
    );
    expect(res.status).toBe(200);
    expect(w.hs.timeline(w.roomId).at(-1)?.msc4354_sticky).toEqual({ duration_ms: 500_000 });
  });
});

describe("delayed + sticky in one request", () => {
  it("fires as a sticky event whose stickiness counts from the firing, at its due time", async () => {
    const clock = createManualClock();
    const w = await world({ stickyEvents: true, clock });
    const scheduled = await send(w, { [STICKY]: 60_000, ...delayQuery(5000) }, { n: "leave" });
    expect(scheduled.body.delay_id).toMatch(/^syd_/);
    const dueAt = clock.now() + 5000;
    expect(w.hs.pendingDelayedEvents()).toEqual([
      expect.objectContaining({ delayId: scheduled.body.delay_id, stickyDurationMs: 60_000 }),
    ]);
    // The listing shows no sticky field (Synapse's neither).
    const listing = await raw(w.hs, "GET", "/_matrix/client/unstable/org.matrix.msc4140/delayed_events", {
      token: w.alice.accessToken,
    });
    expect(Object.keys(listing.body.delayed_events[0])).not.toContain("sticky_duration_ms");
    clock.advance(5000);
    const fired = w.hs.timeline(w.roomId).at(-1);
    expect(fired?.content).toEqual({ n: "leave" });
    expect(fired?.origin_server_ts).toBe(dueAt);
    expect(fired?.msc4354_sticky).toEqual({ duration_ms: 60_000 });
    expect(fired?.unsigned[TTL]).toBe(60_000);
    // Carol, joining later, still gets it in the sticky section.
    const carol = await w.hs.createUser("carol");
    const before = await sync(w, carol);
    await w.hs.joinRoom(carol.accessToken, w.roomId);
    const { room } = await sync(w, carol, { since: before.next, limit: 1 });
    expect(contentsOf(room.msc4354_sticky.events)).toEqual(["leave"]);
  });

  it("the send action sends it sticky at once; an out-of-range duration is accepted, then fails when sent", async () => {
    const clock = createManualClock();
    const w = await world({ stickyEvents: true, clock });
    const scheduled = await send(w, { [STICKY]: 60_000, ...delayQuery(50_000) }, { n: "now" });
    clock.advance(1000);
    expect((await mgmt(w.hs, scheduled.body.delay_id, "send", w.alice.accessToken)).status).toBe(200);
    const sent = w.hs.timeline(w.roomId).at(-1);
    expect(sent?.origin_server_ts).toBe(clock.now());
    expect(sent?.unsigned[TTL]).toBe(60_000);

    const tooBig = await send(w, { [STICKY]: "9007199254740992", ...delayQuery(50_000) });
    expect(tooBig.status).toBe(200);
    const failed = await mgmt(w.hs, tooBig.body.delay_id, "send", w.alice.accessToken);
    expect(failed.status).toBe(400);
    expect(failed.body).toEqual({ errcode: "M_BAD_JSON", error: "JSON integer out of range" });
  });
});

describe("the /sync section (rooms.join.{room}.msc4354_sticky)", () => {
  it("delivers sticky events cut off by a limited timeline, never those in the timeline", async () => {
    const w = await world({ stickyEvents: true });
    const start = await sync(w, w.bob);
    await send(w, { [STICKY]: 600_000 }, { n: "A" });
    await send(w, { [STICKY]: 600_000 }, { n: "B" });
    await send(w, {}, { n: "plain 1" });
    await send(w, { [STICKY]: 600_000 }, { n: "C" });
    const gappy = await sync(w, w.bob, { since: start.next, limit: 2 });
    expect(gappy.room.timeline.limited).toBe(true);
    expect(contentsOf(gappy.room.timeline.events)).toEqual(["plain 1", "C"]);
    expect(contentsOf(gappy.room.msc4354_sticky.events)).toEqual(["A", "B"]);
    expect(gappy.room.msc4354_sticky.events[0].unsigned[TTL]).toBeGreaterThan(590_000);

    // Nothing new: the room is not in the answer at all.
    const quiet = await sync(w, w.bob, { since: gappy.next });
    expect(quiet.room).toBeUndefined();

    // In the timeline: not repeated in the section.
    await send(w, { [STICKY]: 600_000 }, { n: "D" });
    const whole = await sync(w, w.bob, { since: quiet.next });
    expect(contentsOf(whole.room.timeline.events)).toEqual(["D"]);
    expect(whole.room.msc4354_sticky).toBeUndefined();
  });

  it("gives a newly joined user every unexpired sticky event, beyond the 100 an initial sync gets", async () => {
    const w = await world({ stickyEvents: true });
    // Carol's token is from before the sticky events, Dave's from after them.
    const carol = await w.hs.createUser("carol");
    const carolBefore = await sync(w, carol);
    for (let i = 0; i < 103; i++) await send(w, { [STICKY]: 600_000 }, { n: i });
    // Bob's initial sync: the first 100 in stream order (the last one also in the timeline), and a token
    // that remembers where they stopped: the next sync has the rest at once, even asked to wait.
    const initial = await sync(w, w.bob, { limit: 1 });
    expect(contentsOf(initial.room.timeline.events)).toEqual([102]);
    expect(contentsOf(initial.room.msc4354_sticky.events)).toEqual([...Array(100).keys()]);
    expect(initial.next).toMatch(/^s\d+_\d+$/);
    const asked = Date.now();
    const rest = await sync(w, w.bob, { since: initial.next, limit: 1, timeout: 30_000 });
    expect(Date.now() - asked).toBeLessThan(10_000);
    expect(rest.room.timeline.events).toEqual([]);
    // Like Synapse: the one already in the previous timeline comes again (dedup is per response).
    expect(contentsOf(rest.room.msc4354_sticky.events)).toEqual([100, 101, 102]);
    expect(rest.next).toMatch(/^s\d+$/);

    const dave = await w.hs.createUser("dave");
    const daveBefore = await sync(w, dave);
    await w.hs.joinRoom(dave.accessToken, w.roomId);
    const joined = await sync(w, dave, { since: daveBefore.next, limit: 1 });
    expect(contentsOf(joined.room.msc4354_sticky.events)).toEqual([...Array(103).keys()]);

    // Synapse reads a newly joined room only up to where the limited read of new sticky events stopped.
    await w.hs.joinRoom(carol.accessToken, w.roomId);
    const carolJoined = await sync(w, carol, { since: carolBefore.next, limit: 1 });
    expect(contentsOf(carolJoined.room.msc4354_sticky.events)).toEqual([...Array(100).keys()]);
    const carolRest = await sync(w, carol, { since: carolJoined.next, limit: 1 });
    expect(contentsOf(carolRest.room.msc4354_sticky.events)).toEqual([100, 101, 102]);
  });

  it("has no section for a room the user left", async () => {
    const w = await world({ stickyEvents: true });
    const carol = await w.hs.createUser("carol");
    await w.hs.joinRoom(carol.accessToken, w.roomId);
    const before = await sync(w, carol);
    await send(w, { [STICKY]: 600_000 }, { n: "A" });
    await raw(w.hs, "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(w.roomId)}/leave`, {
      token: carol.accessToken,
      body: {},
    });
    const res = await raw(w.hs, "GET", "/_matrix/client/v3/sync", {
      token: carol.accessToken,
      query: { since: before.next, timeout: 0 },
    });
    expect(res.body.rooms.join[w.roomId]).toBeUndefined();
    expect(Object.keys(res.body.rooms.leave[w.roomId])).not.toContain("msc4354_sticky");
  });
});

describe("merged MSC4354 names (SYNAPSE_PRESETS.merged)", () => {
  const merged = { ...SYNAPSE_PRESETS.merged, delayedEventsShape: "both" as const };

  it("sticky_duration_ms on /send and /state, field `sticky`, unsigned.sticky_duration_ttl_ms, sync `sticky`", async () => {
    const clock = createManualClock();
    const w = await world({ ...merged, clock });
    const flags = (await raw(w.hs, "GET", "/_matrix/client/versions")).body.unstable_features;
    expect(flags["org.matrix.msc4354.stable"]).toBe(true);
    expect(flags["org.matrix.msc4354"]).toBeUndefined();
    const start = await sync(w, w.bob);
    await send(w, { sticky_duration_ms: 600_000 }, { n: "send", sticky_key: "k" });
    const state = await raw(w.hs, "PUT", statePath(w.roomId, "org.example.state", "s"), {
      token: w.alice.accessToken,
      body: { n: "state" },
      query: { sticky_duration_ms: 300_000 },
    });
    expect(state.status).toBe(200);
    // The unstable parameter means nothing to this server: a plain event.
    await send(w, { [STICKY]: 600_000 }, { n: "unstable" });
    await send(w, {}, { n: "plain" });
    clock.advance(1000);
    const [sticky, stickyState, unstable] = w.hs.timeline(w.roomId).slice(-4);
    expect(sticky.sticky).toEqual({ duration_ms: 600_000 });
    expect(sticky.unsigned.sticky_duration_ttl_ms).toBe(599_000);
    expect(sticky.msc4354_sticky).toBeUndefined();
    expect(stickyState.sticky).toEqual({ duration_ms: 300_000 });
    expect(unstable.sticky).toBeUndefined();
    expect(unstable.msc4354_sticky).toBeUndefined();
    const { room } = await sync(w, w.bob, { since: start.next, limit: 1 });
    expect(contentsOf(room.sticky.events)).toEqual(["send", "state"]);
    expect(room.msc4354_sticky).toBeUndefined();
  });

  it("delayed + sticky (unstable delay parameter, kept by a server in transition) fires with the stable field", async () => {
    const clock = createManualClock();
    const w = await world({ ...merged, clock });
    await send(w, { sticky_duration_ms: 60_000, ...delayQuery(2000) }, { n: "leave" });
    clock.advance(2000);
    const fired = w.hs.timeline(w.roomId).at(-1);
    expect(fired?.sticky).toEqual({ duration_ms: 60_000 });
    expect(fired?.unsigned.sticky_duration_ttl_ms).toBe(60_000);
  });
});

describe("CORS, for a call app in an iframe or another origin", () => {
  it("answers /versions with Synapse's CORS headers and a preflight with an empty 204", async () => {
    const w = await world({ stickyEvents: true });
    const versions = await fetch(`${w.hs.baseUrl}/_matrix/client/versions`, {
      headers: { Origin: "http://127.0.0.1:1" },
    });
    expect(versions.headers.get("access-control-allow-origin")).toBe("*");
    const preflight = await fetch(`${w.hs.baseUrl}/_matrix/client/versions`, {
      method: "OPTIONS",
      headers: {
        Origin: "http://127.0.0.1:1",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
      },
    });
    expect(preflight.status).toBe(204);
    expect(await preflight.text()).toBe("");
    expect(
      Object.fromEntries([...preflight.headers].filter(([k]) => k.startsWith("access-control"))),
    ).toEqual({
      "access-control-allow-origin": "*",
      "access-control-allow-methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
      "access-control-allow-headers": "X-Requested-With, Content-Type, Authorization, Date",
      "access-control-expose-headers": "Synapse-Trace-Id, Server",
    });
  });
});
