/** When delayed events fire: order, per-batch dedup, auth at send time, unsigned delay id, auto-cancel. */
import { afterEach, describe, expect, it } from "@jest/globals";
import {
  createManualClock,
  SYNAPSE_PRESETS,
  startTestHomeserver,
  type Credentials,
  type ManualClock,
  type TestHomeserver,
  type TestHomeserverOptions,
} from "../../../src/testing/index.js";
import { CALL_MEMBER, delayQuery, NO_LIMITS, raw, scheduleState, sendPath, statePath } from "./helpers.js";

interface Setup {
  hs: TestHomeserver;
  clock: ManualClock;
  alice: Credentials;
  bob: Credentials;
  carol: Credentials;
  roomId: string;
}

const T0 = 1_700_000_000_000;
const servers: TestHomeserver[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function setup(options: TestHomeserverOptions = {}): Promise<Setup> {
  const clock = createManualClock(T0);
  const hs = await startTestHomeserver({ ...NO_LIMITS, clock, ...options });
  servers.push(hs);
  const alice = await hs.createUser("alice");
  const bob = await hs.createUser("bob");
  const carol = await hs.createUser("carol");
  const roomId = await hs.createRoom(alice.accessToken);
  await hs.joinRoom(bob.accessToken, roomId);
  return { hs, clock, alice, bob, carol, roomId };
}

const writeState = (s: Setup, user: Credentials, key: string, content: Record<string, unknown>) =>
  raw(s.hs, "PUT", statePath(s.roomId, CALL_MEMBER, key), { token: user.accessToken, body: content });

const scheduleMessage = async (
  s: Setup,
  user: Credentials,
  txn: string,
  delay: number,
  body: Record<string, unknown>,
) => {
  const res = await raw(s.hs, "PUT", sendPath(s.roomId, "m.custom", txn), {
    token: user.accessToken,
    body,
    query: delayQuery(delay),
  });
  return res.body.delay_id as string;
};

const callEvents = (s: Setup) =>
  s.hs.timeline(s.roomId).filter((e) => e.type === CALL_MEMBER || e.type === "m.custom");

describe("firing", () => {
  it("fires everything due in send_ts order with origin_server_ts = send_ts", async () => {
    const s = await setup();
    await scheduleMessage(s, s.alice, "t3", 3000, { n: 3 });
    await scheduleMessage(s, s.alice, "t1", 1000, { n: 1 });
    await scheduleMessage(s, s.bob, "t2", 2000, { n: 2 });
    s.clock.advance(10_000); // one timer wake-up takes all three
    expect(callEvents(s).map((e) => [e.content.n, e.origin_server_ts])).toEqual([
      [1, T0 + 1000],
      [2, T0 + 2000],
      [3, T0 + 3000],
    ]);
    expect(s.hs.pendingDelayedEvents()).toEqual([]);
  });

  it("does not fire a moment early", async () => {
    const s = await setup();
    await scheduleState(s.hs, s.alice, s.roomId, "k", 1000, { x: 1 });
    s.clock.advance(999);
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "k")).toBeUndefined();
    s.clock.advance(1);
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "k")).toEqual({ x: 1 });
  });

  it("sends only the earliest of a batch's rows for the same state key; the rest are dropped", async () => {
    const s = await setup();
    await scheduleState(s.hs, s.alice, s.roomId, "k", 2000, { n: "second" });
    await scheduleState(s.hs, s.bob, s.roomId, "k", 1000, { n: "first" });
    await scheduleState(s.hs, s.alice, s.roomId, "other", 1500, { n: "other" });
    s.clock.advance(5000);
    const keyed = callEvents(s).filter((e) => e.state_key === "k");
    expect(keyed.map((e) => e.content.n)).toEqual(["first"]);
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "other")).toEqual({ n: "other" });
    expect(s.hs.pendingDelayedEvents()).toEqual([]);
  });

  it("if the earliest row for a key fails, the next one in the batch is tried", async () => {
    const s = await setup();
    // Carol is not in the room: her row fails at send time.
    await scheduleState(s.hs, s.carol, s.roomId, "k", 1000, { by: "carol" });
    await scheduleState(s.hs, s.alice, s.roomId, "k", 2000, { by: "alice" });
    s.clock.advance(5000);
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "k")).toEqual({ by: "alice" });
    expect(s.hs.pendingDelayedEvents()).toEqual([]);
  });

  it("checks membership and power levels when firing, not when scheduling; failures vanish silently", async () => {
    const s = await setup();
    await scheduleState(s.hs, s.bob, s.roomId, "", 1000, { topic: "bob's" }, "m.room.topic"); // PL 0 < 50
    await scheduleState(s.hs, s.bob, s.roomId, "bob-leaves", 1000, {});
    await scheduleState(s.hs, s.carol, s.roomId, "carol-joins", 1000, { hi: 1 });
    await raw(s.hs, "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(s.roomId)}/leave`, {
      token: s.bob.accessToken,
    });
    await s.hs.joinRoom(s.carol.accessToken, s.roomId);
    const before = s.hs.timeline(s.roomId).length;
    s.clock.advance(1000);
    expect(s.hs.stateContent(s.roomId, "m.room.topic", "")).toBeUndefined();
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "bob-leaves")).toBeUndefined();
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "carol-joins")).toEqual({ hi: 1 });
    expect(s.hs.timeline(s.roomId).length).toBe(before + 1);
    expect(s.hs.pendingDelayedEvents()).toEqual([]);
  });

  it("a fired leave identical to the current state from the same sender adds no event", async () => {
    const s = await setup();
    await writeState(s, s.alice, "k", {});
    await scheduleState(s.hs, s.alice, s.roomId, "k", 1000, {});
    const before = s.hs.timeline(s.roomId).length;
    s.clock.advance(1000);
    expect(s.hs.timeline(s.roomId).length).toBe(before);
    expect(s.hs.pendingDelayedEvents()).toEqual([]);
  });

  it("shows unsigned delay_id to every device of the sender in /sync, never to others", async () => {
    const s = await setup();
    const aliceTwo = await s.hs.loginDevice("alice");
    const id = await scheduleState(s.hs, s.alice, s.roomId, "k", 1000, { v: 1 });
    s.clock.advance(1000);
    const seen = async (user: Credentials) => {
      const res = await raw(s.hs, "GET", "/_matrix/client/v3/sync", { token: user.accessToken });
      return res.body.rooms.join[s.roomId].timeline.events.find(
        (e: { state_key?: string }) => e.state_key === "k",
      ).unsigned;
    };
    expect((await seen(s.alice))["org.matrix.msc4140.delay_id"]).toBe(id);
    expect((await seen(aliceTwo))["org.matrix.msc4140.delay_id"]).toBe(id);
    expect((await seen(s.bob))["org.matrix.msc4140.delay_id"]).toBeUndefined();
  });

  it("omits the unsigned delay_id before Synapse 1.150 (1.143 preset)", async () => {
    const s = await setup(SYNAPSE_PRESETS["1.143"]);
    await scheduleState(s.hs, s.alice, s.roomId, "k", 1000, { v: 1 });
    s.clock.advance(1000);
    const res = await raw(s.hs, "GET", "/_matrix/client/v3/sync", { token: s.alice.accessToken });
    const event = res.body.rooms.join[s.roomId].timeline.events.find(
      (e: { state_key?: string }) => e.state_key === "k",
    );
    expect(event.unsigned["org.matrix.msc4140.delay_id"]).toBeUndefined();
  });
});

