/**
 * The test token service as an application service behind the test homeserver's MSC4512 proxy:
 * delegations sent to MSC4195's homeserver endpoint (as matrix-js-sdk 43 sends them), the service
 * acting as the user through its as_token. Asserted on what the homeserver holds (pending delayed
 * events, room state, its request log) and on what another user's /sync delivers.
 */
import { afterEach, beforeEach, describe, expect, it } from "@jest/globals";
import type { MatrixClient } from "matrix-js-sdk";
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
import {
  CALL_MEMBER,
  delegateAtHomeserver,
  HOMESERVER_DELEGATE,
  isPending,
  joinWithDelayedLeave,
  jsSdkBody,
  putState,
  serviceActions,
  sleep,
  stateKeyOf,
} from "./helpers.js";

const DELAY = 2000;
const HEADROOM = 1000;

let hs: TestHomeserver;
let sfu: TestSfuAuth;
let alice: Credentials;
let bob: Credentials;
let roomId: string;
const clients: MatrixClient[] = [];

beforeEach(async () => {
  sfu = await startTestSfuAuth({
    delegation: { minDelayMs: 1000, restartHeadroomMs: HEADROOM },
  });
  hs = await startTestHomeserver({ appServices: [sfu.appServiceRegistration()], msc4512Enabled: true });
  sfu.useHomeserver(hs.baseUrl);
  alice = await hs.createUser("alice");
  bob = await hs.createUser("bob");
  roomId = await hs.createRoom(alice.accessToken);
  await hs.joinRoom(bob.accessToken, roomId);
});
afterEach(async () => {
  for (const c of clients.splice(0)) stopClient(c);
  await sfu.close();
  await hs.close();
});

/** What bob's synced client holds at alice's key. */
const bobSees = (client: MatrixClient) =>
  client.getRoom(roomId)?.currentState.getStateEvents(CALL_MEMBER, stateKeyOf(alice))?.getContent() ?? {};

