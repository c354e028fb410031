/**
 * Widget mode, the widget's own half of "a removed widget leaves at once" (issue 22 part 1): when the
 * widget's page goes away (its iframe removed: `pagehide`), its manager fires the delayed leave through
 * the widget API (`update_delayed_event` `send`, posted at once) and the host sends it. In one process:
 * MembershipManager → WidgetBackend → WidgetApi ⇄ ClientWidgetApi → DelayedEventWidgetDriver →
 * MatrixClient → test homeserver over real HTTP; another user's synced js-sdk MatrixRTCSession watches.
 * (The host's own half, sending what a removed widget left pending, is DelayedEventWidgetDriver's.)
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "@jest/globals";
import { quietWidgetLogs } from "../../helpers/widgetBus.js";
import { rtcMembers, stopClient, syncedClient, waitFor } from "../../helpers/matrix.js";
import { sleep, startWidgetWorld, type WidgetWorld } from "./harness.js";

const DELAY = 10_000;

let restoreConsole: () => void;
beforeAll(() => {
  restoreConsole = quietWidgetLogs();
});
afterAll(() => restoreConsole());

const transition = (type: string, persisted: boolean) => Object.assign(new Event(type), { persisted });

describe("widget mode: the widget leaves on its own pagehide", () => {
  let world: WidgetWorld;
  beforeEach(async () => {
    world = await startWidgetWorld();
  });
  afterEach(async () => {
    await world.close();
  });

  it("pagehide → update_delayed_event send through the host: {} on the server, bob's MatrixRTCSession drops the device", async () => {
    const bob = await world.hs.createUser("bob");
    await world.hs.joinRoom(bob.accessToken, world.roomId);
    const observer = await syncedClient(world.hs.baseUrl, bob);
    try {
      const page = { window: new EventTarget(), document: new EventTarget() };
      const c = await world.call({ manager: { delayedLeaveDelayMs: DELAY, leaveOnPageHide: page } });
      const id = `${world.alice.userId}|${world.alice.deviceId}`;
      c.manager.join();
      await waitFor(() => c.manager.status === "connected", 5000, "connected");
      await waitFor(() => rtcMembers(observer, world.roomId).includes(id), 5000, "bob to see alice");
      expect(c.pending()).toHaveLength(1);

      const hiddenAt = Date.now();
      page.window.dispatchEvent(transition("pagehide", false));
      await waitFor(() => !rtcMembers(observer, world.roomId).includes(id), DELAY / 2, "bob to drop alice");
      expect(Date.now() - hiddenAt).toBeLessThan(1000);
      expect(c.membership()).toEqual({});
      expect(c.pending()).toEqual([]);
      const sends = world.hs.requests.filter((r) => r.route.startsWith("delayed.send"));
      expect(sends.map((r) => r.status)).toEqual([200]);
      expect(c.backend.failures).toEqual([]);
      // The widget lives on here (a real removed iframe does not): it sends nothing more.
      const before = world.hs.requests.length;
      await sleep(1500);
      expect(world.hs.requests.slice(before).filter((r) => r.userId === world.alice.userId)).toEqual([]);
      expect(c.manager.state).toEqual({ kind: "reconnecting", reason: "page-hidden", probablyLeft: true });
    } finally {
      stopClient(observer);
    }
  });

  it("a host that stopped listening first gets nothing, and the server fires the leave by itself", async () => {
    const page = { window: new EventTarget() };
    // A plain ClientWidgetApi: stopping it only stops listening (a host built with
    // createClientWidgetApi also sends the widget's pending delayed leaves then: the host's own half).
    const c = await world.call({
      manager: { delayedLeaveDelayMs: 1000, leaveOnPageHide: page },
      plainClientApi: true,
    });
    c.manager.join();
    await waitFor(() => c.manager.status === "connected", 5000, "connected");
    // The host removes the widget by stopping its api first: the widget's message finds nobody.
    c.pair.clientApi.stop();
    page.window.dispatchEvent(transition("pagehide", false));
    await sleep(300);
    expect(world.hs.requests.filter((r) => r.route.startsWith("delayed.send"))).toEqual([]);
    await waitFor(() => c.pending().length === 0 && !c.joinedOnServer(), 3000, "the server to fire it");
    expect(c.membership()).toEqual({});
  });
});
