/**
 * ClientBackend against the test homeserver's MSC4140 shapes: which shape it picks per server, what
 * `getDelayedEvent` reports (fired, sent by `send`, cancelled by another user's write, unknown), the
 * 409 classification with the lookup attached, and exact recovery of a schedule whose answer was lost.
 * Every check is also made on what the server holds.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import { ClientBackend } from "../../../src/backends/client.js";
import { classifyError } from "../../../src/errors.js";
import {
  createManualClock,
  startTestHomeserver,
  SYNAPSE_PRESETS,
  type Credentials,
  type ManualClock,
  type TestHomeserver,
  type TestHomeserverOptions,
} from "../../../src/testing/index.js";
import { CALL_MEMBER, client, NO_LIMITS, raw, statePath } from "../homeserver/helpers.js";

const servers: TestHomeserver[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

interface Setup {
  hs: TestHomeserver;
  clock: ManualClock;
  alice: Credentials;
  bob: Credentials;
  roomId: string;
  backend: ClientBackend;
}

async function setup(
  options: TestHomeserverOptions = SYNAPSE_PRESETS.merged,
  backendOptions: ConstructorParameters<typeof ClientBackend>[1] = {},
): Promise<Setup> {
  const clock = createManualClock();
  const hs = await startTestHomeserver({ ...options, ...NO_LIMITS, clock });
  servers.push(hs);
  const alice = await hs.createUser("alice");
  const bob = await hs.createUser("bob");
  const roomId = await hs.createRoom(alice.accessToken);
  await hs.joinRoom(bob.accessToken, roomId);
  return { hs, clock, alice, bob, roomId, backend: new ClientBackend(client(hs, alice), backendOptions) };
}

const leave = (s: Setup, stateKey = "k", delayMs = 1000) =>
  s.backend.sendDelayedStateEvent({
    roomId: s.roomId,
    eventType: CALL_MEMBER,
    stateKey,
    content: {},
    delayMs,
  });

/** Route ids of the MSC4140 requests the server saw (query-parameter scheduling shows as `*.delayed`). */
const delayedRoutes = (hs: TestHomeserver): string[] =>
  hs.requests
    .filter((r) => r.route.startsWith("delayed.") || r.route.endsWith(".delayed"))
    .map((r) => r.route);

describe("which shape the backend speaks", () => {
  const cases: [string, TestHomeserverOptions, ("auto" | "merged" | "unstable") | undefined, string[]][] = [
    [
      "merged server",
      SYNAPSE_PRESETS.merged,
      undefined,
      ["delayed.schedule", "delayed.restart", "delayed.cancel"],
    ],
    [
      "1.157 server",
      SYNAPSE_PRESETS["1.157"],
      undefined,
      ["state.put.delayed", "delayed.restart", "delayed.cancel"],
    ],
    [
      "server offering both",
      { ...SYNAPSE_PRESETS.merged, delayedEventsShape: "both" },
      undefined,
      ["delayed.schedule", "delayed.restart", "delayed.cancel"],
    ],
    [
      "server offering both, override unstable",
      { ...SYNAPSE_PRESETS.merged, delayedEventsShape: "both" },
      "unstable",
      ["state.put.delayed", "delayed.restart", "delayed.cancel"],
    ],
  ];
  it.each(cases)("%s", async (_name, options, choice, routes) => {
    const s = await setup(options, { delayedEventsApi: choice });
    const id = await leave(s);
    expect(s.hs.pendingDelayedEvents().map((d) => [d.delayId, d.stateKey])).toEqual([[id, "k"]]);
    await s.backend.updateDelayedEvent(id, "restart");
    await s.backend.updateDelayedEvent(id, "cancel");
    expect(s.hs.pendingDelayedEvents()).toEqual([]);
    expect(delayedRoutes(s.hs)).toEqual(routes);
    const paths = s.hs.requests.filter((r) => r.route.startsWith("delayed.")).map((r) => r.path);
    const merged = routes[0] === "delayed.schedule";
    for (const p of paths) expect(p.includes("/unstable/")).toBe(!merged);
  });

  it("probeSupport reads the stable capability on a merged server", async () => {
    const s = await setup({ ...SYNAPSE_PRESETS.merged, maxDelayMs: 120_000 });
    expect(await s.backend.probeSupport()).toEqual({ delayedEvents: true, maxDelayMs: 120_000 });
  });
});

