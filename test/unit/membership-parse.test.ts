/**
 * Parsing others' legacy memberships: js-sdk's rules, our stricter ones, never throwing, and the
 * observable's re-evaluation on change and on expiry (virtual time). A property test runs the same
 * events through matrix-js-sdk's own `MatrixRTCSession.sessionMembershipsForSlot` and checks that we
 * never count a membership js-sdk drops, that every one we drop is for a documented stricter reason,
 * and that the order is the same.
 */
import { describe, expect, it } from "@jest/globals";
import "../helpers/matrix.js"; // quiet matrix-js-sdk
import fc from "fast-check";
import {
  ClientEvent,
  EventTimeline,
  MatrixEvent,
  RoomEvent,
  RoomStateEvent,
  RoomStickyEventsEvent,
} from "matrix-js-sdk";
import { MatrixRTCSession } from "matrix-js-sdk/lib/matrixrtc/index.js";
import { EventEmitter } from "node:events";
import { BehaviorSubject, of, VirtualAction, VirtualTimeScheduler } from "rxjs";
import {
  CALL_MEMBER_EVENT_TYPE,
  DEFAULT_MEMBERSHIP_EXPIRES_MS,
  JS_SDK_EVENTS,
  callMembers$,
  callMembersState$,
  evaluateCallMembers,
  eventsStateSource,
  makeMembershipContent,
  membershipLookupFrom,
  ownMembership,
  ownMembership$,
  parseCallMemberEvent,
  rejectedMemberships$,
  type CallMember,
  type RejectedMembership,
  type StateEventLike,
  WidgetStateSource,
  type WidgetStateApi,
} from "../../src/index.js";

const NOW = 1_700_000_000_000;
const ALICE = "@alice:hs";
const BOB = "@bob:hs";
const MALLORY = "@mallory:hs";

function content(device: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    application: "m.call",
    call_id: "",
    scope: "m.room",
    device_id: device,
    focus_active: { type: "livekit", focus_selection: "oldest_membership" },
    foci_preferred: [{ type: "livekit", livekit_service_url: "https://lk.example" }],
    ...extra,
  };
}

let ids = 0;
function ev(sender: string, stateKey: string, c: unknown, ts = NOW - 1000): StateEventLike {
  return {
    type: CALL_MEMBER_EVENT_TYPE,
    state_key: stateKey,
    sender,
    content: c,
    origin_server_ts: ts,
    event_id: `$e${++ids}`,
  };
}
const join = (userId: string, membership = "join") => ({
  type: "m.room.member",
  state_key: userId,
  sender: userId,
  content: { membership },
  origin_server_ts: NOW - 10_000,
  event_id: `$m${++ids}`,
});
const key = (user: string, device: string, suffix = "m.call") => `_${user}_${device}_${suffix}`;
const joined = membershipLookupFrom([join(ALICE), join(BOB), join(MALLORY)]);
const parse = (event: unknown, now = NOW) => parseCallMemberEvent(event, { now, membershipOf: joined });

