/**
 * The real matrix-js-sdk MatrixClient against the test homeserver over HTTP: startClient + sync, the
 * four delayed-event methods, and MatrixRTCSession seeing another user's membership.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@jest/globals";
import type { MatrixClient } from "matrix-js-sdk";
import { startTestHomeserver, type Credentials, type TestHomeserver } from "../../../src/testing/index.js";
import { CALL_MEMBER, client, NO_LIMITS, syncedClient, waitFor } from "./helpers.js";

describe("MatrixClient against the test homeserver", () => {
  let hs: TestHomeserver;
  let alice: Credentials;
  let bob: Credentials;
  let roomId: string;
  const clients: MatrixClient[] = [];

  beforeAll(async () => {
    hs = await startTestHomeserver(NO_LIMITS);
    alice = await hs.createUser("alice");
    bob = await hs.createUser("bob");
    roomId = await hs.createRoom(alice.accessToken, { name: "Call room" });
    await hs.joinRoom(bob.accessToken, roomId);
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.stopClient();
  });
  afterAll(async () => {
    await hs.close();
  });

  const started = async (user: Credentials): Promise<MatrixClient> => {
    const c = await syncedClient(hs, user);
    clients.push(c);
    return c;
  };
  const bare = (user: Credentials): MatrixClient => {
    const c = client(hs, user);
    clients.push(c);
    return c;
  };

  it("syncs the room with its state and follows state changes by long-poll", async () => {
    const c = await started(bob);
    const room = await waitFor(() => c.getRoom(roomId), 3000, "room");
    expect(room.name).toBe("Call room");
    expect(room.getMember(alice.userId)?.membership).toBe("join");
    expect(room.getMember(bob.userId)?.membership).toBe("join");

    // A state change made by someone else arrives through the next (long-polling) sync.
    await bare(alice).sendStateEvent(roomId, "m.room.topic" as never, { topic: "hello" } as never, "");
    await waitFor(() => room.currentState.getStateEvents("m.room.topic", "")?.getContent().topic === "hello");
    expect(hs.stateContent(roomId, "m.room.topic", "")).toEqual({ topic: "hello" });
  });

  it("schedules, restarts, sends and cancels delayed events with the _unstable_ methods", async () => {
    const c = bare(alice);
    const key = `_${alice.userId}_${alice.deviceId}_m.call`;

    const first = await c._unstable_sendDelayedStateEvent(
      roomId,
      { delay: 60_000 },
      CALL_MEMBER as never,
      {} as never,
      key,
    );
    expect(first.delay_id).toMatch(/^syd_[A-Za-z]{20}$/);
    const pending = hs.pendingDelayedEvents().find((d) => d.delayId === first.delay_id);
    expect(pending).toMatchObject({
      userId: alice.userId,
      deviceId: alice.deviceId,
      roomId,
      type: CALL_MEMBER,
      stateKey: key,
      content: {},
      delayMs: 60_000,
    });

    const before = pending!.sendTs;
    await new Promise((resolve) => setTimeout(resolve, 20));
    await c._unstable_restartScheduledDelayedEvent(first.delay_id);
    const after = hs.pendingDelayedEvents().find((d) => d.delayId === first.delay_id)!.sendTs;
    expect(after).toBeGreaterThan(before);

    await c._unstable_sendScheduledDelayedEvent(first.delay_id);
    expect(hs.pendingDelayedEvents().some((d) => d.delayId === first.delay_id)).toBe(false);
    const sent = hs.roomState(roomId).find((e) => e.type === CALL_MEMBER && e.state_key === key)!;
    expect(sent.content).toEqual({});
    expect(sent.unsigned["org.matrix.msc4140.delay_id"]).toBe(first.delay_id);

    const second = await c._unstable_sendDelayedStateEvent(
      roomId,
      { delay: 60_000 },
      CALL_MEMBER as never,
      { a: 1 } as never,
      key,
    );
    await c._unstable_cancelScheduledDelayedEvent(second.delay_id);
    expect(hs.pendingDelayedEvents().some((d) => d.delayId === second.delay_id)).toBe(false);

    // Anything no longer pending is 404 M_NOT_FOUND, which js-sdk surfaces as a MatrixError.
    await expect(c._unstable_restartScheduledDelayedEvent(second.delay_id)).rejects.toMatchObject({
      errcode: "M_NOT_FOUND",
      httpStatus: 404,
    });
    // The per-action routes answered: js-sdk never needed its legacy fallback.
    expect(hs.requests.some((r) => r.route === "delayed.legacy")).toBe(false);
  });

  it("js-sdk falls back to the legacy route when per-action routes are absent (auth required)", async () => {
    hs.configure({ managementAuth: "required" });
    try {
      const c = bare(alice);
      const { delay_id } = await c._unstable_sendDelayedStateEvent(
        roomId,
        { delay: 60_000 },
        CALL_MEMBER as never,
        {} as never,
        "k-fallback",
      );
      const mark = hs.requests.length;
      await c._unstable_cancelScheduledDelayedEvent(delay_id);
      const routes = hs.requests.slice(mark).map((r) => `${r.route}:${r.status}`);
      // 404 M_UNRECOGNIZED → unauthenticated legacy → 401 M_MISSING_TOKEN → authenticated legacy.
      expect(routes).toEqual(["unknown:404", "delayed.legacy:401", "delayed.legacy:200"]);
      expect(hs.pendingDelayedEvents().some((d) => d.delayId === delay_id)).toBe(false);
    } finally {
      hs.configure({ managementAuth: "optional" });
    }
  });

  it("a delayed leave that fires is seen by another synced client", async () => {
    const observer = await started(bob);
    const room = await waitFor(() => observer.getRoom(roomId));
    const key = `_${alice.userId}_${alice.deviceId}_m.call`;
    await bare(alice).sendStateEvent(roomId, CALL_MEMBER as never, { joined: true } as never, key);
    await waitFor(() => room.currentState.getStateEvents(CALL_MEMBER, key)?.getContent().joined === true);
    const { delay_id } = await bare(alice)._unstable_sendDelayedStateEvent(
      roomId,
      { delay: 150 },
      CALL_MEMBER as never,
      {} as never,
      key,
    );
    const fired = await waitFor(() => {
      const ev = room.currentState.getStateEvents(CALL_MEMBER, key);
      return ev && Object.keys(ev.getContent()).length === 0 ? ev : undefined;
    });
    // Sent as alice with origin_server_ts = the scheduled time; bob (not the sender) sees no delay id.
    expect(fired.getSender()).toBe(alice.userId);
    expect(fired.getUnsigned()["org.matrix.msc4140.delay_id" as never]).toBeUndefined();
    const serverView = hs.roomState(roomId).find((e) => e.state_key === key)!;
    expect(serverView.unsigned["org.matrix.msc4140.delay_id"]).toBe(delay_id);
  });

  it("MatrixRTCSession in a synced client lists a membership another user writes", async () => {
    const observer = await started(bob);
    const room = await waitFor(() => observer.getRoom(roomId));
    const key = `_${alice.userId}_DEVA_m.call`;
    await bare(alice).sendStateEvent(
      roomId,
      CALL_MEMBER as never,
      {
        application: "m.call",
        call_id: "",
        scope: "m.room",
        device_id: "DEVA",
        expires: 14_400_000,
        focus_active: { type: "livekit", focus_selection: "oldest_membership" },
        foci_preferred: [{ type: "livekit", livekit_service_url: "https://lk.example" }],
      } as never,
      key,
    );
    const memberships = await waitFor(() => {
      const m = observer.matrixRTC.getRoomSession(room).memberships;
      return m.length > 0 ? m : undefined;
    });
    expect(memberships.map((m) => [m.sender, m.deviceId])).toEqual([[alice.userId, "DEVA"]]);
    expect(hs.stateContent(roomId, CALL_MEMBER, key)).toMatchObject({ device_id: "DEVA" });

    // And it disappears when the membership is emptied (what a fired delayed leave does).
    await bare(alice).sendStateEvent(roomId, CALL_MEMBER as never, {} as never, key);
    await waitFor(() => observer.matrixRTC.getRoomSession(room).memberships.length === 0);
  });
});
