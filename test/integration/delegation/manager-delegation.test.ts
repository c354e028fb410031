/**
 * The manager's delegated delayed leave (MSC4195, `delegation: "auto"`) against the test homeserver,
 * with the test token service behind its MSC4512 proxy: what the homeserver holds (pending delayed
 * events and their delays, its request log), what the service holds and did, and what bob's synced
 * client sees. Shortened time: the delegated delay is 6 s and our restarts of it every 500 ms (MSC4195's
 * 1 h and Element Call's 5 min, scaled 600×: one device-hour is 6 s), the normal delay 1 s; the
 * service takes delays of 6 s and up (its "1 h minimum", scaled alike).
 */
import { afterEach, beforeEach, describe, expect, it } from "@jest/globals";
import log from "loglevel";
import type { MatrixClient } from "matrix-js-sdk";
import { ClientBackend, MembershipManager, type MembershipManagerOptions } from "../../../src/index.js";
import {
  startTestHomeserver,
  startTestSfuAuth,
  stopClient,
  syncedClient,
  waitFor,
  type Credentials,
  type TestHomeserver,
  type TestSfuAuth,
} from "../../../src/testing/index.js";
import { bareClient } from "../../helpers/matrix.js";
import { CALL_MEMBER, HOMESERVER_DELEGATE, sleep } from "./helpers.js";

const quiet = log.getLogger("quiet");
quiet.setLevel("silent");

const DELAY = 1000;
/** The scaled device-hour: the delegated delay (MSC4195's 1 h). */
const HOUR = 6000;
const INTERVAL = HOUR / 12;

let hs: TestHomeserver;
let sfu: TestSfuAuth;
let alice: Credentials;
let bob: Credentials;
let roomId: string;
const clients: MatrixClient[] = [];
const managers: MembershipManager[] = [];

beforeEach(async () => {
  sfu = await startTestSfuAuth({ delegation: { minDelayMs: HOUR } });
  hs = await startTestHomeserver({
    appServices: [sfu.appServiceRegistration()],
    msc4512Enabled: true,
    rateLimits: { message: null, delayedEventMgmt: null },
  });
  sfu.useHomeserver(hs.baseUrl);
  alice = await hs.createUser("alice");
  bob = await hs.createUser("bob");
  roomId = await hs.createRoom(alice.accessToken);
  await hs.joinRoom(bob.accessToken, roomId);
});
afterEach(async () => {
  for (const m of managers.splice(0)) m.dispose();
  for (const c of clients.splice(0)) stopClient(c);
  sfu.resume();
  await sfu.close();
  await hs.close();
});

function newManager(more: Partial<MembershipManagerOptions> = {}): MembershipManager {
  const client = bareClient(hs.baseUrl, alice);
  clients.push(client);
  const m = new MembershipManager({
    backend: new ClientBackend(client),
    roomId,
    userId: alice.userId,
    deviceId: alice.deviceId,
    delayedLeaveDelayMs: DELAY,
    sfuUrl: sfu.livekitUrl,
    delegatedDelayMs: HOUR,
    delegatedHeartbeatIntervalMs: INTERVAL,
    logger: quiet,
    ...more,
  });
  managers.push(m);
  return m;
}

const stateKey = () => `_${alice.userId}_${alice.deviceId}_m.call`;
const pendingDelays = () =>
  hs
    .pendingDelayedEvents()
    .filter((d) => d.stateKey === stateKey())
    .map((d) => d.delayMs);
const membership = () => hs.stateContent(roomId, CALL_MEMBER, stateKey()) ?? {};
const inCall = () => Object.keys(membership()).length > 0;
const bobSees = (client: MatrixClient) =>
  client.getRoom(roomId)?.currentState.getStateEvents(CALL_MEMBER, stateKey())?.getContent() ?? {};

/** Samples the homeserver every 20 ms: a membership with no delayed leave pending is a gap. */
function watchGaps(): { gaps: number; samples: number; stop: () => void } {
  const w = { gaps: 0, samples: 0, stop: () => clearInterval(timer) };
  const timer = setInterval(() => {
    w.samples++;
    if (inCall() && pendingDelays().length === 0) w.gaps++;
  }, 20);
  return w;
}

