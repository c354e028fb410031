/**
 * Widget mode reads sticky memberships (issue 21 item 1): a `WidgetStateSource` takes the
 * `org.matrix.msc4143.rtc.member` sticky events a host pushes as `send_event` (MSC4407; at negotiation from
 * its `readStickyEvents`, then each new one), and `callMembers$` lists them beside the state members pushed
 * with `update_state`, by the rules of client mode: one entry per device, expiry from the TTL counted from
 * receipt, MSC4354's winner per (sender, sticky key), a state membership hidden by its sender's sticky key,
 * a closed slot, malformed ones ignored at debug. Fed incrementally (issue 24): the events pushed within
 * `stickyBatchMs` are one evaluation and one list, one more member costs one parse.
 * Virtual time; the widget API is a stand-in emitter here (the real matrix-widget-api on both ends:
 * test/integration/widget/observer-sticky-bus.test.ts).
 */
import { describe, expect, it, jest } from "@jest/globals";
import fc from "fast-check";
import loglevel from "loglevel";
import { EventEmitter } from "node:events";
import { VirtualAction, VirtualTimeScheduler } from "rxjs";
import {
  RTC_SLOT_EVENT_TYPE,
  STICKY_BATCH_MS,
  WidgetStateSource,
  callMembers$,
  callMembersState$,
  rejectedMemberships$,
  widgetObserverCapabilities,
  type CallMember,
  type RejectedMembership,
  type SourceLike,
  type StateEventLike,
  type WidgetStateApi,
} from "../../src/index.js";
import { storeCounters } from "../../src/membership/store.js";
import { FakeSyncClient, ROOM, ServerRoom, idsOf, nextId, stickyMember } from "../helpers/observerWorld.js";

const HOUR = 3_600_000;
const scheduler = () => new VirtualTimeScheduler(VirtualAction, Infinity);

/** Run what is due up to `ms` from now, then stand at that time. */
function advance(s: VirtualTimeScheduler, ms: number): void {
  const target = s.frame + ms;
  s.maxFrames = target;
  s.flush();
  s.frame = Math.max(s.frame, target);
  s.maxFrames = Infinity;
}

/** A stand-in for matrix-widget-api's `WidgetApi`: the host's pushes as its events, the replies recorded. */
function fakeWidget() {
  const emitter = new EventEmitter();
  const replies: unknown[] = [];
  const api = Object.assign(emitter, {
    getClientVersions: async () => ["org.matrix.msc2762_update_state"],
    readStateEvents: async () => [],
    transport: { reply: (request: unknown) => void replies.push(request) },
  });
  const pushState = (state: unknown[]) =>
    emitter.emit(
      "action:update_state",
      new CustomEvent("action:update_state", { detail: { data: { state } }, cancelable: true }),
    );
  /** The host's `send_event`: a copy of the event, as postMessage makes one. */
  const pushEvent = (event: unknown, preventedBy?: "another listener") => {
    const ev = new CustomEvent("action:send_event", {
      detail: { action: "send_event", data: structuredClone(event) },
      cancelable: true,
    });
    if (preventedBy) ev.preventDefault();
    emitter.emit("action:send_event", ev);
    return ev;
  };
  return { api: api as unknown as WidgetStateApi, emitter, pushState, pushEvent, replies };
}

function work(fn: () => void): { evaluations: number; parses: number } {
  const before = { ...storeCounters };
  fn();
  return {
    evaluations: storeCounters.evaluations - before.evaluations,
    parses: storeCounters.parses - before.parses,
  };
}

function watch(source: SourceLike, s: VirtualTimeScheduler, roomId?: string) {
  const lists: CallMember[][] = [];
  const sub = callMembers$(source, { scheduler: s, roomId }).subscribe((m) => lists.push(m));
  return {
    lists,
    latest: () => lists.at(-1) ?? [],
    ids: () => idsOf(lists.at(-1) ?? []),
    stop: () => sub.unsubscribe(),
  };
}