describe("parseCallMemberEvent: js-sdk's rules", () => {
  it("accepts js-sdk's own content and reads the fields js-sdk's CallMembership exposes", () => {
    const r = parse(
      ev(ALICE, key(ALICE, "AAA"), content("AAA", { "m.call.intent": "video", expires: 3600_000 })),
    );
    expect(r.kind).toBe("member");
    const m = (r as { member: CallMember }).member;
    expect(m).toMatchObject({
      userId: ALICE,
      deviceId: "AAA",
      createdTs: NOW - 1000,
      expiresAt: NOW - 1000 + 3600_000,
      callIntent: "video",
      memberId: `${ALICE}:AAA`,
      slot: { application: "m.call", id: "ROOM" },
      focusActive: { type: "livekit", focus_selection: "oldest_membership" },
      fociPreferred: [{ type: "livekit", livekit_service_url: "https://lk.example" }],
    });
  });

  it("accepts what our manager writes (makeMembershipContent), created_ts winning over origin_server_ts", () => {
    const c = makeMembershipContent(
      {
        userId: ALICE,
        deviceId: "AAA",
        slot: { application: "m.call", id: "ROOM" },
        focusActive: { type: "livekit", focus_selection: "oldest_membership" },
        fociPreferred: [],
        callIntent: "audio",
      },
      NOW - 50_000,
      NOW - 100,
      60_000,
    );
    const r = parse(ev(ALICE, key(ALICE, "AAA"), c, NOW - 100));
    expect(r).toMatchObject({ kind: "member", member: { createdTs: NOW - 50_000, expiresAt: NOW + 59_900 } });
  });

  it("left content, the deprecated memberships format, other event types: ignored, not reported", () => {
    expect(parse(ev(ALICE, key(ALICE, "AAA"), {}))).toEqual({ kind: "ignored", reason: "left" });
    expect(parse(ev(ALICE, key(ALICE, "AAA"), { slot_id: "m.call#ROOM" }))).toEqual({
      kind: "ignored",
      reason: "left",
    });
    expect(parse(ev(ALICE, ALICE, { memberships: [] }))).toEqual({
      kind: "ignored",
      reason: "deprecated-format",
    });
    expect(parse({ ...ev(ALICE, "", {}), type: "m.room.name" })).toEqual({
      kind: "ignored",
      reason: "not-a-call-member",
    });
  });

  it.each([
    ["device_id", { device_id: 5 }],
    ["call_id", { call_id: null }],
    ["application", { application: ["m.call"] }],
    ["focus_active", { focus_active: undefined }],
    ["focus_active.type", { focus_active: { focus_selection: "oldest_membership" } }],
    ["foci_preferred", { foci_preferred: [{ url: "x" }] }],
    ["created_ts", { created_ts: "yesterday" }],
    ["scope", { scope: 1 }],
    ["m.call.intent", { "m.call.intent": { video: true } }],
  ])("rejects a bad %s as invalid-content", (_field, patch) => {
    const c = { ...content("AAA"), ...patch };
    const r = parse(ev(ALICE, key(ALICE, "AAA"), c));
    expect(r).toMatchObject({ kind: "rejected", rejection: { reason: "invalid-content", sender: ALICE } });
  });

  it("expiry: created_ts ?? origin_server_ts + (expires ?? 4 h) must be after now", () => {
    const noExpires = ev(ALICE, key(ALICE, "AAA"), content("AAA"), NOW - DEFAULT_MEMBERSHIP_EXPIRES_MS + 1);
    expect(parse(noExpires).kind).toBe("member");
    expect(parse(noExpires, NOW + 1)).toMatchObject({ kind: "rejected", rejection: { reason: "expired" } });
    const created = ev(
      ALICE,
      key(ALICE, "AAA"),
      content("AAA", { created_ts: NOW - 5000, expires: 5000 }),
      NOW,
    );
    expect(parse(created)).toMatchObject({ kind: "rejected", rejection: { reason: "expired" } });
    expect(parse(created, NOW - 1).kind).toBe("member");
  });

  it("the sender must be joined", () => {
    const lookup = membershipLookupFrom([join(ALICE, "leave"), join(BOB, "invite")]);
    const opts = { now: NOW, membershipOf: lookup };
    expect(parseCallMemberEvent(ev(ALICE, key(ALICE, "A"), content("A")), opts)).toMatchObject({
      rejection: { reason: "sender-not-joined" },
    });
    expect(parseCallMemberEvent(ev(BOB, key(BOB, "B"), content("B")), opts)).toMatchObject({
      rejection: { reason: "sender-not-joined" },
    });
    expect(parseCallMemberEvent(ev(MALLORY, key(MALLORY, "M"), content("M")), opts)).toMatchObject({
      rejection: { reason: "sender-membership-unknown" },
    });
    // Without a lookup, the check is skipped (sources that guarantee joined senders).
    expect(parseCallMemberEvent(ev(MALLORY, key(MALLORY, "M"), content("M")), { now: NOW }).kind).toBe(
      "member",
    );
  });

  it("members are sorted oldest first, ties keep the state order (js-sdk's stable sort)", () => {
    const events = [
      ev(BOB, key(BOB, "B"), content("B"), NOW - 10),
      ev(ALICE, key(ALICE, "A2"), content("A2", { created_ts: NOW - 500 }), NOW - 5),
      ev(ALICE, key(ALICE, "A1"), content("A1"), NOW - 500),
      ev(MALLORY, key(MALLORY, "M"), content("M"), NOW - 20_000),
    ];
    const { members, nextExpiryAt } = evaluateCallMembers(events, { now: NOW, membershipOf: joined });
    expect(members.map((m) => m.deviceId)).toEqual(["M", "A2", "A1", "B"]);
    expect(nextExpiryAt).toBe(NOW - 20_000 + DEFAULT_MEMBERSHIP_EXPIRES_MS);
  });

  it("a later event at the same state key replaces an earlier one", () => {
    const k = key(ALICE, "A");
    const { members } = evaluateCallMembers(
      [ev(ALICE, k, content("A")), ev(BOB, key(BOB, "B"), content("B")), ev(ALICE, k, {})],
      { now: NOW, membershipOf: joined },
    );
    expect(members.map((m) => m.deviceId)).toEqual(["B"]);
  });
});

