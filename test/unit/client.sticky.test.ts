/**
 * ClientBackend in the sticky format (issue 21 items 1 and 4), against a recording matrix-js-sdk double:
 * what goes on the wire (the send endpoint with the sticky and delay parameters), nothing at all from a
 * server without MSC4354, an encrypted room's membership through js-sdk's encrypting pipeline when the
 * client has crypto and knows the room, and `encryption-unavailable` (nothing sent) when it cannot
 * encrypt. The manager's typed errors on top, on virtual time.
 */
import { describe, expect, it } from "@jest/globals";
import log from "loglevel";
import { ClientBackend, type ClientLike } from "../../src/backends/client.js";
import { MembershipManager } from "../../src/manager/MembershipManager.js";
import { EncryptionUnavailableError, StickyEventsUnsupportedError } from "../../src/errors.js";
import { RTC_MEMBER_EVENT_TYPE } from "../../src/membership/rtcMember.js";
import { matrixError } from "../helpers/fakeServer.js";
import { VirtualTime } from "../helpers/virtualTime.js";

const quiet = log.getLogger("test-quiet-client-sticky");
quiet.setLevel("silent");

const ROOM = "!room:localhost";

interface Call {
  method: string;
  path: string;
  query?: Record<string, string>;
  body?: unknown;
}

interface World {
  client: ClientLike;
  /** Every HTTP request through js-sdk's HTTP API. */
  http: Call[];
  /** Every send through js-sdk's event pipeline (the one that encrypts). */
  pipeline: { roomId: string; duration: number; type: string; content: Record<string, unknown> }[];
  /** Every state request through js-sdk's state methods (the state format). */
  state: number;
}

/**
 * A js-sdk 43 client double. `features`: what `/versions` lists; `roomEncrypted`: the room's
 * `m.room.encryption` as the server holds it; `knowsRoom`: the client syncs the room (and sees that);
 * `crypto`: the client has crypto set up.
 */
function world(opts: {
  features?: string[];
  roomEncrypted?: boolean;
  knowsRoom?: boolean;
  crypto?: boolean;
  answer?: (c: Call) => unknown;
}): World {
  const features = new Set(opts.features ?? ["org.matrix.msc4140", "org.matrix.msc4354"]);
  const w: World = { http: [], pipeline: [], state: 0, client: undefined as unknown as ClientLike };
  let txn = 0;
  let ids = 0;
  const client = {
    http: {
      authedRequest: async (
        method: string,
        path: string,
        query?: Record<string, string>,
        body?: unknown,
      ): Promise<unknown> => {
        const c = { method, path, query, body };
        w.http.push(c);
        const custom = opts.answer?.(c);
        if (custom !== undefined) {
          if (custom instanceof Error) throw custom;
          return custom;
        }
        if (path.includes("/state/m.room.encryption/")) {
          if (opts.roomEncrypted) return { algorithm: "m.megolm.v1.aes-sha2" };
          throw matrixError(404, "M_NOT_FOUND");
        }
        if (method === "PUT" && path.includes("/send/"))
          return query?.["org.matrix.msc4140.delay"] !== undefined
            ? { delay_id: `syd_${++ids}` }
            : { event_id: `$ev${++ids}` };
        // MSC4140 management (the heartbeat's restart, the leave's send) and the dialect's /versions.
        if (path.includes("/delayed_events")) return method === "GET" ? { delayed_events: [] } : {};
        if (path === "/versions")
          return {
            versions: ["v1.11"],
            unstable_features: Object.fromEntries([...features].map((f) => [f, true])),
          };
        if (method === "GET" && path.includes("/event/"))
          return {
            content: { slot_id: "m.call#ROOM" },
            origin_server_ts: 5,
            event_id: "$ev1",
            sender: "@a:l",
          };
        throw matrixError(404, "M_UNRECOGNIZED");
      },
    },
    makeTxnId: () => `txn${++txn}`,
    doesServerSupportUnstableFeature: async (f: string) => features.has(f),
    getRoom: (roomId: string) =>
      opts.knowsRoom && roomId === ROOM ? { hasEncryptionStateEvent: () => !!opts.roomEncrypted } : null,
    getCrypto: () => (opts.crypto ? {} : undefined),
    _unstable_sendStickyEvent: async (
      roomId: string,
      duration: number,
      _thread: string | null,
      type: string,
      content: Record<string, unknown>,
    ) => {
      w.pipeline.push({ roomId, duration, type, content });
      return { event_id: `$enc${++ids}` };
    },
    _unstable_sendDelayedStateEvent: async () => {
      w.state++;
      return { delay_id: "syd_state" };
    },
    _unstable_restartScheduledDelayedEvent: async () => ({}),
    _unstable_sendScheduledDelayedEvent: async () => ({}),
    _unstable_cancelScheduledDelayedEvent: async () => ({}),
    sendStateEvent: async () => {
      w.state++;
      return {};
    },
    getCapabilities: async () => ({}),
    getStateEvent: async () => {
      throw matrixError(404, "M_NOT_FOUND");
    },
    _unstable_getDelayedEvents: async () => ({ delayed_events: [] }),
    getUserId: () => "@alice:localhost",
  };
  w.client = client as unknown as ClientLike;
  return w;
}

