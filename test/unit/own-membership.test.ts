/**
 * Our own device in the list an app reads (issue 23 item 7), with `manager`:
 * - the merge rules on their own (`mergeOwnMembership`): a held membership is added only where the view
 *   lists nothing at our place, sorted last unless the server's timestamps place it; a gone one hides only
 *   the writes the server accepted for it (by event id, else by content); other members are the view's;
 * - a manager on virtual time against the fake server, read through a view that syncs only when the test
 *   says so: the first list after `connected` has us, the first after `leave()` does not, in the state and
 *   the sticky format; without `manager` the same reads show the lag (so these tests can fail).
 */
import { describe, expect, it } from "@jest/globals";
import { BehaviorSubject } from "rxjs";
import {
  CALL_MEMBER_EVENT_TYPE,
  DEFAULT_SLOT,
  RTC_MEMBER_EVENT_TYPE,
  callMembers$,
  currentCallMembers,
  eventsStateSource,
  includesDevice,
  waitForCallMembers,
  watchCallMembers,
  type CallMember,
  type OwnMembershipRecord,
  type OwnMembershipReport,
} from "../../src/index.js";
import { mergeOwnMembership } from "../../src/membership/own.js";
import { parseMembershipEvent } from "../../src/membership/parse.js";
import type { FakeServer } from "../helpers/fakeServer.js";
import { harness, type Harness } from "../helpers/managerHarness.js";
import { callContent, memberKey, stickyMember } from "../helpers/observerWorld.js";

const ALICE = "@alice:localhost";
const ROOM = "!room:localhost";
const idsOf = (members: readonly CallMember[] | undefined) =>
  (members ?? []).map((m) => `${m.userId}|${m.deviceId}${m.fromManager ? " (manager)" : ""}`);

/** A listed state member, as the view would list it. */
function listed(user: string, device: string, ts: number, extra: Record<string, unknown> = {}): CallMember {
  const parsed = parseMembershipEvent({
    type: CALL_MEMBER_EVENT_TYPE,
    state_key: memberKey(user, device),
    sender: user,
    content: callContent(device, extra),
    origin_server_ts: ts,
    event_id: `$${user}-${device}-${ts}`,
  });
  if (parsed.kind !== "candidate") throw new Error("not a member");
  return parsed.member;
}

const ownState = (writes: OwnMembershipRecord["writes"], more: Partial<OwnMembershipRecord> = {}) =>
  ({
    format: "state",
    key: memberKey(ALICE, "A"),
    writes,
    confirmedAt: 5_000,
    ...more,
  }) as OwnMembershipRecord;

const report = (more: Partial<OwnMembershipReport>): OwnMembershipReport => ({
  roomId: ROOM,
  userId: ALICE,
  deviceId: "A",
  slot: DEFAULT_SLOT,
  gone: [],
  ...more,
});

