/**
 * matrix-js-sdk 43 reads the sticky events the test homeserver delivers: another user's synced client
 * puts them in its room's sticky map (`Room._unstable_getKeyedStickyEvent`), whether they came in the
 * timeline or only in the `msc4354_sticky` section of /sync, replaces them by sticky key, and drops them
 * when the server's TTL says they expired. js-sdk's own send method needs `/versions` to say
 * `org.matrix.msc4354`.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import type { MatrixClient } from "matrix-js-sdk";
import { startTestHomeserver, type Credentials, type TestHomeserver } from "../../../src/testing/index.js";
import { client, NO_LIMITS, raw, sendPath, syncedClient, waitFor } from "./helpers.js";

const TYPE = "org.matrix.msc4143.rtc.member";

describe("matrix-js-sdk 43 and the test homeserver's sticky events", () => {
  const servers: TestHomeserver[] = [];
  const clients: MatrixClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.stopClient();
    await Promise.all(servers.splice(0).map((hs) => hs.close()));
  });

  const setUp = async (stickyEvents: boolean) => {
    const hs = await startTestHomeserver({ ...NO_LIMITS, stickyEvents });
    servers.push(hs);
    const alice = await hs.createUser("alice");
    const bob = await hs.createUser("bob");
    const roomId = await hs.createRoom(alice.accessToken);
    await hs.joinRoom(bob.accessToken, roomId);
    const aliceClient = client(hs, alice);
    clients.push(aliceClient);
    return { hs, alice, bob, roomId, aliceClient };
  };
  const startClient = async (hs: TestHomeserver, user: Credentials): Promise<MatrixClient> => {
    const c = await syncedClient(hs, user);
    clients.push(c);
    return c;
  };
  const sendSticky = (
    c: MatrixClient,
    roomId: string,
    durationMs: number,
    content: Record<string, unknown>,
  ) => c._unstable_sendStickyEvent(roomId, durationMs, null, TYPE as never, content as never);

  it("a sticky event outside the initial timeline reaches the map through the sticky section", async () => {
    const { hs, alice, bob, roomId, aliceClient } = await setUp(true);
    const { event_id: stickyId } = await sendSticky(aliceClient, roomId, 600_000, {
      msc4354_sticky_key: "member-1",
      n: 1,
    });
    // More plain events than js-sdk's initial timeline holds (syncedClient asks for 20).
    for (let i = 0; i < 25; i++) {
      await raw(hs, "PUT", sendPath(roomId, "m.room.message", `p${i}`), {
        token: alice.accessToken,
        body: { msgtype: "m.text", body: `plain ${i}` },
      });
    }
    const bobClient = await startClient(hs, bob);
    const room = await waitFor(() => bobClient.getRoom(roomId), 3000, "room");
    const entry = await waitFor(
      () => room._unstable_getKeyedStickyEvent(alice.userId, TYPE, "member-1"),
      3000,
      "alice's sticky event in bob's map",
    );
    expect(entry.getId()).toBe(stickyId);
    expect(entry.getContent()).toEqual({ msc4354_sticky_key: "member-1", n: 1 });
    // It did not come through the timeline: only the sticky section carried it.
    expect(
      room
        .getLiveTimeline()
        .getEvents()
        .some((e) => e.getId() === stickyId),
    ).toBe(false);
    // js-sdk takes the expiry from the server's TTL.
    expect(Math.abs(entry.unstableStickyExpiresAt - (Date.now() + 600_000))).toBeLessThan(5000);

    // A newer event with the same sticky key replaces it (this one through the live timeline).
    const { event_id: newerId } = await sendSticky(aliceClient, roomId, 600_000, {
      msc4354_sticky_key: "member-1",
      n: 2,
    });
    await waitFor(
      () => room._unstable_getKeyedStickyEvent(alice.userId, TYPE, "member-1")?.getId() === newerId,
      3000,
      "the newer sticky event",
    );
    expect([...room._unstable_getStickyEvents()].map((e) => e.getId())).toEqual([newerId]);
  });

  it("drops an entry when its stickiness ends", async () => {
    const { hs, alice, bob, roomId, aliceClient } = await setUp(true);
    const bobClient = await startClient(hs, bob);
    const room = await waitFor(() => bobClient.getRoom(roomId), 3000, "room");
    await sendSticky(aliceClient, roomId, 1500, { msc4354_sticky_key: "short" });
    await waitFor(() => room._unstable_getKeyedStickyEvent(alice.userId, TYPE, "short"), 3000, "the entry");
    await waitFor(
      () => room._unstable_getKeyedStickyEvent(alice.userId, TYPE, "short") === undefined,
      5000,
      "the entry to expire",
    );
    // The server agrees: no TTL left on the event it holds.
    const held = hs.timeline(roomId).find((e) => e.content.msc4354_sticky_key === "short");
    expect(held?.msc4354_sticky).toEqual({ duration_ms: 1500 });
    expect(held?.unsigned.msc4354_sticky_duration_ttl_ms).toBeUndefined();
  });

  it("with sticky events off, js-sdk refuses to send one (no org.matrix.msc4354) and nothing is sent", async () => {
    const { hs, roomId, aliceClient } = await setUp(false);
    await expect(sendSticky(aliceClient, roomId, 600_000, { msc4354_sticky_key: "k" })).rejects.toThrow(
      /does not support the sticky events/,
    );
    expect(hs.timeline(roomId).filter((e) => e.type === TYPE)).toEqual([]);
  });
});
