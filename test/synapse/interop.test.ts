/**
 * Interop on a real Synapse 1.163.2: matrix-js-sdk's MatrixRTCSession in a synced client lists our
 * device and drops it after leave (our observer on the same client agrees), and our observer lists a
 * device joined with js-sdk's own MatrixRTCSession.joinRTCSession, until it leaves.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import { CALL_MEMBER_EVENT_TYPE } from "../../src/index.js";
import {
  startTestCall,
  stopClient,
  syncedClient,
  waitFor,
  type SynapseHomeserver,
  type TestCall,
} from "../../src/testing/index.js";
import {
  idOf,
  joinWithJsSdk,
  jsSdkView,
  jsSession,
  observeWithUs,
  roomOf,
} from "../integration/interop/helpers.js";
import { until } from "./helpers.js";

// Long enough that the manager's local request timeout (delay / 5) holds on a loaded machine's Synapse.
const DELAY = 4000;

let call: TestCall<SynapseHomeserver> | undefined;
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) c();
  await call?.close();
  call = undefined;
});

describe("interop with matrix-js-sdk on real Synapse", () => {
  it("js-sdk's MatrixRTCSession lists our device while joined and drops it after leave; our observer agrees", async () => {
    call = await startTestCall({ server: "synapse", delayMs: DELAY });
    const alice = await call.device("alice", { callIntent: "video" });
    const bob = await call.observer("bob");
    await roomOf(bob.client, call.roomId);
    const ours = observeWithUs(bob.client, call.roomId);
    cleanups.push(() => ours.stop());

    alice.manager.join();
    await bob.waitUntilSees(alice, { withinMs: 5000 });
    const [member] = jsSession(bob.client, call.roomId).memberships;
    expect(member.sender).toBe(alice.userId);
    expect(member.deviceId).toBe(alice.deviceId);
    expect(member.callIntent).toBe("video");
    expect(member.isExpired()).toBe(false);
    await waitFor(() => ours.ids().includes(idOf(alice)), 3000, "our observer to list alice");
    expect(ours.view()).toEqual(jsSdkView(bob.client, call.roomId));
    // What js-sdk lists is what Synapse holds.
    expect(alice.membershipOnServer()).toMatchObject({
      device_id: alice.deviceId,
      "m.call.intent": "video",
    });

    expect(await alice.manager.leave({ timeoutMs: 5000 })).toEqual({
      status: "left",
      via: "delayed-event-sent",
    });
    await bob.waitUntilGone(alice, { withinMs: 3000 });
    await waitFor(() => ours.latest().length === 0, 3000, "our observer to drop alice");
    expect(jsSdkView(bob.client, call.roomId)).toEqual([]);
    expect(alice.membershipOnServer()).toEqual({});
    expect(alice.pendingDelayedLeaves()).toEqual([]);
  });

  it("our observer lists a device joined with js-sdk's MatrixRTCSession, and drops it after its leave", async () => {
    call = await startTestCall({ server: "synapse", delayMs: DELAY });
    const hs = call.homeserver;
    const watcherCreds = await hs.createUser("watcher");
    await hs.joinRoom(watcherCreds.accessToken, call.roomId);
    const watcher = await syncedClient(hs.baseUrl, watcherCreds);
    cleanups.push(() => stopClient(watcher));
    await roomOf(watcher, call.roomId);
    const ours = observeWithUs(watcher, call.roomId);
    cleanups.push(() => ours.stop());

    const creds = await hs.createUser("carol");
    await hs.joinRoom(creds.accessToken, call.roomId);
    const carol = await joinWithJsSdk(hs.baseUrl, creds, call.roomId, { delayMs: DELAY });
    cleanups.push(() => carol.stop());
    const carolKey = `_${carol.userId}_${carol.deviceId}_m.call`;

    await waitFor(() => ours.ids().includes(idOf(carol)), 8000, "our observer to list carol");
    expect(ours.latest()[0]).toMatchObject({
      userId: carol.userId,
      deviceId: carol.deviceId,
      stateKey: carolKey,
      memberId: `${carol.userId}:${carol.deviceId}`,
    });
    await waitFor(() => jsSdkView(watcher, call!.roomId).length === 1, 3000, "js-sdk to list carol");
    expect(ours.view()).toEqual(jsSdkView(watcher, call.roomId));
    // Synapse holds carol's membership and js-sdk's own delayed leave for it.
    expect(hs.stateContent(call.roomId, CALL_MEMBER_EVENT_TYPE, carolKey)).toMatchObject({
      device_id: carol.deviceId,
    });
    await until(
      () => hs.pendingDelayedEvents().some((e) => e.stateKey === carolKey),
      3000,
      "js-sdk's delayed leave on Synapse",
    );

    expect(await carol.leave()).toBe(true);
    await waitFor(() => !ours.ids().includes(idOf(carol)), 5000, "our observer to drop carol");
    expect(hs.stateContent(call.roomId, CALL_MEMBER_EVENT_TYPE, carolKey)).toEqual({});
  });
});
