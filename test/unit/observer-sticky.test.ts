/**
 * The observer lists sticky memberships (issue 21 item 2): MatrixRTC 2.0's `org.matrix.msc4143.rtc.member`
 * events made sticky by MSC4354, in js-sdk 43's content dialect and in MSC4143's newer one, beside state
 * memberships; expiry from the server's TTL; MSC4354's "last to expire wins, then the highest event id";
 * js-sdk's rule that a state membership whose key is a sticky key of the same sender is not listed; a
 * slot closed by its `rtc.slot` state event lists no sticky member; malformed ones are rejected with a
 * reason (and said at debug). Compared with js-sdk 43's `sessionMembershipsForSlot` where js-sdk is right.
 * Virtual time: the lists' clock starts at 0, the server's timestamps near 1 000.
 */
import { describe, expect, it, jest } from "@jest/globals";
import loglevel from "loglevel";
import { EventTimeline, MatrixEvent } from "matrix-js-sdk";
import { MatrixRTCSession } from "matrix-js-sdk/lib/matrixrtc/index.js";
import { BehaviorSubject, VirtualAction, VirtualTimeScheduler } from "rxjs";
import {
  CALL_MEMBER_EVENT_TYPE,
  RTC_SLOT_EVENT_TYPE,
  callMembers$,
  eventsStateSource,
  rejectedMemberships$,
  type CallMember,
  type RejectedMembership,
  type StateEventLike,
} from "../../src/index.js";
import { storeCounters } from "../../src/membership/store.js";
import {
  FakeSyncClient,
  ROOM,
  ServerRoom,
  idsOf,
  memberKey,
  nextId,
  stickyMember,
} from "../helpers/observerWorld.js";

const HOUR = 3_600_000;
const scheduler = () => new VirtualTimeScheduler(VirtualAction, Infinity);

/** Every list `callMembers$` emits for a subject of event lists, as "@user|DEVICE". */
function watch(state: BehaviorSubject<StateEventLike[]>, s: VirtualTimeScheduler) {
  const lists: string[][] = [];
  let latest: CallMember[] = [];
  const sub = callMembers$(eventsStateSource(state), { scheduler: s }).subscribe((m) => {
    latest = m;
    lists.push(idsOf(m));
  });
  return { lists, latest: () => latest, stop: () => sub.unsubscribe() };
}

function slotEvent(status: string, ts: number): StateEventLike {
  return {
    type: RTC_SLOT_EVENT_TYPE,
    state_key: "m.call#ROOM",
    sender: "@admin:hs",
    content: { status, application: { type: "m.call" } },
    origin_server_ts: ts,
    event_id: nextId("$slot"),
    room_id: ROOM,
  };
}

/** js-sdk 43's list for these events (state and sticky), as "@user|DEVICE", at `now`. */
async function jsSdkList(events: readonly StateEventLike[], now: number): Promise<string[]> {
  const realNow = Date.now;
  Date.now = () => now;
  try {
    const toEvent = (e: StateEventLike) => new MatrixEvent({ ...e } as never);
    const state = events.filter((e) => e.type === CALL_MEMBER_EVENT_TYPE).map(toEvent);
    const sticky = events.filter((e) => e.type === "org.matrix.msc4143.rtc.member").map(toEvent);
    const slot = events
      .filter((e) => e.type === RTC_SLOT_EVENT_TYPE)
      .map(toEvent)
      .pop();
    const memberships = new Map<string, string>();
    for (const e of events)
      if (e.type === "m.room.member")
        memberships.set(e.state_key, (e.content as { membership: string }).membership);
    const room = {
      roomId: ROOM,
      getLiveTimeline: () => ({
        getState: (dir: string) =>
          dir === EventTimeline.FORWARDS
            ? {
                getStateEvents: (type: string, key?: string) =>
                  type === CALL_MEMBER_EVENT_TYPE
                    ? state
                    : type === RTC_SLOT_EVENT_TYPE && key
                      ? (slot ?? null)
                      : [],
              }
            : undefined,
      }),
      hasMembershipState: (userId: string, m: string) => memberships.get(userId) === m,
      _unstable_getStickyEvents: () => sticky,
    };
    const members = await MatrixRTCSession.sessionMembershipsForSlot(room as never, {
      application: "m.call",
      id: "ROOM",
    });
    return members.map((m) => `${m.userId}|${m.deviceId}`);
  } finally {
    Date.now = realNow;
  }
}