describe("parseCallMemberEvent: stricter than js-sdk", () => {
  it("a state key claiming another user is rejected and reported", () => {
    const r = parse(ev(MALLORY, key(ALICE, "AAA"), content("AAA")));
    expect(r).toMatchObject({
      kind: "rejected",
      rejection: { reason: "state-key-mismatch", sender: MALLORY },
    });
    expect((r as { rejection: RejectedMembership }).rejection.details[0]).toContain("claims another user");
  });

  it("a device_id that differs from the device in the key is rejected", () => {
    const r = parse(ev(ALICE, key(ALICE, "AAA"), content("BBB")));
    expect(r).toMatchObject({ rejection: { reason: "state-key-mismatch" } });
  });

  it("content for one slot under another slot's key, or under a random key, is rejected", () => {
    expect(parse(ev(ALICE, key(ALICE, "A", "io.appfoo"), content("A")))).toMatchObject({
      rejection: { reason: "state-key-mismatch" },
    });
    expect(parse(ev(ALICE, "whatever", content("A")))).toMatchObject({
      rejection: { reason: "state-key-mismatch" },
    });
  });

  it("accepts the older key without slot suffix and keys without the underscore (MSC3757 rooms)", () => {
    expect(parse(ev(ALICE, `_${ALICE}_A`, content("A"))).kind).toBe("member");
    expect(parse(ev(ALICE, `${ALICE}_A_m.call`, content("A"))).kind).toBe("member");
    // device ids may contain underscores
    expect(parse(ev(ALICE, key(ALICE, "A_B"), content("A_B"))).kind).toBe("member");
  });

  it("the slot compares the application too (js-sdk compares only the id)", () => {
    const other = ev(
      ALICE,
      key(ALICE, "A", "io.exampleROOM"),
      content("A", { application: "io.example", call_id: "ROOM" }),
    );
    expect(parse(other)).toEqual({ kind: "ignored", reason: "other-slot" });
    const slot = { application: "io.example", id: "ROOM" };
    expect(parseCallMemberEvent(other, { now: NOW, slot, membershipOf: joined }).kind).toBe("member");
    // m.call with call_id "ROOM" is the room call, as in js-sdk
    expect(parse(ev(ALICE, key(ALICE, "A", "m.callROOM"), content("A", { call_id: "ROOM" }))).kind).toBe(
      "member",
    );
  });

  it("a non-number expires is invalid (js-sdk would keep the membership forever)", () => {
    for (const expires of ["14400000", null, {}, -5, 0])
      expect(parse(ev(ALICE, key(ALICE, "A"), content("A", { expires })))).toMatchObject({
        rejection: { reason: "invalid-content" },
      });
  });

  it("never throws, whatever the event", () => {
    const hostile = {
      get type() {
        throw new Error("boom");
      },
    };
    expect(parse(hostile)).toMatchObject({ kind: "rejected", rejection: { reason: "malformed-event" } });
    for (const junk of [null, undefined, 5, "x", [], { type: CALL_MEMBER_EVENT_TYPE }])
      expect(() => parse(junk)).not.toThrow();
    expect(parse({ type: CALL_MEMBER_EVENT_TYPE, state_key: "k", content: content("A") })).toMatchObject({
      rejection: { reason: "malformed-event" },
    });
    expect(parse({ ...ev(ALICE, key(ALICE, "A"), "a string") })).toMatchObject({
      rejection: { reason: "invalid-content" },
    });
    fc.assert(
      fc.property(fc.anything(), fc.anything(), fc.anything(), (c, sender, stateKey) => {
        const e = {
          type: CALL_MEMBER_EVENT_TYPE,
          sender,
          state_key: stateKey,
          content: c,
          origin_server_ts: NOW,
        };
        parse(e);
        evaluateCallMembers([e, c], { now: NOW, membershipOf: joined });
      }),
      { numRuns: 500 },
    );
  });

  it("ownMembership finds our device", () => {
    const { members } = evaluateCallMembers(
      [ev(ALICE, key(ALICE, "A"), content("A")), ev(BOB, key(BOB, "B"), content("B"))],
      { now: NOW, membershipOf: joined },
    );
    expect(ownMembership(members, BOB, "B")?.stateKey).toBe(key(BOB, "B"));
    expect(ownMembership(members, BOB, "A")).toBeUndefined();
  });
});

