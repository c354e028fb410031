/** The plain Client-Server API: discovery, accounts, rooms, state, sends, /sync, errors for bad input. */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { startTestHomeserver, type Credentials, type TestHomeserver } from "../../../src/testing/index.js";
import { CALL_MEMBER, NO_LIMITS, raw, sendPath, statePath } from "./helpers.js";

describe("core Client-Server API", () => {
  let hs: TestHomeserver;
  let alice: Credentials;
  let bob: Credentials;
  let carol: Credentials;
  let roomId: string;

  beforeAll(async () => {
    hs = await startTestHomeserver({ ...NO_LIMITS, deterministicIds: true });
    alice = await hs.createUser("alice");
    bob = await hs.createUser("bob");
    carol = await hs.createUser("carol");
    roomId = await hs.createRoom(alice.accessToken, { name: "r" });
    await hs.joinRoom(bob.accessToken, roomId);
  });
  afterAll(async () => {
    await hs.close();
  });

  it("serves /versions without auth with the MSC4140 flag", async () => {
    const res = await raw(hs, "GET", "/_matrix/client/versions");
    expect(res.status).toBe(200);
    expect(res.body.versions).toContain("v1.1");
    expect(res.body.unstable_features["org.matrix.msc4140"]).toBe(true);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
  });

  it("serves /capabilities with the delayed-events limits (auth required)", async () => {
    expect((await raw(hs, "GET", "/_matrix/client/v3/capabilities")).body.errcode).toBe("M_MISSING_TOKEN");
    const res = await raw(hs, "GET", "/_matrix/client/v3/capabilities", { token: alice.accessToken });
    expect(res.body.capabilities["org.matrix.msc4140.delayed_events"]).toEqual({
      max_delay_ms: 86_400_000,
      max_scheduled: 100,
    });
  });

  it("logs in with a password, answers whoami, and rejects unknown/missing tokens", async () => {
    const login = await raw(hs, "POST", "/_matrix/client/v3/login", {
      body: {
        type: "m.login.password",
        identifier: { type: "m.id.user", user: "alice" },
        password: "whatever",
      },
    });
    expect(login.status).toBe(200);
    expect(login.body.user_id).toBe(alice.userId);
    const who = await raw(hs, "GET", "/_matrix/client/v3/account/whoami", { token: login.body.access_token });
    expect(who.body).toEqual({ user_id: alice.userId, device_id: login.body.device_id, is_guest: false });
    // The deprecated query-parameter token works too.
    const viaQuery = await raw(hs, "GET", "/_matrix/client/r0/account/whoami", {
      query: { access_token: bob.accessToken },
    });
    expect(viaQuery.body.user_id).toBe(bob.userId);

    const unknownUser = await raw(hs, "POST", "/_matrix/client/v3/login", {
      body: { type: "m.login.password", user: "nobody", password: "x" },
    });
    expect(unknownUser.status).toBe(403);
    expect((await raw(hs, "GET", "/_matrix/client/v3/account/whoami")).body).toEqual({
      errcode: "M_MISSING_TOKEN",
      error: "Missing access token",
    });
    const bad = await raw(hs, "GET", "/_matrix/client/v3/account/whoami", { token: "nope" });
    expect(bad.status).toBe(401);
    expect(bad.body.errcode).toBe("M_UNKNOWN_TOKEN");
  });

  it("gives another device of the same user its own token", async () => {
    const second = await hs.loginDevice("alice", "SECOND");
    expect(second).toMatchObject({ userId: alice.userId, deviceId: "SECOND" });
    const who = await raw(hs, "GET", "/_matrix/client/v3/account/whoami", { token: second.accessToken });
    expect(who.body.device_id).toBe("SECOND");
  });

  it("creates rooms with Synapse's power levels plus call-member level 0", () => {
    const pl = hs.stateContent(roomId, "m.room.power_levels", "") as {
      state_default: number;
      users: object;
      events: Record<string, number>;
    };
    expect(pl.state_default).toBe(50);
    expect(pl.users).toEqual({ [alice.userId]: 100 });
    expect(pl.events[CALL_MEMBER]).toBe(0);
    expect(hs.stateContent(roomId, "m.room.join_rules", "")).toEqual({ join_rule: "public" });
    expect(hs.stateContent(roomId, "m.room.create", "")).toMatchObject({
      room_version: "10",
      creator: alice.userId,
    });
  });

  it("checks power levels: bob may write call membership but not the topic", async () => {
    const ok = await raw(hs, "PUT", statePath(roomId, CALL_MEMBER, `_${bob.userId}_D_m.call`), {
      token: bob.accessToken,
      body: { a: 1 },
    });
    expect(ok.status).toBe(200);
    const denied = await raw(hs, "PUT", statePath(roomId, "m.room.topic", ""), {
      token: bob.accessToken,
      body: { topic: "x" },
    });
    expect(denied.status).toBe(403);
    expect(denied.body).toEqual({
      errcode: "M_FORBIDDEN",
      error: "You don't have permission to post that to the room. user_level (0) < send_level (50)",
    });
    const othersKey = await raw(hs, "PUT", statePath(roomId, CALL_MEMBER, alice.userId), {
      token: bob.accessToken,
      body: {},
    });
    expect(othersKey.status).toBe(403);
    // Carol is not in the room.
    const outsider = await raw(hs, "PUT", statePath(roomId, CALL_MEMBER, "_x"), {
      token: carol.accessToken,
      body: {},
    });
    expect(outsider.status).toBe(403);
    expect(outsider.body.error).toContain("not in room");
  });

  it("deduplicates identical state from the same sender", async () => {
    const path = statePath(roomId, CALL_MEMBER, "dedup");
    const first = await raw(hs, "PUT", path, { token: alice.accessToken, body: { b: 2, a: 1 } });
    const length = hs.timeline(roomId).length;
    const again = await raw(hs, "PUT", path, { token: alice.accessToken, body: { a: 1, b: 2 } });
    expect(again.body.event_id).toBe(first.body.event_id);
    expect(hs.timeline(roomId).length).toBe(length);
    // The same content from someone else is a new event.
    const other = await raw(hs, "PUT", path, { token: bob.accessToken, body: { a: 1, b: 2 } });
    expect(other.body.event_id).not.toBe(first.body.event_id);
  });

  it("reads state: all, one, empty state key forms, 404 for missing, 403 for outsiders", async () => {
    const all = await raw(hs, "GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state`, {
      token: bob.accessToken,
    });
    expect(all.status).toBe(200);
    expect(all.body.some((e: { type: string }) => e.type === "m.room.create")).toBe(true);
    const name = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.name`;
    expect((await raw(hs, "GET", name, { token: bob.accessToken })).body).toEqual({ name: "r" });
    expect((await raw(hs, "GET", `${name}/`, { token: bob.accessToken })).body).toEqual({ name: "r" });
    const missing = await raw(hs, "GET", statePath(roomId, "m.room.topic", "nope"), {
      token: bob.accessToken,
    });
    expect(missing.status).toBe(404);
    expect(missing.body.errcode).toBe("M_NOT_FOUND");
    const outsider = await raw(hs, "GET", `${name}/`, { token: carol.accessToken });
    expect(outsider.status).toBe(403);
  });

  it("makes PUT /send idempotent per (path, user, device)", async () => {
    const path = sendPath(roomId, "m.room.message", "txn1");
    const body = { msgtype: "m.text", body: "hi" };
    const a = await raw(hs, "PUT", path, { token: alice.accessToken, body });
    const b = await raw(hs, "PUT", path, { token: alice.accessToken, body });
    expect(b.body.event_id).toBe(a.body.event_id);
    const otherDevice = await hs.loginDevice("alice");
    const c = await raw(hs, "PUT", path, { token: otherDevice.accessToken, body });
    expect(c.body.event_id).not.toBe(a.body.event_id);
    const messages = hs.timeline(roomId).filter((e) => e.type === "m.room.message");
    expect(messages).toHaveLength(2);
    // POST without a txn id is not deduplicated.
    const post = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message`;
    expect((await raw(hs, "POST", post, { token: alice.accessToken, body })).status).toBe(200);
  });

  it("validates event shapes like Synapse", async () => {
    const res = await raw(hs, "PUT", sendPath(roomId, "m.room.message", "bad"), {
      token: alice.accessToken,
      body: { body: 1 },
    });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ errcode: "M_UNKNOWN", error: "'body' not a string type" });
    const pl = await raw(hs, "PUT", statePath(roomId, "m.room.power_levels", ""), {
      token: alice.accessToken,
      body: { users_default: "0" },
    });
    expect(pl.status).toBe(400);
    expect(pl.body.errcode).toBe("M_BAD_JSON");
  });

  it("answers 403 'Unknown room' for sends to a room that does not exist", async () => {
    const res = await raw(hs, "PUT", sendPath("!nope:localhost", "m.room.message", "t"), {
      token: alice.accessToken,
      body: { msgtype: "m.text", body: "x" },
    });
    expect(res.status).toBe(403);
    expect(res.body).toEqual({ errcode: "M_FORBIDDEN", error: "Unknown room" });
    const join = await raw(hs, "POST", "/_matrix/client/v3/join/!nope:localhost", {
      token: alice.accessToken,
    });
    expect(join.status).toBe(404);
  });

  it("creates and joins rooms over HTTP with membership rules", async () => {
    const created = await raw(hs, "POST", "/_matrix/client/v3/createRoom", {
      token: alice.accessToken,
      body: { name: "private" },
    });
    expect(created.status).toBe(200);
    const priv = created.body.room_id as string;
    // Private by default: carol needs an invite.
    const denied = await raw(hs, "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(priv)}/join`, {
      token: carol.accessToken,
    });
    expect(denied.status).toBe(403);
    const invite = await raw(hs, "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(priv)}/invite`, {
      token: alice.accessToken,
      body: { user_id: carol.userId },
    });
    expect(invite.status).toBe(200);
    const joined = await raw(hs, "POST", `/_matrix/client/v3/join/${encodeURIComponent(priv)}`, {
      token: carol.accessToken,
    });
    expect(joined.body).toEqual({ room_id: priv });
    const leave = await raw(hs, "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(priv)}/leave`, {
      token: carol.accessToken,
    });
    expect(leave.status).toBe(200);
    expect(hs.stateContent(priv, "m.room.member", carol.userId)).toEqual({ membership: "leave" });
  });

  it("syncs with state_after when asked, plain state otherwise, and long-polls with since", async () => {
    const withAfter = await raw(hs, "GET", "/_matrix/client/v3/sync", {
      token: bob.accessToken,
      query: {
        "org.matrix.msc4222.use_state_after": "true",
        filter: JSON.stringify({ room: { timeline: { limit: 2 } } }),
      },
    });
    const joined = withAfter.body.rooms.join[roomId];
    expect(joined.timeline.events).toHaveLength(2);
    expect(joined.timeline.limited).toBe(true);
    expect(
      joined["org.matrix.msc4222.state_after"].events.some(
        (e: { type: string }) => e.type === "m.room.create",
      ),
    ).toBe(true);
    expect(joined.state).toBeUndefined();

    const plain = await raw(hs, "GET", "/_matrix/client/v3/sync", { token: bob.accessToken });
    expect(plain.body.rooms.join[roomId].state.events.length).toBeGreaterThan(0);

    const since = plain.body.next_batch as string;
    const t0 = Date.now();
    const empty = await raw(hs, "GET", "/_matrix/client/v3/sync", {
      token: bob.accessToken,
      query: { since, timeout: 150 },
    });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(empty.body.rooms.join).toEqual({});

    const waiting = raw(hs, "GET", "/_matrix/client/v3/sync", {
      token: bob.accessToken,
      query: { since, timeout: 5000 },
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    await raw(hs, "PUT", statePath(roomId, CALL_MEMBER, "poke"), {
      token: alice.accessToken,
      body: { n: 1 },
    });
    const woke = await waiting;
    expect(Date.now() - t0).toBeLessThan(3000);
    const events = woke.body.rooms.join[roomId].timeline.events;
    expect(events.map((e: { state_key: string }) => e.state_key)).toEqual(["poke"]);
    expect(events[0].unsigned.prev_content).toBeUndefined();
  });

  it("echoes transaction_id only to the sending device", async () => {
    const path = sendPath(roomId, "m.room.message", "echo");
    await raw(hs, "PUT", path, { token: alice.accessToken, body: { msgtype: "m.text", body: "e" } });
    const find = async (token: string) => {
      const res = await raw(hs, "GET", "/_matrix/client/v3/sync", { token });
      return res.body.rooms.join[roomId].timeline.events.find(
        (e: { content: { body?: string } }) => e.content.body === "e",
      );
    };
    expect((await find(alice.accessToken)).unsigned.transaction_id).toBe("echo");
    expect((await find(bob.accessToken)).unsigned.transaction_id).toBeUndefined();
  });

  it("answers unknown routes 404 and wrong methods 405, both M_UNRECOGNIZED", async () => {
    const unknown = await raw(hs, "GET", "/_matrix/client/v3/nope", { token: alice.accessToken });
    expect(unknown.status).toBe(404);
    expect(unknown.body).toEqual({ errcode: "M_UNRECOGNIZED", error: "Unrecognized request" });
    const wrong = await raw(hs, "DELETE", "/_matrix/client/v3/account/whoami", { token: alice.accessToken });
    expect(wrong.status).toBe(405);
    expect(wrong.body.errcode).toBe("M_UNRECOGNIZED");
    // A CORS preflight: Synapse answers an empty 204 (it was 200 {} here before the sticky-events work).
    const preflight = await raw(hs, "OPTIONS", "/_matrix/client/v3/sync");
    expect(preflight.status).toBe(204);
    expect(preflight.body).toBe("");
    expect(preflight.headers.get("access-control-allow-origin")).toBe("*");
  });
});
