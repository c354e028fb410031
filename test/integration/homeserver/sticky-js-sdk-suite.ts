/**
 * matrix-js-sdk 43 reading sticky events from a server: another user's synced client puts them in its
 * room's sticky map (`Room._unstable_getKeyedStickyEvent`), whether they came in the timeline or only
 * in the `msc4354_sticky` section of /sync, replaces them by sticky key, and drops them when the server's
 * TTL says they expired; js-sdk's own send method needs `/versions` to say `org.matrix.msc4354`. One
 * suite, run on the test homeserver (sticky-js-sdk.test.ts, in `npm test`) and on real Synapse 1.163.2
 * (test/synapse/sticky.test.ts), so the test homeserver is held to what the real server does for js-sdk.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@jest/globals";
import { ClientEvent, createClient, SyncState, type MatrixClient } from "matrix-js-sdk";
import type { Credentials, TestHomeserver } from "../../../src/testing/index.js";
import { silentLogger, waitFor } from "./helpers.js";

const TYPE = "org.matrix.msc4143.rtc.member";

/** What the suite needs of a server: the part `startTestHomeserver()` and `startSynapse()` share. */
export type StickyServer = Pick<
  TestHomeserver,
  "baseUrl" | "createUser" | "createRoom" | "joinRoom" | "timeline" | "close"
>;

export function stickyJsSdkSuite(
  title: string,
  start: (stickyEvents: boolean) => Promise<StickyServer>,
): void {
  describe(title, () => {
    let server: StickyServer;
    const others: StickyServer[] = [];
    const clients: MatrixClient[] = [];
    let users = 0;

    beforeAll(async () => {
      server = await start(true);
    }, 120_000);
    afterEach(() => {
      for (const c of clients.splice(0)) c.stopClient();
    });
    afterAll(async () => {
      await Promise.all([server, ...others].map((hs) => hs?.close()));
    });

    const clientOf = (hs: StickyServer, user: Credentials): MatrixClient => {
      const c = createClient({ baseUrl: hs.baseUrl, ...user, logger: silentLogger });
      clients.push(c);
      return c;
    };
    const started = async (hs: StickyServer, user: Credentials): Promise<MatrixClient> => {
      const c = clientOf(hs, user);
      const ready = new Promise<void>((resolve) => {
        const onSync = (state: SyncState): void => {
          if (state !== SyncState.Prepared && state !== SyncState.Syncing) return;
          c.off(ClientEvent.Sync, onSync);
          resolve();
        };
        c.on(ClientEvent.Sync, onSync);
      });
      await c.startClient({ initialSyncLimit: 20 });
      await ready;
      return c;
    };
    /** Alice (a bare client) and Bob in a fresh room; fresh users, so a shared server stays clean. */
    const room = async (hs: StickyServer) => {
      users += 1;
      const alice = await hs.createUser(`stickyalice${users}`);
      const bob = await hs.createUser(`stickybob${users}`);
      const roomId = await hs.createRoom(alice.accessToken);
      await hs.joinRoom(bob.accessToken, roomId);
      return { alice, bob, roomId, aliceClient: clientOf(hs, alice) };
    };
    const sendSticky = (
      c: MatrixClient,
      roomId: string,
      durationMs: number,
      content: Record<string, unknown>,
    ) => c._unstable_sendStickyEvent(roomId, durationMs, null, TYPE as never, content as never);

    it("a sticky event outside the initial timeline reaches the map through the sticky section", async () => {
      const { alice, bob, roomId, aliceClient } = await room(server);
      const { event_id: stickyId } = await sendSticky(aliceClient, roomId, 600_000, {
        msc4354_sticky_key: "member-1",
        n: 1,
      });
      // More plain events than js-sdk's initial timeline holds (20 asked for here).
      for (let i = 0; i < 25; i++) {
        await aliceClient.sendEvent(
          roomId,
          "m.room.message" as never,
          { msgtype: "m.text", body: `${i}` } as never,
        );
      }
      const bobClient = await started(server, bob);
      const bobRoom = await waitFor(() => bobClient.getRoom(roomId), 5000, "room");
      const entry = await waitFor(
        () => bobRoom._unstable_getKeyedStickyEvent(alice.userId, TYPE, "member-1"),
        5000,
        "alice's sticky event in bob's map",
      );
      expect(entry.getId()).toBe(stickyId);
      expect(entry.getContent()).toEqual({ msc4354_sticky_key: "member-1", n: 1 });
      // It did not come through the timeline: only the sticky section carried it.
      expect(
        bobRoom
          .getLiveTimeline()
          .getEvents()
          .some((e) => e.getId() === stickyId),
      ).toBe(false);
      // js-sdk takes the expiry from the server's TTL.
      expect(Math.abs(entry.unstableStickyExpiresAt - (Date.now() + 600_000))).toBeLessThan(10_000);

      // A newer event with the same sticky key replaces it (this one through the live timeline).
      const { event_id: newerId } = await sendSticky(aliceClient, roomId, 600_000, {
        msc4354_sticky_key: "member-1",
        n: 2,
      });
      await waitFor(
        () => bobRoom._unstable_getKeyedStickyEvent(alice.userId, TYPE, "member-1")?.getId() === newerId,
        5000,
        "the newer sticky event",
      );
      expect([...bobRoom._unstable_getStickyEvents()].map((e) => e.getId())).toEqual([newerId]);
    });

    it("drops an entry when its stickiness ends; the server's copy keeps the field, loses the TTL", async () => {
      const { alice, bob, roomId, aliceClient } = await room(server);
      const bobClient = await started(server, bob);
      const bobRoom = await waitFor(() => bobClient.getRoom(roomId), 5000, "room");
      // Long enough to reach bob's map on a loaded machine before it expires (js-sdk ignores expired ones).
      await sendSticky(aliceClient, roomId, 5000, { msc4354_sticky_key: "short" });
      await waitFor(
        () => bobRoom._unstable_getKeyedStickyEvent(alice.userId, TYPE, "short"),
        5000,
        "the entry",
      );
      await waitFor(
        () => bobRoom._unstable_getKeyedStickyEvent(alice.userId, TYPE, "short") === undefined,
        8000,
        "the entry to expire",
      );
      const held = server.timeline(roomId).find((e) => e.content.msc4354_sticky_key === "short");
      expect(held?.msc4354_sticky).toEqual({ duration_ms: 5000 });
      expect(held?.unsigned.msc4354_sticky_duration_ttl_ms).toBeUndefined();
    });

    it("with sticky events off, js-sdk refuses to send one (no org.matrix.msc4354) and nothing is sent", async () => {
      const off = await start(false);
      others.push(off);
      const { roomId, aliceClient } = await room(off);
      await expect(sendSticky(aliceClient, roomId, 600_000, { msc4354_sticky_key: "k" })).rejects.toThrow(
        /does not support the sticky events/,
      );
      expect(off.timeline(roomId).filter((e) => e.type === TYPE)).toEqual([]);
    }, 60_000);
  });
}