describe("mergeOwnMembership: the rules", () => {
  const bob = listed("@bob:localhost", "B", 1_000);
  const carol = listed("@carol:localhost", "C", 9_000);

  it("changes nothing without a report, or with nothing held and nothing gone", () => {
    const members = [bob, carol];
    expect(mergeOwnMembership(members, undefined, DEFAULT_SLOT)).toBe(members);
    expect(mergeOwnMembership(members, report({}), DEFAULT_SLOT)).toBe(members);
  });

  it("adds a held membership the view lacks, last: never ahead of anyone, whatever this device's clock says", () => {
    // Our clock is behind the server's: the answer came at 5 000 by it, carol's event is stamped 9 000.
    const merged = mergeOwnMembership(
      [bob, carol],
      report({ held: ownState([{ content: callContent("A") }]) }),
      DEFAULT_SLOT,
    );
    expect(idsOf(merged)).toEqual(["@bob:localhost|B", "@carol:localhost|C", `${ALICE}|A (manager)`]);
    const own = merged[2];
    expect(own.orderTs).toBe(9_000);
    expect(own.stateKey).toBe(memberKey(ALICE, "A"));
    expect(own.content).toEqual(callContent("A"));
    // Alone in the call, it is the oldest (and its clock says when the answer came).
    const alone = mergeOwnMembership(
      [],
      report({ held: ownState([{ content: callContent("A") }]) }),
      DEFAULT_SLOT,
    );
    expect(alone[0].orderTs).toBe(5_000);
  });

  it("places it where the server's timestamps say, when known (created_ts, or the first event read back)", () => {
    const withCreated = report({ held: ownState([{ content: callContent("A", { created_ts: 2_000 }) }]) });
    expect(idsOf(mergeOwnMembership([bob, carol], withCreated, DEFAULT_SLOT))).toEqual([
      "@bob:localhost|B",
      `${ALICE}|A (manager)`,
      "@carol:localhost|C",
    ]);
    const readBack = report({ held: ownState([{ content: callContent("A") }], { firstEventTs: 500 }) });
    const merged = mergeOwnMembership([bob, carol], readBack, DEFAULT_SLOT);
    expect(idsOf(merged)[0]).toBe(`${ALICE}|A (manager)`);
    expect(merged[0].orderTs).toBe(500);
  });

  it("lists the view's entry at our place as soon as there is one, whatever its content", () => {
    const ours = listed(ALICE, "A", 3_000);
    const anotherTab = listed(ALICE, "A", 3_000, { "m.call.intent": "audio" });
    for (const view of [
      [bob, ours, carol],
      [bob, anotherTab, carol],
    ])
      expect(
        mergeOwnMembership(view, report({ held: ownState([{ content: callContent("A") }]) }), DEFAULT_SLOT),
      ).toBe(view);
  });

  it("hides a gone membership's writes where the view still shows them, and nothing else", () => {
    const ours = listed(ALICE, "A", 3_000, { expires: 1000 });
    const gone = report({ gone: [ownState([{ content: callContent("A", { expires: 1000 }) }])] });
    expect(idsOf(mergeOwnMembership([bob, ours, carol], gone, DEFAULT_SLOT))).toEqual([
      "@bob:localhost|B",
      "@carol:localhost|C",
    ]);
    // Another writer's event at our key (not one the server accepted from us): the view knows better.
    const theirs = listed(ALICE, "A", 3_000, { expires: 2000 });
    const view = [bob, theirs, carol];
    expect(mergeOwnMembership(view, gone, DEFAULT_SLOT)).toBe(view);
    // By event id where both have one: the same content under another id is not ours.
    const byId = report({
      gone: [ownState([{ content: callContent("A", { expires: 1000 }), eventId: "$other" }])],
    });
    const viewWithOurs = [bob, ours, carol];
    expect(mergeOwnMembership(viewWithOurs, byId, DEFAULT_SLOT)).toBe(viewWithOurs);
    const sameId = report({
      gone: [ownState([{ content: {}, eventId: ours.eventId! }])],
    });
    expect(idsOf(mergeOwnMembership(viewWithOurs, sameId, DEFAULT_SLOT))).toHaveLength(2);
  });

  it("ignores gone records at the place a held membership occupies (a rejoin at our state key)", () => {
    const old = listed(ALICE, "A", 3_000, { expires: 1000 });
    const r = report({
      gone: [ownState([{ content: callContent("A", { expires: 1000 }) }])],
      held: ownState([{ content: callContent("A", { expires: 2000 }) }]),
    });
    const view = [bob, old];
    expect(mergeOwnMembership(view, r, DEFAULT_SLOT)).toBe(view);
  });

  it("sticky: hides the previous call's member id, adds this call's", () => {
    const previous = stickyMember(ALICE, "A", { ts: 3_000, key: "m1" });
    const parsedPrevious: CallMember = {
      ...listed(ALICE, "A", 3_000),
      stateKey: "m1",
      stickyKey: "m1",
      eventId: previous.event_id,
      content: previous.content as never,
    };
    const sticky = (key: string, eventId: string): OwnMembershipRecord => ({
      format: "sticky",
      key,
      writes: [
        { content: stickyMember(ALICE, "A", { ts: 0, key }).content as Record<string, unknown>, eventId },
      ],
      confirmedAt: 10_000,
      expiresAt: 10_000 + 3_600_000,
    });
    const r = report({ gone: [sticky("m1", previous.event_id!)], held: sticky("m2", "$m2") });
    const merged = mergeOwnMembership([bob, parsedPrevious, carol], r, DEFAULT_SLOT);
    expect(idsOf(merged)).toEqual(["@bob:localhost|B", "@carol:localhost|C", `${ALICE}|A (manager)`]);
    expect(merged[2].stickyKey).toBe("m2");
    expect(merged[2].eventId).toBe("$m2");
    expect(merged[2].expiresAt).toBe(10_000 + 3_600_000);
  });

  it("adds nothing that would not read as a member of the list's slot", () => {
    const other = report({ held: ownState([{ content: callContent("A", { call_id: "other" }) }]) });
    const view = [bob];
    expect(mergeOwnMembership(view, other, DEFAULT_SLOT)).toBe(view);
  });
});