function slotEvent(server: ServerRoom, status: string): StateEventLike {
  return server.put(RTC_SLOT_EVENT_TYPE, "m.call#ROOM", "@admin:hs", {
    status,
    application: { type: "m.call" },
  });
}

describe("widget mode: pushed sticky memberships", () => {
  it("asks for the sticky capabilities beside the state ones", () => {
    expect(widgetObserverCapabilities(ROOM)).toEqual([
      "org.matrix.msc2762.receive.state_event:org.matrix.msc3401.call.member",
      "org.matrix.msc2762.receive.state_event:m.room.member",
      `org.matrix.msc2762.timeline:${ROOM}`,
      "org.matrix.msc2762.receive.event:org.matrix.msc4143.rtc.member",
      "org.matrix.msc4407.receive.sticky_event",
      "org.matrix.msc2762.receive.state_event:org.matrix.msc4143.rtc.slot",
    ]);
  });

  it("lists sticky members beside state members as client mode does; a leave drops one at once; a closed slot hides them", () => {
    const server = new ServerRoom();
    const s = scheduler();
    const w = fakeWidget();
    const source = new WidgetStateSource(w.api, ROOM, { backfill: "never", scheduler: s });
    const client = new FakeSyncClient();
    const ours = watch(source, s);
    const theirs = watch(client, s, ROOM);
    const both = (state: StateEventLike[], sticky: StateEventLike[] = []) => {
      w.pushState(state);
      client.sync(state);
      for (const e of sticky) {
        w.pushEvent(e);
        const ttl = (e.unsigned as { msc4354_sticky_duration_ttl_ms: number }).msc4354_sticky_duration_ttl_ms;
        client.syncSticky([e], s.now() + ttl);
      }
      advance(s, STICKY_BATCH_MS);
    };
    const users = ["@a:hs", "@b:hs", "@c:hs"];
    // b also holds a state membership under its sticky key: the sticky one stands for the device.
    const bStateUnderStickyKey = server.put("org.matrix.msc3401.call.member", "mem-B", "@b:hs", {
      application: "m.call",
      call_id: "",
      scope: "m.room",
      device_id: "B",
      focus_active: { type: "livekit", focus_selection: "oldest_membership" },
      foci_preferred: [],
    });
    both(
      [...users.map((u) => server.join(u)), server.call("@a:hs", "A"), bStateUnderStickyKey],
      [stickyMember("@b:hs", "B", { ts: server.tick() })],
    );
    both([server.call("@c:hs", "C")]);
    expect(ours.ids()).toEqual(["@a:hs|A", "@b:hs|B", "@c:hs|C"]);
    expect(ours.ids()).toEqual(theirs.ids());
    const b = ours.latest()[1];
    expect(b).toMatchObject({ stickyKey: "mem-B", memberId: "mem-B", expiresAt: HOUR });
    expect(b.eventId).toBe(theirs.latest()[1].eventId);

    // js-sdk 43's leave at b's key: dropped at once, in both modes.
    both(
      [],
      [
        stickyMember("@b:hs", "B", {
          ts: server.tick(),
          content: { slot_id: "m.call#ROOM", msc4354_sticky_key: "mem-B" },
        }),
      ],
    );
    expect(ours.ids()).toEqual(["@a:hs|A", "@c:hs|C"]);
    expect(ours.ids()).toEqual(theirs.ids());

    // A new sticky device, then the slot closes: no sticky member, state members stay (js-sdk's rule).
    both([], [stickyMember("@a:hs", "A2", { ts: server.tick() })]);
    expect(ours.ids()).toEqual(["@a:hs|A", "@c:hs|C", "@a:hs|A2"]);
    both([slotEvent(server, "closed")]);
    expect(ours.ids()).toEqual(["@a:hs|A", "@c:hs|C"]);
    expect(ours.ids()).toEqual(theirs.ids());
    both([slotEvent(server, "open")]);
    expect(ours.ids()).toEqual(["@a:hs|A", "@c:hs|C", "@a:hs|A2"]);
    expect(ours.ids()).toEqual(theirs.ids());
    ours.stop();
    theirs.stop();
    source.close();
  });

  it("expiry comes from the TTL counted from receipt, also for a subscriber that comes later", () => {
    const s = scheduler();
    const w = fakeWidget();
    const source = new WidgetStateSource(w.api, ROOM, { backfill: "never", scheduler: s });
    const server = new ServerRoom();
    w.pushState([server.join("@a:hs"), server.join("@b:hs")]);
    advance(s, 1_000);
    // Sent long ago (origin_server_ts 1 000 on a server clock far ahead of ours), 10 s of stickiness left.
    w.pushEvent(stickyMember("@a:hs", "A", { ts: 5_000_000, ttl: 10_000 }));
    // No TTL: the duration from the event's time, or from receipt when that is later.
    w.pushEvent(stickyMember("@b:hs", "B", { ts: 5_000_000, ttl: null, durationMs: 20_000 }));
    advance(s, STICKY_BATCH_MS);
    const first = watch(source, s);
    expect(first.ids()).toEqual(["@a:hs|A", "@b:hs|B"]);
    expect(first.latest().map((m) => m.expiresAt)).toEqual([11_000, 21_000]);
    first.stop();

    // 4 s later a new subscriber reads the whole source: the same expiry, not 10 s from its own now.
    advance(s, 4_000);
    const later = watch(source, s);
    expect(later.latest().map((m) => m.expiresAt)).toEqual([11_000, 21_000]);
    advance(s, 11_000 - s.now() - 1);
    expect(later.ids()).toEqual(["@a:hs|A", "@b:hs|B"]);
    advance(s, 1);
    expect(later.ids()).toEqual(["@b:hs|B"]);
    advance(s, 10_000);
    expect(later.ids()).toEqual([]);
    later.stop();
    // Expired ones are not handed to a new reader either.
    const snapshots: { members: CallMember[]; rejected: RejectedMembership[] }[] = [];
    callMembersState$(source, { scheduler: s })
      .subscribe((x) => snapshots.push(x))
      .unsubscribe();
    expect(snapshots.map((x) => [x.members, x.rejected])).toEqual([[[], []]]);
    source.close();
  });

  it("coalesces: the host's push of a whole call is one evaluation and one list; one more member costs one parse", () => {
    const s = scheduler();
    const w = fakeWidget();
    const source = new WidgetStateSource(w.api, ROOM, { backfill: "never", scheduler: s });
    const server = new ServerRoom();
    const users = Array.from({ length: 300 }, (_, i) => `@u${i}:hs`);
    w.pushState(users.map((u) => server.join(u, 10)));
    const o = watch(source, s);
    expect(o.lists).toEqual([[]]);

    // The negotiation push: one send_event per member, every few ms (within one batch).
    const pushed = work(() => {
      users.forEach((u, i) => {
        w.pushEvent(stickyMember(u, `D${i}`, { ts: 1_000 + i }));
        advance(s, i % 50 === 49 ? 1 : 0);
      });
      advance(s, STICKY_BATCH_MS);
    });
    expect(o.lists).toHaveLength(2);
    expect(o.latest()).toHaveLength(300);
    expect(pushed.evaluations).toBe(1);
    expect(pushed.parses).toBe(300);

    // One more member: one parse, one evaluation, one list.
    const one = work(() => {
      w.pushEvent(stickyMember("@u7:hs", "D7b", { ts: 9_000, key: "mem-D7" }));
      advance(s, STICKY_BATCH_MS);
    });
    expect(one).toEqual({ evaluations: 1, parses: 1 });
    expect(o.lists).toHaveLength(3);
    expect(o.ids().at(-1)).toBe("@u7:hs|D7b");
    expect(o.ids()).toHaveLength(300);

    // A sticky event waiting for its batch goes out with the next state push: one list for both.
    const mixed = work(() => {
      w.pushEvent(stickyMember("@u8:hs", "D8b", { ts: 9_001, key: "mem-D8" }));
      w.pushState([server.join("@new:hs"), server.call("@new:hs", "N")]);
    });
    expect(mixed.evaluations).toBe(1);
    expect(o.lists).toHaveLength(4);
    expect(o.ids().slice(-2)).toEqual(["@u7:hs|D7b", "@u8:hs|D8b"]);
    advance(s, STICKY_BATCH_MS);
    expect(o.lists).toHaveLength(4);

    // Pushes further apart than the batch are lists of their own (bounded by the batch, never one per event).
    const apart = work(() => {
      for (let i = 0; i < 3; i++) {
        w.pushEvent(stickyMember(`@u${20 + i}:hs`, `E${i}`, { ts: 9_100 + i, key: `mem-D${20 + i}` }));
        advance(s, STICKY_BATCH_MS + 5);
      }
    });
    expect(apart.evaluations).toBe(3);
    expect(o.lists).toHaveLength(7);
    o.stop();
    source.close();
  });

  it("a copy of the held event (timeline and sticky feed alike) or an older one changes nothing", () => {
    const s = scheduler();
    const w = fakeWidget();
    const source = new WidgetStateSource(w.api, ROOM, { backfill: "never", scheduler: s });
    const server = new ServerRoom();
    w.pushState([server.join("@a:hs")]);
    const older = stickyMember("@a:hs", "A", { ts: 2_000 });
    const newer = stickyMember("@a:hs", "A2", { ts: 3_000, key: "mem-A" });
    w.pushEvent(newer);
    advance(s, STICKY_BATCH_MS);
    const o = watch(source, s);
    expect(o.ids()).toEqual(["@a:hs|A2"]);
    const nothing = work(() => {
      // The same event again, as a host's timeline feed and its sticky feed both hand it over, later.
      w.pushEvent({ ...newer, unsigned: { msc4354_sticky_duration_ttl_ms: HOUR - 5_000 } });
      // The event it replaced, late.
      w.pushEvent(older);
      advance(s, STICKY_BATCH_MS);
    });
    expect(nothing).toEqual({ evaluations: 0, parses: 0 });
    expect(o.lists).toHaveLength(1);
    expect(o.latest()[0].eventId).toBe(newer.event_id);
    expect(o.latest()[0].expiresAt).toBe(HOUR);
    o.stop();
    source.close();
  });

  it("ignores what is no sticky membership of this room; malformed ones are said at debug (and rejected when the store can read them)", () => {
    const debug = jest
      .spyOn(loglevel.getLogger("matrixrtc-membership"), "debug")
      .mockImplementation(() => undefined);
    try {
      const s = scheduler();
      const w = fakeWidget();
      const source = new WidgetStateSource(w.api, ROOM, { backfill: "never", scheduler: s });
      const server = new ServerRoom();
      w.pushState([server.join("@a:hs"), server.join("@m:hs")]);
      const rejected: RejectedMembership[] = [];
      const o = watch(source, s);
      const sub = rejectedMemberships$(source, { scheduler: s }).subscribe((r) => rejected.push(r));
      const base = () =>
        stickyMember("@a:hs", "A", { ts: server.tick() }) as unknown as Record<string, unknown>;
      const plain = base();
      delete plain.msc4354_sticky;
      const otherRoom = { ...base(), room_id: "!other:hs" };
      const asState = { ...base(), state_key: "" };
      const noDuration = { ...base(), msc4354_sticky: {} };
      const zero = { ...base(), msc4354_sticky: { duration_ms: 0 }, unsigned: {} };
      const expired = { ...stickyMember("@a:hs", "A", { ts: 1, ttl: null, durationMs: 500 }) };
      const noMemberId = stickyMember("@a:hs", "A", {
        ts: server.tick(),
        content: {
          slot_id: "m.call#ROOM",
          application: { type: "m.call" },
          transports: { published: [], can_subscribe: [] },
          member: { user_id: "@a:hs", device_id: "A" },
          msc4354_sticky_key: "k1",
        },
      });
      const forged = stickyMember("@m:hs", "M", { ts: server.tick() });
      (forged.content as { member: { user_id: string } }).member.user_id = "@a:hs";
      advance(s, 1_000);
      for (const e of [plain, otherRoom, asState, noDuration, zero, expired, noMemberId, forged, null, "x"])
        w.pushEvent(e);
      advance(s, STICKY_BATCH_MS);
      expect(o.lists).toEqual([[]]);
      expect(rejected.map((r) => [r.sender, r.reason])).toEqual([
        ["@a:hs", "invalid-content"],
        ["@m:hs", "invalid-content"],
      ]);
      expect(rejected[0].details.join()).toContain("member.id");
      const said = debug.mock.calls.map((c) => String(c[0])).filter((l) => l.includes("sticky membership"));
      // Two with no usable duration (at the source), two with bad content (at the store).
      expect(said).toHaveLength(4);
      expect(said.filter((l) => l.includes("duration_ms"))).toHaveLength(2);
      // A rejected one goes when its stickiness runs out, like any other.
      advance(s, HOUR);
      const snapshot: { rejected: RejectedMembership[] }[] = [];
      callMembersState$(source, { scheduler: s })
        .subscribe((x) => snapshot.push(x))
        .unsubscribe();
      expect(snapshot.at(-1)!.rejected).toEqual([]);
      sub.unsubscribe();
      o.stop();
      source.close();
    } finally {
      debug.mockRestore();
    }
  });

  it("acknowledges every push once (unless another listener already does); close() stops listening and its batch timer", () => {
    const s = scheduler();
    const w = fakeWidget();
    const source = new WidgetStateSource(w.api, ROOM, { backfill: "never", scheduler: s });
    const server = new ServerRoom();
    w.pushState([server.join("@a:hs")]);
    const o = watch(source, s);
    const a = w.pushEvent(stickyMember("@a:hs", "A", { ts: server.tick() }));
    const chat = w.pushEvent({ type: "m.room.message", room_id: ROOM, event_id: nextId(), content: {} });
    w.pushEvent(stickyMember("@a:hs", "A", { ts: server.tick(), key: "other" }), "another listener");
    expect(w.replies.filter((r) => (r as { action?: string }).action === "send_event")).toEqual([
      a.detail,
      chat.detail,
    ]);
    expect(a.defaultPrevented).toBe(true);
    // A batch is waiting; closing drops it and the timer.
    expect(s.actions.filter((x) => !x.closed)).toHaveLength(1);
    source.close();
    expect(s.actions.filter((x) => !x.closed)).toHaveLength(0);
    expect(w.emitter.listenerCount("action:send_event")).toBe(0);
    expect(w.emitter.listenerCount("action:update_state")).toBe(0);
    advance(s, STICKY_BATCH_MS);
    expect(o.lists).toEqual([[]]);
    o.stop();
    expect(() => new WidgetStateSource(w.api, ROOM, { stickyBatchMs: -1 })).toThrow(RangeError);
  });

  it("property: over random histories the widget lists what client mode lists, member for member", () => {
    type Op =
      | { kind: "state-call" | "state-hangup" | "room-leave" | "room-join"; user: number }
      | { kind: "sticky-join" | "sticky-leave"; user: number; key: number }
      | { kind: "copy"; back: number }
      | { kind: "slot"; open: boolean }
      | { kind: "wait"; ms: number };
    const user = fc.integer({ min: 0, max: 3 });
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        kind: fc.constantFrom(
          "state-call" as const,
          "state-hangup" as const,
          "room-leave" as const,
          "room-join" as const,
        ),
        user,
      }),
      fc.record({
        kind: fc.constantFrom("sticky-join" as const, "sticky-leave" as const),
        user,
        key: fc.integer({ min: 0, max: 1 }),
      }),
      fc.record({ kind: fc.constant("copy" as const), back: fc.integer({ min: 1, max: 5 }) }),
      fc.record({ kind: fc.constant("slot" as const), open: fc.boolean() }),
      fc.record({ kind: fc.constant("wait" as const), ms: fc.integer({ min: 0, max: 15_000 }) }),
    );
    fc.assert(
      // One stickiness per history (every writer we know uses one: then js-sdk 43's "newest" and MSC4354's
      // "expires last" pick the same event, and the stand-in client's map, which keeps the newest, is right).
      fc.property(
        fc.array(op, { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1_000, max: 20_000 }),
        (ops, duration) => {
          const server = new ServerRoom();
          const s = scheduler();
          const w = fakeWidget();
          const source = new WidgetStateSource(w.api, ROOM, {
            backfill: "never",
            scheduler: s,
            stickyBatchMs: 0,
          });
          const client = new FakeSyncClient();
          // The server's clock runs with ours (a fixed offset), as it does for a live client.
          let serverNow = 0;
          const ts = () => (serverNow = Math.max(serverNow + 1, 1_000_000 + s.now()));
          const users = ["@a:hs", "@b:hs", "@c:hs", "@d:hs"];
          const initial = users.map((u) => server.join(u, ts()));
          w.pushState(initial);
          client.sync(initial);
          const ours = watch(source, s);
          const theirs = watch(client, s, ROOM);
          const sent: { event: StateEventLike; at: number }[] = [];
          const view = (m: CallMember[]) => m.map((x) => [x.userId, x.deviceId, x.eventId, x.expiresAt]);
          const state = (e: StateEventLike) => {
            w.pushState([e]);
            client.sync([e]);
          };
          try {
            for (const o of ops) {
              if (o.kind === "state-call") state(server.call(users[o.user], "S", {}, ts()));
              else if (o.kind === "state-hangup") state(server.hangUp(users[o.user], "S", ts()));
              else if (o.kind === "room-leave") state(server.leave(users[o.user], ts()));
              else if (o.kind === "room-join") state(server.join(users[o.user], ts()));
              else if (o.kind === "slot")
                state(
                  server.put(
                    RTC_SLOT_EVENT_TYPE,
                    "m.call#ROOM",
                    "@admin:hs",
                    {
                      status: o.open ? "open" : "closed",
                      application: { type: "m.call" },
                    },
                    ts(),
                  ),
                );
              else if (o.kind === "wait") advance(s, o.ms);
              else if (o.kind === "copy") {
                // Hosts hand some events over twice (timeline and sticky feed), with the TTL of the moment:
                // only the widget sees the copy.
                const copy = sent.at(-o.back);
                const ttl = copy ? duration - (s.now() - copy.at) : 0;
                if (copy && ttl > 0)
                  w.pushEvent({ ...copy.event, unsigned: { msc4354_sticky_duration_ttl_ms: ttl } });
                advance(s, 0);
              } else if (o.kind === "sticky-join" || o.kind === "sticky-leave") {
                const key = `k${o.key}`;
                const e = stickyMember(users[o.user], `${users[o.user].slice(1, 2)}${o.key}`, {
                  ts: ts(),
                  key,
                  ttl: duration,
                  durationMs: duration,
                  ...(o.kind === "sticky-leave"
                    ? { content: { slot_id: "m.call#ROOM", msc4354_sticky_key: key } }
                    : {}),
                });
                sent.push({ event: e, at: s.now() });
                w.pushEvent(e);
                client.syncSticky([e], s.now() + duration);
                advance(s, 0);
              }
              expect(view(ours.latest())).toEqual(view(theirs.latest()));
            }
            // A reader that starts now (a full read of both sources) agrees too.
            ours.stop();
            theirs.stop();
            const late = watch(source, s);
            const lateClient = watch(client, s, ROOM);
            expect(view(late.latest())).toEqual(view(lateClient.latest()));
            late.stop();
            lateClient.stop();
          } finally {
            ours.stop();
            theirs.stop();
            source.close();
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
