/**
 * Our own device in the first list an app reads (issue 23 item 7), over real HTTP on the test homeserver:
 * one synced matrix-js-sdk client per app, which the manager writes through and the list reads from, as
 * the README's bot does. The app's `/sync` answers are held back (`{ delayMs }` fault on alice's sync), so
 * the client's view lags the server's answers to the manager on purpose; the same reads without `manager`
 * show that lag, so every assertion below can fail.
 *
 * - the first list read right after `connected` (`whenConnected` resolving) includes our device, in the
 *   state and the sticky format, over several joins and leaves, and the server holds our membership then;
 * - the first list read right after `leave()` resolved no longer includes it, while the client's view
 *   still does (its sync has not delivered the leave) and the server holds the leave;
 * - another user's view (js-sdk 43's MatrixRTCSession and our observer, on bob's synced client) is not
 *   changed by any of it: both list alice only once the server delivered her membership to bob, and drop
 *   her once it delivered the leave;
 * - widget mode: the same, with the list read from the host's state pushes (`WidgetStateSource`);
 * - with no fault at all, the natural race (a sync right behind the write's answer), many times.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@jest/globals";
import "../../helpers/matrix.js"; // quiet matrix-js-sdk
import log from "loglevel";
import { RoomStateEvent, type MatrixClient, type MatrixEvent } from "matrix-js-sdk";
import {
  CALL_MEMBER_EVENT_TYPE,
  ClientBackend,
  MembershipManager,
  RTC_MEMBER_EVENT_TYPE,
  WidgetBackend,
  WidgetStateSource,
  currentCallMembers,
  includesDevice,
  watchCallMembers,
  whenConnected,
  widgetCapabilities,
  widgetObserverCapabilities,
  type CallMember,
} from "../../../src/index.js";
import {
  connectWidget,
  startTestHomeserver,
  type TestHomeserver,
  type UserCreds,
} from "../../../src/testing/index.js";
import { DelayedEventWidgetDriver } from "../../../src/widget-host/index.js";
import { stopClient, syncedClient, waitFor } from "../../helpers/matrix.js";
import { quietWidgetLogs } from "../../helpers/widgetBus.js";
import { idOf, jsSdkView, NO_LIMITS, observeWithUs, roomOf } from "./helpers.js";

/** How late alice's `/sync` answers come: far beyond a write's round trip on 127.0.0.1. */
const SYNC_DELAY_MS = 500;
const DELAY = 2000;
const quiet = log.getLogger("own-first-list-quiet");
quiet.setLevel("silent");

let restoreConsole: () => void;
beforeAll(() => {
  restoreConsole = quietWidgetLogs();
});
afterAll(() => restoreConsole());

let hs: TestHomeserver | undefined;
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) c();
  await hs?.close();
  hs = undefined;
});

async function setUp(options: { stickyEvents?: boolean } = {}) {
  hs = await startTestHomeserver({ ...NO_LIMITS, ...options });
  const alice = await hs.createUser("alice");
  const roomId = await hs.createRoom(alice.accessToken);
  const bobCreds = await hs.createUser("bob");
  await hs.joinRoom(bobCreds.accessToken, roomId);
  // Bob: another user's synced client, with js-sdk's MatrixRTCSession and our observer (no manager).
  const bob = await syncedClient(hs.baseUrl, bobCreds);
  cleanups.push(() => stopClient(bob));
  await roomOf(bob, roomId);
  const bobOurs = observeWithUs(bob, roomId);
  cleanups.push(() => bobOurs.stop());
  return { alice, roomId, bob, bobOurs };
}

/** Alice's `/sync` answers are held back from now on. */
function slowSyncOf(creds: UserCreds): void {
  hs!.faults.add({ route: "sync", method: "GET", userId: creds.userId, respond: { delayMs: SYNC_DELAY_MS } });
}

/** What the server holds for alice's device now: a membership (true), a leave or nothing (false). */
function serverHolds(
  roomId: string,
  alice: UserCreds,
  format: "state" | "sticky",
  memberId?: string,
): boolean {
  if (format === "state") {
    const own = hs!
      .roomState(roomId)
      .find(
        (e) =>
          e.type === CALL_MEMBER_EVENT_TYPE && e.state_key === `_${alice.userId}_${alice.deviceId}_m.call`,
      );
    return !!own && Object.keys(own.content as object).length > 0;
  }
  const current = hs!
    .timeline(roomId)
    .filter(
      (e) =>
        e.type === RTC_MEMBER_EVENT_TYPE &&
        e.sender === alice.userId &&
        (e.content as { msc4354_sticky_key?: string }).msc4354_sticky_key === memberId,
    )
    .at(-1);
  return !!current && "member" in (current.content as object);
}

