/** Managing delayed events: per-action and legacy routes, auth modes, 404 semantics, restart/send. */
import { afterEach, describe, expect, it } from "@jest/globals";
import {
  createManualClock,
  startTestHomeserver,
  type Credentials,
  type ManualClock,
  type TestHomeserver,
  type TestHomeserverOptions,
} from "../../../src/testing/index.js";
import { CALL_MEMBER, mgmt, mgmtLegacy, NO_LIMITS, raw, scheduleState, UNSTABLE } from "./helpers.js";

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

const NOT_FOUND = { errcode: "M_NOT_FOUND", error: "Delayed event not found" };
const UNRECOGNIZED = { errcode: "M_UNRECOGNIZED", error: "Unrecognized request" };

describe("per-action routes (auth optional, Synapse ≥1.156)", () => {
  it("cancel, restart and send answer 200 {} with or without a token; the body is ignored", async () => {
    const s = await setup();
    const a = await scheduleState(s.hs, s.alice, s.roomId, "a", 60_000);
    const b = await scheduleState(s.hs, s.alice, s.roomId, "b", 60_000);
    const c = await scheduleState(s.hs, s.alice, s.roomId, "c", 60_000, { x: 1 });
    expect(await mgmt(s.hs, a, "restart")).toMatchObject({ status: 200, body: {} });
    const withBody = await raw(s.hs, "POST", `${UNSTABLE}/delayed_events/${a}/restart`, { raw: "not json" });
    expect(withBody.status).toBe(200);
    expect((await mgmt(s.hs, b, "cancel", s.alice.accessToken)).status).toBe(200);
    expect((await mgmt(s.hs, c, "send")).status).toBe(200);
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "c")).toEqual({ x: 1 });
    expect(s.hs.pendingDelayedEvents().map((d) => d.delayId)).toEqual([a]);
  });

  it("has no ownership check: anyone holding the id can manage it", async () => {
    const s = await setup();
    const id = await scheduleState(s.hs, s.alice, s.roomId, "a", 60_000);
    expect((await mgmt(s.hs, id, "cancel", s.bob.accessToken)).status).toBe(200);
  });

  it("validates a token when one is given: unknown → 401, guest → 403", async () => {
    const s = await setup();
    const id = await scheduleState(s.hs, s.alice, s.roomId, "a", 60_000);
    const bad = await mgmt(s.hs, id, "restart", "bogus");
    expect(bad.status).toBe(401);
    expect(bad.body.errcode).toBe("M_UNKNOWN_TOKEN");
    const guest = await s.hs.createUser("g", { guest: true });
    const res = await mgmt(s.hs, id, "restart", guest.accessToken);
    expect(res.status).toBe(403);
    expect(res.body.errcode).toBe("M_GUEST_ACCESS_FORBIDDEN");
  });

  it("answers 404 M_NOT_FOUND for unknown, cancelled, sent and fired ids, on every action and route", async () => {
    const clock = createManualClock();
    const s = await setup({ clock });
    const cancelled = await scheduleState(s.hs, s.alice, s.roomId, "a", 60_000);
    await mgmt(s.hs, cancelled, "cancel");
    const sent = await scheduleState(s.hs, s.alice, s.roomId, "b", 60_000);
    await mgmt(s.hs, sent, "send");
    const fired = await scheduleState(s.hs, s.alice, s.roomId, "c", 1_000);
    clock.advance(1_000);
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "c")).toEqual({});
    for (const id of ["syd_doesnotexistatallxx", cancelled, sent, fired]) {
      for (const action of ["cancel", "restart", "send"]) {
        expect(await mgmt(s.hs, id, action)).toMatchObject({ status: 404, body: NOT_FOUND });
        expect(await mgmtLegacy(s.hs, id, { action }, s.alice.accessToken)).toMatchObject({
          status: 404,
          body: NOT_FOUND,
        });
      }
    }
  });

  it("keeps M_UNRECOGNIZED (route missing) distinct from M_NOT_FOUND (id missing)", async () => {
    const s = await setup();
    const id = await scheduleState(s.hs, s.alice, s.roomId, "a", 60_000);
    expect(await raw(s.hs, "POST", `${UNSTABLE}/delayed_events/`)).toMatchObject({
      status: 404,
      body: UNRECOGNIZED,
    });
    expect(await mgmt(s.hs, id, "refresh")).toMatchObject({ status: 404, body: UNRECOGNIZED });
    expect(await raw(s.hs, "GET", `${UNSTABLE}/delayed_events/${id}`)).toMatchObject({
      status: 405,
      body: UNRECOGNIZED,
    });
    expect(await raw(s.hs, "GET", `${UNSTABLE}/delayed_events/${id}/cancel`)).toMatchObject({ status: 405 });
    // The MSC's newer endpoints are not served by Synapse.
    expect((await raw(s.hs, "POST", `/_matrix/client/v1/delayed_events/${id}/cancel`)).status).toBe(404);
    expect(
      (
        await raw(s.hs, "PUT", `${UNSTABLE}/rooms/${encodeURIComponent(s.roomId)}/delayed_event/m.x/t`, {
          body: {},
        })
      ).status,
    ).toBe(404);
  });
});

