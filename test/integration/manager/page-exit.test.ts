/**
 * Leaving when the page goes away (issue 22 part 1) over real HTTP: our manager on a matrix-js-sdk
 * client behind a link adding a round trip, a fake page whose `pagehide` we fire. What must hold, on the
 * test homeserver's records and in another user's synced js-sdk `MatrixRTCSession`: the delayed leave is
 * sent at once through js-sdk's `keepAlive` (the fetch it makes says `keepalive: true`), others drop the
 * device within a round trip (not one delay), nothing of ours stays pending, and a restore joins again.
 * Both MSC4140 shapes: unstable (js-sdk's own methods) and merged (js-sdk's HTTP API).
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import { createClient, type MatrixClient } from "matrix-js-sdk";
import { waitFor } from "../../helpers/matrix.js";
import { ClientBackend, MembershipManager } from "../../../src/index.js";
import {
  rtcMembers,
  startFaultyLink,
  startTestHomeserver,
  stopClient,
  syncedClient,
  SYNAPSE_PRESETS,
  type FaultyLink,
  type TestHomeserver,
  type TestHomeserverOptions,
} from "../../../src/testing/index.js";

const DELAY = 10_000;
const RTT = 50;
const NO_LIMITS = { rateLimits: { message: null, delayedEventMgmt: null } };

const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** What the page's fetch was asked to do (js-sdk's fetchFn sees it as the browser's fetch would). */
interface SeenFetch {
  method: string;
  url: string;
  keepalive: boolean;
  /** Sent with the access token. */
  authorized: boolean;
}

function transitionEvent(type: string, persisted: boolean): Event {
  return Object.assign(new Event(type), { persisted });
}

async function setup(options: TestHomeserverOptions = {}) {
  const hs: TestHomeserver = await startTestHomeserver({ ...NO_LIMITS, ...options });
  closers.push(() => hs.close());
  const owner = await hs.createUser("owner");
  const roomId = await hs.createRoom(owner.accessToken);
  const alice = await hs.createUser("alice");
  const bob = await hs.createUser("bob");
  await hs.joinRoom(alice.accessToken, roomId);
  await hs.joinRoom(bob.accessToken, roomId);
  const link: FaultyLink = await startFaultyLink({ target: hs.baseUrl });
  link.setLatency(RTT, 0);
  closers.push(() => link.close());
  const fetches: SeenFetch[] = [];
  const client: MatrixClient = createClient({
    baseUrl: link.url,
    userId: alice.userId,
    deviceId: alice.deviceId,
    accessToken: alice.accessToken,
    fetchFn: (input: RequestInfo | URL, init?: RequestInit) => {
      const headers = (init?.headers ?? {}) as Record<string, string>;
      fetches.push({
        method: init?.method ?? "GET",
        url: String(input),
        keepalive: init?.keepalive === true,
        authorized: typeof headers.Authorization === "string",
      });
      return fetch(input, init);
    },
  });
  closers.push(() => stopClient(client));
  const observer = await syncedClient(hs.baseUrl, bob);
  closers.push(() => stopClient(observer));
  await waitFor(() => observer.getRoom(roomId) !== null, 5000, "bob to know the room");
  const page = { window: new EventTarget(), document: new EventTarget() };
  const manager = new MembershipManager({
    backend: new ClientBackend(client),
    roomId,
    userId: alice.userId,
    deviceId: alice.deviceId,
    delayedLeaveDelayMs: DELAY,
    leaveOnPageHide: page,
  });
  closers.push(() => manager.dispose());
  const sees = () => rtcMembers(observer, roomId).includes(`${alice.userId}|${alice.deviceId}`);
  const key = manager.stateKey;
  return {
    hs,
    roomId,
    alice,
    manager,
    page,
    fetches,
    sees,
    membership: () => hs.stateContent(roomId, "org.matrix.msc3401.call.member", key),
    pending: () => hs.pendingDelayedEvents().filter((d) => d.roomId === roomId && d.stateKey === key),
    /** Every `send` the server got (the quick one on page exit carries no token, so no user). */
    sends: () => hs.requests.filter((r) => r.route.startsWith("delayed.send")),
    hide: (persisted = false) => page.window.dispatchEvent(transitionEvent("pagehide", persisted)),
    show: () => page.window.dispatchEvent(transitionEvent("pageshow", true)),
  };
}

