/**
 * The manager (standalone, matrix-js-sdk backend) on a real Synapse 1.163.2: every assertion reads
 * Synapse's own room state and pending delayed events, and what js-sdk's MatrixRTCSession in another
 * synced client lists.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import { startTestCall, waitFor, type SynapseHomeserver, type TestCall } from "../../src/testing/index.js";
import { leavesOnServer, sleep, until } from "./helpers.js";

// Long enough that the manager's local request timeout (delay / 5) holds on a loaded machine's Synapse.
const DELAY = 4000;

let call: TestCall<SynapseHomeserver> | undefined;
afterEach(async () => {
  await call?.close();
  call = undefined;
});

async function joined() {
  call = await startTestCall({ server: "synapse", delayMs: DELAY });
  const alice = await call.device("alice");
  const bob = await call.observer("bob");
  alice.manager.join();
  await bob.waitUntilSees(alice, { withinMs: 5000 });
  await alice.waitUntilConnected({ withinMs: 2000 });
  return { call, alice, bob };
}

describe("the manager on real Synapse", () => {
  it("join, heartbeats over several delays, clean leave", async () => {
    const { call, alice, bob } = await joined();
    expect(call.homeserver.version).toBe("1.163.2");
    expect(alice.membershipOnServer()).toMatchObject({
      application: "m.call",
      device_id: alice.deviceId,
    });
    const [pending] = alice.pendingDelayedLeaves();
    expect(alice.pendingDelayedLeaves()).toHaveLength(1);
    expect(pending).toMatchObject({ delayMs: DELAY, content: {}, userId: alice.userId });
    const firstDeadline = pending.sendTs;

    // Three delays of heartbeats: Synapse's deadline keeps moving, the leave never fires.
    await sleep(DELAY * 3);
    expect(alice.isJoinedOnServer()).toBe(true);
    const later = alice.pendingDelayedLeaves();
    expect(later).toHaveLength(1);
    expect(later[0].delayId).toBe(pending.delayId);
    expect(later[0].sendTs).toBeGreaterThan(firstDeadline + DELAY * 2);
    expect(leavesOnServer(call, alice)).toBe(0);
    expect(bob.sees(alice)).toBe(true);
    expect(alice.manager.probablyLeft).toBe(false);

    const leaveAt = Date.now();
    const result = await alice.manager.leave({ timeoutMs: 5000 });
    const story = alice.network.log
      .filter((r) => r.ts >= leaveAt - DELAY)
      .map((r) => `${r.ts - leaveAt} ${r.method} ${r.path.slice(-60)} ${r.fate} ${r.upstreamStatus}`)
      .join("\n");
    expect({ result, story }).toEqual({ result: { status: "left", via: "delayed-event-sent" }, story });
    expect(alice.membershipOnServer()).toEqual({});
    expect(alice.pendingDelayedLeaves()).toHaveLength(0);
    await bob.waitUntilGone(alice, { withinMs: 3000 });
  });

  it("crash (dispose without leave): Synapse fires the leave within the delay", async () => {
    const { alice, bob } = await joined();
    await sleep(DELAY / 2);
    const deadline = alice.pendingDelayedLeaves()[0].sendTs;
    const crashedAt = Date.now();
    alice.manager.dispose();
    await until(() => !alice.isJoinedOnServer(), DELAY * 2, "Synapse to fire the leave");
    // Fired by Synapse's own timer, at the deadline of the last restart before the crash.
    expect(Date.now() - crashedAt).toBeLessThanOrEqual(DELAY + 500);
    expect(Date.now()).toBeGreaterThanOrEqual(deadline - 50);
    expect(alice.pendingDelayedLeaves()).toHaveLength(0);
    expect(alice.manager.pendingTimers).toBe(0);
    await bob.waitUntilGone(alice, { withinMs: 3000 });
  });

  it("network cut longer than the delay: fired leave, probablyLeft, rejoin after restore", async () => {
    const { call, alice, bob } = await joined();
    alice.network.cut();
    const cutAt = Date.now();
    await bob.waitUntilGone(alice, { withinMs: DELAY + 1500 });
    expect(Date.now() - cutAt).toBeLessThanOrEqual(DELAY + 1500);
    expect(alice.isJoinedOnServer()).toBe(false);
    expect(alice.pendingDelayedLeaves()).toHaveLength(0);
    await waitFor(() => alice.manager.probablyLeft, DELAY, "probablyLeft");
    expect(Math.abs(Date.now() - cutAt - DELAY)).toBeLessThan(DELAY);

    alice.network.restore();
    await bob.waitUntilSees(alice, { withinMs: 5000 });
    await alice.waitUntilConnected({ withinMs: 3000 });
    expect(alice.manager.probablyLeft).toBe(false);
    expect(alice.isJoinedOnServer()).toBe(true);
    await until(() => alice.pendingDelayedLeaves().length === 1, 3000, "a new delayed leave");
    expect(leavesOnServer(call, alice)).toBe(1);
  });
});
