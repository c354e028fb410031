/**
 * The sticky membership format (issue 21 item 1) on virtual time against the FakeServer, asserting on
 * what the server holds: the delayed sticky leave first, the MSC4143 membership keyed by a fresh member
 * id, heartbeats, the refresh after a restart before the stickiness runs out, the leave, the fallback
 * leave, a crash, a redaction put right, a server without sticky events (a typed error, nothing sent as a
 * plain event) and the app's opt-in fallback to the state format.
 */
import { describe, expect, it } from "@jest/globals";
import { checkRtcMembershipData } from "matrix-js-sdk/lib/matrixrtc/membershipData/index.js";
import { harness, type Harness } from "../helpers/managerHarness.js";
import { stickyMapKey } from "../helpers/fakeServer.js";
import { RTC_MEMBER_EVENT_TYPE } from "../../src/membership/rtcMember.js";

const DELAY = 2000;

function sticky(options: Parameters<typeof harness>[0] = {}, setup?: Parameters<typeof harness>[1]): Harness {
  return harness({ delayedLeaveDelayMs: DELAY, membershipFormat: "sticky", ...options }, setup);
}

/** leave(), with virtual time running until it resolves. */
async function leave(h: Harness) {
  const p = h.manager.leave();
  await h.time.advance(3000);
  return p;
}

/** The map key of the manager's current member id in the FakeServer. */
const ourKey = (h: Harness) => stickyMapKey(h.manager.memberId!);

describe("sticky format: join", () => {
  it("schedules the delayed sticky leave first, then sends the MSC4143 membership js-sdk 43 accepts", async () => {
    const h = sticky();
    h.manager.join();
    const memberId = h.manager.memberId!;
    expect(memberId).toMatch(/^[0-9a-f-]{36}$/);
    await h.time.advance(200);
    const [schedule, write] = h.server.log.filter((e) => e.op === "schedule" || e.op === "state");
    expect(h.server.log[0].op).toBe("schedule");
    expect(schedule.content).toEqual({ slot_id: "m.call#ROOM", msc4354_sticky_key: memberId });
    const content = h.server.contentAt(ourKey(h))!;
    expect(write.content).toEqual(content);
    expect(content).toEqual({
      slot_id: "m.call#ROOM",
      application: { type: "m.call" },
      transports: {
        published: [{ type: "livekit", livekit_service_url: "https://lk.example" }],
        can_subscribe: ["livekit"],
      },
      member: { user_id: "@alice:localhost", device_id: "DEV", id: memberId },
      versions: [],
      msc4354_sticky_key: memberId,
    });
    // What matrix-js-sdk 43's reader checks (it throws on anything it refuses).
    expect(checkRtcMembershipData(content, "@alice:localhost")).toBe(true);
    // Nothing at the state key: the sticky format writes no state.
    expect(h.server.state.get(h.key)).toBeUndefined();
    expect(h.server.pendingFor(ourKey(h))).toHaveLength(1);
    expect(h.manager.state).toMatchObject({ kind: "joined", delayedLeave: true });
    expect(h.manager.ownMembership$).toBeDefined();
  });

  it("the delayed leave and the membership stay sticky for an hour; the leave's stickiness is the server's cap", async () => {
    const h = sticky();
    const durations: number[] = [];
    const send = h.server.sendStickyEvent.bind(h.server);
    const schedule = h.server.sendDelayedStickyEvent.bind(h.server);
    h.server.sendStickyEvent = (req, o) => (durations.push(req.durationMs), send(req, o));
    h.server.sendDelayedStickyEvent = (req, o) => (durations.push(req.durationMs), schedule(req, o));
    h.manager.join();
    await h.time.advance(200);
    expect(durations).toEqual([3_600_000, 3_600_000]);
  });

  it("a fresh member id per join; the app's own when it gives one", async () => {
    const h = sticky();
    h.manager.join();
    await h.time.advance(200);
    const first = h.manager.memberId!;
    await leave(h);
    expect(h.manager.memberId).toBeUndefined();
    h.manager.join();
    await h.time.advance(200);
    const second = h.manager.memberId!;
    expect(second).not.toBe(first);
    expect(h.server.contentAt(stickyMapKey(first))).toEqual({
      slot_id: "m.call#ROOM",
      msc4354_sticky_key: first,
    });
    expect(h.server.contentAt(stickyMapKey(second))).toMatchObject({ member: { id: second } });

    const own = sticky({ memberId: "my-own-id" });
    own.manager.join();
    await own.time.advance(200);
    expect(own.manager.memberId).toBe("my-own-id");
    expect(own.server.contentAt(stickyMapKey("my-own-id"))).toMatchObject({ member: { id: "my-own-id" } });
  });

  it("heartbeats restart the delayed leave; it never fires", async () => {
    // A fixed interval, as main's join-heartbeat tests (the adaptive one's cadence is its own tests').
    const h = sticky({ heartbeatIntervalMs: 1000 });
    h.manager.join();
    await h.time.advance(20_000);
    expect(h.server.history.filter((e) => e.by === "delayed")).toHaveLength(0);
    expect(h.server.pendingFor(ourKey(h))).toHaveLength(1);
    expect(h.server.count("restart")).toBeGreaterThanOrEqual(19);
    expect(h.probablyLeft).toEqual([false]);
  });
});