/** Restarts of alice's delayed events at the homeserver that the service did not make (ours). */
function ourRestarts(): number {
  const all = hs.requests.filter(
    (r) => r.userId === alice.userId && r.route === "delayed.restart" && r.status === 200,
  ).length;
  const service = sfu.homeserverRequests.filter((r) => r.action === "restart" && r.status === 200).length;
  return all - service;
}

describe("MembershipManager with delegation: 'auto' (test homeserver, MSC4512 proxy, test token service)", () => {
  it("detects and confirms the delegation, holds one 1 h leave, and stays in the call on ≤ 12 restarts per device-hour", async () => {
    const bobClient = await syncedClient(hs.baseUrl, bob);
    clients.push(bobClient);
    sfu.connected({ userId: alice.userId });
    const gaps = watchGaps();
    const m = newManager();
    m.join();
    await waitFor(() => m.support.delayedLeaveHolder === "delegated", 5000);
    expect(m.support.delegation).toBe("confirmed");
    // The homeserver holds the delegated leave alone: the normal one was cancelled once it was taken.
    await waitFor(() => pendingDelays().length === 1, 2000);
    expect(pendingDelays()).toEqual([HOUR]);
    // It went through the homeserver's proxy as alice, and the service holds it, connected.
    const delegations = sfu.requests.filter((r) => r.path === HOMESERVER_DELEGATE);
    expect(delegations[0]).toMatchObject({
      status: 200,
      userIdentifier: alice.userId,
      authorization: "hs_token",
    });
    expect(delegations[0].body).toMatchObject({
      url: sfu.livekitUrl,
      room_id: roomId,
      slot_id: "m.call#ROOM",
      member_id: `${alice.userId}:${alice.deviceId}`,
      member: { id: `${alice.userId}:${alice.deviceId}`, claimed_device_id: alice.deviceId },
    });
    const held = sfu.delegations();
    expect(held).toHaveLength(1);
    expect(held[0]).toMatchObject({
      via: "homeserver",
      state: "connected",
      delayMs: HOUR,
      userId: alice.userId,
    });
    expect(hs.pendingDelayedEvents().find((d) => d.stateKey === stateKey())?.delayId).toBe(held[0].delayId);

    // Two device-hours (12 s): in the call all along, ≤ 12 of our restarts per device-hour.
    const before = ourRestarts();
    await sleep(2 * HOUR);
    const restarts = ourRestarts() - before;
    expect(restarts).toBeLessThanOrEqual(2 * 12 + 1);
    expect(restarts).toBeGreaterThanOrEqual(2 * 12 - 4);
    expect(inCall()).toBe(true);
    expect(bobSees(bobClient)).toMatchObject({ device_id: alice.deviceId });
    expect(m.state).toMatchObject({ kind: "joined", delayedLeave: true });
    gaps.stop();
    expect(gaps.samples).toBeGreaterThan(100);
    expect(gaps.gaps).toBe(0);
  }, 30_000);

  it("sends the leave within one round trip of the service seeing the disconnect; bob sees it", async () => {
    const bobClient = await syncedClient(hs.baseUrl, bob);
    clients.push(bobClient);
    sfu.connected({ userId: alice.userId });
    const m = newManager({ autoRejoin: false });
    m.join();
    await waitFor(() => m.support.delayedLeaveHolder === "delegated" && pendingDelays().length === 1, 5000);
    await waitFor(() => Object.keys(bobSees(bobClient)).length > 0, 5000);
    const at = Date.now();
    sfu.disconnected({ userId: alice.userId });
    await waitFor(() => !inCall(), 2000);
    const onServer = Date.now() - at;
    // (The service records the send's status when its answer is back, just after the homeserver wrote it.)
    await waitFor(() => sfu.homeserverRequests.some((r) => r.action === "send" && r.status !== 0), 2000);
    const send = sfu.homeserverRequests.find((r) => r.action === "send");
    expect(send).toMatchObject({ status: 200, auth: "appservice", userId: alice.userId });
    // One request, sent as the SFU lost us: its send left at once, and the homeserver held the leave
    // one round trip later (localhost: a few ms; bounded loosely against a busy machine).
    expect(send!.at - at).toBeLessThan(50);
    expect(onServer).toBeLessThan(send!.at - at + send!.durationMs + 100);
    expect(pendingDelays()).toEqual([]);
    await waitFor(() => Object.keys(bobSees(bobClient)).length === 0, 5000);
  }, 30_000);

  it("a refused delegation (400) falls back without a gap: the long one is cancelled, the normal one held", async () => {
    sfu.connected({ userId: alice.userId });
    sfu.refuse();
    const gaps = watchGaps();
    const m = newManager();
    m.join();
    await waitFor(() => m.support.delegation === "refused", 5000);
    await sleep(3 * DELAY);
    expect(m.support.delayedLeaveHolder).toBe("self");
    expect(pendingDelays()).toEqual([DELAY]);
    expect(inCall()).toBe(true);
    // The long one was scheduled, delegated (refused), then cancelled at the homeserver.
    const refusedAsk = sfu.requests.filter((r) => r.path === HOMESERVER_DELEGATE);
    expect(refusedAsk.map((r) => r.status)).toEqual([400]);
    expect(
      hs.requests.filter(
        (r) => r.userId === alice.userId && r.route === "delayed.cancel" && r.status === 200,
      ),
    ).toHaveLength(1);
    gaps.stop();
    expect(gaps.gaps).toBe(0);
  }, 30_000);

  it("a homeserver without the endpoint (no MSC4512 proxy): unstable then stable path, both 404, not asked again", async () => {
    hs.configure({ msc4512Enabled: false });
    const gaps = watchGaps();
    const m = newManager();
    m.join();
    await waitFor(() => m.support.delegation === "unsupported", 5000);
    await sleep(3 * DELAY);
    expect(m.support.delayedLeaveHolder).toBe("self");
    expect(pendingDelays()).toEqual([DELAY]);
    expect(inCall()).toBe(true);
    const asked = hs.requests.filter((r) => r.path.endsWith("/rtc/livekit/delegate_delayed_leave"));
    expect(asked.map((r) => `${r.path} ${r.status}`)).toEqual([
      `${HOMESERVER_DELEGATE} 404`,
      "/_matrix/client/v1/rtc/livekit/delegate_delayed_leave 404",
    ]);
    gaps.stop();
    expect(gaps.gaps).toBe(0);
  }, 30_000);

  it("a service that stops answering: the next check times out and the manager falls back without a gap", async () => {
    sfu.connected({ userId: alice.userId });
    const gaps = watchGaps();
    // The check's local timeout (the state timeout): short, so the test need not wait 10 s.
    const m = newManager({ stateRequestTimeoutMs: 1500 });
    m.join();
    await waitFor(() => m.support.delayedLeaveHolder === "delegated" && pendingDelays().length === 1, 5000);
    const delegatedId = hs.pendingDelayedEvents().find((d) => d.stateKey === stateKey())!.delayId;
    sfu.stopAnswering();
    // The check comes after 3 delegated restarts (1.5 s), gets no answer within 1.5 s, and falls back:
    // a normal leave is scheduled and swapped in, and only then is the delegated one cancelled.
    await waitFor(() => m.support.delayedLeaveHolder === "self", 8000);
    expect(m.support.delegation).toBe("unanswered");
    const ours = () => hs.pendingDelayedEvents().filter((d) => d.stateKey === stateKey());
    await waitFor(() => !ours().some((d) => d.delayId === delegatedId), 2000);
    expect(ours().filter((d) => d.delayMs === DELAY)).toHaveLength(1);
    // In the call on our own heartbeat. (Delegation is tried again after a wait that doubles from one
    // delegated heartbeat, 500 ms here: a new 6 s leave may be pending beside while that try hangs, and
    // is cancelled when it gets no answer.)
    await sleep(3 * DELAY);
    expect(inCall()).toBe(true);
    expect(m.support.delayedLeaveHolder).toBe("self");
    expect(ours().filter((d) => d.delayMs === DELAY)).toHaveLength(1);
    expect(ours().some((d) => d.delayId === delegatedId)).toBe(false);
    gaps.stop();
    expect(gaps.gaps).toBe(0);
  }, 30_000);
});
