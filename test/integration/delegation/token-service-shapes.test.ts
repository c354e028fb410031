/**
 * The test token service's own delegation endpoints, standalone against the test homeserver:
 * lk-jwt-service's `POST /delegate_delayed_leave` with an OpenID token (the service managing delayed
 * events with no token, as lk-jwt-service ≤0.6), and Element Call 0.26.1's way, a re-sent `/get_token`
 * or `/sfu/get` with `delay_id`, `delay_timeout` and `delay_cs_api_url` (as an application service).
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import {
  startTestHomeserver,
  startTestSfuAuth,
  waitFor,
  type Credentials,
  type TestHomeserver,
  type TestSfuAuth,
} from "../../../src/testing/index.js";
import {
  CALL_MEMBER,
  isPending,
  joinWithDelayedLeave,
  openIdToken,
  postToService,
  putState,
  serviceActions,
  sleep,
  SLOT,
  stateKeyOf,
} from "./helpers.js";

const DELAY = 2000;

let hs: TestHomeserver | undefined;
let sfu: TestSfuAuth | undefined;
afterEach(async () => {
  await sfu?.close();
  await hs?.close();
  sfu = hs = undefined;
});

async function world(sfuOptions: Parameters<typeof startTestSfuAuth>[0], asAppService: boolean) {
  const service = await startTestSfuAuth(sfuOptions);
  const server = await startTestHomeserver(
    asAppService ? { appServices: [service.appServiceRegistration()] } : {},
  );
  service.useHomeserver(server.baseUrl);
  const alice = await server.createUser("alice");
  const bob = await server.createUser("bob");
  const roomId = await server.createRoom(alice.accessToken);
  await server.joinRoom(bob.accessToken, roomId);
  sfu = service;
  hs = server;
  return { sfu: service, hs: server, alice, bob, roomId };
}

/** lk-jwt-service's delegate_delayed_leave body. */
const lkJwtBody = (
  user: Credentials,
  openid: Record<string, unknown>,
  roomId: string,
  memberId: string,
  delayId: string,
  delayMs: number,
  baseUrl: string,
) => ({
  room_id: roomId,
  slot_id: SLOT,
  openid_token: openid,
  member: { id: memberId, claimed_user_id: user.userId, claimed_device_id: user.deviceId },
  delay_id: delayId,
  delay_timeout: delayMs,
  delay_cs_api_url: baseUrl,
});

