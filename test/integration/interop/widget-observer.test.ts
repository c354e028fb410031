/**
 * Widget mode, both directions, with matrix-widget-api 1.19 on both ends in this process: our manager
 * joins through the widget host (WidgetBackend → ClientWidgetApi → DelayedEventWidgetDriver → HTTP),
 * and our observer reads the call's members from the host's MSC2762 `update_state` pushes, as Element
 * Web's host sends them (initial push at negotiation, then `feedStateUpdate` for every state change).
 * A js-sdk device joined with MatrixRTCSession is in the same call; a js-sdk client outside the widget
 * must list the same members in the same order.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@jest/globals";
import "../../helpers/matrix.js"; // quiet matrix-js-sdk
import log from "loglevel";
import { RoomStateEvent, type MatrixEvent } from "matrix-js-sdk";
import {
  CALL_MEMBER_EVENT_TYPE,
  MembershipManager,
  WidgetBackend,
  callMembers$,
  ownMembership$,
  rejectedMemberships$,
  widgetCapabilities,
  widgetObserverCapabilities,
  WidgetStateSource,
  type CallMember,
  type RejectedMembership,
} from "../../../src/index.js";
import {
  connectWidget,
  startTestHomeserver,
  type TestHomeserver,
  type UserCreds,
} from "../../../src/testing/index.js";
import { DelayedEventWidgetDriver } from "../../../src/widget-host/index.js";
import { putState, syncedClient, stopClient, waitFor } from "../../helpers/matrix.js";
import { quietWidgetLogs } from "../../helpers/widgetBus.js";
import { idOf, joinWithJsSdk, jsSdkView, NO_LIMITS, roomOf, sleep, viewOfOurs } from "./helpers.js";

const DELAY = 1000;
const quiet = log.getLogger("widget-observer-quiet");
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

/**
 * The host (a synced client, like Element Web, whose driver serves the widget and feeds it every state
 * change) and the widget (capabilities for one membership plus observing), connected in this process.
 * The state source is made before start(), as js-sdk's RoomWidgetClient does.
 */
async function connectObservingWidget(alice: UserCreds, roomId: string) {
  const hostClient = await syncedClient(hs!.baseUrl, alice);
  cleanups.push(() => stopClient(hostClient));
  await roomOf(hostClient, roomId);
  const key = { userId: alice.userId, deviceId: alice.deviceId };
  let source!: WidgetStateSource;
  const capabilities = [
    ...widgetCapabilities({ ...key, readState: true }),
    ...widgetObserverCapabilities(roomId),
  ];
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
  return { widgetApi: pair.widgetApi, source };
}

