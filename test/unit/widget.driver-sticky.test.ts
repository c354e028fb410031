/**
 * The host driver's MSC4407 sticky events on client doubles: what it sends for a widget (and refuses
 * before sending), which delayed sticky events it tracks as the widget's own and sends when the widget
 * goes away, what `readStickyEvents` answers from a synced room or from the server's /sync, and the live
 * feed of a synced client's sticky map. The same against a real server: test/integration/widget/sticky-host.test.ts.
 */
import { describe, expect, it } from "@jest/globals";
import { EventEmitter } from "node:events";
import {
  MatrixError,
  UnsupportedDelayedEventsEndpointError,
  UnsupportedStickyEventsEndpointError,
} from "matrix-js-sdk";
import { MatrixCapabilities, type ClientWidgetApi } from "matrix-widget-api";
import { MalformedResponseError } from "../../src/index.js";
import { DelayedEventWidgetDriver, type DriverClient } from "../../src/widget-host/index.js";
import { feedStickyEvents } from "../../src/widget-host/stickyFeed.js";

const ROOM = "!call:example.org";
const RTC = "org.matrix.msc4143.rtc.member";
const SLOT = "m.call#ROOM";
const HOUR = 3_600_000;

type Calls = { calls: unknown[][] };

function fakeClient(): DriverClient & Calls {
  const calls: unknown[][] = [];
  let n = 0;
  const client = {
    calls,
    sendEvent: async (...a: unknown[]) => (calls.push(["sendEvent", ...a]), { event_id: "$plain" }),
    _unstable_sendStickyEvent: async (...a: unknown[]) => (
      calls.push(["sticky", ...a]),
      { event_id: `$sticky${++n}` }
    ),
    _unstable_sendStickyDelayedEvent: async (...a: unknown[]) => (
      calls.push(["stickyDelayed", ...a]),
      { delay_id: `syd_sticky${++n}` }
    ),
    _unstable_restartScheduledDelayedEvent: async (id: string) => (calls.push(["restart", id]), {}),
    _unstable_sendScheduledDelayedEvent: async (id: string) => (calls.push(["send", id]), {}),
    _unstable_cancelScheduledDelayedEvent: async (id: string) => (calls.push(["cancel", id]), {}),
  };
  return client as unknown as DriverClient & Calls;
}

/** What js-sdk 43 and Element Call 0.26 send: the delayed leave, then the join. */
const leaveContent = (memberId: string) => ({ slot_id: SLOT, msc4354_sticky_key: memberId });
const joinContent = (memberId: string) => ({
  slot_id: SLOT,
  application: { type: "m.call" },
  transports: { published: [], can_subscribe: ["livekit"] },
  member: { user_id: "@a:x", device_id: "DEV", id: memberId },
  versions: [],
  msc4354_sticky_key: memberId,
});

