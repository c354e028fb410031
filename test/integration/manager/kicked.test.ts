/**
 * Issue 20 item 7: kicked or banned mid-call. Others drop us at once (js-sdk's rule: the sender must be
 * joined); the server keeps restarting a non-member's delayed leave, so heartbeats alone never tell. The
 * manager watches its own room membership (the synced room, the widget host's pushes, or a read of its
 * `m.room.member` every few checks) and ends the call with a typed reason, stopping its requests.
 * Real HTTP against the test homeserver; asserted on its request log.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import { createClient } from "matrix-js-sdk";
import { syncedClient, stopClient } from "../../helpers/matrix.js"; // also quiets matrix-js-sdk
import { ClientBackend, MembershipManager, type MembershipError } from "../../../src/index.js";
import { startTestHomeserver, waitFor, type TestHomeserver } from "../../../src/testing/index.js";
import { NO_LIMITS, sleep } from "../interop/helpers.js";

const DELAY = 1000;

let cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function world() {
  const hs = await startTestHomeserver(NO_LIMITS);
  cleanup.push(() => hs.close());
  const mod = await hs.createUser("moderator");
  const roomId = await hs.createRoom(mod.accessToken);
  const alice = await hs.createUser("alice");
  await hs.joinRoom(alice.accessToken, roomId);
  const act = async (what: "kick" | "ban") => {
    const res = await fetch(`${hs.baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/${what}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${mod.accessToken}`, "Content-Type": "application/json" },
      body: JSON.stringify({ user_id: alice.userId, reason: "test" }),
    });
    expect(res.status).toBe(200);
    return Date.now();
  };
  return { hs, roomId, alice, act };
}

function managerFor(
  hs: TestHomeserver,
  roomId: string,
  creds: { userId: string; deviceId: string; accessToken: string },
  client = createClient({ baseUrl: hs.baseUrl, ...creds }),
) {
  const manager = new MembershipManager({
    backend: new ClientBackend(client),
    roomId,
    userId: creds.userId,
    deviceId: creds.deviceId,
    delayedLeaveDelayMs: DELAY,
  });
  const errors: MembershipError[] = [];
  manager.errors$.subscribe((e) => errors.push(e));
  cleanup.push(() => manager.dispose());
  return { manager, errors };
}

function requestsOf(hs: TestHomeserver, userId: string, since: number): string[] {
  return hs.requests.filter((r) => r.userId === userId && r.ts > since).map((r) => r.route);
}

describe("kicked or banned mid-call (issue 20 item 7)", () => {
  it("a syncing client: kicked, the call ends at once (left: removed-from-room), requests stop", async () => {
    const { hs, roomId, alice, act } = await world();
    const client = await syncedClient(hs.baseUrl, alice);
    cleanup.push(() => stopClient(client));
    const { manager, errors } = managerFor(hs, roomId, alice, client);
    manager.join();
    await waitFor(() => manager.status === "connected", 5000, "connected");
    await sleep(DELAY);
    const kickedAt = await act("kick");
    const took = await waitFor(() => manager.state.kind === "left", 2000, "the call to end");
    expect(took).toBeLessThan(500);
    expect(manager.state).toEqual({ kind: "left", reason: "removed-from-room" });
    expect(errors.map((e) => e.code)).toContain("removed-from-room");
    const endedAt = Date.now();
    await sleep(3 * DELAY);
    // No heartbeat, no write, no read after the end (the client's own /sync aside).
    expect(requestsOf(hs, alice.userId, endedAt).filter((r) => r !== "sync")).toEqual([]);
    expect(kickedAt).toBeLessThan(endedAt);
    expect(await manager.leave({ timeoutMs: 1000 })).toEqual({ status: "left", via: "nothing-to-leave" });
  });

  it("a bare client: banned, noticed by reading its room membership within a few checks, requests stop", async () => {
    const { hs, roomId, alice, act } = await world();
    const { manager, errors } = managerFor(hs, roomId, alice);
    manager.join();
    await waitFor(() => manager.status === "connected", 5000, "connected");
    await sleep(DELAY);
    await act("ban");
    // One read of our room membership every 4 checks (a check every heartbeat interval, half a delay).
    await waitFor(() => manager.state.kind === "left", 4 * (DELAY / 2) + 1000, "the call to end");
    expect(manager.state).toEqual({ kind: "left", reason: "removed-from-room" });
    expect(errors.find((e) => e.code === "removed-from-room")!.message).toMatch(/banned/);
    const endedAt = Date.now();
    await sleep(3 * DELAY);
    expect(requestsOf(hs, alice.userId, endedAt)).toEqual([]);
  });
});