describe("leave when the page goes away, over real HTTP", () => {
  for (const [name, options, quick] of [
    ["unstable MSC4140 (js-sdk's methods)", {}, true],
    ["MSC4140 as merged (js-sdk's HTTP API)", SYNAPSE_PRESETS.merged, false],
  ] as const) {
    it(`${name}: pagehide → the server holds {} and bob's MatrixRTCSession drops the device within a round trip`, async () => {
      const s = await setup(options);
      s.manager.join();
      await waitFor(() => s.manager.status === "connected", 5000, "alice connected");
      await waitFor(s.sees, 5000, "bob to see alice");
      expect(s.pending()).toHaveLength(1);

      const hiddenAt = Date.now();
      s.hide();
      await waitFor(() => !s.sees(), DELAY / 2, "bob to see alice leave");
      const goneAfter = Date.now() - hiddenAt;
      // One round trip through the link, plus the observer's sync: well under one delay.
      expect(goneAfter).toBeLessThan(RTT + 400);
      expect(s.membership()).toEqual({});
      expect(s.pending()).toEqual([]);
      // It went through js-sdk with keepAlive: the fetch it made asks the browser to let it outlive the page.
      // On the unstable shape also once without the token (a CORS simple request: no preflight round
      // trip in a browser); one of the two fires the leave, the other finds it gone.
      const sendFetches = s.fetches.filter((f) =>
        /\/delayed_events\/[^/]+\/send$/.test(new URL(f.url).pathname),
      );
      expect(
        sendFetches.map(({ method, keepalive, authorized }) => ({ method, keepalive, authorized })),
      ).toEqual(
        quick
          ? [
              { method: "POST", keepalive: true, authorized: false },
              { method: "POST", keepalive: true, authorized: true },
            ]
          : [{ method: "POST", keepalive: true, authorized: true }],
      );
      await waitFor(() => s.sends().length === sendFetches.length, 2000, "every send to be answered");
      expect(
        s
          .sends()
          .map((r) => r.status)
          .sort(),
      ).toEqual(quick ? [200, 404] : [200]);
      // Nothing else used keepalive (heartbeats are ordinary requests).
      expect(s.fetches.filter((f) => f.keepalive)).toHaveLength(sendFetches.length);
      expect(s.manager.state).toEqual({ kind: "reconnecting", reason: "page-hidden", probablyLeft: true });

      // A page that lives on sends nothing more while hidden. (A heartbeat sent just before the page
      // went away may still be on the link: it reaches the server up to half a round trip later.)
      await new Promise((r) => setTimeout(r, RTT));
      const before = s.hs.requests.filter((r) => r.userId === s.alice.userId).length;
      await new Promise((r) => setTimeout(r, 1500));
      expect(
        s.hs.requests
          .filter((r) => r.userId === s.alice.userId)
          .slice(before)
          .map((r) => `${r.method} ${r.path} ${r.status}`),
      ).toEqual([]);

      // Restored from the back/forward cache: in the call again, with a new delayed leave behind it.
      s.show();
      await waitFor(() => s.manager.status === "connected", 5000, "alice connected again");
      await waitFor(s.sees, 5000, "bob to see alice again");
      expect(s.pending()).toHaveLength(1);
    });
  }

  it("Synapse < 1.143 (management needs the token, no per-action routes): the quick send is refused, the authenticated one fires the leave", async () => {
    const s = await setup({ managementAuth: "required" });
    s.manager.join();
    await waitFor(() => s.manager.status === "connected", 5000, "alice connected");
    await waitFor(s.sees, 5000, "bob to see alice");
    const since = Date.now();
    s.hide();
    await waitFor(() => !s.sees(), DELAY / 2, "bob to see alice leave");
    expect(s.membership()).toEqual({});
    expect(s.pending()).toEqual([]);
    // The token-less request on the per-action path: refused, nothing done by it.
    const quick = s.hs.requests.filter(
      (r) => r.ts >= since && r.userId === undefined && r.path.endsWith("/delayed_events/{delayId}/send"),
    );
    expect(quick).toHaveLength(1);
    expect(quick[0].status).not.toBe(200);
    // (js-sdk then falls back to the older body-action route, one more round trip: a page that is
    // really gone may not get to send it, and the server fires the leave at its time instead.)
  });

  it("without the option's page (a manager in Node) nothing listens, and the call goes on", async () => {
    const s = await setup();
    const plain = new MembershipManager({
      backend: new ClientBackend(
        createClient({ baseUrl: s.hs.baseUrl, userId: s.alice.userId, accessToken: s.alice.accessToken }),
      ),
      roomId: s.roomId,
      userId: s.alice.userId,
      deviceId: "OTHER",
      delayedLeaveDelayMs: 2000,
    });
    closers.push(() => plain.dispose());
    plain.join();
    await waitFor(() => plain.status === "connected", 5000, "connected");
    s.hide();
    await new Promise((r) => setTimeout(r, 2500));
    expect(plain.status).toBe("connected");
    expect(s.sends()).toEqual([]);
  });
});
