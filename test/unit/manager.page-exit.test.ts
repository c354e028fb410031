/**
 * Leaving when the page goes away (issue 22 part 1), on virtual time with a fake window and document:
 * `pagehide`/`freeze` fire our delayed leave at once with a request that outlives the page; the call
 * then sends nothing until `pageshow` (back/forward cache) or `resume` brings it back. Assertions are on
 * what the fake server holds and logs.
 */
import { describe, expect, it } from "@jest/globals";
import { harness, isJoinedOnServer, type Harness } from "../helpers/managerHarness.js";
import { matrixError } from "../helpers/fakeServer.js";
import { currentPage, type PageLifecycle } from "../../src/manager/pageLifecycle.js";
import { eventsStateSource } from "../../src/membership/observer.js";
import type { MembershipManagerOptions } from "../../src/manager/MembershipManager.js";

/** An EventTarget that counts its listeners (to prove dispose() removes them). */
class CountingTarget extends EventTarget {
  listeners = 0;
  override addEventListener(...args: Parameters<EventTarget["addEventListener"]>): void {
    this.listeners++;
    super.addEventListener(...args);
  }
  override removeEventListener(...args: Parameters<EventTarget["removeEventListener"]>): void {
    this.listeners--;
    super.removeEventListener(...args);
  }
}

interface FakePage extends PageLifecycle {
  window: CountingTarget;
  document: CountingTarget;
  hide(persisted?: boolean): void;
  show(persisted?: boolean): void;
  freeze(): void;
  resume(): void;
}

function fakePage(): FakePage {
  const window = new CountingTarget();
  const document = new CountingTarget();
  const transition = (type: string, persisted: boolean) => Object.assign(new Event(type), { persisted });
  return {
    window,
    document,
    hide: (persisted = false) => window.dispatchEvent(transition("pagehide", persisted)),
    show: (persisted = true) => window.dispatchEvent(transition("pageshow", persisted)),
    freeze: () => document.dispatchEvent(new Event("freeze")),
    resume: () => document.dispatchEvent(new Event("resume")),
  };
}

async function joinedWithPage(
  options: Partial<MembershipManagerOptions> = {},
): Promise<{ h: Harness; page: FakePage; delayId: () => string | undefined }> {
  const page = fakePage();
  const h = harness({ delayedLeaveDelayMs: 10_000, leaveOnPageHide: page, ...options });
  let current: string | undefined;
  h.manager.delayId$.subscribe((id) => (current = id));
  h.manager.join();
  await h.time.until(() => h.manager.status === "connected");
  await h.time.advance(1000);
  return { h, page, delayId: () => current };
}

const sends = (h: Harness) => h.server.log.filter((e) => e.op === "send");