describe("sticky memberships (MatrixRTC 2.0)", () => {
  it("lists js-sdk 43's sticky members beside state members, in js-sdk's order", async () => {
    const server = new ServerRoom();
    const s = scheduler();
    const events = [server.join("@a:hs"), server.join("@b:hs"), server.join("@c:hs")];
    events.push(server.call("@a:hs", "A"));
    events.push(stickyMember("@b:hs", "B", { ts: server.tick() }));
    events.push(server.call("@c:hs", "C"));
    const w = watch(new BehaviorSubject(events), s);
    expect(w.lists).toEqual([["@a:hs|A", "@b:hs|B", "@c:hs|C"]]);
    const b = w.latest()[1];
    expect(b.stickyKey).toBe("mem-B");
    expect(b.memberId).toBe("mem-B");
    expect(b.stateKey).toBe("mem-B");
    expect(b.focusActive).toEqual({ type: "livekit", livekit_service_url: "https://lk.example" });
    expect(b.callIntent).toBe("video");
    // Expiry from the server's TTL, counted from when the list read it (time 0).
    expect(b.expiresAt).toBe(HOUR);
    expect(w.latest()[0].stickyKey).toBeUndefined();
    expect(await jsSdkList(events, s.now())).toEqual(idsOf(w.latest()));
    w.stop();
  });

  it("reads MSC4143's newer dialect (member.id and membership, sticky_key, stable sticky names)", () => {
    const server = new ServerRoom();
    const s = scheduler();
    const content = (membership: string) => ({
      slot_id: "m.call#ROOM",
      member: { id: "uuid-1", membership },
      application: { type: "m.call" },
      transports: { published: [{ type: "livekit" }], can_subscribe: [] },
      sticky_key: "uuid-1",
    });
    const join = stickyMember("@n:hs", "unused", { ts: server.tick(), content: content("join"), ttl: null });
    const raw = join as unknown as Record<string, unknown>;
    delete raw.msc4354_sticky;
    raw.sticky = { duration_ms: 600_000 };
    const state = new BehaviorSubject([server.join("@n:hs", 500), join]);
    const w = watch(state, s);
    // No device id in this dialect: the per-join member id stands for the device.
    expect(w.lists).toEqual([["@n:hs|uuid-1"]]);
    // No TTL: duration from the event's time, or from now when that is later (min(now, ts) + duration).
    expect(w.latest()[0].expiresAt).toBe(600_000);
    const leave = stickyMember("@n:hs", "unused", {
      ts: server.tick(),
      content: content("leave"),
      ttl: 600_000,
    });
    state.next([...state.value, leave]);
    expect(w.lists).toEqual([["@n:hs|uuid-1"], []]);
    w.stop();
  });

  it("drops a sticky member when its time runs out (one list), and a js-sdk 43 leave at once", () => {
    const server = new ServerRoom();
    const s = scheduler();
    const a = stickyMember("@a:hs", "A", { ts: server.tick(), ttl: 10_000 });
    const b = stickyMember("@b:hs", "B", { ts: server.tick(), ttl: 10_000 });
    const c = stickyMember("@c:hs", "C", { ts: server.tick(), ttl: 60_000 });
    const state = new BehaviorSubject([
      server.join("@a:hs", 1),
      server.join("@b:hs", 1),
      server.join("@c:hs", 1),
      a,
      b,
      c,
    ]);
    const w = watch(state, s);
    // js-sdk 43's leave: `{ slot_id, msc4354_sticky_key }`, at once.
    const left = stickyMember("@c:hs", "C", {
      ts: server.tick(),
      content: { slot_id: "m.call#ROOM", msc4354_sticky_key: "mem-C" },
    });
    state.next([...state.value, left]);
    expect(w.lists).toEqual([
      ["@a:hs|A", "@b:hs|B", "@c:hs|C"],
      ["@a:hs|A", "@b:hs|B"],
    ]);
    expect(w.latest().map((m) => m.expiresAt)).toEqual([10_000, 10_000]);
    s.flush();
    // Two expiries at one instant leave in one list, at that instant.
    expect(w.lists).toEqual([["@a:hs|A", "@b:hs|B", "@c:hs|C"], ["@a:hs|A", "@b:hs|B"], []]);
    w.stop();
  });

  it("between two events of one sender and sticky key, the one that expires last wins (MSC4354), in any order", () => {
    const server = new ServerRoom();
    // Earlier, but sticky for an hour; later, but for a minute: the earlier one expires last.
    const long = stickyMember("@a:hs", "A", { ts: 2_000, durationMs: HOUR, ttl: HOUR });
    const short = stickyMember("@a:hs", "A2", { ts: 3_000, durationMs: 60_000, ttl: 59_000, key: "mem-A" });
    for (const order of [
      [long, short],
      [short, long],
    ]) {
      const s = scheduler();
      const state = new BehaviorSubject([server.join("@a:hs", 1)]);
      const w = watch(state, s);
      for (const e of order) state.next([...state.value, e]);
      expect(w.latest().map((m) => m.eventId)).toEqual([long.event_id]);
      w.stop();
    }
    // The same expiry: the highest event id wins.
    const x = stickyMember("@a:hs", "X", { ts: 5_000, key: "k" });
    const y = stickyMember("@a:hs", "Y", { ts: 5_000, key: "k" });
    const [low, high] = [x, y].sort((p, q) => (p.event_id! < q.event_id! ? -1 : 1));
    for (const order of [
      [low, high],
      [high, low],
    ]) {
      const state = new BehaviorSubject([server.join("@a:hs", 1)]);
      const w = watch(state, scheduler());
      for (const e of order) state.next([...state.value, e]);
      expect(w.latest().map((m) => m.eventId)).toEqual([high.event_id]);
      w.stop();
    }
  });

  it("a state membership whose key is a sticky key of the same sender is not listed (js-sdk), another sender's key hides nothing", async () => {
    const server = new ServerRoom();
    const s = scheduler();
    const events = [server.join("@a:hs"), server.join("@m:hs"), server.call("@a:hs", "A")];
    // The device moved to the sticky dialect under its old state key.
    const moved = stickyMember("@a:hs", "A", { ts: server.tick(), key: memberKey("@a:hs", "A") });
    const w = watch(new BehaviorSubject([...events, moved]), s);
    expect(w.latest().map((m) => m.stickyKey)).toEqual([memberKey("@a:hs", "A")]);
    expect(await jsSdkList([...events, moved], s.now())).toEqual(idsOf(w.latest()));
    w.stop();
    // Mallory's sticky event claiming Alice's state key: js-sdk drops Alice's state membership; we do not.
    const forged = stickyMember("@m:hs", "M", { ts: server.tick(), key: memberKey("@a:hs", "A") });
    const w2 = watch(new BehaviorSubject([...events, forged]), scheduler());
    expect(idsOf(w2.latest())).toEqual(["@a:hs|A", "@m:hs|M"]);
    expect(w2.latest()[0].stickyKey).toBeUndefined();
    expect(await jsSdkList([...events, forged], s.now())).toEqual(["@m:hs|M"]);
    w2.stop();
  });

  it("a slot closed by its rtc.slot state event lists no sticky member; state members stay (as js-sdk)", async () => {
    const server = new ServerRoom();
    const s = scheduler();
    const base = [server.join("@a:hs"), server.join("@b:hs"), server.call("@a:hs", "A")];
    base.push(stickyMember("@b:hs", "B", { ts: server.tick() }));
    const state = new BehaviorSubject([...base, slotEvent("open", server.tick())]);
    const w = watch(state, s);
    expect(w.lists).toEqual([["@a:hs|A", "@b:hs|B"]]);
    const closed = [...base, slotEvent("closed", server.tick())];
    state.next(closed);
    expect(w.lists.at(-1)).toEqual(["@a:hs|A"]);
    expect(await jsSdkList(closed, s.now())).toEqual(["@a:hs|A"]);
    state.next([...base, slotEvent("open", server.tick())]);
    expect(w.lists.at(-1)).toEqual(["@a:hs|A", "@b:hs|B"]);
    w.stop();
  });

  it("malformed sticky memberships are rejected with a reason and said at debug; forged user ids too", () => {
    const server = new ServerRoom();
    const s = scheduler();
    const debug = jest
      .spyOn(loglevel.getLogger("matrixrtc-membership"), "debug")
      .mockImplementation(() => undefined);
    try {
      const noId = stickyMember("@a:hs", "A", {
        ts: server.tick(),
        content: {
          slot_id: "m.call#ROOM",
          application: { type: "m.call" },
          transports: { published: [], can_subscribe: [] },
          member: { user_id: "@a:hs", device_id: "A" },
          versions: [],
          msc4354_sticky_key: "k1",
        },
      });
      const forged = stickyMember("@m:hs", "M", { ts: server.tick() });
      (forged.content as { member: { user_id: string } }).member.user_id = "@a:hs";
      const notSticky = { ...stickyMember("@a:hs", "A2", { ts: server.tick() }) } as Record<string, unknown>;
      delete notSticky.msc4354_sticky;
      const state = new BehaviorSubject([
        server.join("@a:hs"),
        server.join("@m:hs"),
        noId,
        forged,
        notSticky as unknown as StateEventLike,
      ]);
      const rejected: RejectedMembership[] = [];
      // One source, one store: each event is read (and said at debug) once.
      const source = eventsStateSource(state);
      const lists: string[][] = [];
      const w = callMembers$(source, { scheduler: s }).subscribe((m) => lists.push(idsOf(m)));
      const sub = rejectedMemberships$(source, { scheduler: s }).subscribe((r) => rejected.push(r));
      expect(lists).toEqual([[]]);
      expect(rejected.map((r) => [r.sender, r.reason])).toEqual([
        ["@a:hs", "invalid-content"],
        ["@m:hs", "invalid-content"],
        ["@a:hs", "malformed-event"],
      ]);
      expect(rejected[0].details.join()).toContain("member.id");
      expect(rejected[1].details.join()).toContain("member.user_id must be the sender @m:hs");
      expect(
        debug.mock.calls.map((c) => String(c[0])).filter((l) => l.includes("sticky membership")),
      ).toHaveLength(3);
      sub.unsubscribe();
      w.unsubscribe();
    } finally {
      debug.mockRestore();
    }
  });

  it("a sticky membership written before its sender left and rejoined is not listed", () => {
    const server = new ServerRoom();
    const s = scheduler();
    const old = stickyMember("@a:hs", "A", { ts: 2_500 });
    const state = new BehaviorSubject([server.join("@a:hs", 2_000), old]);
    const w = watch(state, s);
    expect(w.lists).toEqual([["@a:hs|A"]]);
    state.next([server.leave("@a:hs", 3_000), old]);
    state.next([server.join("@a:hs", 4_000), old]);
    expect(w.lists).toEqual([["@a:hs|A"], []]);
    w.stop();
  });

  it("client mode: js-sdk's sticky store feeds the list; one sticky change costs one parse and one evaluation", () => {
    const server = new ServerRoom();
    const client = new FakeSyncClient();
    const s = scheduler();
    const users = Array.from({ length: 200 }, (_, i) => `@u${i}:hs`);
    client.sync(users.map((u) => server.join(u, 10)));
    client.syncSticky(
      users.map((u, i) => stickyMember(u, `D${i}`, { ts: 1_000 + i })),
      HOUR,
    );
    const lists: string[][] = [];
    const sub = callMembers$(client, { roomId: ROOM, scheduler: s }).subscribe((m) => lists.push(idsOf(m)));
    expect(lists).toHaveLength(1);
    expect(lists[0]).toHaveLength(200);
    const before = { ...storeCounters };
    client.syncSticky([stickyMember("@u7:hs", "D7b", { ts: 9_000, key: "mem-D7" })], HOUR);
    expect(storeCounters.parses - before.parses).toBe(1);
    expect(storeCounters.evaluations - before.evaluations).toBe(1);
    expect(lists).toHaveLength(2);
    expect(lists[1].at(-1)).toBe("@u7:hs|D7b");
    // A chat message: nothing.
    const quiet = { ...storeCounters };
    client.sync([], { timelineOnly: true });
    expect(storeCounters.evaluations - quiet.evaluations).toBe(0);
    // js-sdk's expiry instant is ours: everyone leaves in one list at HOUR.
    s.flush();
    expect(lists.at(-1)).toEqual([]);
    expect(lists).toHaveLength(3);
    sub.unsubscribe();
  });
});