const membership = (memberId: string) => ({
  roomId: ROOM,
  eventType: RTC_MEMBER_EVENT_TYPE,
  stickyKey: memberId,
  content: { slot_id: "m.call#ROOM", member: { id: memberId }, msc4354_sticky_key: memberId },
  durationMs: 3_600_000,
});

/** Requests that put something on the server (anything but reads). */
const sends = (w: World) => w.http.filter((c) => c.method !== "GET");

describe("ClientBackend sticky events: the wire", () => {
  it("the delayed leave and the membership go to /send with js-sdk 43's unstable parameters", async () => {
    const w = world({});
    const b = new ClientBackend(w.client);
    const leave = { ...membership("m1"), content: { slot_id: "m.call#ROOM", msc4354_sticky_key: "m1" } };
    await expect(b.sendDelayedStickyEvent({ ...leave, delayMs: 8000 })).resolves.toBe("syd_1");
    await expect(b.sendStickyEvent(membership("m1"))).resolves.toBe("$ev2");
    expect(sends(w)).toEqual([
      {
        method: "PUT",
        path: `/rooms/${encodeURIComponent(ROOM)}/send/${RTC_MEMBER_EVENT_TYPE}/txn1`,
        query: { "org.matrix.msc4354.sticky_duration_ms": "3600000", "org.matrix.msc4140.delay": "8000" },
        body: leave.content,
      },
      {
        method: "PUT",
        path: `/rooms/${encodeURIComponent(ROOM)}/send/${RTC_MEMBER_EVENT_TYPE}/txn2`,
        query: { "org.matrix.msc4354.sticky_duration_ms": "3600000" },
        body: membership("m1").content,
      },
    ]);
    expect(w.pipeline).toEqual([]);
  });

  it("a delayed send answered with an event id (the delay ignored) is a DelayIgnoredError", async () => {
    const w = world({ answer: (c) => (c.method === "PUT" ? { event_id: "$now" } : undefined) });
    const b = new ClientBackend(w.client);
    await expect(b.sendDelayedStickyEvent({ ...membership("m1"), delayMs: 8000 })).rejects.toMatchObject({
      name: "DelayIgnoredError",
    });
  });

  it("an answer without a usable event id is a MalformedResponseError", async () => {
    for (const body of [{}, { event_id: 5 }, { event_id: "no-dollar" }, null]) {
      const w = world({ answer: (c) => (c.method === "PUT" ? (body ?? "null-body") : undefined) });
      const b = new ClientBackend(w.client);
      await expect(b.sendStickyEvent(membership("m1"))).rejects.toMatchObject({
        name: "MalformedResponseError",
      });
    }
  });

  it("reads one event back by id; a missing one is undefined", async () => {
    const w = world({});
    const b = new ClientBackend(w.client);
    await expect(b.readEvent(ROOM, "$ev1")).resolves.toEqual({
      content: { slot_id: "m.call#ROOM" },
      originServerTs: 5,
      eventId: "$ev1",
      sender: "@a:l",
    });
    const gone = world({
      answer: (c) => (c.path.includes("/event/") ? matrixError(404, "M_NOT_FOUND") : undefined),
    });
    await expect(new ClientBackend(gone.client).readEvent(ROOM, "$x")).resolves.toBeUndefined();
  });
});