describe("sticky format: refresh", () => {
  it("sends the membership again before its stickiness runs out, each time after a restart", async () => {
    // A heartbeat interval that does not divide the refresh interval: a refresh that did not wait for
    // its own restart would go out 100-600 ms after the last one.
    const h = sticky({ stickyDurationMs: 6000, heartbeatIntervalMs: 700 });
    h.manager.join();
    await h.time.advance(40_000);
    const key = ourKey(h);
    const writes = h.server.log.filter((e) => e.op === "state");
    // One every 6000 - min(3000, 700 + 400 + 10 000) = 3000 ms (and the restart before it).
    expect(writes.length).toBeGreaterThanOrEqual(12);
    expect(writes.length).toBeLessThanOrEqual(15);
    // Never a moment without a sticky membership: each write lands before the last one expires.
    const at = writes.map((w) => w.at);
    for (let i = 1; i < at.length; i++) expect(at[i] - at[i - 1]).toBeLessThan(6000 - 100);
    // Each refresh goes out right after a restart that succeeded (js-sdk's order).
    for (const w of writes.slice(1)) {
      const before = h.server.log.filter((e) => e.at <= w.at && e !== w).at(-1);
      expect(before?.op).toBe("restart");
      expect(w.at - before!.at).toBeLessThanOrEqual(h.server.latencyMs + 1);
    }
    expect(h.server.contentAt(key)).toMatchObject({ member: { id: h.manager.memberId } });
    expect(h.manager.status).toBe("connected");
  });

  it("a refresh waits while its restart fails; the membership is said expired only when the stickiness ran out", async () => {
    const h = sticky({ stickyDurationMs: 6000 });
    h.manager.join();
    await h.time.advance(2000);
    h.server.down = true;
    await h.time.advance(8000);
    expect(h.manager.probablyLeft).toBe(true);
    expect(h.server.contentAt(ourKey(h))).toBeUndefined();
    h.server.down = false;
    await h.time.advance(5000);
    expect(h.manager.status).toBe("connected");
    expect(h.server.contentAt(ourKey(h))).toMatchObject({ member: { id: h.manager.memberId } });
    expect(h.server.pendingFor(ourKey(h))).toHaveLength(1);
  });
});

describe("sticky format: leave", () => {
  it("fires the delayed sticky leave: the server holds the left content for our key", async () => {
    const h = sticky();
    h.manager.join();
    await h.time.advance(500);
    const key = ourKey(h);
    const memberId = h.manager.memberId;
    await expect(leave(h)).resolves.toEqual({ status: "left", via: "delayed-event-sent" });
    expect(h.server.contentAt(key)).toEqual({ slot_id: "m.call#ROOM", msc4354_sticky_key: memberId });
    expect(h.server.pendingFor(key)).toHaveLength(0);
    expect(h.manager.state).toEqual({ kind: "left", reason: "user" });
  });

  it("writes the sticky leave itself when the delayed leave is gone", async () => {
    const h = sticky();
    h.manager.join();
    await h.time.advance(500);
    const key = ourKey(h);
    const memberId = h.manager.memberId;
    for (const id of h.server.pendingFor(key)) h.server.lose(id);
    await expect(leave(h)).resolves.toEqual({ status: "left", via: "state-written" });
    const last = h.server.log.filter((e) => e.op === "state").at(-1);
    expect(last?.content).toEqual({ slot_id: "m.call#ROOM", msc4354_sticky_key: memberId });
    expect(h.server.contentAt(key)).toEqual({ slot_id: "m.call#ROOM", msc4354_sticky_key: memberId });
    expect(h.server.stickyExpiresAt.get(key)! - h.time.now()).toBeGreaterThan(3_590_000);
  });

  it("a crash (dispose without leave): the server fires the sticky leave within the delay", async () => {
    const h = sticky();
    h.manager.join();
    await h.time.advance(3000);
    const key = ourKey(h);
    h.manager.dispose();
    await h.time.advance(DELAY + 100);
    expect(h.server.history.filter((e) => e.by === "delayed" && e.stateKey === key)).toHaveLength(1);
    expect(Object.keys(h.server.contentAt(key)!)).toEqual(["slot_id", "msc4354_sticky_key"]);
    expect(h.manager.pendingTimers).toBe(0);
  });

  it("a network cut longer than the delay: the leave fires, probablyLeft, the same member joins again", async () => {
    const h = sticky();
    h.manager.join();
    await h.time.advance(1000);
    const memberId = h.manager.memberId!;
    h.server.down = true;
    await h.time.advance(DELAY + 1000);
    expect(h.manager.probablyLeft).toBe(true);
    expect(Object.keys(h.server.contentAt(stickyMapKey(memberId))!)).toEqual([
      "slot_id",
      "msc4354_sticky_key",
    ]);
    h.server.down = false;
    await h.time.advance(3000);
    expect(h.manager.status).toBe("connected");
    expect(h.manager.memberId).toBe(memberId);
    expect(h.server.contentAt(stickyMapKey(memberId))).toMatchObject({ member: { id: memberId } });
    expect(h.server.pendingFor(stickyMapKey(memberId))).toHaveLength(1);
  });
});

