/**
 * matrix-js-sdk 43's MatrixRTCSession with `unstableSendStickyEvents` running as a widget (its
 * RoomWidgetClient over matrix-widget-api, on the in-process widget bus) through our host driver: the
 * sticky membership (`org.matrix.msc4143.rtc.member`, MSC4354) and its sticky delayed leave go out
 * through `DelayedEventWidgetDriver.sendStickyEvent` / `sendDelayedStickyEvent`, heartbeats through its
 * restarts, and the host's sticky feed and `readStickyEvents` are how the widget learns who is in the
 * call. Another user's js-sdk client (client mode, sticky) is in the same call; a third user's raw /sync
 * says what the server delivers. One suite, run on the test homeserver (sticky-host.test.ts, in `npm
 * test`) and on real Synapse 1.163.2 (test/synapse/sticky-host.test.ts).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@jest/globals";
import { randomUUID } from "node:crypto";
import { createRoomWidgetClient, type MatrixClient } from "matrix-js-sdk";
import type { MatrixRTCSession } from "matrix-js-sdk/lib/matrixrtc/index.js";
import {
  bareClient,
  connectWidget,
  quietWidgetLogs,
  stopClient,
  syncedClient,
  waitFor,
  type Credentials,
  type DelayedEventRecord,
  type TestHomeserver,
  type WidgetPair,
} from "../../../src/testing/index.js";
import { callWidgetCapabilities, DelayedEventWidgetDriver } from "../../../src/widget-host/index.js";

const RTC = "org.matrix.msc4143.rtc.member";
const SLOT = "m.call#ROOM";
const HOUR = 3_600_000;
const TRANSPORT = { type: "livekit", livekit_service_url: "https://lk.sticky.example" };

/** What the suite needs of a server: the part `startTestHomeserver()` and `startSynapse()` share. */
export type StickyHostServer = Pick<
  TestHomeserver,
  "baseUrl" | "createUser" | "createRoom" | "joinRoom" | "timeline" | "pendingDelayedEvents" | "close"
> & {
  /** The test homeserver's request log (Synapse has none). */
  readonly requests?: TestHomeserver["requests"];
};

/** A sticky event as /sync carries it. */
interface SyncedSticky {
  event_id: string;
  sender: string;
  type: string;
  origin_server_ts: number;
  content: Record<string, unknown>;
  msc4354_sticky?: { duration_ms: number };
  unsigned?: { msc4354_sticky_duration_ttl_ms?: number };
}

/**
 * What a third user's /sync delivers for the room, kept across syncs as a client keeps it: the sticky
 * events of each timeline and `msc4354_sticky` section (Synapse does not repeat one in the other),
 * unexpired. The first sync is initial, the next ones incremental (Synapse answers a repeated identical
 * initial sync from its response cache for 2 minutes).
 */