describe("getDelayedEvent on a merged server", () => {
  it("pending, then fired: sent with the event id the server holds, not manual", async () => {
    const s = await setup();
    const t0 = s.clock.now();
    const id = await leave(s);
    expect(await s.backend.getDelayedEvent(id)).toEqual({
      status: "pending",
      delayMs: 1000,
      delayedSinceTs: t0,
    });
    s.clock.advance(1000);
    const eventId = s.hs
      .roomState(s.roomId)
      .find((e) => e.type === CALL_MEMBER && e.state_key === "k")!.event_id;
    expect(await s.backend.getDelayedEvent(id)).toEqual({
      status: "finalised",
      outcome: "sent",
      eventId,
      finalisedTs: t0 + 1000,
      manual: false,
    });
  });

  it("sent by the send action: manual", async () => {
    const s = await setup();
    const id = await leave(s);
    s.clock.advance(100);
    await s.backend.updateDelayedEvent(id, "send");
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "k")).toEqual({});
    expect(await s.backend.getDelayedEvent(id)).toMatchObject({ outcome: "sent", manual: true });
  });

  it("cancelled by another user's write at the key", async () => {
    const s = await setup();
    const id = await leave(s, "shared");
    s.clock.advance(300);
    const write = await raw(s.hs, "PUT", statePath(s.roomId, CALL_MEMBER, "shared"), {
      token: s.bob.accessToken,
      body: { by: "bob" },
    });
    expect(write.status).toBe(200);
    expect(s.hs.pendingDelayedEvents()).toEqual([]);
    expect(await s.backend.getDelayedEvent(id)).toEqual({
      status: "finalised",
      outcome: "cancelled",
      finalisedTs: s.clock.now(),
    });
    // The content the delayed leave would have written never reached the room.
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "shared")).toEqual({ by: "bob" });
  });

  it("a failed send is finalised with its error", async () => {
    const s = await setup();
    const bobBackend = new ClientBackend(client(s.hs, s.bob));
    const id = await bobBackend.sendDelayedStateEvent({
      roomId: s.roomId,
      eventType: "m.room.name",
      stateKey: "",
      content: { name: "x" },
      delayMs: 500,
    });
    s.clock.advance(500);
    expect(await bobBackend.getDelayedEvent(id)).toMatchObject({
      status: "finalised",
      outcome: "error",
      error: { errcode: "M_FORBIDDEN" },
    });
  });

  it("unknown: never existed, or another user's", async () => {
    const s = await setup();
    expect(await s.backend.getDelayedEvent("nope")).toEqual({ status: "unknown", tracksFinalised: true });
    const bobBackend = new ClientBackend(client(s.hs, s.bob));
    const id = await leave(s);
    expect(await bobBackend.getDelayedEvent(id)).toEqual({ status: "unknown", tracksFinalised: true });
  });

  it("reads the nested layout (delayed_since_ts, finalised object) the same way", async () => {
    const s = await setup({ ...SYNAPSE_PRESETS.merged, mergedLookupShape: "nested" });
    const t0 = s.clock.now();
    const id = await leave(s);
    expect(await s.backend.getDelayedEvent(id)).toEqual({
      status: "pending",
      delayMs: 1000,
      delayedSinceTs: t0,
    });
    s.clock.advance(1000);
    expect(await s.backend.getDelayedEvent(id)).toMatchObject({
      status: "finalised",
      outcome: "sent",
      manual: false,
    });
  });
});

describe("409 and the unstable shape", () => {
  it("restart after the leave fired: 409, classified gone with what the lookup says", async () => {
    const s = await setup();
    const id = await leave(s);
    s.clock.advance(1000);
    const error = await s.backend.updateDelayedEvent(id, "restart").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((error as { httpStatus?: number }).httpStatus).toBe(409);
    expect(classifyError(error, "restart")).toEqual({
      kind: "gone",
      finalised: expect.objectContaining({ status: "finalised", outcome: "sent", manual: false }),
    });
    // cancel of a cancelled event and send of a sent one are 200 (safe retries)
    await s.backend.updateDelayedEvent(id, "send");
    expect(delayedRoutes(s.hs).slice(-3)).toEqual(["delayed.restart", "delayed.get", "delayed.send"]);
  });

  it("on an unstable server (1.157) the lookup endpoint is missing: the server's answer is thrown", async () => {
    const s = await setup(SYNAPSE_PRESETS["1.157"]);
    const id = await leave(s);
    await expect(s.backend.getDelayedEvent(id)).rejects.toMatchObject({ errcode: "M_UNRECOGNIZED" });
  });
});

describe("a schedule whose answer was lost (merged: no listing, transaction replay instead)", () => {
  it("processed, answer lost: listing replays the transaction and finds the same delay id", async () => {
    const s = await setup();
    s.hs.faults.add({ route: "delayed.schedule", times: 1, respond: "process-then-drop" });
    await expect(leave(s)).rejects.toBeDefined();
    const [held] = s.hs.pendingDelayedEvents();
    expect(held).toBeDefined();
    expect(await s.backend.listDelayedEvents()).toEqual([
      { delayId: held.delayId, roomId: s.roomId, stateKey: "k" },
    ]);
    // The replay scheduled nothing new. The id stays listed (another room's manager sharing this
    // backend may be the one to cancel it) without another replay, until it is cancelled.
    expect(s.hs.pendingDelayedEvents().map((d) => d.delayId)).toEqual([held.delayId]);
    const schedules = () => delayedRoutes(s.hs).filter((r) => r === "delayed.schedule").length;
    expect(schedules()).toBe(2);
    expect(await s.backend.listDelayedEvents()).toEqual([
      { delayId: held.delayId, roomId: s.roomId, stateKey: "k" },
    ]);
    expect(schedules()).toBe(2);
    await s.backend.updateDelayedEvent(held.delayId, "cancel");
    expect(s.hs.pendingDelayedEvents()).toEqual([]);
    expect(await s.backend.listDelayedEvents()).toEqual([]);
    expect(delayedRoutes(s.hs)).not.toContain("delayed.list");
  });

  it("never reached the server: the replay schedules it, so the caller can cancel it", async () => {
    const s = await setup();
    s.hs.faults.add({ route: "delayed.schedule", times: 1, respond: "drop" });
    await expect(leave(s)).rejects.toBeDefined();
    expect(s.hs.pendingDelayedEvents()).toEqual([]);
    const found = await s.backend.listDelayedEvents();
    expect(found).toHaveLength(1);
    expect(s.hs.pendingDelayedEvents().map((d) => d.delayId)).toEqual([found[0].delayId]);
  });

  it("an HTTP refusal is not a lost answer: nothing to replay", async () => {
    const s = await setup({ ...SYNAPSE_PRESETS.merged, maxDelayMs: 500 });
    const error = await leave(s).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(classifyError(error, "schedule-leave")).toEqual({ kind: "max-delay" });
    expect(await s.backend.listDelayedEvents()).toEqual([]);
  });
});