/**
 * The fake server's room as a synced client of alice would show it, but only when `sync()` is called:
 * our membership writes are answered at once, the view lags until the test syncs it.
 */
function laggingView(server: FakeServer) {
  const events = () => {
    const list: unknown[] = [
      {
        type: "m.room.member",
        state_key: ALICE,
        sender: ALICE,
        content: { membership: "join" },
        origin_server_ts: 0,
      },
      {
        type: "m.room.member",
        state_key: "@bob:localhost",
        sender: "@bob:localhost",
        content: { membership: "join" },
        origin_server_ts: 0,
      },
      {
        type: CALL_MEMBER_EVENT_TYPE,
        state_key: memberKey("@bob:localhost", "B"),
        sender: "@bob:localhost",
        content: callContent("B"),
        origin_server_ts: 1,
        event_id: "$bob",
      },
    ];
    for (const [key, content] of server.state) {
      if (key.startsWith("sticky:")) continue;
      const at = server.history.findLast((h) => h.stateKey === key)?.at ?? 0;
      list.push({
        type: CALL_MEMBER_EVENT_TYPE,
        state_key: key,
        sender: ALICE,
        content,
        origin_server_ts: at,
        event_id: `$${key}-${server.history.length}`,
      });
    }
    // The current sticky event per key (the fake's event ids are the ones it answered).
    const current = new Map<string, [string, { content: Record<string, unknown>; ts: number }]>();
    for (const [id, e] of server.stickyEvents) current.set(e.mapKey, [id, e]);
    for (const [id, e] of current.values())
      list.push({
        type: RTC_MEMBER_EVENT_TYPE,
        sender: ALICE,
        content: e.content,
        origin_server_ts: e.ts,
        event_id: id,
        msc4354_sticky: { duration_ms: 3_600_000 },
      });
    return list;
  };
  const subject = new BehaviorSubject<unknown[]>(events());
  return { source: eventsStateSource(subject), sync: () => subject.next(events()) };
}

async function joined(h: Harness): Promise<void> {
  h.manager.join();
  await h.time.until(() => h.manager.status === "connected");
}