describe("delegated delayed leave through the homeserver (MSC4195 + MSC4512, test homeserver)", () => {
  it("keeps the leave alive while connected, past several delays, and sends it within a round trip of the disconnect", async () => {
    const bobClient = await syncedClient(hs.baseUrl, bob);
    clients.push(bobClient);
    const delayId = await joinWithDelayedLeave(hs.baseUrl, alice, roomId, "m1", DELAY);

    const answer = await delegateAtHomeserver(
      hs.baseUrl,
      alice,
      jsSdkBody(sfu, alice, roomId, "m1", delayId),
    );
    expect(answer).toEqual({ status: 200, body: {} });
    // It came through the proxy, as alice, with the hs_token.
    expect(sfu.requests.at(-1)).toMatchObject({
      path: HOMESERVER_DELEGATE,
      userIdentifier: alice.userId,
      authorization: "hs_token",
      status: 200,
    });
    expect(sfu.delegations()).toEqual([
      expect.objectContaining({
        via: "homeserver",
        userId: alice.userId,
        memberId: "m1",
        deviceId: alice.deviceId,
        delayId,
        delayMs: DELAY,
        state: "waiting",
      }),
    ]);
    // Not connected to the SFU yet: nothing restarted.
    expect(serviceActions(sfu, delayId)).toEqual([]);

    sfu.connected({ userId: alice.userId, memberId: "m1" });
    await waitFor(() => serviceActions(sfu, delayId).length > 0, 2000, "the first restart");
    const connectedAt = Date.now();
    await sleep(3.5 * DELAY);
    // Alive on the server well past its delay: still pending, membership still there, restarted by the service.
    expect(isPending(hs, delayId)).toBe(true);
    expect(hs.stateContent(roomId, CALL_MEMBER, stateKeyOf(alice))).toMatchObject({ member_id: "m1" });
    expect(bobSees(bobClient)).toMatchObject({ member_id: "m1" });
    const restarts = serviceActions(sfu, delayId);
    expect(restarts.length).toBeGreaterThanOrEqual(4);
    expect(new Set(restarts)).toEqual(new Set(["restart 200"]));
    // On the server: restarts as alice (identity assertion), none left unanswered.
    const onServer = hs.requests.filter((r) => r.route === "delayed.restart");
    expect(onServer.length).toBe(restarts.length);
    expect(onServer.every((r) => r.userId === alice.userId && r.status === 200)).toBe(true);
    const [pending] = hs.pendingDelayedEvents().filter((e) => e.delayId === delayId);
    expect(pending.sendTs).toBeGreaterThan(connectedAt + 3 * DELAY);

    const leftAt = Date.now();
    sfu.disconnected({ userId: alice.userId, memberId: "m1" });
    const seenIn = await waitFor(
      () => Object.keys(bobSees(bobClient)).length === 0,
      DELAY,
      "bob to see the leave",
    );
    const leave = hs
      .timeline(roomId)
      .filter((e) => e.type === CALL_MEMBER && e.state_key === stateKeyOf(alice))
      .at(-1);
    expect(leave?.content).toEqual({});
    // Sent by the service one round trip after the disconnect, long before the delay would have fired.
    expect(leave!.origin_server_ts - leftAt).toBeLessThan(300);
    expect(seenIn).toBeLessThan(DELAY / 2);
    // The answer to the send may come a moment after bob's sync.
    await waitFor(() => serviceActions(sfu, delayId).at(-1) === "send 200", 1000, "the send's answer");
    expect(isPending(hs, delayId)).toBe(false);
    expect(sfu.delegations()).toEqual([]);
    expect(sfu.delegations({ includeEnded: true })).toEqual([
      expect.objectContaining({ delayId, state: "ended", outcome: "sent" }),
    ]);
  });

  it("a newer delay id replaces the older: only the newer is restarted, the older fires by itself", async () => {
    const first = await joinWithDelayedLeave(hs.baseUrl, alice, roomId, "m1", DELAY);
    expect(
      (await delegateAtHomeserver(hs.baseUrl, alice, jsSdkBody(sfu, alice, roomId, "m1", first))).status,
    ).toBe(200);
    sfu.connected({ userId: alice.userId, memberId: "m1" });
    await waitFor(() => serviceActions(sfu, first).length > 0, 2000, "the first delegation's restart");

    // A second delayed leave for the same member (another key: the first one's firing must not matter).
    const second = await putState(hs.baseUrl, alice, roomId, `${stateKeyOf(alice)}_2`, {}, DELAY);
    const answer = await delegateAtHomeserver(
      hs.baseUrl,
      alice,
      jsSdkBody(sfu, alice, roomId, "m1", second!),
    );
    expect(answer.status).toBe(200);
    const replacedAt = Date.now();
    expect(sfu.delegations().map((d) => `${d.delayId === second ? "second" : "first"} ${d.state}`)).toEqual([
      "second connected",
    ]);
    expect(sfu.delegations({ includeEnded: true })[0]).toMatchObject({ delayId: first, outcome: "replaced" });

    await waitFor(() => !isPending(hs, first), 2 * DELAY, "the replaced delayed leave to fire by itself");
    await sleep(DELAY);
    expect(isPending(hs, second!)).toBe(true);
    expect(serviceActions(sfu, second!).length).toBeGreaterThanOrEqual(2);
    const firstRestartsAfter = sfu.homeserverRequests.filter(
      (r) => r.delayId === first && r.action === "restart" && r.at > replacedAt,
    );
    expect(firstRestartsAfter).toEqual([]);
    // Another member of the same user is a separate delegation, not a replacement.
    const other = await putState(hs.baseUrl, alice, roomId, `${stateKeyOf(alice)}_3`, {}, DELAY);
    expect(
      (await delegateAtHomeserver(hs.baseUrl, alice, jsSdkBody(sfu, alice, roomId, "m2", other!))).status,
    ).toBe(200);
    expect(sfu.delegations().map((d) => d.memberId)).toEqual(["m1", "m2"]);
  });

  it("refuses with 400 M_INVALID_PARAM: another user's delay id, another room's, a delay under the minimum, a url not its SFU", async () => {
    const bobsDelay = await putState(hs.baseUrl, bob, roomId, stateKeyOf(bob), {}, DELAY);
    const foreign = await delegateAtHomeserver(
      hs.baseUrl,
      alice,
      jsSdkBody(sfu, alice, roomId, "m1", bobsDelay!),
    );
    expect(foreign).toMatchObject({ status: 400, body: { errcode: "M_INVALID_PARAM" } });
    const unknown = await delegateAtHomeserver(
      hs.baseUrl,
      alice,
      jsSdkBody(sfu, alice, roomId, "m1", "nope"),
    );
    expect(unknown).toMatchObject({ status: 400, body: { errcode: "M_INVALID_PARAM" } });

    const otherRoom = await hs.createRoom(alice.accessToken);
    const elsewhere = await putState(hs.baseUrl, alice, otherRoom, stateKeyOf(alice), {}, DELAY);
    const wrongRoom = await delegateAtHomeserver(
      hs.baseUrl,
      alice,
      jsSdkBody(sfu, alice, roomId, "m1", elsewhere!),
    );
    expect(wrongRoom).toMatchObject({ status: 400, body: { errcode: "M_INVALID_PARAM" } });

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
    // MSC4195's own body (member_id, ruma) on the stable path is taken as well.
    const stable = await delegateAtHomeserver(
      hs.baseUrl,
      alice,
      { url: sfu.livekitUrl, room_id: roomId, slot_id: "m.call#ROOM", member_id: "m1", delay_id: mine },
      "/_matrix/client/v1/rtc/livekit/delegate_delayed_leave",
    );
    expect(stable).toEqual({ status: 200, body: {} });

    // Only the last one was taken on; nothing was restarted for the refused ones.
    expect(sfu.delegations().map((d) => d.delayId)).toEqual([mine]);
    expect(sfu.homeserverRequests.filter((r) => r.action === "restart" || r.action === "send")).toEqual([]);
    // The look-ups went as alice: on this server (1.157-like) the GET of one id is 405, then the listing.
    expect(
      hs.requests
        .filter((r) => r.route === "delayed.list" || r.route === "delayed.legacy")
        .every((r) => r.userId === alice.userId),
    ).toBe(true);
  });

  it("Element Call's probes read 'supported' (non-404); without delegation, or refusing with 404, they read 'unsupported'", async () => {
    const probe = (url: string) => fetch(url, { method: "POST" }).then((r) => r.status);
    // Through the homeserver the unauthenticated probe never reaches the service: 401.
    expect(await probe(`${hs.baseUrl}${HOMESERVER_DELEGATE}`)).toBe(401);
    expect(await probe(`${sfu.url}/delegate_delayed_leave`)).toBe(400);
    expect(await probe(`${sfu.url}${HOMESERVER_DELEGATE}`)).toBe(401);

    sfu.refuse({ status: 404, errcode: "M_NOT_FOUND" });
    expect(await probe(`${sfu.url}/delegate_delayed_leave`)).toBe(404);
    const mine = await putState(hs.baseUrl, alice, roomId, stateKeyOf(alice), {}, DELAY);
    const refused = await delegateAtHomeserver(hs.baseUrl, alice, jsSdkBody(sfu, alice, roomId, "m1", mine!));
    expect(refused.status).toBe(404);
    sfu.refuse(false);

    const plain = await startTestSfuAuth({ homeserverUrl: hs.baseUrl });
    try {
      hs.configure({
        appServices: [{ ...sfu.appServiceRegistration(), "io.element.msc4512.proxy_url": plain.url }],
      });
      expect(await probe(`${plain.url}/delegate_delayed_leave`)).toBe(404);
      const off = await delegateAtHomeserver(hs.baseUrl, alice, jsSdkBody(plain, alice, roomId, "m1", mine!));
      expect(off.status).toBe(404);
      expect(plain.delegationEnabled).toBe(false);
    } finally {
      await plain.close();
    }
    hs.configure({ msc4512Enabled: false });
    expect(await probe(`${hs.baseUrl}${HOMESERVER_DELEGATE}`)).toBe(404);
  });

  it("a service that stops answering restarts nothing: the delayed leave fires by itself; on resume the job ends", async () => {
    const delayId = await joinWithDelayedLeave(hs.baseUrl, alice, roomId, "m1", DELAY);
    expect(
      (await delegateAtHomeserver(hs.baseUrl, alice, jsSdkBody(sfu, alice, roomId, "m1", delayId))).status,
    ).toBe(200);
    sfu.connected({ userId: alice.userId, memberId: "m1" });
    await waitFor(() => serviceActions(sfu, delayId).includes("restart 200"), 2000, "the first restart");
    sfu.stopAnswering();
    const stoppedAt = Date.now();
    const restartsBefore = serviceActions(sfu, delayId).length;

    // The homeserver fires the leave on its own within one delay of the last restart.
    const firedIn = await waitFor(() => !isPending(hs, delayId), 2 * DELAY, "the delayed leave to fire");
    expect(firedIn).toBeLessThanOrEqual(DELAY + 500);
    expect(hs.stateContent(roomId, CALL_MEMBER, stateKeyOf(alice))).toEqual({});
    expect(serviceActions(sfu, delayId).length).toBe(restartsBefore);
    expect(sfu.homeserverRequests.filter((r) => r.at > stoppedAt)).toEqual([]);
    // A delegation sent now gets no answer (the homeserver's proxy would wait 30 s for it).
    const unanswered = await fetch(`${sfu.url}/delegate_delayed_leave`, {
      method: "POST",
      signal: AbortSignal.timeout(300),
    }).then(
      () => "answered",
      () => "no answer",
    );
    expect(unanswered).toBe("no answer");

    // Back after the delay ran out: the job knows the leave has fired and ends without a request.
    sfu.resume();
    await waitFor(() => sfu.delegations().length === 0, 2000, "the job to end");
    expect(serviceActions(sfu, delayId).length).toBe(restartsBefore);
    expect(sfu.delegations({ includeEnded: true })[0]).toMatchObject({ delayId, outcome: "expired" });
  });

  it("a delayed leave gone from the server (404 on restart) ends the job; a short outage, resumed, restarts at once", async () => {
    const delayId = await joinWithDelayedLeave(hs.baseUrl, alice, roomId, "m1", DELAY);
    const answer = await delegateAtHomeserver(
      hs.baseUrl,
      alice,
      jsSdkBody(sfu, alice, roomId, "m1", delayId),
    );
    expect(answer.status).toBe(200);
    sfu.connected({ userId: alice.userId, memberId: "m1" });
    await waitFor(() => serviceActions(sfu, delayId).includes("restart 200"), 2000, "the first restart");
    sfu.stopAnswering();
    await sleep(200);
    const resumedAt = Date.now();
    sfu.resume();
    await waitFor(
      () =>
        sfu.homeserverRequests.some((r) => r.action === "restart" && r.at >= resumedAt && r.status === 200),
      1000,
      "a restart on resume",
    );
    hs.loseDelayedEvent(delayId);
    await waitFor(() => sfu.delegations().length === 0, 2 * DELAY, "the 404 to end the job");
    expect(serviceActions(sfu, delayId).at(-1)).toBe("restart 404");
    expect(sfu.delegations({ includeEnded: true })[0]).toMatchObject({ delayId, outcome: "not-found" });
  });

  it("a 500 on restart is retried; a 409 ends the job (final); a participant who never connects gets the leave sent", async () => {
    const delayId = await joinWithDelayedLeave(hs.baseUrl, alice, roomId, "m1", DELAY);
    hs.faults.add({ route: "delayed.restart", times: 1, respond: { status: 500 } });
    expect(
      (await delegateAtHomeserver(hs.baseUrl, alice, jsSdkBody(sfu, alice, roomId, "m1", delayId))).status,
    ).toBe(200);
    sfu.connected({ userId: alice.userId });
    await waitFor(
      () => serviceActions(sfu, delayId).includes("restart 200"),
      3000,
      "a restart after the 500",
    );
    expect(serviceActions(sfu, delayId)[0]).toBe("restart 500");

    hs.faults.add({
      route: "delayed.restart",
      times: 1,
      respond: { status: 409, body: { errcode: "M_UNKNOWN" } },
    });
    await waitFor(() => sfu.delegations().length === 0, 2 * DELAY, "the 409 to end the job");
    expect(serviceActions(sfu, delayId).at(-1)).toBe("restart 409");
    expect(sfu.delegations({ includeEnded: true })[0]).toMatchObject({ outcome: "finalised" });

    // Bob delegates but never shows up on the SFU: the wait is bounded by the delay, then the leave goes.
    const bobsDelay = await joinWithDelayedLeave(hs.baseUrl, bob, roomId, "b1", DELAY);
    expect(
      (await delegateAtHomeserver(hs.baseUrl, bob, jsSdkBody(sfu, bob, roomId, "b1", bobsDelay))).status,
    ).toBe(200);
    await waitFor(
      () => /^send [1-9]/.test(serviceActions(sfu, bobsDelay)[0] ?? ""),
      2 * DELAY,
      "the leave after the wait",
    );
    expect(serviceActions(sfu, bobsDelay)[0]).toMatch(/^send (200|404)$/);
  });
});