describe("widget mode: our observer on the widget API's state pushes", () => {
  it("lists a js-sdk device and our own widget device in js-sdk's order, follows joins and leaves", async () => {
    hs = await startTestHomeserver(NO_LIMITS);
    const alice = await hs.createUser("alice");
    const roomId = await hs.createRoom(alice.accessToken);
    const carolCreds = await hs.createUser("carol");
    await hs.joinRoom(carolCreds.accessToken, roomId);
    const bobCreds = await hs.createUser("bob");
    await hs.joinRoom(bobCreds.accessToken, roomId);

    // A js-sdk device is in the call before the widget starts: it must come with the initial push.
    const carol = await joinWithJsSdk(hs.baseUrl, carolCreds, roomId, { delayMs: DELAY });
    cleanups.push(() => carol.stop());
    const bob = await syncedClient(hs.baseUrl, bobCreds);
    cleanups.push(() => stopClient(bob));
    await roomOf(bob, roomId);
    await waitFor(() => jsSdkView(bob, roomId).length === 1, 5000, "bob to see carol");

    const { widgetApi, source } = await connectObservingWidget(alice, roomId);
    const key = { userId: alice.userId, deviceId: alice.deviceId };
    const lists: CallMember[][] = [];
    const own: (CallMember | undefined)[] = [];
    const rejected: RejectedMembership[] = [];
    const subs = [
      callMembers$(source).subscribe((m) => lists.push(m)),
      ownMembership$(source, key).subscribe((m) => own.push(m)),
      rejectedMemberships$(source).subscribe((r) => rejected.push(r)),
    ];
    cleanups.push(() => subs.forEach((s) => s.unsubscribe()));
    const ids = () => (lists.at(-1) ?? []).map(idOf);

    // Initial state arrived through update_state: carol is listed, before we joined.
    await waitFor(() => ids().length === 1, 3000, "the initial push to list carol");
    expect(ids()).toEqual([idOf(carol)]);
    expect(lists[0]).toEqual(lists.at(-1)); // nothing was emitted before the state was known
    expect(own.at(-1)).toBeUndefined();

    // Our widget device joins through the host.
    const manager = new MembershipManager({
      backend: new WidgetBackend(widgetApi, { membership: key }),
      roomId,
      ...key,
      delayedLeaveDelayMs: DELAY,
      callIntent: "audio",
      logger: quiet,
      fociPreferred: [{ type: "livekit", livekit_service_url: "https://lk.widget.example" }],
    });
    cleanups.push(() => manager.dispose());
    manager.join();
    await waitFor(() => ids().length === 2, 5000, "the widget to list itself");
    expect(ids()).toEqual([idOf(carol), `${alice.userId}|${alice.deviceId}`]);
    expect(own.at(-1)).toMatchObject({ userId: alice.userId, deviceId: alice.deviceId, callIntent: "audio" });
    await waitFor(() => jsSdkView(bob, roomId).length === 2, 3000, "bob to see both");
    expect(lists.at(-1)!.map(viewOfOurs)).toEqual(jsSdkView(bob, roomId));
    expect(rejected).toEqual([]);

    // A js-sdk leave reaches the widget as a state push.
    expect(await carol.leave()).toBe(true);
    await waitFor(() => ids().length === 1, 3000, "carol to leave");
    expect(ids()).toEqual([`${alice.userId}|${alice.deviceId}`]);

    // Our own leave too; the observer says the server no longer holds our membership.
    await manager.leave({ timeoutMs: 3000 });
    await waitFor(() => ids().length === 0, 3000, "our leave to show");
    expect(own.at(-1)).toBeUndefined();
    expect(hs.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, manager.stateKey)).toEqual({});
  });

  it("judged on the server's facts through the host's pushes: a forged created_ts, a membership left behind", async () => {
    hs = await startTestHomeserver(NO_LIMITS);
    const alice = await hs.createUser("alice");
    const roomId = await hs.createRoom(alice.accessToken);
    const member = async (name: string) => {
      const creds = await hs!.createUser(name);
      await hs!.joinRoom(creds.accessToken, roomId);
      const key = `_${creds.userId}_${creds.deviceId}_m.call`;
      const write = async (extra: Record<string, unknown> = {}) =>
        expect(
          await putState(hs!.baseUrl, creds.accessToken, roomId, CALL_MEMBER_EVENT_TYPE, key, {
            application: "m.call",
            call_id: "",
            scope: "m.room",
            device_id: creds.deviceId,
            focus_active: { type: "livekit", focus_selection: "oldest_membership" },
            foci_preferred: [],
            ...extra,
          }),
        ).toBe(200);
      return { ...creds, write };
    };
    const bob = await member("bob");
    const xavier = await member("xavier");
    await bob.write();
    await xavier.write();
    const { source } = await connectObservingWidget(alice, roomId);
    const host = await syncedClient(hs.baseUrl, alice);
    cleanups.push(() => stopClient(host));
    await roomOf(host, roomId);
    const lists: CallMember[][] = [];
    const sub = callMembers$(source).subscribe((m) => lists.push(m));
    cleanups.push(() => sub.unsubscribe());
    const ids = () => (lists.at(-1) ?? []).map(idOf);
    await waitFor(() => ids().length === 2, 5000, "bob and xavier listed");

    // Mallory joins the room now and claims to have been in the call since 1970.
    const mallory = await member("mallory");
    await mallory.write({ created_ts: 1, expires: Date.now() + 3600_000 });
    await waitFor(() => ids().length === 3 && jsSdkView(host, roomId).length === 3, 5000, "mallory listed");
    expect(ids()).toEqual([idOf(bob), idOf(xavier), idOf(mallory)]);
    expect(jsSdkView(host, roomId).map(idOf)).toEqual([idOf(mallory), idOf(bob), idOf(xavier)]);

    // Xavier leaves the room without leaving the call, then rejoins: js-sdk lists him again, we do not.
    const leave = await fetch(`${hs.baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/leave`, {
      method: "POST",
      headers: { Authorization: `Bearer ${xavier.accessToken}`, "Content-Type": "application/json" },
      body: "{}",
    });
    expect(leave.status).toBe(200);
    await waitFor(() => ids().length === 2, 5000, "xavier's leave to reach the widget");
    await hs.joinRoom(xavier.accessToken, roomId);
    await waitFor(() => jsSdkView(host, roomId).length === 3, 5000, "js-sdk to list xavier again");
    await sleep(200);
    expect(ids()).toEqual([idOf(bob), idOf(mallory)]);
  });

  it("the manager's roomState view on the widget's state pushes puts back a membership removed behind its back", async () => {
    hs = await startTestHomeserver(NO_LIMITS);
    const alice = await hs.createUser("alice");
    const roomId = await hs.createRoom(alice.accessToken);
    const { widgetApi, source } = await connectObservingWidget(alice, roomId);
    const key = { userId: alice.userId, deviceId: alice.deviceId };
    const manager = new MembershipManager({
      backend: new WidgetBackend(widgetApi, { membership: key }),
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
    const onServer = () =>
      Object.keys(hs!.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, manager.stateKey) ?? {}).length > 0;
    manager.join();
    await waitFor(() => manager.status === "connected" && onServer(), 5000, "joined through the widget");
    const pending = () => hs!.pendingDelayedEvents().filter((d) => d.stateKey === manager.stateKey);
    expect(pending()).toHaveLength(1);

    // Another session of the same device (a second tab) writes {}: our delayed leave is untouched.
    const tab = await hs.loginDevice("alice", alice.deviceId);
    expect(
      await putState(hs.baseUrl, tab.accessToken, roomId, CALL_MEMBER_EVENT_TYPE, manager.stateKey, {}),
    ).toBe(200);
    expect(onServer()).toBe(false);
    expect(pending()).toHaveLength(1);
    await waitFor(() => onServer(), 3000, "the widget's manager to put the membership back");
    expect(codes).toContain("membership-removed");
    await waitFor(() => manager.status === "connected", 3000, "connected again");
    expect(pending()).toHaveLength(1);
  });
});