const mine = (members: readonly CallMember[] | undefined, alice: UserCreds) =>
  (members ?? []).filter((m) => m.userId === alice.userId && m.deviceId === alice.deviceId);

describe.each(["state", "sticky"] as const)("client mode, %s format, alice's sync held back", (format) => {
  it("the first list after `connected` has alice, the first after `leave()` does not; bob's view is unaffected", async () => {
    const { alice, roomId, bob, bobOurs } = await setUp({ stickyEvents: format === "sticky" });
    const client: MatrixClient = await syncedClient(hs!.baseUrl, alice);
    cleanups.push(() => stopClient(client));
    await roomOf(client, roomId);
    slowSyncOf(alice);
    const manager = new MembershipManager({
      backend: new ClientBackend(client),
      roomId,
      userId: alice.userId,
      deviceId: alice.deviceId,
      delayedLeaveDelayMs: DELAY,
      logger: quiet,
      ...(format === "sticky" ? { membershipFormat: "sticky" as const } : {}),
    });
    cleanups.push(() => manager.dispose());
    // Bob's lists, all of them: alice must never appear in them before the server delivered her to bob.
    const bobSaw: string[][] = [];
    const bobWatch = watchCallMembers(bob, { roomId });
    bobWatch.onChange((m) => bobSaw.push(m.map(idOf)));
    cleanups.push(() => bobWatch.close());
    const own = includesDevice(alice.userId, alice.deviceId);

    for (let run = 0; run < 3; run++) {
      manager.join();
      await whenConnected(manager, { timeoutMs: 10_000 });
      // Right at `connected`: the server holds it, the client's view has not synced it yet.
      const first = currentCallMembers(client, { manager })!;
      expect(serverHolds(roomId, alice, format, manager.memberId)).toBe(true);
      expect(own(currentCallMembers(client, { roomId })!)).toBe(false);
      expect(mine(first, alice)).toHaveLength(1);
      expect(mine(first, alice)[0].fromManager).toBe(true);
      if (format === "sticky") expect(mine(first, alice)[0].stickyKey).toBe(manager.memberId);
      // Bob's view is bob's sync's: js-sdk and our observer there agree, with or without alice yet.
      expect(bobOurs.ids()).toEqual(jsSdkView(bob, roomId).map(idOf));

      // Once alice's client syncs: the server's event, and the list is js-sdk's own in the same client.
      await waitFor(() => own(currentCallMembers(client, { roomId })!), 5000, "alice's sync to show her");
      const synced = currentCallMembers(client, { manager })!;
      expect(mine(synced, alice)).toHaveLength(1);
      expect(mine(synced, alice)[0].fromManager).toBeUndefined();
      // js-sdk's session in the same client reads the same sync (a tick later for sticky events).
      await waitFor(
        () => JSON.stringify(jsSdkView(client, roomId).map(idOf)) === JSON.stringify(synced.map(idOf)),
        5000,
        "js-sdk in alice's client to list the same",
      );
      await waitFor(() => jsSdkView(bob, roomId).length === 1, 5000, "bob's js-sdk to list alice");
      expect(bobOurs.ids()).toEqual([idOf(alice)]);

      const result = await manager.leave({ timeoutMs: 5000 });
      expect(result.status).toBe("left");
      // Right after the leave: the server holds the leave, the client's view still shows alice.
      expect(serverHolds(roomId, alice, format, manager.memberId)).toBe(false);
      expect(own(currentCallMembers(client, { roomId })!)).toBe(true);
      expect(mine(currentCallMembers(client, { manager }), alice)).toEqual([]);
      await waitFor(() => !own(currentCallMembers(client, { roomId })!), 5000, "alice's sync to drop her");
      expect(mine(currentCallMembers(client, { manager }), alice)).toEqual([]);
      await waitFor(() => jsSdkView(bob, roomId).length === 0, 5000, "bob's js-sdk to drop alice");
      expect(bobOurs.ids()).toEqual([]);
    }
    // Bob's lists: alice in, alice out, three times; nothing from alice's manager ever reached them.
    expect(bobSaw).toEqual([[idOf(alice)], [], [idOf(alice)], [], [idOf(alice)], []]);
  }, 60_000);
});