function syncView(baseUrl: string, token: string, roomId: string) {
  const seen: SyncedSticky[] = [];
  let since: string | undefined;
  return async (): Promise<SyncedSticky[]> => {
    const filter = JSON.stringify({ room: { timeline: { limit: 50 } } });
    const query = `timeout=0&filter=${encodeURIComponent(filter)}${since ? `&since=${encodeURIComponent(since)}` : ""}`;
    const res = await fetch(`${baseUrl}/_matrix/client/v3/sync?${query}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      next_batch: string;
      rooms?: {
        join?: Record<
          string,
          { timeline?: { events?: SyncedSticky[] }; msc4354_sticky?: { events?: SyncedSticky[] } }
        >;
      };
    };
    since = body.next_batch;
    const entry = body.rooms?.join?.[roomId];
    const all = [...(entry?.timeline?.events ?? []), ...(entry?.msc4354_sticky?.events ?? [])];
    seen.push(
      ...all.filter((e) => e.msc4354_sticky && (e.unsigned?.msc4354_sticky_duration_ttl_ms ?? 0) > 0),
    );
    return [...seen];
  };
}

/** The current event of (sender, sticky key) among `events`: the newest, as js-sdk 43 picks. */
function currentOf(events: SyncedSticky[], sender: string, key: string): SyncedSticky | undefined {
  return events
    .filter((e) => e.type === RTC && e.sender === sender && e.content.msc4354_sticky_key === key)
    .sort((a, b) => b.origin_server_ts - a.origin_server_ts)[0];
}

/** js-sdk 43's and Element Call's "left": the slot and the sticky key, nothing else (in any key order). */
const isLeaveContent = (content: Record<string, unknown>, key: string) =>
  Object.keys(content).length === 2 && content.slot_id === SLOT && content.msc4354_sticky_key === key;

/** js-sdk's join settings for a short delay. */
const joinConfig = (delayMs: number) => ({
  unstableSendStickyEvents: true,
  delayedLeaveEventDelayMs: delayMs,
  delayedLeaveEventRestartMs: Math.round(delayMs / 4),
  delayedLeaveEventRestartLocalTimeoutMs: Math.round(delayMs / 4),
  networkErrorRetryMs: 200,
  manageMediaKeys: false,
});

const devicesOf = (session: MatrixRTCSession) => session.memberships.map((m) => `${m.sender}|${m.deviceId}`);

export function stickyHostSuite(
  title: string,
  start: () => Promise<StickyHostServer>,
  options: { delayMs: number },
): void {
  const DELAY = options.delayMs;

  describe(title, () => {
    let server: StickyHostServer;
    let restoreConsole: () => void;
    let users = 0;
    const cleanups: (() => void)[] = [];

    beforeAll(async () => {
      restoreConsole = quietWidgetLogs();
      server = await start();
    }, 120_000);
    afterEach(() => {
      for (const c of cleanups.splice(0).reverse()) c();
    });
    afterAll(async () => {
      await server?.close();
      restoreConsole?.();
    });

    /** Alice (the widget's user), Bob (js-sdk, client mode), Carol (reads /sync) in a fresh room. */
    async function room() {
      users += 1;
      const alice = await server.createUser(`stickyhostalice${users}`);
      const bob = await server.createUser(`stickyhostbob${users}`);
      const carol = await server.createUser(`stickyhostcarol${users}`);
      const roomId = await server.createRoom(alice.accessToken);
      await server.joinRoom(bob.accessToken, roomId);
      await server.joinRoom(carol.accessToken, roomId);
      return { alice, bob, carol, roomId };
    }

    /** Bob's device in the call through js-sdk's own sticky membership manager (client mode). */
    async function bobJoins(bob: Credentials, roomId: string) {
      const client = await syncedClient(server.baseUrl, bob);
      cleanups.push(() => stopClient(client));
      const r = await waitFor(() => client.getRoom(roomId) !== null, 5000, "bob's room").then(() =>
        client.getRoom(roomId)!,
      );
      const session = client.matrixRTC.getRoomSession(r);
      const memberId = randomUUID();
      session.joinRTCSession(
        { userId: bob.userId, deviceId: bob.deviceId, memberId },
        [],
        TRANSPORT,
        joinConfig(DELAY),
      );
      return { client, session, memberId };
    }

    /**
     * Alice's host (`synced`: a syncing client, as Element Web; `bare`: no sync) and, in it, the widget:
     * js-sdk's RoomWidgetClient asking for what Element Call asks for a sticky call, approved by the
     * host's call-widget policy.
     */
    async function aliceWidget(alice: Credentials, roomId: string, host: "synced" | "bare") {
      let hostClient: MatrixClient;
      if (host === "synced") {
        hostClient = await syncedClient(server.baseUrl, alice);
        await waitFor(() => hostClient.getRoom(roomId) !== null, 5000, "the host's room");
      } else hostClient = bareClient(server.baseUrl, alice);
      cleanups.push(() => stopClient(hostClient));
      const driver = new DelayedEventWidgetDriver(hostClient, {
        roomId,
        validateCapabilities: callWidgetCapabilities({ roomId, ...alice }),
      });
      let widgetClient!: MatrixClient;
      const pair: WidgetPair = await connectWidget({
        driver,
        capabilities: [],
        creatorUserId: alice.userId,
        // As Element Call makes its client: the RoomWidgetClient asks for its capabilities and starts the api.
        beforeStart: (widgetApi) => {
          widgetClient = createRoomWidgetClient(
            widgetApi,
            {
              sendEvent: [RTC],
              receiveEvent: [RTC],
              receiveState: ["m.room.create", "m.room.member"].map((eventType) => ({ eventType })),
              sendDelayedEvents: true,
              updateDelayedEvents: true,
              sendSticky: true,
              receiveSticky: true,
            },
            roomId,
            { baseUrl: server.baseUrl, userId: alice.userId, deviceId: alice.deviceId },
            false,
          );
        },
      });
      let closed = false;
      const close = () => {
        if (closed) return;
        closed = true;
        widgetClient.stopClient();
        pair.close();
      };
      cleanups.push(close);
      await widgetClient.startClient();
      const widgetRoom = widgetClient.getRoom(roomId)!;
      const session = widgetClient.matrixRTC.getRoomSession(widgetRoom);
      const memberId = randomUUID();
      const join = () =>
        session.joinRTCSession(
          { userId: alice.userId, deviceId: alice.deviceId, memberId },
          [],
          TRANSPORT,
          joinConfig(DELAY),
        );
      return { session, memberId, join, pair, close, widgetClient };
    }

    const aliceEvents = (roomId: string, alice: Credentials, key: string) =>
      server
        .timeline(roomId)
        .filter((e) => e.type === RTC && e.sender === alice.userId && e.content.msc4354_sticky_key === key);
    const pendingOf = (alice: Credentials, roomId: string): DelayedEventRecord[] =>
      server.pendingDelayedEvents().filter((d) => d.userId === alice.userId && d.roomId === roomId);
    const deviceOf = (u: Credentials) => `${u.userId}|${u.deviceId}`;

    it("joins with a sticky membership and a sticky delayed leave, heartbeats, lists and is listed, leaves", async () => {
      const { alice, bob, carol, roomId } = await room();
      const bobDevice = await bobJoins(bob, roomId);
      await waitFor(() => devicesOf(bobDevice.session).includes(deviceOf(bob)), 10_000, "bob in the call");

      const widget = await aliceWidget(alice, roomId, "synced");
      // Bob was in the call before the widget started: the host's sticky push told it.
      await waitFor(() => devicesOf(widget.session).includes(deviceOf(bob)), 5000, "the widget to list bob");
      const joinedAt = Date.now();
      widget.join();
      await waitFor(
        () => aliceEvents(roomId, alice, widget.memberId).length > 0,
        10_000,
        "alice's sticky join",
      );

      // On the server: the delayed leave (sticky, Element Call's and js-sdk's leave content) and the join.
      const pending = pendingOf(alice, roomId);
      expect(pending).toHaveLength(1);
      expect(pending[0]).toMatchObject({
        type: RTC,
        delayMs: DELAY,
        content: { slot_id: SLOT, msc4354_sticky_key: widget.memberId },
      });
      expect(pending[0].stateKey).toBeUndefined();
      const [joined] = aliceEvents(roomId, alice, widget.memberId);
      expect(joined.msc4354_sticky).toEqual({ duration_ms: HOUR });
      expect(joined.unsigned.msc4354_sticky_duration_ttl_ms).toBeGreaterThan(HOUR - 60_000);
      expect(joined.content).toMatchObject({
        slot_id: SLOT,
        application: { type: "m.call" },
        member: { user_id: alice.userId, device_id: alice.deviceId, id: widget.memberId },
        transports: { published: [TRANSPORT] },
      });
      if (server.requests) {
        // Through the host: the delayed sticky send first, then the sticky join.
        const sends = server.requests
          .filter((r) => r.userId === alice.userId && r.ts >= joinedAt && r.route.startsWith("send"))
          .map((r) => r.route);
        expect(sends.slice(0, 2)).toEqual(["send.delayed", "send"]);
      }

      // Both js-sdk devices list both; the widget lists itself from the host's feed.
      await waitFor(() => devicesOf(bobDevice.session).includes(deviceOf(alice)), 5000, "bob to list alice");
      await waitFor(
        () => devicesOf(widget.session).includes(deviceOf(alice)),
        5000,
        "the widget to list itself",
      );
      expect(devicesOf(widget.session).sort()).toEqual([deviceOf(alice), deviceOf(bob)].sort());

      // Heartbeats move the delayed leave's deadline; it stays the only one.
      const firstDue = pending[0].sendTs;
      await waitFor(
        () => (pendingOf(alice, roomId)[0]?.sendTs ?? 0) >= firstDue + DELAY / 2,
        DELAY * 3,
        "restarts",
      );
      expect(pendingOf(alice, roomId)).toHaveLength(1);

      // A third user's /sync delivers alice's sticky join, with its stickiness.
      const carolSyncs = syncView(server.baseUrl, carol.accessToken, roomId);
      const seen = await carolSyncs();
      expect(currentOf(seen, alice.userId, widget.memberId)).toMatchObject({
        event_id: joined.event_id,
        msc4354_sticky: { duration_ms: HOUR },
      });

      // The leave is the delayed leave, sent at once.
      const leftAt = Date.now();
      await expect(widget.session.leaveRoomSession(5000)).resolves.toBe(true);
      await waitFor(() => pendingOf(alice, roomId).length === 0, 5000, "nothing pending");
      await waitFor(
        () => isLeaveContent(aliceEvents(roomId, alice, widget.memberId).at(-1)!.content, widget.memberId),
        5000,
        "the leave on the server",
      );
      const last = aliceEvents(roomId, alice, widget.memberId).at(-1)!;
      expect(isLeaveContent(last.content, widget.memberId)).toBe(true);
      expect(last.msc4354_sticky).toEqual({ duration_ms: HOUR });
      expect(last.origin_server_ts - leftAt).toBeLessThan(DELAY / 2);
      if (server.requests)
        expect(
          server.requests.filter((r) => r.userId === alice.userId && r.ts >= leftAt).map((r) => r.route),
        ).toContain("delayed.send");
      await waitFor(() => !devicesOf(bobDevice.session).includes(deviceOf(alice)), 5000, "bob to drop alice");
      const after = await carolSyncs();
      expect(isLeaveContent(currentOf(after, alice.userId, widget.memberId)!.content, widget.memberId)).toBe(
        true,
      );
      // Bob is still in, for everyone.
      expect(devicesOf(bobDevice.session)).toEqual([deviceOf(bob)]);
      expect(currentOf(after, bob.userId, bobDevice.memberId)?.content).toMatchObject({
        member: { device_id: bob.deviceId },
      });
    }, 60_000);

    it("a widget removed without leaving: the host sends its sticky delayed leave at once", async () => {
      const { alice, bob, carol, roomId } = await room();
      const bobDevice = await bobJoins(bob, roomId);
      const widget = await aliceWidget(alice, roomId, "synced");
      widget.join();
      await waitFor(
        () => devicesOf(bobDevice.session).includes(deviceOf(alice)),
        10_000,
        "bob to list alice",
      );
      await waitFor(() => pendingOf(alice, roomId).length === 1, 5000, "the delayed leave");
      const due = pendingOf(alice, roomId)[0].sendTs;

      // The iframe goes: the host stops its api (which sends the widget's pending delayed leaves).
      const removedAt = Date.now();
      widget.close();
      await waitFor(
        () =>
          aliceEvents(roomId, alice, widget.memberId).some((e) => isLeaveContent(e.content, widget.memberId)),
        DELAY,
        "the leave",
      );
      const leave = aliceEvents(roomId, alice, widget.memberId).at(-1)!;
      expect(isLeaveContent(leave.content, widget.memberId)).toBe(true);
      expect(leave.msc4354_sticky).toEqual({ duration_ms: HOUR });
      // Within a round trip of the removal, long before the delayed leave was due.
      expect(leave.origin_server_ts).toBeLessThan(due - DELAY / 2);
      expect(leave.origin_server_ts - removedAt).toBeLessThan(DELAY / 2);
      expect(pendingOf(alice, roomId)).toEqual([]);
      if (server.requests)
        expect(
          server.requests.filter((r) => r.userId === alice.userId && r.ts >= removedAt).map((r) => r.route),
        ).toEqual(expect.arrayContaining(["delayed.send"]));
      await waitFor(
        () => !devicesOf(bobDevice.session).includes(deviceOf(alice)),
        DELAY,
        "bob to drop alice",
      );
      const seen = await syncView(server.baseUrl, carol.accessToken, roomId)();
      expect(isLeaveContent(currentOf(seen, alice.userId, widget.memberId)!.content, widget.memberId)).toBe(
        true,
      );
    }, 60_000);

    it("a host that does not sync still tells a widget started mid-call who is in it (readStickyEvents from /sync)", async () => {
      const { alice, bob, roomId } = await room();
      const bobDevice = await bobJoins(bob, roomId);
      await waitFor(() => devicesOf(bobDevice.session).includes(deviceOf(bob)), 10_000, "bob in the call");
      const widget = await aliceWidget(alice, roomId, "bare");
      await waitFor(() => devicesOf(widget.session).includes(deviceOf(bob)), 5000, "the widget to list bob");
      // It joins through the bare host too, and bob lists it.
      widget.join();
      await waitFor(
        () => devicesOf(bobDevice.session).includes(deviceOf(alice)),
        10_000,
        "bob to list alice",
      );
      expect(pendingOf(alice, roomId)).toHaveLength(1);
      await expect(widget.session.leaveRoomSession(5000)).resolves.toBe(true);
      await waitFor(() => !devicesOf(bobDevice.session).includes(deviceOf(alice)), 5000, "bob to drop alice");
      await waitFor(
        () => isLeaveContent(aliceEvents(roomId, alice, widget.memberId).at(-1)!.content, widget.memberId),
        5000,
        "the leave on the server",
      );

      // A widget loaded again reads the call as it is now, not as the server answered the first read
      // (Synapse caches identical /sync answers for 2 minutes).
      const again = new DelayedEventWidgetDriver(bareClient(server.baseUrl, alice), { roomId });
      const now = (await again.readStickyEvents(roomId)) as unknown as SyncedSticky[];
      expect(isLeaveContent(currentOf(now, alice.userId, widget.memberId)!.content, widget.memberId)).toBe(
        true,
      );
      expect(currentOf(now, bob.userId, bobDevice.memberId)).toBeDefined();
      expect(now.every((e) => (e.unsigned?.msc4354_sticky_duration_ttl_ms ?? 0) > 0)).toBe(true);
    }, 60_000);
  });
}