describe("DelayedEventWidgetDriver: sending sticky events for a widget", () => {
  it("sends sticky and delayed sticky events through the client's sticky methods, in the widget's room by default", async () => {
    const client = fakeClient();
    const driver = new DelayedEventWidgetDriver(client, { roomId: ROOM });
    await expect(driver.sendDelayedStickyEvent(8000, HOUR, RTC, leaveContent("m1"))).resolves.toEqual({
      roomId: ROOM,
      delayId: "syd_sticky1",
    });
    await expect(driver.sendStickyEvent(HOUR, RTC, joinContent("m1"))).resolves.toEqual({
      roomId: ROOM,
      eventId: "$sticky2",
    });
    await driver.sendStickyEvent(5000, "org.example.other", { a: 1 }, "!other:x");
    expect(client.calls).toEqual([
      ["stickyDelayed", ROOM, HOUR, { delay: 8000 }, null, RTC, leaveContent("m1")],
      ["sticky", ROOM, HOUR, null, RTC, joinContent("m1")],
      ["sticky", "!other:x", 5000, null, "org.example.other", { a: 1 }],
    ]);
  });

  it("refuses a sticky duration that is not a positive integer, like a server (400 M_INVALID_PARAM), sending nothing", async () => {
    const client = fakeClient();
    const driver = new DelayedEventWidgetDriver(client, { roomId: ROOM });
    for (const bad of ["3600000", -5, 1.5, 2 ** 60, Number.NaN, null, { ms: 1 }]) {
      const sent = driver.sendStickyEvent(bad as never, RTC, joinContent("m"));
      await expect(sent).rejects.toMatchObject({ httpStatus: 400, data: { errcode: "M_INVALID_PARAM" } });
      const error = await sent.catch((e: unknown) => e);
      expect(driver.processError(error)).toMatchObject({
        matrix_api_error: { http_status: 400, response: { errcode: "M_INVALID_PARAM" } },
      });
      await expect(driver.sendDelayedStickyEvent(1000, bad as never, RTC, {})).rejects.toMatchObject({
        httpStatus: 400,
      });
    }
    // More than an hour is the server's to cap, not refused.
    await driver.sendStickyEvent(2 * HOUR, RTC, {});
    expect(client.calls).toEqual([["sticky", ROOM, 2 * HOUR, null, RTC, {}]]);
  });

  it("the delay of a delayed sticky event is checked like any delay (maximum, integer)", async () => {
    const client = fakeClient();
    const driver = new DelayedEventWidgetDriver(client, { roomId: ROOM, limits: { maxDelayMs: 10_000 } });
    await expect(driver.sendDelayedStickyEvent(20_000, HOUR, RTC, {})).rejects.toMatchObject({
      httpStatus: 400,
      data: { "org.matrix.msc4140.errcode": "M_MAX_DELAY_EXCEEDED", "org.matrix.msc4140.max_delay": 10_000 },
    });
    await expect(driver.sendDelayedStickyEvent(-1, HOUR, RTC, {})).rejects.toMatchObject({
      data: { errcode: "M_INVALID_PARAM" },
    });
    expect(client.calls).toEqual([]);
  });

  it("counts sticky sends with the widget's sends and delayed sticky events with its schedules", async () => {
    const client = fakeClient();
    const driver = new DelayedEventWidgetDriver(client, {
      roomId: ROOM,
      limits: {
        sendEvents: { burst: 1, perSecond: 0.001 },
        scheduleDelayedEvents: { burst: 1, perSecond: 0.001 },
      },
    });
    await driver.sendStickyEvent(HOUR, RTC, {});
    await expect(driver.sendStickyEvent(HOUR, RTC, {})).rejects.toMatchObject({
      httpStatus: 429,
      data: { errcode: "M_LIMIT_EXCEEDED" },
    });
    await driver.sendDelayedStickyEvent(1000, HOUR, RTC, {});
    await expect(driver.sendDelayedStickyEvent(1000, HOUR, RTC, {})).rejects.toMatchObject({
      httpStatus: 429,
    });
    expect(client.calls.map((c) => c[0])).toEqual(["sticky", "stickyDelayed"]);
  });

  it("a delay id outside the grammar is a bad answer, never tracked or put in a URL", async () => {
    const client = fakeClient();
    client._unstable_sendStickyDelayedEvent = async () => ({ delay_id: "../../x" });
    const driver = new DelayedEventWidgetDriver(client, { roomId: ROOM });
    await expect(driver.sendDelayedStickyEvent(1000, HOUR, RTC, {})).rejects.toBeInstanceOf(
      MalformedResponseError,
    );
    await expect(driver.widgetClosed()).resolves.toEqual({ sent: 0, gone: 0, failed: 0 });
  });

  it("'no sticky events here' reaches the widget without Matrix details (js-sdk 43's widget client reads that as unsupported)", async () => {
    const bare = fakeClient();
    delete (bare as Partial<DriverClient>)._unstable_sendStickyEvent;
    delete (bare as Partial<DriverClient>)._unstable_sendStickyDelayedEvent;
    const driver = new DelayedEventWidgetDriver(bare, { roomId: ROOM });
    const refused = await driver.sendStickyEvent(HOUR, RTC, {}).catch((e: unknown) => e);
    expect(String(refused)).toMatch(/cannot send sticky events/);
    expect(driver.processError(refused)).toBeUndefined();
    await expect(driver.sendDelayedStickyEvent(1000, HOUR, RTC, {})).rejects.toThrow(/sticky/);
    // js-sdk's own refusals: the server does not advertise org.matrix.msc4354, or org.matrix.msc4140.
    expect(
      driver.processError(new UnsupportedStickyEventsEndpointError("no sticky", "sendStickyEvent")),
    ).toBeUndefined();
    expect(
      driver.processError(new UnsupportedDelayedEventsEndpointError("no delayed", "sendDelayedEvent")),
    ).toMatchObject({ matrix_api_error: { http_status: 404, response: { errcode: "M_UNRECOGNIZED" } } });
  });
});