describe("sticky format: eyes", () => {
  it("a moderator's redaction of our membership is seen (a read of our event) and put right", async () => {
    const h = sticky();
    h.manager.join();
    await h.time.advance(500);
    const key = ourKey(h);
    expect(h.server.redactCurrentSticky(key)).toBe(true);
    await h.time.advance(h.manager.effectiveTiming.membershipCheckIntervalMs + 500);
    expect(h.errors.map((e) => e.code)).toContain("membership-removed");
    expect(h.server.contentAt(key)).toMatchObject({ member: { id: h.manager.memberId } });
    expect(h.manager.status).toBe("connected");
  });
});

describe("sticky format: a server or host without sticky events", () => {
  it("fails with sticky-events-unsupported; nothing was sent as a plain event", async () => {
    const h = sticky({}, (s) => (s.stickyEventsEnabled = false));
    h.manager.join();
    await h.time.advance(2000);
    expect(h.manager.state).toMatchObject({ kind: "failed", error: { code: "sticky-events-unsupported" } });
    expect(h.errors.map((e) => e.code)).toEqual(["sticky-events-unsupported"]);
    expect(h.server.history).toEqual([]);
    expect(h.server.delayed.size).toBe(0);
    expect(h.server.count("schedule")).toBe(1);
    expect(h.server.count("state")).toBe(0);
  });

  it("with stickyFallback 'state', joins in the state format and says so", async () => {
    const h = sticky({ stickyFallback: "state" }, (s) => (s.stickyEventsEnabled = false));
    const formats: (string | undefined)[] = [];
    h.manager.support$.subscribe((s) => formats.push(s.membershipFormat));
    h.manager.join();
    await h.time.advance(2000);
    expect(h.manager.state).toMatchObject({ kind: "joined", delayedLeave: true });
    expect(h.errors.map((e) => e.code)).toEqual(["sticky-events-unsupported"]);
    expect(formats.at(-1)).toBe("state");
    expect(formats[0]).toBe("sticky");
    expect(h.server.state.get(h.key)).toMatchObject({ application: "m.call", device_id: "DEV" });
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
    expect(h.manager.memberId).toBeUndefined();
    await expect(leave(h)).resolves.toEqual({ status: "left", via: "delayed-event-sent" });
    expect(h.server.state.get(h.key)).toEqual({});
  });
});

describe("sticky format: configuration", () => {
  it("rejects sticky options without the sticky format, and a backend that cannot send sticky events", () => {
    expect(() => harness({ memberId: "x" })).toThrow(/memberId is an option of membershipFormat "sticky"/);
    expect(() => harness({ stickyDurationMs: 5000 })).toThrow(/stickyDurationMs/);
    expect(() => sticky({ stickyDurationMs: 3_600_001 })).toThrow(/stickyDurationMs must be/);
    expect(() => sticky({ stickyDurationMs: 1999 })).toThrow(/stickyDurationMs must be/);
    expect(() => sticky({ memberId: "" })).toThrow(/memberId must be/);
    expect(() => sticky({ stickyFallback: "plain" as never })).toThrow(/stickyFallback/);
    expect(() =>
      harness((s) => ({
        membershipFormat: "sticky",
        backend: { ...s, sendStickyEvent: undefined } as never,
      })),
    ).toThrow(/needs a backend that sends sticky events/);
    expect(RTC_MEMBER_EVENT_TYPE).toBe("org.matrix.msc4143.rtc.member");
  });
});