describe("lk-jwt-service's /delegate_delayed_leave, standalone, managing delayed events with no token", () => {
  it("checks the OpenID token, restarts with no token while connected, sends on disconnect", async () => {
    const w = await world({ delegation: { auth: "none", minDelayMs: 1000, restartHeadroomMs: 1000 } }, false);
    const delayId = await joinWithDelayedLeave(w.hs.baseUrl, w.alice, w.roomId, "m1", DELAY);
    const openid = await openIdToken(w.hs.baseUrl, w.alice);
    const answer = await postToService(
      w.sfu,
      "/delegate_delayed_leave",
      lkJwtBody(w.alice, openid, w.roomId, "m1", delayId, DELAY, w.hs.baseUrl),
    );
    expect(answer).toEqual({ status: 200, body: {} });
    expect(w.sfu.homeserverRequests.map((r) => `${r.action} ${r.status} ${r.userId}`)).toEqual([
      `userinfo 200 ${w.alice.userId}`,
    ]);

    w.sfu.connected({ userId: w.alice.userId, deviceId: w.alice.deviceId });
    await sleep(2.5 * DELAY);
    expect(isPending(w.hs, delayId)).toBe(true);
    expect(serviceActions(w.sfu, delayId).length).toBeGreaterThanOrEqual(3);
    const restarts = w.hs.requests.filter((r) => r.route === "delayed.restart");
    // No token: the server saw anonymous restarts.
    expect(restarts.every((r) => r.userId === undefined && r.status === 200)).toBe(true);
    expect(
      w.sfu.homeserverRequests.filter((r) => r.action === "restart").every((r) => r.auth === "none"),
    ).toBe(true);

    const leftAt = Date.now();
    w.sfu.disconnected({ userId: w.alice.userId });
    await waitFor(() => !isPending(w.hs!, delayId), DELAY / 2, "the leave to be sent");
    expect(Date.now() - leftAt).toBeLessThan(DELAY / 2);
    expect(w.hs.stateContent(w.roomId, CALL_MEMBER, stateKeyOf(w.alice))).toEqual({});
    // The server processes the send before its answer reaches the service, which records the outcome then.
    await waitFor(
      () => w.sfu.delegations({ includeEnded: true })[0]?.outcome !== undefined,
      1000,
      "the service to see the send's answer",
    );
    expect(w.sfu.delegations({ includeEnded: true })[0]).toMatchObject({
      via: "delegate_delayed_leave",
      outcome: "sent",
    });
  });

  it("refuses a token the homeserver does not vouch for, a claim on someone else, a short delay, bad bodies; cannot see whose delay id it is", async () => {
    const w = await world({ delegation: { auth: "none", minDelayMs: 1000 } }, false);
    const openid = await openIdToken(w.hs.baseUrl, w.alice);
    const mine = await putState(w.hs.baseUrl, w.alice, w.roomId, stateKeyOf(w.alice), {}, DELAY);
    const body = lkJwtBody(w.alice, openid, w.roomId, "m1", mine!, DELAY, w.hs.baseUrl);

    const forged = await postToService(w.sfu, "/delegate_delayed_leave", {
      ...body,
      openid_token: { ...openid, access_token: "forged" },
    });
    expect(forged).toMatchObject({ status: 401, body: { errcode: "M_UNAUTHORIZED" } });
    const claim = await postToService(w.sfu, "/delegate_delayed_leave", {
      ...body,
      member: { id: "m1", claimed_user_id: w.bob.userId, claimed_device_id: "X" },
    });
    expect(claim).toMatchObject({ status: 401, body: { errcode: "M_UNAUTHORIZED" } });
    const short = await postToService(w.sfu, "/delegate_delayed_leave", { ...body, delay_timeout: 500 });
    expect(short).toMatchObject({ status: 400, body: { errcode: "M_INVALID_PARAM" } });
    const noDelay = await postToService(w.sfu, "/delegate_delayed_leave", {
      ...body,
      delay_timeout: undefined,
    });
    expect(noDelay).toMatchObject({ status: 400, body: { errcode: "M_BAD_JSON" } });
    const notJson = await postToService(w.sfu, "/delegate_delayed_leave");
    expect(notJson).toMatchObject({ status: 400, body: { errcode: "M_NOT_JSON" } });
    expect(w.sfu.delegations()).toEqual([]);

    // Without a token the service cannot look delay ids up (lk-jwt-service ≤0.6 did not either):
    // bob's delay id, claimed by alice, is taken. Appservice mode refuses it (see homeserver-shape).
    const bobs = await putState(w.hs.baseUrl, w.bob, w.roomId, stateKeyOf(w.bob), {}, DELAY);
    const foreign = await postToService(w.sfu, "/delegate_delayed_leave", { ...body, delay_id: bobs });
    expect(foreign.status).toBe(200);
  });
});