describe("DelayedEventWidgetDriver: a widget's delayed sticky events are its own", () => {
  it("restart, send and cancel only the ids it scheduled; another widget's driver gets 404 without a request", async () => {
    const client = fakeClient();
    const driver = new DelayedEventWidgetDriver(client, { roomId: ROOM });
    const other = new DelayedEventWidgetDriver(client, { roomId: ROOM });
    const { delayId } = await driver.sendDelayedStickyEvent(5000, HOUR, RTC, leaveContent("m1"));
    client.calls.length = 0;
    await expect(other.restartScheduledDelayedEvent(delayId)).rejects.toMatchObject({
      httpStatus: 404,
      data: { errcode: "M_NOT_FOUND" },
    });
    await expect(other.sendScheduledDelayedEvent(delayId)).rejects.toMatchObject({ httpStatus: 404 });
    expect(client.calls).toEqual([]);
    await driver.restartScheduledDelayedEvent(delayId);
    await driver.sendScheduledDelayedEvent(delayId);
    // Sent: no longer the widget's to manage.
    await expect(driver.cancelScheduledDelayedEvent(delayId)).rejects.toMatchObject({ httpStatus: 404 });
    expect(client.calls).toEqual([
      ["restart", delayId],
      ["send", delayId],
    ]);
  });

  it("a server's 404 forgets the id; other failures keep it", async () => {
    const client = fakeClient();
    const driver = new DelayedEventWidgetDriver(client, { roomId: ROOM });
    const { delayId } = await driver.sendDelayedStickyEvent(5000, HOUR, RTC, leaveContent("m1"));
    const restart = client._unstable_restartScheduledDelayedEvent;
    client._unstable_restartScheduledDelayedEvent = async () => {
      throw new MatrixError({ errcode: "M_UNKNOWN" }, 502);
    };
    await expect(driver.restartScheduledDelayedEvent(delayId)).rejects.toMatchObject({ httpStatus: 502 });
    client._unstable_restartScheduledDelayedEvent = async () => {
      throw new MatrixError({ errcode: "M_NOT_FOUND" }, 404);
    };
    await expect(driver.restartScheduledDelayedEvent(delayId)).rejects.toMatchObject({ httpStatus: 404 });
    client._unstable_restartScheduledDelayedEvent = restart;
    client.calls.length = 0;
    await expect(driver.restartScheduledDelayedEvent(delayId)).rejects.toMatchObject({ httpStatus: 404 });
    expect(client.calls).toEqual([]);
  });

  it("widgetClosed sends its pending sticky delayed leaves (js-sdk 43's, Element Call's, MSC4143's shape), nothing else", async () => {
    const client = fakeClient();
    const ids = ["leave43", "leaveMsc", "leaveEc", "delayedJoin", "otherType", "leftAlready"];
    client._unstable_sendStickyDelayedEvent = async () => ({ delay_id: ids.shift()! });
    const driver = new DelayedEventWidgetDriver(client, { roomId: ROOM });
    await driver.sendDelayedStickyEvent(5000, HOUR, RTC, leaveContent("m1"));
    await driver.sendDelayedStickyEvent(6000, HOUR, RTC, {
      slot_id: SLOT,
      member: { id: "m2", membership: "leave" },
      sticky_key: "m2",
    });
    await driver.sendDelayedStickyEvent(7000, HOUR, RTC, { msc4354_sticky_key: "m5" }); // Element Call 0.26.1
    await driver.sendDelayedStickyEvent(5000, HOUR, RTC, joinContent("m3"));
    await driver.sendDelayedStickyEvent(5000, HOUR, "org.example.sticky", { slot_id: SLOT });
    await driver.sendDelayedStickyEvent(5000, HOUR, RTC, leaveContent("m4"));
    await driver.sendScheduledDelayedEvent("leftAlready"); // the widget left with that one itself
    client.calls.length = 0;
    await expect(driver.widgetClosed()).resolves.toEqual({ sent: 3, gone: 0, failed: 0 });
    expect(client.calls).toEqual([
      ["send", "leave43"],
      ["send", "leaveMsc"],
      ["send", "leaveEc"],
    ]);
  });
});

/** A matrix-js-sdk MatrixEvent in a sticky map, as far as the host reads it. */
function stickyEvent(id: string, sender: string, key: string, expiresAt: number, extra: object = {}) {
  const wire = {
    event_id: id,
    type: RTC,
    sender,
    origin_server_ts: 1000,
    content: { ...joinContent(key), msc4354_sticky_key: key },
    msc4354_sticky: { duration_ms: HOUR },
    unsigned: { age: 5, msc4354_sticky_duration_ttl_ms: 999_999 },
    ...extra,
  };
  return {
    unstableStickyExpiresAt: expiresAt,
    getEffectiveEvent: () => ({ ...wire }),
    getType: () => RTC,
    getStateKey: () => undefined,
    getId: () => id,
    getRoomId: () => ROOM,
    getContent: () => wire.content,
  };
}

