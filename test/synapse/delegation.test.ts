/**
 * The test token service behind real Synapse 1.163.2's MSC4512 proxy
 * (`experimental_features.msc4512_enabled`, a registration with `io.element.msc4512.proxy_prefix:
 * "rtc/livekit"`): MSC4195 delegations sent to Synapse reach the service with Synapse's `hs_token`
 * and `X-Matrix-User-Identifier`, and the service keeps the delayed leave alive acting as the user
 * through its `as_token`; also lk-jwt-service's own endpoint with no token, its OpenID token checked
 * at Synapse's federation userinfo. Asserted on what Synapse holds and what bob's /sync delivers.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@jest/globals";
import log from "loglevel";
import type { MatrixClient } from "matrix-js-sdk";
import { ClientBackend, MembershipManager, type MembershipManagerOptions } from "../../src/index.js";
import { bareClient } from "../helpers/matrix.js";
import {
  startSynapse,
  startTestSfuAuth,
  stopClient,
  syncedClient,
  waitFor,
  type Credentials,
  type SynapseHomeserver,
  type TestSfuAuth,
} from "../../src/testing/index.js";
import {
  CALL_MEMBER,
  delegateAtHomeserver,
  HOMESERVER_DELEGATE,
  isPending,
  joinWithDelayedLeave,
  jsSdkBody,
  openIdToken,
  postToService,
  putState,
  serviceActions,
  SLOT,
  sleep,
  stateKeyOf,
} from "../integration/delegation/helpers.js";

const quietLog = log.getLogger("quiet");
quietLog.setLevel("silent");

const DELAY = 3000;
const HEADROOM = 1500;

let hs: SynapseHomeserver;
let sfu: TestSfuAuth;
let alice: Credentials;
let bob: Credentials;
let roomId: string;
const clients: MatrixClient[] = [];

beforeAll(async () => {
  sfu = await startTestSfuAuth({ delegation: { minDelayMs: 1000, restartHeadroomMs: HEADROOM } });
  hs = await startSynapse({
    appServices: [sfu.appServiceRegistration()],
    extraConfig: { experimental_features: { msc4512_enabled: true } },
  });
  sfu.useHomeserver(hs.baseUrl);
  alice = await hs.createUser("alice");
  bob = await hs.createUser("bob");
  roomId = await hs.createRoom(alice.accessToken);
  await hs.joinRoom(bob.accessToken, roomId);
}, 120_000);
afterEach(() => {
  for (const c of clients.splice(0)) stopClient(c);
});
afterAll(async () => {
  await sfu?.close();
  await hs?.close();
});

const bobSees = (client: MatrixClient) =>
  client.getRoom(roomId)?.currentState.getStateEvents(CALL_MEMBER, stateKeyOf(alice))?.getContent() ?? {};

describe("delegated delayed leave through real Synapse 1.163.2's MSC4512 proxy", () => {
  it("Synapse forwards the delegation; connected, the leave outlives several delays; disconnected, bob sees it at once", async () => {
    const bobClient = await syncedClient(hs.baseUrl, bob);
    clients.push(bobClient);
    const delayId = await joinWithDelayedLeave(hs.baseUrl, alice, roomId, "m1", DELAY);

    const answer = await delegateAtHomeserver(
      hs.baseUrl,
      alice,
      jsSdkBody(sfu, alice, roomId, "m1", delayId),
    );
    expect(answer).toEqual({ status: 200, body: {} });
    expect(sfu.requests.at(-1)).toMatchObject({
      path: HOMESERVER_DELEGATE,
      userIdentifier: alice.userId,
      authorization: "hs_token",
    });
    // Synapse ≥1.161 has the GET of one delayed event: one look-up, as alice, with the server's delay.
    expect(sfu.homeserverRequests.map((r) => `${r.action} ${r.status} ${r.userId}`)).toEqual([
      `lookup 200 ${alice.userId}`,
    ]);
    expect(sfu.delegations()[0]).toMatchObject({ delayMs: DELAY, state: "waiting" });

    sfu.connected({ userId: alice.userId, memberId: "m1" });
    await waitFor(() => serviceActions(sfu, delayId).includes("restart 200"), 3000, "the first restart");
    await sleep(3 * DELAY);
    expect(isPending(hs, delayId)).toBe(true);
    expect(hs.stateContent(roomId, CALL_MEMBER, stateKeyOf(alice))).toMatchObject({ member_id: "m1" });
    expect(bobSees(bobClient)).toMatchObject({ member_id: "m1" });
    const actions = serviceActions(sfu, delayId);
    expect(actions.length).toBeGreaterThanOrEqual(4);
    expect(new Set(actions)).toEqual(new Set(["restart 200"]));
    expect(
      sfu.homeserverRequests.filter((r) => r.action === "restart").every((r) => r.auth === "appservice"),
    ).toBe(true);

    const leftAt = Date.now();
    sfu.disconnected({ userId: alice.userId, memberId: "m1" });
    const seenIn = await waitFor(
      () => Object.keys(bobSees(bobClient)).length === 0,
      DELAY,
      "bob to see the leave",
    );
    expect(seenIn).toBeLessThan(DELAY / 2);
    const leave = hs
      .timeline(roomId)
      .filter((e) => e.type === CALL_MEMBER && e.state_key === stateKeyOf(alice))
      .at(-1);
    expect(leave?.content).toEqual({});
    expect(leave!.origin_server_ts - leftAt).toBeLessThan(DELAY / 3);
    // The answer to the send may come a moment after bob's sync.
    await waitFor(() => serviceActions(sfu, delayId).at(-1) === "send 200", 1000, "the send's answer");
    expect(isPending(hs, delayId)).toBe(false);
  });

  it("refuses another user's delay id, a short delay and another SFU (400 M_INVALID_PARAM); Element Call's bare probe gets Synapse's 401", async () => {
    const bobsDelay = await putState(hs.baseUrl, bob, roomId, stateKeyOf(bob), {}, DELAY);
    const foreign = await delegateAtHomeserver(
      hs.baseUrl,
      alice,
      jsSdkBody(sfu, alice, roomId, "m1", bobsDelay!),
    );
    expect(foreign).toMatchObject({ status: 400, body: { errcode: "M_INVALID_PARAM" } });
    const short = await putState(hs.baseUrl, alice, roomId, stateKeyOf(alice), {}, 500);
    const tooShort = await delegateAtHomeserver(
      hs.baseUrl,
      alice,
      jsSdkBody(sfu, alice, roomId, "m1", short!),
    );
    expect(tooShort).toMatchObject({ status: 400, body: { errcode: "M_INVALID_PARAM" } });
    const mine = await putState(hs.baseUrl, alice, roomId, stateKeyOf(alice), {}, DELAY);
    const wrongSfu = await delegateAtHomeserver(hs.baseUrl, alice, {
      ...jsSdkBody(sfu, alice, roomId, "m1", mine!),
      url: "wss://elsewhere.example",
    });
    expect(wrongSfu).toMatchObject({ status: 400, body: { errcode: "M_INVALID_PARAM" } });
    const probe = await fetch(`${hs.baseUrl}${HOMESERVER_DELEGATE}`, { method: "POST" });
    expect(probe.status).toBe(401);
    expect(sfu.delegations().filter((d) => d.delayId === bobsDelay || d.delayId === short)).toEqual([]);
    // Synapse proxies the stable path too, to the same service.
    const stable = await delegateAtHomeserver(
      hs.baseUrl,
      alice,
      { url: sfu.livekitUrl, room_id: roomId, slot_id: SLOT, member_id: "m9", delay_id: mine },
      "/_matrix/client/v1/rtc/livekit/delegate_delayed_leave",
    );
    expect(stable).toEqual({ status: 200, body: {} });
    sfu.disconnected({ userId: alice.userId, memberId: "m9" });
  });

  it("a service that stops answering restarts nothing, and Synapse fires the leave by itself", async () => {
    const delayId = await joinWithDelayedLeave(hs.baseUrl, alice, roomId, "m2", DELAY);
    expect(
      (await delegateAtHomeserver(hs.baseUrl, alice, jsSdkBody(sfu, alice, roomId, "m2", delayId))).status,
    ).toBe(200);
    sfu.connected({ userId: alice.userId, memberId: "m2" });
    await waitFor(() => serviceActions(sfu, delayId).includes("restart 200"), 3000, "the first restart");
    sfu.stopAnswering();
    const count = serviceActions(sfu, delayId).length;
    const firedIn = await waitFor(() => !isPending(hs, delayId), 2 * DELAY, "Synapse to fire the leave");
    expect(firedIn).toBeLessThanOrEqual(DELAY + 1000);
    expect(hs.stateContent(roomId, CALL_MEMBER, stateKeyOf(alice))).toEqual({});
    expect(serviceActions(sfu, delayId).length).toBe(count);
    sfu.resume();
    await waitFor(
      () => !sfu.delegations().some((d) => d.delayId === delayId),
      3000,
      "the job to end on resume",
    );
  });
});

describe("lk-jwt-service's own endpoint against real Synapse, with no token", () => {
  let plain: TestSfuAuth;
  afterAll(() => plain?.close());

  it("checks the OpenID token at Synapse's userinfo; Synapse takes the anonymous restarts and the send", async () => {
    plain = await startTestSfuAuth({
      homeserverUrl: hs.baseUrl,
      delegation: { auth: "none", minDelayMs: 1000, restartHeadroomMs: HEADROOM },
    });
    const delayId = await joinWithDelayedLeave(hs.baseUrl, alice, roomId, "m3", DELAY);
    const openid = await openIdToken(hs.baseUrl, alice);
    const body = {
      room_id: roomId,
      slot_id: SLOT,
      openid_token: openid,
      member: { id: "m3", claimed_user_id: alice.userId, claimed_device_id: alice.deviceId },
      delay_id: delayId,
      delay_timeout: DELAY,
      delay_cs_api_url: hs.baseUrl,
    };
    const forged = await postToService(plain, "/delegate_delayed_leave", {
      ...body,
      openid_token: { ...openid, access_token: "forged" },
    });
    expect(forged).toMatchObject({ status: 401, body: { errcode: "M_UNAUTHORIZED" } });
    expect(await postToService(plain, "/delegate_delayed_leave", body)).toEqual({ status: 200, body: {} });
    expect(plain.homeserverRequests.filter((r) => r.action === "userinfo").map((r) => r.status)).toEqual([
      401, 200,
    ]);

    plain.connected({ userId: alice.userId, memberId: "m3" });
    await sleep(2 * DELAY);
    expect(isPending(hs, delayId)).toBe(true);
    expect(serviceActions(plain, delayId).length).toBeGreaterThanOrEqual(2);
    expect(new Set(serviceActions(plain, delayId))).toEqual(new Set(["restart 200"]));
    plain.disconnected({ userId: alice.userId });
    await waitFor(
      () => serviceActions(plain, delayId).at(-1) === "send 200",
      DELAY / 2,
      "the leave to be sent",
    );
    expect(isPending(hs, delayId)).toBe(false);
    expect(hs.stateContent(roomId, CALL_MEMBER, stateKeyOf(alice))).toEqual({});
  });
});

/**
 * The manager's `delegation: "auto"` against real Synapse's MSC4512 proxy and the same service.
 * Shortened time: the delegated delay 6 s, our restarts of it every 500 ms (MSC4195's 1 h and Element
 * Call's 5 min, scaled 600×), the normal delay 2 s. Each test has its own user.
 */
