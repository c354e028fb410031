/**
 * Issue 23 item 1: the host driver never answers "empty" when it does not know. A bare client (no sync)
 * answers a widget's state reads from the server; a synced client answers from its room and, through
 * createClientWidgetApi alone (no wiring by the host), pushes every state change to the widget, so a
 * widget watching its own membership (WidgetStateSource + the manager's `roomState`) sees its join and
 * reports no false `membership-removed`. Judged on the test homeserver's state and what the widget reads.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@jest/globals";
import log from "loglevel";
import type { MatrixClient } from "matrix-js-sdk";
import {
  CALL_MEMBER_EVENT_TYPE,
  MembershipManager,
  WidgetBackend,
  widgetCapabilities,
  widgetObserverCapabilities,
  WidgetStateSource,
} from "../../../src/index.js";
import { startTestHomeserver, type TestHomeserver } from "../../../src/testing/index.js";
import { DelayedEventWidgetDriver } from "../../../src/widget-host/index.js";
import {
  bareClient,
  putState,
  stopClient,
  syncedClient,
  waitFor,
  type UserCreds,
} from "../../helpers/matrix.js";
import { connectWidget, quietWidgetLogs, type WidgetPair } from "../../helpers/widgetBus.js";

const DELAY = 1000;
const quiet = log.getLogger("host-reads-quiet");
quiet.setLevel("silent");

let restoreConsole: () => void;
beforeAll(() => {
  restoreConsole = quietWidgetLogs();
});
afterAll(() => restoreConsole());

let hs: TestHomeserver;
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) c();
  await hs?.close();
});

async function world() {
  hs = await startTestHomeserver({ rateLimits: { message: null, delayedEventMgmt: null } });
  const alice = await hs.createUser("alice");
  const roomId = await hs.createRoom(alice.accessToken);
  return { alice, roomId };
}

/** Alice's host (`client`) and an observing widget, connected with createClientWidgetApi (the bus's default). */
async function observingWidget(client: MatrixClient, alice: UserCreds, roomId: string) {
  const key = { userId: alice.userId, deviceId: alice.deviceId };
  const capabilities = [
    ...widgetCapabilities({ ...key, readState: true }),
    ...widgetObserverCapabilities(roomId),
  ];
  let source!: WidgetStateSource;
  const pair: WidgetPair = await connectWidget({
    driver: new DelayedEventWidgetDriver(client, { roomId, validateCapabilities: capabilities }),
    capabilities,
    creatorUserId: alice.userId,
    beforeStart: (widgetApi) => (source = new WidgetStateSource(widgetApi, roomId)),
  });
  cleanups.push(
    () => source.close(),
    () => pair.close(),
  );
  const manager = new MembershipManager({
    backend: new WidgetBackend(pair.widgetApi, { membership: key }),
    roomId,
    ...key,
    delayedLeaveDelayMs: DELAY,
    logger: quiet,
    roomState: source,
    membershipGraceMs: 300,
  });
  cleanups.push(() => manager.dispose());
  const codes: string[] = [];
  manager.errors$.subscribe((e) => codes.push(e.code));
  return { pair, manager, codes };
}

describe("widget host: state reads are never answered from an empty store", () => {
  it("a bare client answers read_events for state from the server: the widget reads its own membership", async () => {
    const { alice, roomId } = await world();
    const client = bareClient(hs.baseUrl, alice);
    cleanups.push(() => client.stopClient());
    const { pair, manager } = await observingWidget(client, alice, roomId);
    manager.join();
    await waitFor(() => manager.status === "connected", 5000, "connected");
    const onServer = hs.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, manager.stateKey);
    expect(Object.keys(onServer ?? {}).length).toBeGreaterThan(0);

    // Both shapes of the request a widget can make: with and without room_ids.
    for (const roomIds of [undefined, [roomId]]) {
      const events = await pair.widgetApi.readStateEvents(
        CALL_MEMBER_EVENT_TYPE,
        25,
        manager.stateKey,
        roomIds,
      );
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        type: CALL_MEMBER_EVENT_TYPE,
        state_key: manager.stateKey,
        sender: alice.userId,
        content: onServer,
        room_id: roomId,
      });
    }
    // Every call membership in the room (state_key: true).
    const all = await pair.widgetApi.readStateEvents(CALL_MEMBER_EVENT_TYPE, 25, undefined, [roomId]);
    expect(all.map((e) => e.state_key)).toEqual([manager.stateKey]);
    // Those reads went to the server.
    expect(
      hs.requests.filter((r) => r.route === "state.get" || r.path.endsWith("/state")).length,
    ).toBeGreaterThan(0);
  });

  it("a synced client feeds the widget every state change without the host wiring it: no false membership-removed", async () => {
    const { alice, roomId } = await world();
    const client = await syncedClient(hs.baseUrl, alice);
    cleanups.push(() => stopClient(client));
    await waitFor(() => client.getRoom(roomId) !== null, 5000, "the host's client to sync the room");
    const { manager, codes } = await observingWidget(client, alice, roomId);
    manager.join();
    await waitFor(() => manager.status === "connected", 5000, "connected");
    const content = hs.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, manager.stateKey);
    // Several grace periods: a widget that never heard of its own join would have reported it removed.
    await new Promise((r) => setTimeout(r, 1500));
    expect(codes).toEqual([]);
    expect(manager.status).toBe("connected");
    expect(hs.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, manager.stateKey)).toEqual(content);
    const writes = () =>
      hs.requests.filter((r) => r.method === "PUT" && r.route === "state.put" && r.userId === alice.userId)
        .length;
    expect(writes()).toBe(1);

    // And a real removal reaches it the same way: another writer puts {} at our key.
    expect(
      await putState(hs.baseUrl, alice.accessToken, roomId, CALL_MEMBER_EVENT_TYPE, manager.stateKey, {}),
    ).toBe(200);
    await waitFor(() => codes.includes("membership-removed"), 3000, "the widget to notice the removal");
  });

  it("the feed stops with the api", async () => {
    const { alice, roomId } = await world();
    const client = await syncedClient(hs.baseUrl, alice);
    cleanups.push(() => stopClient(client));
    await waitFor(() => client.getRoom(roomId) !== null, 5000, "the host's client to sync the room");
    const listeners = () => client.listenerCount("RoomState.events" as never);
    const before = listeners();
    const { pair } = await observingWidget(client, alice, roomId);
    expect(listeners()).toBe(before + 1);
    pair.close();
    expect(listeners()).toBe(before);
  });
});