describe("DelayedEventWidgetDriver.readStickyEvents", () => {
  it("a syncing client: js-sdk's sticky map, unexpired only, sticky field intact, the TTL as of now, no request", async () => {
    const now = Date.now();
    const client = fakeClient();
    let http = 0;
    Object.assign(client, {
      getSyncState: () => "SYNCING",
      http: { authedRequest: async () => (http++, {}) },
      getRoom: (roomId: string) =>
        roomId === ROOM
          ? {
              getMyMembership: () => "join",
              _unstable_getStickyEvents: () => [
                stickyEvent("$live", "@b:x", "kb", now + 60_000),
                stickyEvent("$gone", "@c:x", "kc", now - 1),
              ],
            }
          : null,
    });
    const events = await new DelayedEventWidgetDriver(client, { roomId: ROOM }).readStickyEvents(ROOM);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      event_id: "$live",
      room_id: ROOM,
      type: RTC,
      sender: "@b:x",
      msc4354_sticky: { duration_ms: HOUR },
      content: { msc4354_sticky_key: "kb" },
    });
    const ttl = (events[0].unsigned as Record<string, number>).msc4354_sticky_duration_ttl_ms;
    expect(ttl).toBeGreaterThan(55_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect((events[0].unsigned as Record<string, number>).age).toBe(5);
    expect(http).toBe(0);
  });

  /** A client that does not sync, whose HTTP API answers /sync with `bodies` in turn. */
  function serverClient(bodies: object[]) {
    const asked: Record<string, string>[] = [];
    const client = fakeClient();
    Object.assign(client, {
      http: {
        authedRequest: async (method: string, path: string, query: Record<string, string>) => {
          expect([method, path]).toEqual(["GET", "/sync"]);
          asked.push(query);
          return bodies.shift() ?? { next_batch: "end", rooms: { join: {} } };
        },
      },
    });
    return { driver: new DelayedEventWidgetDriver(client, { roomId: ROOM }), asked };
  }
  const wire = (id: string, ttl: number | undefined, names: "unstable" | "merged" = "unstable") => ({
    event_id: id,
    type: RTC,
    sender: "@b:x",
    content: { msc4354_sticky_key: id },
    ...(names === "unstable" ? { msc4354_sticky: { duration_ms: HOUR } } : { sticky: { duration_ms: HOUR } }),
    unsigned:
      ttl === undefined
        ? {}
        : { [names === "unstable" ? "msc4354_sticky_duration_ttl_ms" : "sticky_duration_ttl_ms"]: ttl },
  });

  it("a client that does not sync: the server's /sync, timeline and sticky section, unexpired by the server's TTL", async () => {
    const { driver, asked } = serverClient([
      {
        next_batch: "s1",
        rooms: {
          join: {
            [ROOM]: {
              timeline: {
                events: [wire("$inTimeline", 500), { event_id: "$plain", type: "m.room.message" }],
              },
              msc4354_sticky: { events: [wire("$section", 40_000), wire("$expired", undefined)] },
            },
            "!elsewhere:x": { msc4354_sticky: { events: [wire("$elsewhere", 40_000)] } },
          },
        },
      },
    ]);
    const events = await driver.readStickyEvents(ROOM);
    expect(events.map((e) => e.event_id).sort()).toEqual(["$inTimeline", "$section"]);
    expect(events.every((e) => e.room_id === ROOM)).toBe(true);
    // One sync (fewer than Synapse's 100 per sync), initial, quick, not marking the user online.
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatchObject({ timeout: "0", set_presence: "offline" });
    expect(asked[0].since).toBeUndefined();
    expect(JSON.parse(asked[0].filter)).toMatchObject({ room: { timeline: { limit: 1 } } });
    // Another read is another request to Synapse (its response cache answers an identical one for 2 min).
    await driver.readStickyEvents(ROOM);
    expect(asked[1].since).toBeUndefined();
    expect(asked[1].filter).not.toEqual(asked[0].filter);
  });

  it("the merged MSC4354 names are read too", async () => {
    const { driver } = serverClient([
      { next_batch: "s1", rooms: { join: { [ROOM]: { sticky: { events: [wire("$m", 1000, "merged")] } } } } },
    ]);
    expect((await driver.readStickyEvents(ROOM)).map((e) => e.event_id)).toEqual(["$m"]);
  });

  it("a sync with 100 sticky events (in any room) may have left some: the next one asks from its token, at most 5", async () => {
    const hundred = (prefix: string, room: string) => ({
      [room]: {
        msc4354_sticky: { events: Array.from({ length: 100 }, (_, i) => wire(`$${prefix}${i}`, 9000)) },
      },
    });
    const { driver, asked } = serverClient([
      { next_batch: "s1", rooms: { join: hundred("a", "!elsewhere:x") } },
      {
        next_batch: "s2",
        rooms: { join: { [ROOM]: { msc4354_sticky: { events: [wire("$mine", 9000)] } } } },
      },
    ]);
    expect((await driver.readStickyEvents(ROOM)).map((e) => e.event_id)).toEqual(["$mine"]);
    expect(asked.map((q) => q.since)).toEqual([undefined, "s1"]);

    const endless = serverClient(
      Array.from({ length: 10 }, (_, i) => ({
        next_batch: `s${i + 1}`,
        rooms: { join: hundred(`${i}_`, ROOM) },
      })),
    );
    expect(await endless.driver.readStickyEvents(ROOM)).toHaveLength(500);
    expect(endless.asked).toHaveLength(5);
  });

  it("a client with neither a synced room nor an HTTP API refuses instead of answering []", async () => {
    await expect(
      new DelayedEventWidgetDriver(fakeClient(), { roomId: ROOM }).readStickyEvents(ROOM),
    ).rejects.toThrow(/no synced view/);
  });
});