describe("ClientBackend sticky events: a server without MSC4354", () => {
  it("refuses with StickyEventsUnsupportedError before anything is sent", async () => {
    const w = world({ features: ["org.matrix.msc4140"] });
    const b = new ClientBackend(w.client);
    await expect(b.sendStickyEvent(membership("m1"))).rejects.toBeInstanceOf(StickyEventsUnsupportedError);
    await expect(b.sendDelayedStickyEvent({ ...membership("m1"), delayMs: 8000 })).rejects.toBeInstanceOf(
      StickyEventsUnsupportedError,
    );
    expect(w.http).toEqual([]);
    expect(w.pipeline).toEqual([]);
  });
});

describe("ClientBackend sticky events: an encrypted room", () => {
  it("with crypto and a synced room: the membership goes through js-sdk's encrypting pipeline", async () => {
    const w = world({ roomEncrypted: true, knowsRoom: true, crypto: true });
    const b = new ClientBackend(w.client);
    await expect(b.sendStickyEvent(membership("m1"))).resolves.toBe("$enc1");
    expect(w.pipeline).toEqual([
      { roomId: ROOM, duration: 3_600_000, type: RTC_MEMBER_EVENT_TYPE, content: membership("m1").content },
    ]);
    // Nothing in the clear: no PUT of ours (the room's own view said it is encrypted: no read either).
    expect(w.http).toEqual([]);
  });

  it("our own failed membership echo is dropped before the next attempt (js-sdk would block every send behind it)", async () => {
    const w = world({ roomEncrypted: true, knowsRoom: true, crypto: true });
    const ours = { status: "not_sent", getType: () => RTC_MEMBER_EVENT_TYPE };
    const sending = { status: "sending", getType: () => RTC_MEMBER_EVENT_TYPE };
    const theirs = { status: "not_sent", getType: () => "m.room.message" };
    const cancelled: unknown[] = [];
    const client = w.client as unknown as Record<string, unknown>;
    client.getRoom = () => ({
      hasEncryptionStateEvent: () => true,
      getPendingEvents: () => [ours, sending, theirs],
    });
    client.cancelPendingEvent = (e: unknown) => cancelled.push(e);
    await expect(new ClientBackend(w.client).sendStickyEvent(membership("m1"))).resolves.toBe("$enc1");
    expect(cancelled).toEqual([ours]);
    // Chronological ordering (js-sdk throws from getPendingEvents): nothing to drop, still sent.
    client.getRoom = () => ({
      hasEncryptionStateEvent: () => true,
      getPendingEvents: () => {
        throw new Error("Cannot call getPendingEvents with pendingEventOrdering == chronological");
      },
    });
    await expect(new ClientBackend(w.client).sendStickyEvent(membership("m1"))).resolves.toMatch(/^\$enc/);
  });

  it("without crypto: EncryptionUnavailableError, nothing sent", async () => {
    const w = world({ roomEncrypted: true, knowsRoom: true, crypto: false });
    const b = new ClientBackend(w.client);
    await expect(b.sendStickyEvent(membership("m1"))).rejects.toBeInstanceOf(EncryptionUnavailableError);
    expect(sends(w)).toEqual([]);
    expect(w.pipeline).toEqual([]);
  });

  it("a client that does not sync the room: the server's m.room.encryption decides; it cannot encrypt, nothing sent", async () => {
    // js-sdk would send this in the clear: it encrypts only for rooms it knows.
    const w = world({ roomEncrypted: true, knowsRoom: false, crypto: true });
    const b = new ClientBackend(w.client);
    await expect(b.sendStickyEvent(membership("m1"))).rejects.toBeInstanceOf(EncryptionUnavailableError);
    expect(w.http.map((c) => `${c.method} ${c.path}`)).toEqual([
      `GET /rooms/${encodeURIComponent(ROOM)}/state/m.room.encryption/`,
    ]);
    expect(w.pipeline).toEqual([]);
  });

  it("a room that is not encrypted, by the server's state (a client that does not sync): sent over HTTP", async () => {
    const w = world({ roomEncrypted: false, knowsRoom: false });
    const b = new ClientBackend(w.client);
    await expect(b.sendStickyEvent(membership("m1"))).resolves.toMatch(/^\$ev/);
    expect(sends(w)).toHaveLength(1);
  });
});

