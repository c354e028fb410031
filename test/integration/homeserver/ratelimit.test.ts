/** Rate limit buckets: rc_message for scheduling, rc_delayed_event_mgmt for management, keyed per mode. */
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
  delayQuery,
  mgmt,
  mgmtLegacy,
  raw,
  scheduleState,
  statePath,
  UNSTABLE,
} from "./helpers.js";

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

async function setup(options: TestHomeserverOptions): Promise<Setup> {
  const clock = createManualClock();
  const hs = await startTestHomeserver({ clock, ...options });
  servers.push(hs);
  const alice = await hs.createUser("alice");
  const bob = await hs.createUser("bob");
  const roomId = await hs.createRoom(alice.accessToken);
  await hs.joinRoom(bob.accessToken, roomId);
  return { hs, clock, alice, bob, roomId };
}

const schedule = (s: Setup, user: Credentials) =>
  raw(s.hs, "PUT", statePath(s.roomId, CALL_MEMBER, "k"), {
    token: user.accessToken,
    body: {},
    query: delayQuery(60_000),
  });

describe("rc_message", () => {
  it("is a leaky bucket per user: burst, then 429 with retry_after_ms and Retry-After, then drains", async () => {
    const s = await setup({
      rateLimits: { message: { perSecond: 0.5, burstCount: 3 }, delayedEventMgmt: null },
    });
    for (let i = 0; i < 3; i++) expect((await schedule(s, s.alice)).status).toBe(200);
    const limited = await schedule(s, s.alice);
    expect(limited.status).toBe(429);
    expect(limited.body).toEqual({
      errcode: "M_LIMIT_EXCEEDED",
      error: "Too Many Requests",
      retry_after_ms: 2000,
    });
    expect(limited.headers.get("retry-after")).toBe("2");
    // Bob has his own bucket; normal sends share alice's.
    expect((await schedule(s, s.bob)).status).toBe(200);
    const plain = await raw(s.hs, "PUT", statePath(s.roomId, CALL_MEMBER, "p"), {
      token: s.alice.accessToken,
      body: {},
    });
    expect(plain.status).toBe(429);
    s.clock.advance(1999);
    expect((await schedule(s, s.alice)).status).toBe(429);
    s.clock.advance(1);
    expect((await schedule(s, s.alice)).status).toBe(200);
  });

  it("exempt users and a null bucket are unlimited", async () => {
    const s = await setup({ rateLimits: { message: { perSecond: 0.001, burstCount: 1 } } });
    s.hs.configure({ rateLimitExemptUsers: [s.alice.userId] });
    for (let i = 0; i < 5; i++) expect((await schedule(s, s.alice)).status).toBe(200);
    expect((await schedule(s, s.bob)).status).toBe(200);
    expect((await schedule(s, s.bob)).status).toBe(429);
    s.hs.configure({ rateLimits: { message: null } });
    expect((await schedule(s, s.bob)).status).toBe(200);
  });

  it("applies when a delayed event fires: a fired event over the limit is dropped", async () => {
    const s = await setup({
      rateLimits: { message: { perSecond: 0.001, burstCount: 2 }, delayedEventMgmt: null },
    });
    await scheduleState(s.hs, s.alice, s.roomId, "a", 1000, { v: 1 });
    await scheduleState(s.hs, s.alice, s.roomId, "b", 2000, { v: 2 });
    s.clock.advance(5000); // 0.005 tokens drained: both fired sends are over the limit
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "a")).toBeUndefined();
    expect(s.hs.pendingDelayedEvents()).toEqual([]);
  });
});