describe("the sticky feed of a synced client", () => {
  function world(granted = true) {
    const client = new EventEmitter() as EventEmitter & { getRoom(id: string): unknown };
    const rooms = new Map<string, EventEmitter & { roomId: string }>();
    const makeRoom = (roomId: string) => Object.assign(new EventEmitter(), { roomId });
    rooms.set(ROOM, makeRoom(ROOM));
    client.getRoom = (id: string) => rooms.get(id) ?? null;
    const fed: Record<string, unknown>[] = [];
    const api = {
      hasCapability: (c: string) => granted && c === MatrixCapabilities.MSC4407ReceiveStickyEvent,
      feedEvent: async (e: Record<string, unknown>) => void fed.push(e),
    } as unknown as ClientWidgetApi;
    return { client, rooms, makeRoom, fed, api };
  }

  it("feeds what becomes current (added, and the newer of an update), unexpired, with its TTL; stops when told", () => {
    const { client, rooms, fed, api } = world();
    const now = 1_000_000;
    const stop = feedStickyEvents(api, client as never, [ROOM], () => now);
    const room = rooms.get(ROOM)!;
    room.emit(
      "RoomStickyEvents.Update",
      [stickyEvent("$a", "@b:x", "kb", now + 30_000), stickyEvent("$old", "@c:x", "kc", now)],
      [
        {
          current: stickyEvent("$new", "@d:x", "kd", now + 10_000),
          previous: stickyEvent("$prev", "@d:x", "kd", now + 5),
        },
      ],
      [stickyEvent("$removed", "@e:x", "ke", now - 5)],
    );
    expect(fed.map((e) => e.event_id)).toEqual(["$a", "$new"]);
    expect(fed[0]).toMatchObject({
      room_id: ROOM,
      msc4354_sticky: { duration_ms: HOUR },
      unsigned: { msc4354_sticky_duration_ttl_ms: 30_000 },
    });
    stop();
    room.emit("RoomStickyEvents.Update", [stickyEvent("$late", "@b:x", "kb", now + 30_000)], [], []);
    expect(fed).toHaveLength(2);
  });

  it("listens to a room the client learns later, only the driver's rooms, only for a widget granted receive.sticky_event", () => {
    const { client, makeRoom, fed, api } = world();
    feedStickyEvents(api, client as never, [ROOM, "!later:x"], () => 0);
    const later = makeRoom("!later:x");
    const unrelated = makeRoom("!unrelated:x");
    client.emit("Room", later);
    client.emit("Room", unrelated);
    later.emit("RoomStickyEvents.Update", [stickyEvent("$l", "@b:x", "k", 10)], [], []);
    unrelated.emit("RoomStickyEvents.Update", [stickyEvent("$u", "@b:x", "k", 10)], [], []);
    expect(fed.map((e) => [e.event_id, e.room_id])).toEqual([["$l", "!later:x"]]);

    const refused = world(false);
    feedStickyEvents(refused.api, refused.client as never, [ROOM], () => 0);
    refused.rooms.get(ROOM)!.emit("RoomStickyEvents.Update", [stickyEvent("$x", "@b:x", "k", 10)], [], []);
    expect(refused.fed).toEqual([]);
  });
});