describe("the manager over ClientBackend in the sticky format: typed errors, nothing sent", () => {
  async function run(w: World) {
    const time = new VirtualTime();
    const manager = new MembershipManager({
      backend: new ClientBackend(w.client),
      roomId: ROOM,
      userId: "@alice:localhost",
      deviceId: "DEV",
      scheduler: time.scheduler,
      logger: quiet,
      random: () => 0.5,
      delayedLeaveDelayMs: 2000,
      membershipFormat: "sticky",
    });
    const codes: string[] = [];
    manager.errors$.subscribe((e) => codes.push(e.code));
    manager.join();
    await time.advance(10_000);
    const state = manager.state;
    manager.dispose();
    return { state, codes };
  }

  it("no MSC4354: failed with sticky-events-unsupported; no request that writes, no state event", async () => {
    const w = world({ features: ["org.matrix.msc4140"] });
    const { state, codes } = await run(w);
    expect(state).toMatchObject({ kind: "failed", error: { code: "sticky-events-unsupported" } });
    expect(codes).toContain("sticky-events-unsupported");
    expect(sends(w)).toEqual([]);
    expect(w.state).toBe(0);
  });

  it("an encrypted room, a client without crypto: the delayed leave (slot and key only) and then encryption-unavailable; no membership sent", async () => {
    const w = world({ roomEncrypted: true, knowsRoom: true, crypto: false });
    const { state, codes } = await run(w);
    expect(state).toMatchObject({ kind: "failed", error: { code: "encryption-unavailable" } });
    expect(codes).toContain("encryption-unavailable");
    // Whatever went out carries no membership: only MSC4143's "left" (the delayed leave, its send).
    const bodies = sends(w)
      .map((c) => c.body)
      .filter((b) => b !== undefined);
    for (const body of bodies)
      expect(Object.keys(body as object).sort()).toEqual(["msc4354_sticky_key", "slot_id"]);
    expect(w.pipeline).toEqual([]);
    expect(w.state).toBe(0);
  });

  it("an encrypted room, a client with crypto: joined, the membership through the pipeline", async () => {
    const w = world({ roomEncrypted: true, knowsRoom: true, crypto: true });
    const { state } = await run(w);
    expect(state).toMatchObject({ kind: "joined", delayedLeave: true });
    expect(w.pipeline.length).toBeGreaterThanOrEqual(1);
    expect(w.pipeline[0].content).toMatchObject({
      member: { user_id: "@alice:localhost", device_id: "DEV" },
    });
    const clear = sends(w).filter(
      (c) => c.method === "PUT" && c.query?.["org.matrix.msc4140.delay"] === undefined,
    );
    expect(clear).toEqual([]);
  });
});

describe("a client that does not sync the room: the encryption read goes beside the delayed leave", () => {
  it("the join's membership write finds the answer (one GET, sent before the delayed leave's answer)", async () => {
    const w = world({ roomEncrypted: false, knowsRoom: false });
    const b = new ClientBackend(w.client);
    await b.sendDelayedStickyEvent!({
      ...membership("m1"),
      content: { slot_id: "m.call#ROOM" },
      delayMs: 2000,
    });
    const reads = () => w.http.filter((c) => c.path.includes("/state/m.room.encryption/"));
    expect(reads()).toHaveLength(1);
    // Asked before the delayed leave's PUT went out (beside it, not after it).
    const order = w.http.map(
      (c) => `${c.method} ${c.path.includes("encryption") ? "encryption" : c.path.split("/")[3]}`,
    );
    expect(order.indexOf("GET encryption")).toBeLessThan(order.findIndex((o) => o.startsWith("PUT")));
    await expect(b.sendStickyEvent(membership("m1"))).resolves.toMatch(/^\$ev/);
    expect(reads()).toHaveLength(1);
  });

  it("an encrypted room is still found: the membership is refused without crypto, nothing sent in the clear", async () => {
    const w = world({ roomEncrypted: true, knowsRoom: false });
    const b = new ClientBackend(w.client);
    await b.sendDelayedStickyEvent!({
      ...membership("m1"),
      content: { slot_id: "m.call#ROOM" },
      delayMs: 2000,
    });
    await expect(b.sendStickyEvent(membership("m1"))).rejects.toThrow(/encrypted/);
    expect(sends(w).filter((c) => c.query?.["org.matrix.msc4140.delay"] === undefined)).toEqual([]);
  });
});
