/**
 * Issue 14: a delayed leave the manager can no longer restart is diagnosed by asking the server
 * (MSC4140 as merged: the 409's lookup or `GET …/delayed_events/{id}`), not guessed from time. Each case
 * is one where the time-based guess would be wrong or blind, asserted on the server (room state, the
 * request log) and on the reasons the manager gave.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import "../../helpers/matrix.js"; // quiet matrix-js-sdk
import log from "loglevel";
import type { MembershipState } from "../../../src/index.js";
import { startTestCall, SYNAPSE_PRESETS, waitFor, type TestCall } from "../../../src/testing/index.js";
import { CALL_MEMBER, NO_LIMITS, raw, statePath } from "../homeserver/helpers.js";

const DELAY = 2000;
const quiet = log.getLogger("lost-diagnosis-quiet");
quiet.setLevel("silent");

let call: TestCall | undefined;
afterEach(async () => {
  await call?.close();
  call = undefined;
});

async function joinedAlice() {
  call = await startTestCall({ delayMs: DELAY, homeserver: { ...SYNAPSE_PRESETS.merged, ...NO_LIMITS } });
  // The fixed delay/2 cadence these cases were written for: the heartbeat's restart (whose 404 asks the
  // server) and the periodic read of our key (every delay/2) come together. The adaptive heartbeat's
  // longer interval lets the read see another user's `{}` first (a write-back without a lookup).
  const alice = await call.device("alice", { logger: quiet, heartbeatIntervalMs: DELAY / 2 });
  const states: MembershipState[] = [];
  alice.manager.state$.subscribe((s) => states.push(s));
  let delayId: string | undefined;
  alice.manager.delayId$.subscribe((id) => (delayId = id));
  alice.manager.join();
  await alice.waitUntilConnected({ withinMs: 5000 });
  await waitFor(() => delayId !== undefined, 2000, "a delay id");
  const reasons = () =>
    states.flatMap((s) => (s.kind === "reconnecting" || s.kind === "left" ? [s.reason] : []));
  /** Lookups of one delayed event the server answered (the merged `GET …/delayed_events/{id}`). */
  const lookups = () =>
    call!.homeserver.requests.filter((r) => r.route === "delayed.get" && r.userId === alice.userId);
  return { call, alice, delayId: delayId!, reasons, lookups };
}

describe("a lost delayed leave, diagnosed by the server (merged shape)", () => {
  it("sent early by another session of ours: a fired leave (fresh rejoin), though time says it is not due", async () => {
    const { call, alice, delayId, reasons, lookups } = await joinedAlice();
    const tab2 = await call.homeserver.loginDevice("alice", "TAB2");
    // Well before the due time: the time-based guess would call this "lost" and re-assert.
    const sent = await raw(call.homeserver, "POST", `/_matrix/client/v1/delayed_events/${delayId}/send`, {
      token: tab2.accessToken,
      body: {},
    });
    expect(sent.status).toBe(200);
    expect(alice.membershipOnServer()).toEqual({});

    await waitFor(() => reasons().includes("delayed-leave-fired"), 3 * DELAY, "the fired-leave reason");
    await alice.waitUntilConnected({ withinMs: 3000 });
    expect(alice.isJoinedOnServer()).toBe(true);
    expect(reasons()).not.toContain("delayed-leave-lost");
    expect(lookups().length).toBeGreaterThanOrEqual(1);
    expect(alice.pendingDelayedLeaves()).toHaveLength(1);
  });

  it("cancelled by another user's write: the membership was replaced (membership-removed), then put back", async () => {
    const { call, alice, reasons, lookups } = await joinedAlice();
    const carol = await call.homeserver.createUser("carol");
    await call.homeserver.joinRoom(carol.accessToken, call.roomId);
    const write = await raw(
      call.homeserver,
      "PUT",
      statePath(call.roomId, CALL_MEMBER, alice.manager.stateKey),
      {
        token: carol.accessToken,
        body: {},
      },
    );
    expect(write.status).toBe(200);
    // The server cancelled alice's delayed leave on carol's write.
    expect(alice.pendingDelayedLeaves()).toHaveLength(0);

    await waitFor(() => reasons().includes("membership-removed"), 3 * DELAY, "the membership-removed reason");
    await waitFor(() => alice.isJoinedOnServer(), 3000, "alice's membership back on the server");
    expect(lookups().length).toBeGreaterThanOrEqual(1);
    expect(reasons()).not.toContain("delayed-leave-fired");
  });

  it("unknown to a server that keeps finalised events: lost (a new delayed leave, membership kept)", async () => {
    const { call, alice, delayId, reasons, lookups } = await joinedAlice();
    const created = (alice.membershipOnServer() as { created_ts?: number }).created_ts;
    call.homeserver.loseDelayedEvent(delayId);

    await waitFor(() => reasons().includes("delayed-leave-lost"), 3 * DELAY, "the lost reason");
    await waitFor(() => alice.pendingDelayedLeaves().length === 1, 3000, "a new delayed leave");
    expect(lookups().length).toBeGreaterThanOrEqual(1);
    expect(reasons()).not.toContain("delayed-leave-fired");
    // Never removed: the same membership (same created_ts) stood throughout.
    expect(alice.isJoinedOnServer()).toBe(true);
    expect((alice.membershipOnServer() as { created_ts?: number }).created_ts).toBe(created);
  });
});