describe("leave when the page goes away", () => {
  it("pagehide fires the delayed leave in force with keepAlive, at once; the server holds {} and nothing of ours", async () => {
    const { h, page, delayId } = await joinedWithPage();
    const id = delayId();
    expect(id).toBe(h.server.pendingFor(h.key)[0]);
    const hiddenAt = h.time.now();
    page.hide();
    // Sent in the listener itself, not on a timer: a closing page runs no more timers.
    expect(sends(h)).toEqual([{ at: hiddenAt, op: "send", delayId: id, keepAlive: true, outcome: "ok" }]);
    await h.time.advance(h.server.latencyMs);
    expect(h.server.state.get(h.key)).toEqual({});
    expect(h.server.pendingFor(h.key)).toEqual([]);
    expect(h.manager.state).toEqual({ kind: "reconnecting", reason: "page-hidden", probablyLeft: true });
    expect(h.manager.probablyLeft).toBe(true);
    expect(delayId()).toBeUndefined();
    // A page that lives on (hidden, frozen) changes nothing more on the server: no restart of the fired
    // id, no write, no schedule (reads, "probe" here, and listings, "list", may go on).
    const before = h.server.log.length;
    await h.time.advance(5 * 60_000);
    expect(h.server.log.slice(before).filter((e) => e.op !== "probe" && e.op !== "list")).toEqual([]);
    expect(h.server.state.get(h.key)).toEqual({});
    h.manager.dispose();
    expect(h.manager.pendingTimers).toBe(0);
  });

  it("freeze does the same (Page Lifecycle API), and resume brings the device back", async () => {
    const { h, page } = await joinedWithPage();
    page.freeze();
    expect(sends(h).map((e) => e.keepAlive)).toEqual([true]);
    await h.time.advance(100);
    expect(h.server.state.get(h.key)).toEqual({});
    // pagehide after freeze (the bfcache order): nothing more to fire.
    page.hide(true);
    expect(sends(h)).toHaveLength(1);
    page.resume();
    await h.time.until(() => h.manager.status === "connected", 10_000);
    expect(isJoinedOnServer(h)).toBe(true);
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
    h.manager.dispose();
  });

  it("a back/forward cache restore (pageshow persisted) joins again: new delayed leave, fresh membership", async () => {
    const { h, page, delayId } = await joinedWithPage();
    const first = delayId();
    page.hide(true);
    await h.time.advance(30_000); // in the cache for a while (its timers are frozen in a browser)
    expect(h.server.state.get(h.key)).toEqual({});
    // A plain pageshow (a first load) changes nothing.
    page.show(false);
    await h.time.advance(1000);
    expect(h.manager.state.kind).toBe("reconnecting");
    const before = h.server.log.length;
    page.show(true);
    await h.time.until(() => h.manager.status === "connected", 10_000);
    // (reads of our key, logged as "probe", aside)
    expect(
      h.server.log
        .slice(before)
        .filter((e) => e.op !== "probe")
        .map((e) => e.op),
    ).toEqual(["schedule", "state", "restart"]);
    expect(isJoinedOnServer(h)).toBe(true);
    const pending = h.server.pendingFor(h.key);
    expect(pending).toHaveLength(1);
    expect(pending[0]).not.toBe(first);
    expect(delayId()).toBe(pending[0]);
    expect(h.manager.probablyLeft).toBe(false);
    // And it keeps it alive: the heartbeat runs on the new id.
    await h.time.advance(30_000);
    expect(isJoinedOnServer(h)).toBe(true);
    expect(h.server.history.filter((e) => e.by === "delayed")).toHaveLength(1); // only the fire on hide
    h.manager.dispose();
  });

  it("opt-out (leaveOnPageHide: false): pagehide sends nothing and the heartbeat goes on", async () => {
    const page = fakePage();
    const h = harness({ delayedLeaveDelayMs: 10_000, leaveOnPageHide: false });
    h.manager.join();
    await h.time.until(() => h.manager.status === "connected");
    page.hide();
    expect(page.window.listeners).toBe(0);
    await h.time.advance(30_000);
    expect(sends(h)).toEqual([]);
    expect(isJoinedOnServer(h)).toBe(true);
    expect(h.manager.status).toBe("connected");
    h.manager.dispose();
  });

  it("after dispose() the listeners are gone and pagehide sends nothing", async () => {
    const { h, page } = await joinedWithPage();
    expect(page.window.listeners).toBe(2);
    expect(page.document.listeners).toBe(2);
    h.manager.dispose();
    expect(page.window.listeners).toBe(0);
    expect(page.document.listeners).toBe(0);
    const before = h.server.log.length;
    page.hide();
    page.freeze();
    await h.time.advance(1000);
    expect(h.server.log.slice(before)).toEqual([]);
  });

  it("on by default where a browser window exists; nothing in Node", async () => {
    expect((globalThis as { window?: unknown }).window).toBeUndefined();
    expect(currentPage()).toBeUndefined();
    // Node: no window, nothing to listen on, nothing sent.
    const node = harness({ delayedLeaveDelayMs: 10_000 });
    node.manager.join();
    await node.time.until(() => node.manager.status === "connected");
    node.manager.dispose();

    const page = fakePage();
    const g = globalThis as { window?: unknown; document?: unknown };
    g.window = page.window;
    g.document = page.document;
    try {
      const h = harness({ delayedLeaveDelayMs: 10_000 });
      expect(page.window.listeners).toBe(2);
      h.manager.join();
      await h.time.until(() => h.manager.status === "connected");
      page.hide();
      expect(sends(h).map((e) => e.keepAlive)).toEqual([true]);
      h.manager.dispose();
      expect(page.window.listeners).toBe(0);
    } finally {
      delete g.window;
      delete g.document;
    }
  });

  it("autoRejoin off: left with reason page-hidden, and a restore does not join again", async () => {
    const { h, page } = await joinedWithPage({ autoRejoin: false });
    page.hide(true);
    expect(h.manager.state).toEqual({ kind: "left", reason: "page-hidden" });
    await h.time.advance(100);
    expect(h.server.state.get(h.key)).toEqual({});
    page.show(true);
    await h.time.advance(30_000);
    expect(h.manager.state).toEqual({ kind: "left", reason: "page-hidden" });
    expect(h.server.state.get(h.key)).toEqual({});
    expect(h.server.pendingFor(h.key)).toEqual([]);
    expect(h.manager.pendingTimers).toBe(0);
    // The app may join again itself.
    h.manager.join();
    await h.time.until(() => h.manager.status === "connected", 10_000);
    expect(isJoinedOnServer(h)).toBe(true);
    h.manager.dispose();
  });

  it("not while a membership write is in flight: it could land after {} with no delayed leave behind it", async () => {
    const page = fakePage();
    const h = harness({ delayedLeaveDelayMs: 10_000, leaveOnPageHide: page }, (s) =>
      s.inject("state", { kind: "slow", ms: 500 }),
    );
    h.manager.join();
    await h.time.until(() => h.server.count("state") === 1);
    page.hide();
    expect(sends(h)).toEqual([]);
    // The membership lands, and the delayed leave behind it is what takes it down (here the page lives
    // on and keeps it alive, as a page whose pagehide came too early would).
    await h.time.until(() => h.manager.status === "connected", 10_000);
    expect(isJoinedOnServer(h)).toBe(true);
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
    h.manager.dispose();
  });

  it("not while a write whose answer never came may still land (it could put the membership back after {})", async () => {
    const { h, page } = await joinedWithPage();
    h.server.inject("state", { kind: "lose-response" });
    void h.manager.update({ callIntent: "audio" }).catch(() => undefined);
    // Its local timeout passes and the retry is answered; the lost one may still be held in the network.
    await h.time.until(() => h.server.count("state") >= 3, 30_000);
    await h.time.advance(100);
    page.hide();
    expect(sends(h)).toEqual([]);
    h.manager.dispose();
  });

  it("nothing before the membership was sent: the delayed leave alone would only write {} over nothing", async () => {
    const page = fakePage();
    const h = harness({ delayedLeaveDelayMs: 10_000, leaveOnPageHide: page }, (s) =>
      s.inject("schedule", { kind: "slow", ms: 500 }),
    );
    h.manager.join();
    await h.time.advance(100);
    page.hide();
    expect(sends(h)).toEqual([]);
    h.manager.dispose();
    await h.time.advance(1000);
  });

  it("a leave under way fires its delayed leave again with keepAlive (its own send may die with the page)", async () => {
    const { h, page, delayId } = await joinedWithPage();
    const id = delayId();
    h.server.inject("send", { kind: "hang" });
    const left = h.manager.leave({ timeoutMs: 5000 });
    await h.time.advance(50);
    expect(sends(h)).toHaveLength(1);
    page.hide();
    expect(sends(h)).toHaveLength(2);
    expect(sends(h)[1]).toMatchObject({ delayId: id, keepAlive: true });
    await h.time.advance(100);
    expect(h.server.state.get(h.key)).toEqual({});
    expect(h.server.pendingFor(h.key)).toEqual([]);
    // The leave job goes on and ends as the server says (its hung send times out, the retry finds it
    // gone and writes {}).
    h.server.clearFaults();
    let result: unknown;
    void left.then((r) => (result = r));
    await h.time.until(() => result !== undefined, 30_000);
    expect(result).toMatchObject({ status: "left" });
    expect(h.manager.state).toEqual({ kind: "left", reason: "user" });
    h.manager.dispose();
  });

  it("leave() while parked writes {} once and ends left; a later pageshow does not join again", async () => {
    const { h, page } = await joinedWithPage();
    page.hide();
    await h.time.advance(100);
    let result: unknown;
    void h.manager.leave({ timeoutMs: 5000 }).then((r) => (result = r));
    await h.time.until(() => result !== undefined, 10_000);
    expect(result).toEqual({ status: "left", via: "state-written" });
    expect(h.manager.state).toEqual({ kind: "left", reason: "user" });
    page.show(true);
    await h.time.advance(30_000);
    expect(h.server.state.get(h.key)).toEqual({});
    expect(h.server.pendingFor(h.key)).toEqual([]);
    h.manager.dispose();
  });

  it("a heartbeat retrying at hide stops: the fired id is not restarted again", async () => {
    const { h, page } = await joinedWithPage({ delayedLeaveDelayMs: 10_000 });
    h.server.inject("restart", { kind: "error", error: () => matrixError(502, "M_UNKNOWN") }, 3);
    await h.time.until(() => h.server.count("restart", "error") === 1, 20_000);
    page.hide();
    const before = h.server.log.length;
    await h.time.advance(60_000);
    expect(h.server.log.slice(before).filter((e) => e.op === "restart")).toEqual([]);
    expect(h.server.state.get(h.key)).toEqual({});
    h.manager.dispose();
  });

  it("the room view seeing {} while parked is no removal by someone else", async () => {
    const page = fakePage();
    const h = harness((s) => ({
      delayedLeaveDelayMs: 10_000,
      leaveOnPageHide: page,
      roomState: eventsStateSource(s.roomStateView("@alice:localhost")),
    }));
    h.manager.join();
    await h.time.until(() => h.manager.status === "connected");
    await h.time.advance(3000);
    page.hide();
    await h.time.advance(10_000);
    expect(h.errors.map((e) => e.code)).not.toContain("membership-removed");
    expect(h.manager.state).toEqual({ kind: "reconnecting", reason: "page-hidden", probablyLeft: true });
    expect(h.server.count("state")).toBe(1);
    h.manager.dispose();
  });
});