describe("auto-cancel of delayed state by newer state", () => {
  it("another user's write at the same key cancels; the owner's other device does not", async () => {
    const s = await setup();
    const mine = await scheduleState(s.hs, s.alice, s.roomId, "k", 60_000);
    const elsewhere = await scheduleState(s.hs, s.alice, s.roomId, "k2", 60_000);
    const message = await scheduleMessage(s, s.alice, "m", 60_000, {});
    const aliceTwo = await s.hs.loginDevice("alice");
    await writeState(s, aliceTwo, "k", { own: true });
    expect(
      s.hs
        .pendingDelayedEvents()
        .map((d) => d.delayId)
        .sort(),
    ).toEqual([mine, elsewhere, message].sort());
    await writeState(s, s.bob, "k", { bob: true });
    expect(
      s.hs
        .pendingDelayedEvents()
        .map((d) => d.delayId)
        .sort(),
    ).toEqual([elsewhere, message].sort());
  });

  it("writes that do not change current state cancel nothing (rejected, deduplicated)", async () => {
    const s = await setup({ ownWritesCancel: true });
    await writeState(s, s.alice, "k", { same: 1 });
    const id = await scheduleState(s.hs, s.alice, s.roomId, "k", 60_000);
    expect((await writeState(s, s.carol, "k", { x: 1 })).status).toBe(403); // not in the room
    await writeState(s, s.alice, "k", { same: 1 }); // identical: deduplicated
    expect(s.hs.pendingDelayedEvents().map((d) => d.delayId)).toEqual([id]);
  });

  it("≤1.126 (ownWritesCancel / 1.116 preset): the owner's own write cancels too", async () => {
    const s = await setup(SYNAPSE_PRESETS["1.116"]);
    await scheduleState(s.hs, s.alice, s.roomId, "k", 60_000);
    await writeState(s, s.alice, "k", { joined: true });
    expect(s.hs.pendingDelayedEvents()).toEqual([]);
  });

  it("a fired delayed state event cancels other users' pending rows at that key", async () => {
    const s = await setup();
    await scheduleState(s.hs, s.alice, s.roomId, "k", 1000, { a: 1 });
    await scheduleState(s.hs, s.bob, s.roomId, "k", 5000, { b: 1 });
    const alicesLater = await scheduleState(s.hs, s.alice, s.roomId, "k", 9000, { a: 2 });
    s.clock.advance(1000);
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "k")).toEqual({ a: 1 });
    expect(s.hs.pendingDelayedEvents().map((d) => d.delayId)).toEqual([alicesLater]);
  });

  it("a server that loses a delayed event answers 404 for it afterwards", async () => {
    const s = await setup();
    const id = await scheduleState(s.hs, s.alice, s.roomId, "k", 60_000);
    s.hs.loseDelayedEvent(id);
    expect(s.hs.pendingDelayedEvents()).toEqual([]);
    s.clock.advance(120_000);
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "k")).toBeUndefined();
  });
});
