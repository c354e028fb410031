/**
 * startSynapse() itself: the switches reach the real server, restart keeps pending delayed events, and a
 * start that fails says why with Synapse's own words.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import { startSynapse, type SynapseHomeserver } from "../../src/testing/index.js";

let hs: SynapseHomeserver | undefined;
afterEach(async () => {
  await hs?.close();
  hs = undefined;
});

async function schedule(s: SynapseHomeserver, token: string, roomId: string, delay: number) {
  const res = await fetch(
    `${s.baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/` +
      `org.matrix.msc3401.call.member/k${Math.random()}?org.matrix.msc4140.delay=${delay}`,
    {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: "{}",
    },
  );
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("startSynapse", () => {
  it("max delay and per-user limit reach Synapse; rooms let members publish call memberships; restart keeps pending events", async () => {
    hs = await startSynapse({ maxDelayMs: 60_000, maxScheduledPerUser: 2 });
    expect(hs.version).toBe("1.163.2");
    const versions = (await (await fetch(`${hs.baseUrl}/_matrix/client/versions`)).json()) as {
      unstable_features: Record<string, boolean>;
    };
    expect(versions.unstable_features["org.matrix.msc4140"]).toBe(true);
    const alice = await hs.createUser("alice");
    const bob = await hs.createUser("bob");
    const roomId = await hs.createRoom(alice.accessToken);
    await hs.joinRoom(bob.accessToken, roomId);
    const levels = hs.stateContent(roomId, "m.room.power_levels", "") as { events: Record<string, number> };
    expect(levels.events["org.matrix.msc3401.call.member"]).toBe(0);

    const over = await schedule(hs, bob.accessToken, roomId, 60_001);
    expect(over.status).toBe(400);
    expect((await schedule(hs, bob.accessToken, roomId, 50_000)).status).toBe(200);
    expect((await schedule(hs, bob.accessToken, roomId, 50_000)).status).toBe(200);
    const third = await schedule(hs, bob.accessToken, roomId, 50_000);
    expect(third.status).toBe(429);
    const pending = hs.pendingDelayedEvents();
    expect(pending).toHaveLength(2);
    expect(pending[0]).toMatchObject({ userId: bob.userId, roomId, delayMs: 50_000 });

    await hs.restart({ downMs: 100 });
    expect(hs.pendingDelayedEvents().map((e) => e.delayId)).toEqual(pending.map((e) => e.delayId));
  });

  it("a start that fails throws with Synapse's log tail", async () => {
    await expect(startSynapse({ extraConfig: { max_event_delay_duration: -5 } })).rejects.toThrow(
      /must be a positive value/,
    );
  });
});
