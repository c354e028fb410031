/**
 * The `merged` dialect: MSC4140 as merged (dedicated scheduling endpoint, authenticated v1 management
 * with finalised-event rules, the single lookup, discovery), checked against the MSC text (no Synapse
 * release implements it yet; docs/compatibility.md), and `delayedEventsShape: "both"`.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import {
  createManualClock,
  startTestHomeserver,
  SYNAPSE_PRESETS,
  type Credentials,
  type ManualClock,
  type TestHomeserver,
  type TestHomeserverOptions,
} from "../../../src/testing/index.js";
import {
  CALL_MEMBER,
  NO_LIMITS,
  raw,
  scheduleState,
  statePath,
  delayQuery,
  type RawResponse,
} from "./helpers.js";

const V1 = "/_matrix/client/v1";
const V3 = "/_matrix/client/v3";
const UNSTABLE = "/_matrix/client/unstable/org.matrix.msc4140";
const enc = encodeURIComponent;

interface Setup {
  hs: TestHomeserver;
  clock: ManualClock;
  alice: Credentials;
  bob: Credentials;
  roomId: string;
}

const servers: TestHomeserver[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function setup(options: TestHomeserverOptions = {}): Promise<Setup> {
  const clock = createManualClock();
  // Most of this file reads the July draft's flat lookup layout; the default (nested) has its own test.
  const layout = "mergedLookupShape" in options ? {} : { mergedLookupShape: "msc" as const };
  const hs = await startTestHomeserver({
    ...SYNAPSE_PRESETS.merged,
    ...NO_LIMITS,
    clock,
    ...layout,
    ...options,
  });
  servers.push(hs);
  const alice = await hs.createUser("alice");
  const bob = await hs.createUser("bob");
  const roomId = await hs.createRoom(alice.accessToken);
  await hs.joinRoom(bob.accessToken, roomId);
  return { hs, clock, alice, bob, roomId };
}

let txn = 0;
function schedule(
  s: Setup,
  body: Record<string, unknown>,
  opts: { user?: Credentials; prefix?: string; txnId?: string; type?: string } = {},
): Promise<RawResponse> {
  const path = `${opts.prefix ?? V3}/rooms/${enc(s.roomId)}/delayed_event/${enc(opts.type ?? CALL_MEMBER)}/${
    opts.txnId ?? `t${++txn}`
  }`;
  return raw(s.hs, "PUT", path, { token: (opts.user ?? s.alice).accessToken, body });
}

async function scheduleOk(s: Setup, stateKey: string, delayMs: number, content = {}): Promise<string> {
  const res = await schedule(s, { delay_ms: delayMs, state_key: stateKey, content });
  expect(res.status).toBe(200);
  return res.body.delay_id as string;
}

const act = (s: Setup, id: string, action: string, user?: Credentials, prefix = V1): Promise<RawResponse> =>
  raw(s.hs, "POST", `${prefix}/delayed_events/${enc(id)}/${action}`, { token: user?.accessToken, body: {} });

const get = (s: Setup, id: string, user?: Credentials, prefix = V1): Promise<RawResponse> =>
  raw(s.hs, "GET", `${prefix}/delayed_events/${enc(id)}`, { token: (user ?? s.alice).accessToken });

describe("merged dialect: discovery", () => {
  it("advertises org.matrix.msc4140.stable and the m.delayed_events capability", async () => {
    const s = await setup({ maxDelayMs: 3_600_000, maxScheduledPerUser: 7 });
    const versions = await raw(s.hs, "GET", "/_matrix/client/versions");
    // A merged-only server no longer advertises the unstable shape (a client would schedule with the
    // query parameter, which it ignores: issue 20 item 4); `delayedEventsShape: "both"` does.
    expect(versions.body.unstable_features).toMatchObject({
      "org.matrix.msc4140": false,
      "org.matrix.msc4140.stable": true,
    });
    const both = await setup({ delayedEventsShape: "both" });
    expect((await raw(both.hs, "GET", "/_matrix/client/versions")).body.unstable_features).toMatchObject({
      "org.matrix.msc4140": true,
      "org.matrix.msc4140.stable": true,
    });
    const caps = await raw(s.hs, "GET", `${V3}/capabilities`, { token: s.alice.accessToken });
    expect(caps.body.capabilities["m.delayed_events"]).toEqual({ max_delay_ms: 3_600_000, max_scheduled: 7 });
    expect(caps.body.capabilities["org.matrix.msc4140.delayed_events"]).toEqual({
      max_delay_ms: 3_600_000,
      max_scheduled: 7,
    });
  });

  it("the unstable dialect (1.157) has no stable flag, capability or merged routes", async () => {
    const s = await setup({ ...SYNAPSE_PRESETS["1.157"], delayedEventsShape: "unstable" });
    const versions = await raw(s.hs, "GET", "/_matrix/client/versions");
    expect(versions.body.unstable_features["org.matrix.msc4140.stable"]).toBeUndefined();
    const caps = await raw(s.hs, "GET", `${V3}/capabilities`, { token: s.alice.accessToken });
    expect("m.delayed_events" in caps.body.capabilities).toBe(false);
    const res = await schedule(s, { delay_ms: 1000, state_key: "k", content: {} });
    expect([res.status, res.body.errcode]).toEqual([404, "M_UNRECOGNIZED"]);
    expect((await get(s, "x")).body.errcode).toBe("M_UNRECOGNIZED");
  });
});

describe("merged dialect: scheduling", () => {
  it("schedules state and message events on the stable and the unstable prefix; fires them", async () => {
    const s = await setup();
    const stateRes = await schedule(s, { delay_ms: 1000, state_key: "k", content: { a: 1 } });
    const msgRes = await schedule(
      s,
      { delay_ms: 2000, content: { body: "hi", msgtype: "m.text" } },
      { prefix: UNSTABLE, type: "m.room.message" },
    );
    expect(stateRes.status).toBe(200);
    expect(msgRes.status).toBe(200);
    expect(Object.keys(stateRes.body)).toEqual(["delay_id"]);
    expect(s.hs.pendingDelayedEvents().map((d) => [d.type, d.stateKey, d.delayMs])).toEqual([
      [CALL_MEMBER, "k", 1000],
      ["m.room.message", undefined, 2000],
    ]);
    s.clock.advance(2000);
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "k")).toEqual({ a: 1 });
    expect(s.hs.timeline(s.roomId).some((e) => e.type === "m.room.message")).toBe(true);
    expect(s.hs.requests.filter((r) => r.route === "delayed.schedule").map((r) => r.path)).toEqual([
      `${V3}/rooms/${enc(s.roomId)}/delayed_event/${enc(CALL_MEMBER)}/t${txn - 1}`,
      `${UNSTABLE}/rooms/${enc(s.roomId)}/delayed_event/m.room.message/t${txn}`,
    ]);
  });

  it("a retried transaction id answers the same delay id and schedules nothing new", async () => {
    const s = await setup();
    const first = await schedule(s, { delay_ms: 1000, state_key: "k", content: {} }, { txnId: "same" });
    const again = await schedule(s, { delay_ms: 1000, state_key: "k", content: {} }, { txnId: "same" });
    expect(again.body.delay_id).toBe(first.body.delay_id);
    expect(s.hs.pendingDelayedEvents()).toHaveLength(1);
  });

  it("validates delay_ms, content and state_key", async () => {
    const s = await setup();
    const cases: [Record<string, unknown>, string][] = [
      [{ state_key: "k", content: {} }, "M_MISSING_PARAM"],
      [{ delay_ms: 0, content: {} }, "M_INVALID_PARAM"],
      [{ delay_ms: -5, content: {} }, "M_INVALID_PARAM"],
      [{ delay_ms: 1.5, content: {} }, "M_INVALID_PARAM"],
      [{ delay_ms: "10", content: {} }, "M_INVALID_PARAM"],
      [{ delay_ms: 10 }, "M_MISSING_PARAM"],
      [{ delay_ms: 10, content: [] }, "M_INVALID_PARAM"],
      [{ delay_ms: 10, content: {}, state_key: 3 }, "M_INVALID_PARAM"],
    ];
    for (const [body, errcode] of cases) {
      const res = await schedule(s, body);
      expect([body, res.status, res.body.errcode]).toEqual([body, 400, errcode]);
    }
    expect(s.hs.pendingDelayedEvents()).toEqual([]);
  });

  it("over the maximum delay: 403 M_FORBIDDEN; over the per-user count: 429 with Retry-After", async () => {
    const s = await setup({ maxDelayMs: 10_000, maxScheduledPerUser: 1 });
    const tooLong = await schedule(s, { delay_ms: 10_001, state_key: "k", content: {} });
    expect([tooLong.status, tooLong.body.errcode]).toEqual([403, "M_FORBIDDEN"]);
    await scheduleOk(s, "k", 5000);
    const tooMany = await schedule(s, { delay_ms: 1000, state_key: "k2", content: {} });
    expect([tooMany.status, tooMany.body.errcode]).toEqual([429, "M_LIMIT_EXCEEDED"]);
    expect(tooMany.headers.get("retry-after")).toBe("5");
  });

  it("ignores the unstable query parameter: such a request sends the event at once", async () => {
    const s = await setup();
    const res = await raw(s.hs, "PUT", statePath(s.roomId, CALL_MEMBER, "k"), {
      token: s.alice.accessToken,
      body: { leave: true },
      query: delayQuery(60_000),
    });
    expect(res.status).toBe(200);
    expect(typeof res.body.event_id).toBe("string");
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "k")).toEqual({ leave: true });
    expect(s.hs.pendingDelayedEvents()).toEqual([]);
  });
});

describe("merged dialect: management and finalised events", () => {
  it("requires authentication and answers 404 for unknown and other users' ids", async () => {
    const s = await setup();
    const id = await scheduleOk(s, "k", 60_000);
    expect((await act(s, id, "restart")).body.errcode).toBe("M_MISSING_TOKEN");
    expect((await act(s, "nope", "restart", s.alice)).body).toMatchObject({ errcode: "M_NOT_FOUND" });
    expect((await act(s, id, "cancel", s.bob)).status).toBe(404);
    expect((await get(s, id, s.bob)).status).toBe(404);
    expect(s.hs.pendingDelayedEvents()).toHaveLength(1);
  });

  it("GET one (the July draft's names, mergedLookupShape msc): pending, then sent on time (event_id, finalised_ts ≥ scheduled_at + delay_ms)", async () => {
    const s = await setup({ mergedLookupShape: "msc" });
    const t0 = s.clock.now();
    const id = await scheduleOk(s, "k", 1000, { x: 1 });
    s.clock.advance(400);
    expect((await act(s, id, "restart", s.alice)).status).toBe(200);
    expect((await get(s, id)).body).toEqual({
      delay_id: id,
      room_id: s.roomId,
      type: CALL_MEMBER,
      state_key: "k",
      delay_ms: 1000,
      scheduled_at: t0 + 400,
      content: { x: 1 },
    });
    s.clock.advance(1000);
    const sent = (await get(s, id)).body;
    const event = s.hs.roomState(s.roomId).find((e) => e.state_key === "k")!;
    expect(sent).toMatchObject({ scheduled_at: t0 + 400, finalised_ts: t0 + 1400, event_id: event.event_id });
    expect(sent.error).toBeUndefined();
    // Repeating the same outcome is 200; conflicting actions are 409 (restart after send: MSC4542).
    expect((await act(s, id, "send", s.alice)).status).toBe(200);
    expect([
      (await act(s, id, "cancel", s.alice)).status,
      (await act(s, id, "restart", s.alice)).status,
    ]).toEqual([409, 409]);
    expect((await act(s, id, "restart", s.alice, UNSTABLE)).body.errcode).toBe("M_UNKNOWN");
  });

  it("cancelled: GET shows finalised_ts without event_id or error; cancel again 200, send/restart 409", async () => {
    const s = await setup();
    const id = await scheduleOk(s, "k", 1000);
    expect((await act(s, id, "cancel", s.alice)).status).toBe(200);
    const body = (await get(s, id, s.alice, UNSTABLE)).body;
    expect(body.finalised_ts).toBe(s.clock.now());
    expect("event_id" in body || "error" in body).toBe(false);
    expect((await act(s, id, "cancel", s.alice)).status).toBe(200);
    expect((await act(s, id, "send", s.alice)).status).toBe(409);
    expect((await act(s, id, "restart", s.alice)).status).toBe(409);
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "k")).toBeUndefined();
  });

  it("another user's write at the key cancels the delayed state: GET shows it cancelled", async () => {
    const s = await setup();
    const id = await scheduleOk(s, "shared", 1000);
    await raw(s.hs, "PUT", statePath(s.roomId, CALL_MEMBER, "shared"), {
      token: s.bob.accessToken,
      body: { bob: true },
    });
    const body = (await get(s, id)).body;
    expect(typeof body.finalised_ts).toBe("number");
    expect("event_id" in body).toBe(false);
    expect((await act(s, id, "restart", s.alice)).status).toBe(409);
  });

  it("a failed send at the scheduled time is finalised with its error; a failed manual send stays scheduled", async () => {
    const s = await setup();
    // Bob may not send state events that need power level 50.
    const timed = await schedule(
      s,
      { delay_ms: 1000, state_key: "", content: { name: "x" } },
      {
        user: s.bob,
        type: "m.room.name",
      },
    );
    const manual = await schedule(
      s,
      { delay_ms: 60_000, state_key: "", content: { topic: "x" } },
      {
        user: s.bob,
        type: "m.room.topic",
      },
    );
    s.clock.advance(1000);
    const failed = (await get(s, timed.body.delay_id, s.bob)).body;
    expect(failed.error).toMatchObject({ errcode: "M_FORBIDDEN" });
    expect(typeof failed.finalised_ts).toBe("number");
    expect((await act(s, timed.body.delay_id, "cancel", s.bob)).status).toBe(200);

    const send = await act(s, manual.body.delay_id, "send", s.bob);
    expect([send.status, send.body.errcode]).toEqual([403, "M_FORBIDDEN"]);
    expect(s.hs.pendingDelayedEvents().map((d) => d.delayId)).toEqual([manual.body.delay_id]);
    expect((await get(s, manual.body.delay_id, s.bob)).body.finalised_ts).toBeUndefined();
  });

  it("finalised events are kept for finalisedRetentionMs, then unknown (404)", async () => {
    const s = await setup({ finalisedRetentionMs: 5000 });
    const id = await scheduleOk(s, "k", 1000);
    s.clock.advance(1000);
    s.clock.advance(4999);
    expect((await get(s, id)).status).toBe(200);
    s.clock.advance(1);
    expect((await get(s, id)).status).toBe(404);
    expect((await act(s, id, "send", s.alice)).status).toBe(404);
  });

  it("keeps at most finalisedPerUser finalised events per user, dropping the oldest", async () => {
    const s = await setup({ finalisedPerUser: 2 });
    const ids = [
      await scheduleOk(s, "a", 1000),
      await scheduleOk(s, "b", 1000),
      await scheduleOk(s, "c", 1000),
    ];
    for (const id of ids) expect((await act(s, id, "cancel", s.alice)).status).toBe(200);
    expect(await Promise.all(ids.map(async (id) => (await get(s, id)).status))).toEqual([404, 200, 200]);
  });

  it("nested lookup layout (the default: what Synapse ≥1.161 and js-sdk 43 say): delayed_since_ts and a finalised object", async () => {
    const s = await setup({ mergedLookupShape: undefined });
    const t0 = s.clock.now();
    const id = await scheduleOk(s, "k", 1000);
    expect((await get(s, id)).body).toMatchObject({ delay_ms: 1000, delayed_since_ts: t0 });
    s.clock.advance(1000);
    const body = (await get(s, id)).body;
    expect(body.finalised).toEqual({ finalised_ts: t0 + 1000, event_id: expect.any(String) });
    expect("scheduled_at" in body || "finalised_ts" in body).toBe(false);
  });

  it("has no listing and no body-form management (merged-only server)", async () => {
    const s = await setup();
    const id = await scheduleOk(s, "k", 1000);
    const list = await raw(s.hs, "GET", `${UNSTABLE}/delayed_events`, { token: s.alice.accessToken });
    expect(list.body.errcode).toBe("M_UNRECOGNIZED");
    const legacy = await raw(s.hs, "POST", `${UNSTABLE}/delayed_events/${id}`, {
      token: s.alice.accessToken,
      body: { action: "cancel" },
    });
    expect([legacy.status, legacy.body.errcode]).toEqual([405, "M_UNRECOGNIZED"]);
  });
});

describe("both shapes at once", () => {
  it("honours the query parameter and the unstable routes beside the merged ones", async () => {
    const s = await setup({ delayedEventsShape: "both" });
    const versions = await raw(s.hs, "GET", "/_matrix/client/versions");
    expect(versions.body.unstable_features["org.matrix.msc4140.stable"]).toBe(true);
    const unstableId = await scheduleState(s.hs, s.alice, s.roomId, "u", 1000);
    const mergedId = await scheduleOk(s, "m", 1000);
    expect(s.hs.pendingDelayedEvents()).toHaveLength(2);
    // Either family of routes manages either id; the finalised rules hold on both.
    expect((await act(s, unstableId, "restart", s.alice)).status).toBe(200);
    expect((await act(s, mergedId, "cancel", s.alice, UNSTABLE)).status).toBe(200);
    expect((await act(s, mergedId, "restart", s.alice, UNSTABLE)).status).toBe(409);
    const list = await raw(s.hs, "GET", `${UNSTABLE}/delayed_events`, { token: s.alice.accessToken });
    expect(list.body.delayed_events.map((d: { delay_id: string }) => d.delay_id)).toEqual([unstableId]);
  });
});