describe("rc_delayed_event_mgmt", () => {
  const mgmtOnly = (burstCount: number): TestHomeserverOptions => ({
    rateLimits: { message: null, delayedEventMgmt: { perSecond: 1, burstCount } },
  });

  it("limits before the lookup, so even unknown ids get 429", async () => {
    const s = await setup(mgmtOnly(2));
    expect((await mgmt(s.hs, "syd_x", "restart", s.alice.accessToken)).status).toBe(404);
    expect((await mgmt(s.hs, "syd_x", "restart", s.alice.accessToken)).status).toBe(404);
    const limited = await mgmt(s.hs, "syd_x", "restart", s.alice.accessToken);
    expect(limited.status).toBe(429);
    expect(limited.body.retry_after_ms).toBe(1000);
    expect(limited.headers.get("retry-after")).toBe("1");
  });

  it("optional auth: per user with a token, per IP without one; the listing shares the user's bucket", async () => {
    const s = await setup(mgmtOnly(2));
    const id = await scheduleState(s.hs, s.alice, s.roomId, "a", 60_000);
    expect((await mgmt(s.hs, id, "restart", s.alice.accessToken)).status).toBe(200);
    expect(
      (await raw(s.hs, "GET", `${UNSTABLE}/delayed_events`, { token: s.alice.accessToken })).status,
    ).toBe(200);
    expect((await mgmt(s.hs, id, "restart", s.alice.accessToken)).status).toBe(429);
    // Bob's bucket and the anonymous (IP) bucket are separate.
    expect((await mgmt(s.hs, id, "restart", s.bob.accessToken)).status).toBe(200);
    expect((await mgmt(s.hs, id, "restart")).status).toBe(200);
    expect((await mgmt(s.hs, id, "restart")).status).toBe(200);
    expect((await mgmt(s.hs, id, "restart")).status).toBe(429);
  });

  it("none (1.143): every request is keyed on the IP", async () => {
    const s = await setup({ ...mgmtOnly(2), managementAuth: "none" });
    const id = await scheduleState(s.hs, s.alice, s.roomId, "a", 60_000);
    expect((await mgmt(s.hs, id, "restart", s.alice.accessToken)).status).toBe(200);
    expect((await mgmt(s.hs, id, "restart", s.bob.accessToken)).status).toBe(200);
    expect((await mgmt(s.hs, id, "restart")).status).toBe(429);
  });

  it("required (1.127): keyed on (user, device); `send` uses rc_message instead", async () => {
    const s = await setup({
      ...SYNAPSE_PRESETS["1.127"],
      rateLimits: {
        message: { perSecond: 0.001, burstCount: 2 },
        delayedEventMgmt: { perSecond: 1, burstCount: 1 },
      },
    });
    const id = await scheduleState(s.hs, s.alice, s.roomId, "a", 60_000); // message bucket: 1 of 2
    expect((await mgmtLegacy(s.hs, id, { action: "restart" }, s.alice.accessToken)).status).toBe(200);
    expect((await mgmtLegacy(s.hs, id, { action: "restart" }, s.alice.accessToken)).status).toBe(429);
    const other = await s.hs.loginDevice("alice");
    expect((await mgmtLegacy(s.hs, id, { action: "restart" }, other.accessToken)).status).toBe(200);
    // send: the request takes the last rc_message token, the event creation then finds the bucket full.
    const send = await mgmtLegacy(s.hs, id, { action: "send" }, s.alice.accessToken);
    expect(send.status).toBe(429);
    expect(s.hs.pendingDelayedEvents()).toEqual([]);
  });

  it("1.116: no management bucket, management counts against rc_message", async () => {
    const s = await setup({
      ...SYNAPSE_PRESETS["1.116"],
      rateLimits: {
        message: { perSecond: 0.001, burstCount: 2 },
        delayedEventMgmt: { perSecond: 1000, burstCount: 1000 },
      },
    });
    const id = await scheduleState(s.hs, s.alice, s.roomId, "a", 60_000);
    expect((await mgmtLegacy(s.hs, id, { action: "restart" }, s.alice.accessToken)).status).toBe(200);
    expect((await mgmtLegacy(s.hs, id, { action: "restart" }, s.alice.accessToken)).status).toBe(429);
  });
});