describe("agreement with matrix-js-sdk's parser (property)", () => {
  /** A room stub with exactly the surface sessionMembershipsForSlot reads. */
  async function jsSdkMembers(events: StateEventLike[], memberships: Map<string, string>, now: number) {
    const matrixEvents = events.map((e) => new MatrixEvent({ ...e, room_id: "!r:hs" } as never));
    const room = {
      roomId: "!r:hs",
      getLiveTimeline: () => ({
        getState: (dir: string) =>
          dir === EventTimeline.FORWARDS
            ? { getStateEvents: (type: string) => (type === CALL_MEMBER_EVENT_TYPE ? matrixEvents : []) }
            : undefined,
      }),
      hasMembershipState: (userId: string, m: string) => memberships.get(userId) === m,
      _unstable_getStickyEvents: () => [],
    };
    // js-sdk checks expiry after an await inside sessionMembershipsForSlot: keep the clock set until
    // the whole evaluation has finished, not only its synchronous start.
    const realNow = Date.now;
    Date.now = () => now;
    try {
      return await MatrixRTCSession.sessionMembershipsForSlot(
        room as never,
        { application: "m.call", id: "ROOM" },
        { listenForStickyEvents: false, listenForMemberStateEvents: true },
      );
    } finally {
      Date.now = realNow;
    }
  }

  const users = [ALICE, BOB, MALLORY];
  const devices = ["A", "B", "C_D"];
  const value = fc.oneof(
    fc.constant(undefined),
    fc.constant(null),
    fc.integer(),
    fc.string({ maxLength: 3 }),
    fc.constant({}),
  );
  const eventArb = fc.record({
    sender: fc.constantFrom(...users),
    keyUser: fc.constantFrom(...users),
    keyDevice: fc.constantFrom(...devices),
    keySuffix: fc.constantFrom("_m.call", "", "_io.x", "_m.callROOM"),
    underscore: fc.boolean(),
    device: fc.constantFrom(...devices),
    application: fc.constantFrom("m.call", "m.call", "io.x"),
    callId: fc.constantFrom("", "", "ROOM", "other"),
    createdTs: fc.option(fc.integer({ min: NOW - 6 * 3600_000, max: NOW + 1000 }), { nil: undefined }),
    expires: fc.option(fc.oneof(fc.integer({ min: 1, max: 8 * 3600_000 }), value), { nil: undefined }),
    ts: fc.integer({ min: NOW - 6 * 3600_000, max: NOW }),
    intent: fc.option(fc.oneof(fc.constantFrom("audio", "video"), value), { nil: undefined }),
    breakField: fc.option(fc.constantFrom("device_id", "call_id", "focus_active", "foci_preferred"), {
      nil: undefined,
    }),
    left: fc.boolean(),
  });
  const membershipArb = fc.constantFrom("join", "join", "leave", "invite", undefined);

  it("we count a subset of js-sdk's members, drop the rest only for stricter reasons, in js-sdk's order", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(eventArb, { maxLength: 8 }),
        fc.tuple(membershipArb, membershipArb, membershipArb),
        async (specs, ms) => {
          const memberships = new Map<string, string>();
          users.forEach((u, i) => ms[i] !== undefined && memberships.set(u, ms[i]!));
          const seen = new Set<string>();
          const events: StateEventLike[] = [];
          for (const s of specs) {
            const stateKey = `${s.underscore ? "_" : ""}${s.keyUser}_${s.keyDevice}${s.keySuffix}`;
            if (seen.has(stateKey)) continue;
            seen.add(stateKey);
            const c: Record<string, unknown> = content(s.device, {
              application: s.application,
              call_id: s.callId,
            });
            if (s.createdTs !== undefined) c.created_ts = s.createdTs;
            if (s.expires !== undefined) c.expires = s.expires;
            if (s.intent !== undefined) c["m.call.intent"] = s.intent;
            if (s.breakField) c[s.breakField] = 42;
            events.push(ev(s.sender, stateKey, s.left ? {} : c, s.ts));
          }
          const theirs = await jsSdkMembers(events, memberships, NOW);
          const lookup = (u: string) => memberships.get(u);
          const ours = evaluateCallMembers(events, { now: NOW, membershipOf: lookup });
          const theirIds = theirs.map((m) => m.eventId);
          const ourIds = ours.members.map((m) => m.eventId);
          // A created_ts after the event's own timestamp is a claim the server does not back: it
          // neither moves the member earlier than its event nor lengthens its life.
          const forged = (m: CallMember) => m.createdTs > m.originServerTs;
          // Never more than js-sdk.
          expect(ourIds.every((id) => theirIds.includes(id!))).toBe(true);
          // In js-sdk's order when no claim is forged; else sorted by what the server backs.
          if (!ours.members.some(forged))
            expect(theirIds.filter((id) => ourIds.includes(id))).toEqual(ourIds);
          const orderTs = ours.members.map((m) => m.orderTs);
          expect(orderTs).toEqual([...orderTs].sort((a, b) => a - b));
          // Same fields where both count the member.
          for (const m of ours.members) {
            const t = theirs.find((x) => x.eventId === m.eventId)!;
            expect([m.userId, m.deviceId, m.createdTs, m.callIntent, m.memberId]).toEqual([
              t.sender,
              t.deviceId,
              t.createdTs(),
              t.callIntent,
              t.memberId,
            ]);
            expect(m.orderTs).toBe(Math.min(m.createdTs, m.originServerTs));
            if (forged(m)) expect(m.expiresAt).toBeLessThan(t.getAbsoluteExpiry()!);
            else expect(m.expiresAt).toBe(t.getAbsoluteExpiry());
            expect(m.fociPreferred).toEqual(t.transports);
          }
          // Every member js-sdk counts and we do not: a documented stricter reason.
          for (const t of theirs) {
            if (ourIds.includes(t.eventId)) continue;
            const event = events.find((e) => e.event_id === t.eventId)!;
            const parsed = parseCallMemberEvent(event, { now: NOW, membershipOf: lookup });
            if (parsed.kind === "ignored") {
              expect(parsed.reason).toBe("other-slot");
              continue;
            }
            expect(parsed.kind).toBe("rejected");
            const r = (parsed as { rejection: RejectedMembership }).rejection;
            expect(["state-key-mismatch", "invalid-content", "expired"]).toContain(r.reason);
            if (r.reason === "invalid-content") expect(r.details.join()).toContain("expires");
            // Expired for us only because its created_ts claims a time after its event.
            if (r.reason === "expired")
              expect((event.content as { created_ts: number }).created_ts).toBeGreaterThan(
                event.origin_server_ts,
              );
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("the observable", () => {
  const scheduler = () => new VirtualTimeScheduler(VirtualAction, Infinity);

  it("re-evaluates when a member expires, on the injected scheduler", () => {
    const s = scheduler();
    const events = [
      join(ALICE),
      join(BOB),
      ev(ALICE, key(ALICE, "A"), content("A", { created_ts: 0, expires: 1000 }), 0),
      ev(BOB, key(BOB, "B"), content("B", { created_ts: 100, expires: 5000 }), 100),
    ];
    const seen: [number, string[]][] = [];
    const sub = callMembers$(eventsStateSource(events), { scheduler: s }).subscribe((ms) =>
      seen.push([s.now(), ms.map((m) => m.deviceId)]),
    );
    s.flush();
    sub.unsubscribe();
    expect(seen).toEqual([
      [0, ["A", "B"]],
      [1000, ["B"]],
      [5100, []],
    ]);
  });

  it("emits on joins, updates and leaves; not for unchanged state; waits until the source is synced", () => {
    const s = scheduler();
    const state = new BehaviorSubject<StateEventLike[]>([]);
    const seen: string[][] = [];
    const source = eventsStateSource(state);
    // An unsynced source (e.g. a client before its first sync) stays silent.
    const unsynced: string[][] = [];
    callMembers$(of({ synced: false, callMemberEvents: [], membershipOf: () => undefined }), {
      scheduler: s,
    }).subscribe((ms) => unsynced.push(ms.map((m) => m.deviceId)));
    expect(unsynced).toEqual([]);
    const sub = callMembers$(source, { scheduler: s }).subscribe((ms) =>
      seen.push(ms.map((m) => `${m.deviceId}:${String(m.callIntent)}`)),
    );
    const aliceIn = ev(ALICE, key(ALICE, "A"), content("A"), 0);
    state.next([join(ALICE) as never, aliceIn]);
    state.next([join(ALICE) as never, { ...aliceIn }]);
    state.next([
      join(ALICE) as never,
      ev(ALICE, key(ALICE, "A"), content("A", { "m.call.intent": "audio" }), 0),
    ]);
    state.next([join(ALICE) as never, ev(ALICE, key(ALICE, "A"), {}, 0)]);
    sub.unsubscribe();
    expect(seen).toEqual([[], ["A:undefined"], ["A:audio"], []]);
  });

  it("reports each rejected membership once, and ownMembership$ follows our device", () => {
    const s = scheduler();
    const state = new BehaviorSubject<StateEventLike[]>([
      join(MALLORY) as never,
      join(ALICE) as never,
      ev(MALLORY, key(ALICE, "A"), content("A")),
    ]);
    const rejected: RejectedMembership[] = [];
    const own: (string | undefined)[] = [];
    const sub = rejectedMemberships$(eventsStateSource(state), { scheduler: s }).subscribe((r) =>
      rejected.push(r),
    );
    const sub2 = ownMembership$(eventsStateSource(state), {
      scheduler: s,
      userId: ALICE,
      deviceId: "A",
    }).subscribe((m) => own.push(m?.deviceId));
    state.next([...state.value]);
    state.next([...state.value, ev(ALICE, key(ALICE, "A"), content("A"))]);
    state.next([...state.value.slice(0, 3), ev(ALICE, key(ALICE, "A"), {})]);
    sub.unsubscribe();
    sub2.unsubscribe();
    expect(rejected.map((r) => [r.reason, r.sender])).toEqual([["state-key-mismatch", MALLORY]]);
    expect(own).toEqual([undefined, "A", undefined]);
  });

  it("a far-future expiry does not spin the timer (setTimeout overflow)", () => {
    const s = scheduler();
    const events = [
      join(ALICE),
      ev(ALICE, key(ALICE, "A"), content("A", { created_ts: 0, expires: 1e15 }), 0),
    ];
    let emissions = 0;
    const sub = callMembersState$(eventsStateSource(events), { scheduler: s }).subscribe(() => emissions++);
    expect(s.actions).toHaveLength(1);
    expect(s.actions[0].delay).toBe(2 ** 31 - 1);
    sub.unsubscribe();
    expect(emissions).toBe(1);
  });

  it("the js-sdk event names it listens to are js-sdk's", () => {
    expect(JS_SDK_EVENTS).toEqual({
      roomStateEvents: RoomStateEvent.Events,
      room: ClientEvent.Room,
      sync: ClientEvent.Sync,
      timelineReset: RoomEvent.TimelineReset,
      stickyEventsUpdate: RoomStickyEventsEvent.Update,
    });
  });
});

describe("WidgetStateSource (fake widget API)", () => {
  function fakeWidget(versions: string[], stateOnRead: unknown[]) {
    const emitter = new EventEmitter();
    const replies: unknown[] = [];
    const reads: unknown[][] = [];
    const api = Object.assign(emitter, {
      getClientVersions: async () => versions,
      readStateEvents: async (...args: unknown[]) => {
        reads.push(args);
        return stateOnRead.filter((e) => (e as { type: string }).type === args[0]);
      },
      transport: { reply: (req: unknown, data: unknown) => replies.push([req, data]) },
    });
    const push = (state: unknown[], prevented = false) => {
      const ev = new CustomEvent("action:update_state", { detail: { data: { state } }, cancelable: true });
      if (prevented) ev.preventDefault();
      emitter.emit("action:update_state", ev);
    };
    return { api: api as unknown as WidgetStateApi, emitter, replies, reads, push };
  }
  const room = "!room:hs";
  const inRoom = <T extends object>(e: T) => ({ ...e, room_id: room });

  it("update_state pushes are merged per type and key, acknowledged once, other rooms ignored", () => {
    const w = fakeWidget(["org.matrix.msc2762_update_state"], []);
    const source = new WidgetStateSource(w.api, room);
    const lists: string[][] = [];
    const sub = callMembers$(source, { scheduler: new VirtualTimeScheduler() }).subscribe((m) =>
      lists.push(m.map((x) => x.deviceId)),
    );
    expect(lists).toEqual([]); // not synced before the first push
    w.push([inRoom(join(ALICE)), inRoom(ev(ALICE, key(ALICE, "A"), content("A"), 0))]);
    w.push([{ ...ev(BOB, key(BOB, "B"), content("B"), 0), room_id: "!other:hs" }, inRoom(join(BOB))], true);
    w.push([inRoom(ev(ALICE, key(ALICE, "A"), {}, 5))]);
    expect(lists).toEqual([["A"], []]);
    // The second push was already acknowledged by another listener (e.g. js-sdk's RoomWidgetClient).
    expect(w.replies).toHaveLength(2);
    sub.unsubscribe();
    source.close();
    expect(w.emitter.listenerCount("action:update_state")).toBe(0);
  });

  it("a host without update_state is read with readStateEvents on ready, newest event per key", async () => {
    const older = inRoom(ev(ALICE, key(ALICE, "A"), content("A", { "m.call.intent": "audio" }), 10));
    const newer = inRoom(ev(ALICE, key(ALICE, "A"), content("A", { "m.call.intent": "video" }), 20));
    const w = fakeWidget(["org.matrix.msc2762"], [newer, older, inRoom(join(ALICE))]);
    const source = new WidgetStateSource(w.api, room);
    const lists: CallMember[][] = [];
    const sub = callMembers$(source, { scheduler: new VirtualTimeScheduler() }).subscribe((m) =>
      lists.push(m),
    );
    w.emitter.emit("ready");
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(w.reads.map((r) => r[0])).toEqual([CALL_MEMBER_EVENT_TYPE, "m.room.member"]);
    expect(lists.map((l) => l.map((m) => m.callIntent))).toEqual([["video"]]);
    sub.unsubscribe();
    source.close();
  });
});