describe.each(["state", "sticky"] as const)("a manager's first lists (%s format, virtual time)", (format) => {
  const make = () => harness(format === "sticky" ? { membershipFormat: "sticky" } : {});
  const me = includesDevice(ALICE, "DEV");

  it("the first list after `connected` has us (from the manager), until the view shows the server's event", async () => {
    const h = make();
    const view = laggingView(h.server);
    const options = { manager: h.manager, scheduler: h.time.scheduler };
    const watch = watchCallMembers(view.source, options);
    const lists: CallMember[][] = [];
    watch.onChange((m) => lists.push(m));
    await joined(h);
    // Without the manager, the same source does not show us yet: this is the lag the option covers.
    expect(me(currentCallMembers(view.source, { scheduler: h.time.scheduler })!)).toBe(false);
    const first = currentCallMembers(view.source, options)!;
    expect(idsOf(first)).toEqual(["@bob:localhost|B", `${ALICE}|DEV (manager)`]);
    expect(me(watch.members!)).toBe(true);
    // One list for `connected`, however many steps the join took.
    expect(lists).toHaveLength(1);
    if (format === "sticky") expect(first[1].stickyKey).toBe(h.manager.memberId);
    view.sync();
    const synced = currentCallMembers(view.source, options)!;
    expect(idsOf(synced)).toEqual(["@bob:localhost|B", `${ALICE}|DEV`]);
    // The view's entry is the server's event: in the sticky format, the very one the manager was answered.
    if (format === "sticky") expect(synced[1].eventId).toBe(first[1].eventId);
    expect(lists).toHaveLength(2);
    watch.close();
    h.manager.dispose();
  });

  it("the first list after `leave()` no longer has us, before the view syncs the leave", async () => {
    const h = make();
    const view = laggingView(h.server);
    const options = { manager: h.manager, scheduler: h.time.scheduler };
    await joined(h);
    view.sync();
    expect(me(currentCallMembers(view.source, options)!)).toBe(true);
    const left = h.manager.leave();
    await h.time.until(() => h.manager.state.kind === "left");
    expect(await left).toEqual({ status: "left", via: "delayed-event-sent" });
    // The view still shows our membership (it has not synced), and lists us without the manager.
    expect(me(currentCallMembers(view.source, { scheduler: h.time.scheduler })!)).toBe(true);
    expect(idsOf(currentCallMembers(view.source, options))).toEqual(["@bob:localhost|B"]);
    view.sync();
    expect(idsOf(currentCallMembers(view.source, options))).toEqual(["@bob:localhost|B"]);
    expect(idsOf(currentCallMembers(view.source, { scheduler: h.time.scheduler }))).toEqual([
      "@bob:localhost|B",
    ]);
    h.manager.dispose();
  });

  it("a rejoin after a leave the view has not synced: not listed while joining, listed once connected", async () => {
    const h = make();
    const view = laggingView(h.server);
    const options = { manager: h.manager, scheduler: h.time.scheduler };
    await joined(h);
    view.sync();
    const left = h.manager.leave();
    await h.time.until(() => h.manager.state.kind === "left");
    expect((await left).status).toBe("left");
    h.server.latencyMs = 200;
    h.manager.join();
    await h.time.advance(10);
    expect(h.manager.status).toBe("connecting");
    expect(me(currentCallMembers(view.source, options)!)).toBe(false);
    await h.time.until(() => h.manager.status === "connected");
    const members = currentCallMembers(view.source, options)!;
    expect(members.filter((m) => m.userId === ALICE)).toHaveLength(1);
    expect(me(members)).toBe(true);
    view.sync();
    const synced = currentCallMembers(view.source, options)!;
    expect(synced.filter((m) => m.userId === ALICE)).toHaveLength(1);
    expect(synced.find((m) => m.userId === ALICE)?.fromManager).toBeUndefined();
    h.manager.dispose();
  });

  it("drops our entry the moment the manager stops saying `connected` (the server fired our leave)", async () => {
    const h = make();
    const view = laggingView(h.server);
    const options = { manager: h.manager, scheduler: h.time.scheduler };
    await joined(h);
    expect(me(currentCallMembers(view.source, options)!)).toBe(true);
    h.server.down = true; // heartbeats stop getting through
    await h.time.until(() => h.manager.status !== "connected");
    expect(me(currentCallMembers(view.source, options)!)).toBe(false);
    h.manager.dispose();
  });

  it("waitForCallMembers(includesDevice) with the manager resolves at `connected`, without a sync", async () => {
    const h = make();
    const view = laggingView(h.server);
    const options = { manager: h.manager, scheduler: h.time.scheduler, timeoutMs: 60_000 };
    const waiting = waitForCallMembers(view.source, me, options);
    await joined(h);
    expect(idsOf(await waiting)).toEqual(["@bob:localhost|B", `${ALICE}|DEV (manager)`]);
    h.manager.dispose();
  });

  it("an app reacting to `connected` or `left` in a status$ subscriber reads a list that already agrees", async () => {
    const h = make();
    const view = laggingView(h.server);
    const options = { manager: h.manager, scheduler: h.time.scheduler };
    const seen: [string, boolean][] = [];
    const sub = h.manager.status$.subscribe((status) => {
      if (status === "connected" || status === "disconnected")
        seen.push([status, me(currentCallMembers(view.source, options)!)]);
    });
    await joined(h);
    const left = h.manager.leave();
    await h.time.until(() => h.manager.state.kind === "left");
    await left;
    sub.unsubscribe();
    expect(seen).toEqual([
      ["disconnected", false],
      ["connected", true],
      ["disconnected", false],
    ]);
    h.manager.dispose();
  });

  it("a disposed manager vouches for nothing: the view as it is", async () => {
    const h = make();
    const view = laggingView(h.server);
    const lists: CallMember[][] = [];
    const sub = callMembers$(view.source, { manager: h.manager, scheduler: h.time.scheduler }).subscribe(
      (m) => lists.push(m),
    );
    await joined(h);
    expect(me(lists.at(-1)!)).toBe(true);
    h.manager.dispose();
    expect(me(lists.at(-1)!)).toBe(false);
    sub.unsubscribe();
  });
});

describe("callMembers$ with `manager`: its room and slot", () => {
  it("takes the manager's room with a client, and refuses another room or slot", () => {
    const h = harness();
    const client = { getRoom: () => null, on: () => undefined, off: () => undefined } as never;
    expect(() => currentCallMembers(client, { manager: h.manager })).not.toThrow();
    expect(() => currentCallMembers(client, { manager: h.manager, roomId: "!other:localhost" })).toThrow(
      TypeError,
    );
    expect(() =>
      currentCallMembers(eventsStateSource([]), {
        manager: h.manager,
        slot: { application: "m.call", id: "x" },
      }),
    ).toThrow(TypeError);
    h.manager.dispose();
  });
});