describe("Element Call 0.26.1's delegation: /get_token or /sfu/get re-sent with delay_id, as an application service", () => {
  it("answers the token and takes the delegation; the delay and owner come from the homeserver", async () => {
    const w = await world({ delegation: { minDelayMs: 1000, restartHeadroomMs: 1000 } }, true);
    const aliceDelay = await joinWithDelayedLeave(w.hs.baseUrl, w.alice, w.roomId, "m1", DELAY);
    const openid = await openIdToken(w.hs.baseUrl, w.alice);
    const tokenBody = {
      room_id: w.roomId,
      slot_id: SLOT,
      openid_token: openid,
      member: { id: "m1", claimed_user_id: w.alice.userId, claimed_device_id: w.alice.deviceId },
    };
    // Element Call sends its configured 1 h; the service goes by the server's delay.
    const token = await postToService(w.sfu, "/get_token", {
      ...tokenBody,
      delay_id: aliceDelay,
      delay_timeout: 3_600_000,
      delay_cs_api_url: w.hs.baseUrl,
    });
    expect(token.status).toBe(200);
    expect(token.body).toMatchObject({ url: w.sfu.livekitUrl, jwt: expect.any(String) });
    expect(w.sfu.delegations()).toEqual([
      expect.objectContaining({
        via: "get_token",
        memberId: "m1",
        deviceId: w.alice.deviceId,
        delayMs: DELAY,
      }),
    ]);

    const bobDelay = await joinWithDelayedLeave(w.hs.baseUrl, w.bob, w.roomId, "b1", DELAY);
    const legacy = await postToService(w.sfu, "/sfu/get", {
      room: w.roomId,
      openid_token: await openIdToken(w.hs.baseUrl, w.bob),
      device_id: w.bob.deviceId,
      delay_id: bobDelay,
      delay_timeout: 3_600_000,
      delay_cs_api_url: w.hs.baseUrl,
    });
    expect(legacy.status).toBe(200);
    expect(w.sfu.delegations().map((d) => `${d.via} ${d.userId} ${d.memberId} ${d.deviceId}`)).toEqual([
      `get_token ${w.alice.userId} m1 ${w.alice.deviceId}`,
      `sfu/get ${w.bob.userId} undefined ${w.bob.deviceId}`,
    ]);

    w.sfu.connected({ userId: w.alice.userId, memberId: "m1" });
    w.sfu.connected({ userId: w.bob.userId, deviceId: w.bob.deviceId });
    await sleep(1.5 * DELAY);
    expect(isPending(w.hs, aliceDelay) && isPending(w.hs, bobDelay)).toBe(true);
    // Each restarted as its owner.
    const restartedAs = new Set(
      w.hs.requests.filter((r) => r.route === "delayed.restart").map((r) => r.userId),
    );
    expect(restartedAs).toEqual(new Set([w.alice.userId, w.bob.userId]));

    // A foreign delay id on a token request: no token, 400 M_INVALID_PARAM.
    const foreign = await postToService(w.sfu, "/get_token", {
      ...tokenBody,
      delay_id: bobDelay,
      delay_timeout: 3_600_000,
      delay_cs_api_url: w.hs.baseUrl,
    });
    expect(foreign).toMatchObject({ status: 400, body: { errcode: "M_INVALID_PARAM" } });
    const partial = await postToService(w.sfu, "/get_token", { ...tokenBody, delay_id: aliceDelay });
    expect(partial).toMatchObject({ status: 400, body: { errcode: "M_BAD_JSON" } });
  });

  it("a service with a homeserver but no delegation checks OpenID tokens and says 400 M_BAD_JSON to delay fields", async () => {
    const w = await world({}, false);
    const openid = await openIdToken(w.hs.baseUrl, w.alice);
    const body = { room: w.roomId, openid_token: openid, device_id: w.alice.deviceId };
    expect((await postToService(w.sfu, "/sfu/get", body)).status).toBe(200);
    const forged = await postToService(w.sfu, "/sfu/get", {
      ...body,
      openid_token: { ...openid, access_token: "x" },
    });
    expect(forged).toMatchObject({ status: 401, body: { errcode: "M_UNAUTHORIZED" } });
    // Element Call's /sfu/get retries without the delay fields on exactly this answer.
    const delayed = await postToService(w.sfu, "/sfu/get", {
      ...body,
      delay_id: "d",
      delay_timeout: 3_600_000,
    });
    expect(delayed).toMatchObject({ status: 400, body: { errcode: "M_BAD_JSON" } });
    expect((await postToService(w.sfu, "/delegate_delayed_leave")).status).toBe(404);
  });
});