describe("client mode, no fault: the natural race, many times", () => {
  it("every first list after `connected` has alice, every first list after `leave()` does not", async () => {
    const { alice, roomId } = await setUp();
    const client = await syncedClient(hs!.baseUrl, alice);
    cleanups.push(() => stopClient(client));
    await roomOf(client, roomId);
    const manager = new MembershipManager({
      backend: new ClientBackend(client),
      roomId,
      userId: alice.userId,
      deviceId: alice.deviceId,
      delayedLeaveDelayMs: DELAY,
      logger: quiet,
    });
    cleanups.push(() => manager.dispose());
    const own = includesDevice(alice.userId, alice.deviceId);
    const RUNS = 10;
    let viewLagged = 0;
    for (let run = 0; run < RUNS; run++) {
      manager.join();
      await whenConnected(manager, { timeoutMs: 10_000 });
      if (!own(currentCallMembers(client, { roomId }) ?? [])) viewLagged++;
      expect(mine(currentCallMembers(client, { manager }), alice)).toHaveLength(1);
      await waitFor(() => own(currentCallMembers(client, { roomId })!), 5000, "alice's sync to show her");
      expect((await manager.leave({ timeoutMs: 5000 })).status).toBe("left");
      expect(mine(currentCallMembers(client, { manager }), alice)).toEqual([]);
      await waitFor(() => !own(currentCallMembers(client, { roomId })!), 5000, "alice's sync to drop her");
    }
    // What the option is for: the view alone lagged at `connected` (20 runs of 20 before it existed).
    expect(viewLagged).toBeGreaterThan(0);
  }, 60_000);
});

describe("widget mode, state format, the host's sync held back", () => {
  it("the first list after `connected` has alice, the first after `leave()` does not", async () => {
    const { alice, roomId, bob, bobOurs } = await setUp();
    // The host: a synced client of alice that serves the widget and feeds it every state change.
    const hostClient = await syncedClient(hs!.baseUrl, alice);
    cleanups.push(() => stopClient(hostClient));
    await roomOf(hostClient, roomId);
    const key = { userId: alice.userId, deviceId: alice.deviceId };
    const capabilities = [
      ...widgetCapabilities({ ...key, readState: true }),
      ...widgetObserverCapabilities(roomId),
    ];
    let source!: WidgetStateSource;
    const pair = await connectWidget({
      driver: new DelayedEventWidgetDriver(hostClient, { roomId, validateCapabilities: capabilities }),
      capabilities,
      creatorUserId: alice.userId,
      beforeStart: (widgetApi) => (source = new WidgetStateSource(widgetApi, roomId)),
    });
    const feed = (event: MatrixEvent) => {
      if (event.getRoomId() !== roomId) return;
      void pair.clientApi
        .feedStateUpdate({ ...event.getEffectiveEvent(), room_id: roomId } as never)
        .catch(() => undefined);
    };
    hostClient.on(RoomStateEvent.Events, feed);
    cleanups.push(
      () => source.close(),
      () => hostClient.off(RoomStateEvent.Events, feed),
      () => pair.close(),
    );
    await waitFor(() => currentCallMembers(source) !== undefined, 5000, "the host's first push");
    slowSyncOf(alice);
    const manager = new MembershipManager({
      backend: new WidgetBackend(pair.widgetApi, { membership: key }),
      roomId,
      ...key,
      delayedLeaveDelayMs: DELAY,
      logger: quiet,
    });
    cleanups.push(() => manager.dispose());
    const own = includesDevice(alice.userId, alice.deviceId);

    for (let run = 0; run < 2; run++) {
      manager.join();
      await whenConnected(manager, { timeoutMs: 10_000 });
      expect(serverHolds(roomId, alice, "state")).toBe(true);
      expect(own(currentCallMembers(source)!)).toBe(false);
      const first = currentCallMembers(source, { manager })!;
      expect(mine(first, alice)).toHaveLength(1);
      expect(mine(first, alice)[0].fromManager).toBe(true);
      await waitFor(() => own(currentCallMembers(source)!), 5000, "the host to push alice's membership");
      expect(mine(currentCallMembers(source, { manager }), alice)[0].fromManager).toBeUndefined();
      await waitFor(() => bobOurs.ids().length === 1, 5000, "bob to list alice");
      expect(bobOurs.ids()).toEqual(jsSdkView(bob, roomId).map(idOf));

      expect((await manager.leave({ timeoutMs: 5000 })).status).toBe("left");
      expect(serverHolds(roomId, alice, "state")).toBe(false);
      expect(own(currentCallMembers(source)!)).toBe(true);
      expect(mine(currentCallMembers(source, { manager }), alice)).toEqual([]);
      await waitFor(() => !own(currentCallMembers(source)!), 5000, "the host to push the leave");
      await waitFor(() => bobOurs.ids().length === 0, 5000, "bob to drop alice");
      expect(jsSdkView(bob, roomId)).toEqual([]);
    }
  }, 60_000);
});
