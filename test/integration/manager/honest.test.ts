/**
 * Issue 11 over real HTTP: a restart answered by a 404 that is not M_NOT_FOUND must not start a
 * rejoin loop, and a delay id that arrives after dispose() must not wipe the next manager's membership.
 * Asserts on the test homeserver's request log and pending delayed events.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import log from "loglevel";
import type { MatrixClient } from "matrix-js-sdk";
import { CALL_MEMBER_EVENT_TYPE, ClientBackend, MembershipManager } from "../../../src/index.js";
import {
  startFaultyLink,
  startTestHomeserver,
  type FaultyLink,
  type TestHomeserver,
} from "../../../src/testing/index.js";
import { bareClient, stopClient, waitFor, type UserCreds } from "../../helpers/matrix.js";

const quiet = log.getLogger("quiet");
quiet.setLevel("silent");
const DELAY = 1500;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let hs: TestHomeserver | undefined;
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
  await hs?.close();
  hs = undefined;
});

async function setup() {
  hs = await startTestHomeserver({ rateLimits: { message: null, delayedEventMgmt: null } });
  const alice = await hs.createUser("alice");
  const roomId = await hs.createRoom(alice.accessToken);
  return { hs, alice, roomId };
}

function manager(server: TestHomeserver, creds: UserCreds, roomId: string, baseUrl = server.baseUrl) {
  const client: MatrixClient = bareClient(baseUrl, creds);
  const m = new MembershipManager({
    backend: new ClientBackend(client),
    roomId,
    userId: creds.userId,
    deviceId: creds.deviceId,
    delayedLeaveDelayMs: DELAY,
    logger: quiet,
  });
  cleanup.push(
    () => m.dispose(),
    () => stopClient(client),
  );
  return m;
}

describe("honest under odd answers (real HTTP)", () => {
  it("a JSON 404 without errcode on restart: no rejoin loop, nothing abandoned, back once it clears", async () => {
    const { hs, alice, roomId } = await setup();
    const m = manager(hs, alice, roomId);
    const pending = () => hs.pendingDelayedEvents().filter((d) => d.stateKey === m.stateKey);
    m.join();
    await waitFor(() => m.status === "connected", 5000, "connected");
    const fault = hs.faults.add({
      route: "delayed.restart",
      respond: { status: 404, body: { error: "Not found (proxy)" } },
    });
    const from = hs.requests.length;
    let most = 0;
    const startedAt = Date.now();
    while (Date.now() - startedAt < 3000) {
      most = Math.max(most, pending().length);
      await sleep(50);
    }
    const during = hs.requests.slice(from).filter((r) => r.userId === alice.userId);
    // about one probe a second at most on the delayed-leave lane; no schedule, no membership rewrite
    expect(during.length).toBeLessThanOrEqual(15);
    expect(during.filter((r) => r.route === "state.put.delayed")).toHaveLength(0);
    expect(during.filter((r) => r.route === "state.put")).toHaveLength(0);
    expect(most).toBeLessThanOrEqual(1);
    expect(m.probablyLeft).toBe(true);
    hs.faults.remove(fault);
    await waitFor(
      () =>
        m.status === "connected" &&
        Object.keys(hs.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, m.stateKey) ?? {}).length > 0,
      5000,
      "back in the call",
    );
    expect(pending()).toHaveLength(1);
  });

  it("leave + dispose while the first schedule is in flight, then a remount: the late id is cancelled", async () => {
    const { hs, alice, roomId } = await setup();
    const link: FaultyLink = await startFaultyLink({ target: hs.baseUrl });
    cleanup.push(() => link.close());
    link.setLatency(400);
    const first = manager(hs, alice, roomId, link.url);
    first.join();
    await sleep(50); // the schedule is on its way
    void first.leave();
    first.dispose();
    const second = manager(hs, alice, roomId);
    second.join();
    await waitFor(() => second.status === "connected", 5000, "the remount connected");
    // past the first schedule's delay: it would have fired {} by now
    await sleep(DELAY + 1000);
    expect(second.status).toBe("connected");
    const content = hs.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, second.stateKey);
    expect(Object.keys(content ?? {}).length).toBeGreaterThan(0);
    expect(hs.pendingDelayedEvents().filter((d) => d.stateKey === second.stateKey)).toHaveLength(1);
  });
});