describe("MembershipManager delegating through real Synapse 1.163.2's MSC4512 proxy", () => {
  const LONG = 6000;
  const NORMAL = 2000;
  const managers: MembershipManager[] = [];
  afterEach(() => {
    for (const m of managers.splice(0)) m.dispose();
    sfu.refuse(false);
  });

  async function managerFor(localpart: string, more: Partial<MembershipManagerOptions> = {}) {
    const user = await hs.createUser(localpart);
    await hs.joinRoom(user.accessToken, roomId);
    const client = bareClient(hs.baseUrl, user);
    clients.push(client);
    const m = new MembershipManager({
      backend: new ClientBackend(client),
      roomId,
      userId: user.userId,
      deviceId: user.deviceId,
      delayedLeaveDelayMs: NORMAL,
      sfuUrl: sfu.livekitUrl,
      delegatedDelayMs: LONG,
      delegatedHeartbeatIntervalMs: LONG / 12,
      logger: quietLog,
      ...more,
    });
    managers.push(m);
    const key = stateKeyOf(user);
    const delays = () =>
      hs
        .pendingDelayedEvents()
        .filter((d) => d.userId === user.userId)
        .map((d) => d.delayMs);
    const inCall = () => Object.keys(hs.stateContent(roomId, CALL_MEMBER, key) ?? {}).length > 0;
    return { m, user, delays, inCall };
  }

  it("detected and confirmed: Synapse holds the 6 s leave alone; on the SFU's disconnect the leave is sent at once", async () => {
    const { m, user, delays, inCall } = await managerFor("carol", { autoRejoin: false });
    sfu.connected({ userId: user.userId });
    m.join();
    await waitFor(() => m.support.delayedLeaveHolder === "delegated", 10_000, "delegated");
    expect(m.support.delegation).toBe("confirmed");
    await waitFor(() => delays().length === 1, 3000, "the normal leave cancelled");
    expect(delays()).toEqual([LONG]);
    const held = sfu.delegations().filter((d) => d.userId === user.userId);
    expect(held).toMatchObject([{ via: "homeserver", state: "connected", delayMs: LONG }]);
    // Past the normal delay several times over: still in the call, one pending leave (ours, delegated).
    await sleep(3 * NORMAL);
    expect(inCall()).toBe(true);
    expect(delays()).toEqual([LONG]);
    expect(m.state).toMatchObject({ kind: "joined", delayedLeave: true });

    const at = Date.now();
    sfu.disconnected({ userId: user.userId });
    await waitFor(() => !inCall(), 2000, "the leave on the server");
    const leave = hs
      .timeline(roomId)
      .filter((e) => e.type === CALL_MEMBER && e.state_key === stateKeyOf(user))
      .at(-1);
    expect(leave?.content).toEqual({});
    // Synapse wrote it within one round trip of the disconnect (bounded loosely on a busy machine).
    expect(leave!.origin_server_ts - at).toBeLessThan(500);
    expect(delays()).toEqual([]);
  }, 60_000);

  it("refused (400): falls back at once to the normal leave, the long one cancelled, no gap", async () => {
    sfu.refuse();
    const { m, user, delays, inCall } = await managerFor("dave");
    sfu.connected({ userId: user.userId });
    let gaps = 0;
    const timer = setInterval(() => {
      if (inCall() && delays().length === 0) gaps++;
    }, 20);
    try {
      m.join();
      await waitFor(() => m.support.delegation === "refused", 10_000, "refused");
      await waitFor(() => delays().length === 1, 3000, "the long leave cancelled");
      await sleep(2 * NORMAL);
      expect(m.support.delayedLeaveHolder).toBe("self");
      expect(delays()).toEqual([NORMAL]);
      expect(inCall()).toBe(true);
    } finally {
      clearInterval(timer);
    }
    expect(gaps).toBe(0);
  }, 60_000);
});