describe("legacy body-action route", () => {
  it("checks the body first: M_NOT_JSON, M_MISSING_PARAM, M_INVALID_PARAM (even for unknown ids)", async () => {
    const s = await setup();
    const path = `${UNSTABLE}/delayed_events/syd_unknown`;
    expect((await raw(s.hs, "POST", path)).body).toEqual({
      errcode: "M_NOT_JSON",
      error: "Content not JSON.",
    });
    expect((await raw(s.hs, "POST", path, { raw: "{oops" })).body.errcode).toBe("M_NOT_JSON");
    expect((await mgmtLegacy(s.hs, "syd_unknown", {})).body).toEqual({
      errcode: "M_MISSING_PARAM",
      error: "'action' is missing",
    });
    expect((await mgmtLegacy(s.hs, "syd_unknown", { action: "refresh" })).body).toEqual({
      errcode: "M_INVALID_PARAM",
      error: "'action' is not one of 'cancel', 'restart', 'send'",
    });
    expect((await mgmtLegacy(s.hs, "syd_unknown", { action: "cancel" })).status).toBe(404);
  });

  it("performs each action", async () => {
    const s = await setup();
    const a = await scheduleState(s.hs, s.alice, s.roomId, "a", 60_000);
    const b = await scheduleState(s.hs, s.alice, s.roomId, "b", 60_000, { y: 2 });
    expect(await mgmtLegacy(s.hs, a, { action: "restart" })).toMatchObject({ status: 200, body: {} });
    expect((await mgmtLegacy(s.hs, b, { action: "send" })).status).toBe(200);
    expect((await mgmtLegacy(s.hs, a, { action: "cancel" })).status).toBe(200);
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "b")).toEqual({ y: 2 });
    expect(s.hs.pendingDelayedEvents()).toEqual([]);
  });
});

describe("management auth modes", () => {
  it("none (1.143–1.155): tokens are ignored, even invalid ones", async () => {
    const s = await setup({ managementAuth: "none" });
    const id = await scheduleState(s.hs, s.alice, s.roomId, "a", 60_000);
    expect((await mgmt(s.hs, id, "restart", "bogus")).status).toBe(200);
    expect((await mgmtLegacy(s.hs, id, { action: "cancel" }, "bogus")).status).toBe(200);
  });

  it("required (≤1.142): per-action routes absent, legacy needs a token and the owner's localpart", async () => {
    const s = await setup({ managementAuth: "required" });
    const id = await scheduleState(s.hs, s.alice, s.roomId, "a", 60_000);
    expect(await mgmt(s.hs, id, "restart", s.alice.accessToken)).toMatchObject({
      status: 404,
      body: UNRECOGNIZED,
    });
    const noToken = await mgmtLegacy(s.hs, id, { action: "restart" });
    expect(noToken.status).toBe(401);
    expect(noToken.body.errcode).toBe("M_MISSING_TOKEN");
    // Someone else's id looks like no id at all.
    expect(await mgmtLegacy(s.hs, id, { action: "cancel" }, s.bob.accessToken)).toMatchObject({
      status: 404,
      body: NOT_FOUND,
    });
    const otherDevice = await s.hs.loginDevice("alice");
    expect((await mgmtLegacy(s.hs, id, { action: "restart" }, otherDevice.accessToken)).status).toBe(200);
    expect((await mgmtLegacy(s.hs, id, { action: "cancel" }, s.alice.accessToken)).status).toBe(200);
  });
});

describe("restart and send semantics", () => {
  let clock: ManualClock;

  it("restart re-arms from now with the original delay", async () => {
    clock = createManualClock(1_000_000);
    const s = await setup({ clock });
    const id = await scheduleState(s.hs, s.alice, s.roomId, "a", 10_000);
    expect(s.hs.pendingDelayedEvents()[0].sendTs).toBe(1_010_000);
    clock.advance(4_000);
    await mgmt(s.hs, id, "restart");
    expect(s.hs.pendingDelayedEvents()[0]).toMatchObject({ sendTs: 1_014_000, delayMs: 10_000 });
    clock.advance(9_999);
    expect(s.hs.pendingDelayedEvents()).toHaveLength(1);
    clock.advance(1);
    expect(s.hs.pendingDelayedEvents()).toHaveLength(0);
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "a")).toEqual({});
  });

  it("send creates the event now (origin_server_ts = send time) as the owner's device", async () => {
    clock = createManualClock(2_000_000);
    const s = await setup({ clock });
    const id = await scheduleState(s.hs, s.alice, s.roomId, "a", 10_000, { now: true });
    clock.advance(3_000);
    await mgmt(s.hs, id, "send", s.bob.accessToken);
    const event = s.hs.roomState(s.roomId).find((e) => e.state_key === "a")!;
    expect(event).toMatchObject({
      sender: s.alice.userId,
      origin_server_ts: 2_003_000,
      content: { now: true },
    });
    expect(event.unsigned["org.matrix.msc4140.delay_id"]).toBe(id);
  });

  it("send propagates the event pipeline's error and deletes the row anyway", async () => {
    const s = await setup();
    // Bob (power 0) schedules a topic change (needs 50): fine at schedule time, refused at send time.
    const id = await scheduleState(s.hs, s.bob, s.roomId, "", 60_000, { topic: "nope" }, "m.room.topic");
    const res = await mgmt(s.hs, id, "send");
    expect(res.status).toBe(403);
    expect(res.body.errcode).toBe("M_FORBIDDEN");
    expect(s.hs.pendingDelayedEvents()).toEqual([]);
    expect(await mgmt(s.hs, id, "send")).toMatchObject({ status: 404, body: NOT_FOUND });
  });

  it("send hits rc_message at event creation: 429 and the row is gone", async () => {
    const s = await setup({
      rateLimits: { message: { perSecond: 0.001, burstCount: 1 }, delayedEventMgmt: null },
    });
    const id = await scheduleState(s.hs, s.alice, s.roomId, "a", 60_000);
    const res = await mgmt(s.hs, id, "send");
    expect(res.status).toBe(429);
    expect(s.hs.pendingDelayedEvents()).toEqual([]);
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "a")).toBeUndefined();
  });
});
