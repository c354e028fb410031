/**
 * Issue 20 items 4-6 and 11: the server changes under a live call, and discovery is a request like any
 * other. Real HTTP against the test homeserver (its presets switched at run time with `configure`, as a
 * restart into another release would), asserted on its request log, its room state and on what
 * another user's matrix-js-sdk MatrixRTCSession lists.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "@jest/globals";
import { createClient } from "matrix-js-sdk";
import { syncedClient, stopClient } from "../../helpers/matrix.js"; // also quiets matrix-js-sdk
import {
  CALL_MEMBER_EVENT_TYPE,
  ClientBackend,
  MembershipManager,
  type MembershipError,
} from "../../../src/index.js";
import { startTestHomeserver, SYNAPSE_PRESETS, waitFor } from "../../../src/testing/index.js";
import { jsSession, NO_LIMITS, roomOf, sleep } from "../interop/helpers.js";

const DELAY = 1000;

let cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function world(options: Parameters<typeof startTestHomeserver>[0] = {}) {
  const hs = await startTestHomeserver({ ...SYNAPSE_PRESETS["1.163"], ...NO_LIMITS, ...options });
  cleanup.push(() => hs.close());
  const alice = await hs.createUser("alice");
  const roomId = await hs.createRoom(alice.accessToken);
  const bobCreds = await hs.createUser("bob");
  await hs.joinRoom(bobCreds.accessToken, roomId);
  const bob = await syncedClient(hs.baseUrl, bobCreds);
  cleanup.push(() => stopClient(bob));
  await roomOf(bob, roomId);
  const client = createClient({ baseUrl: hs.baseUrl, ...alice });
  const manager = new MembershipManager({
    backend: new ClientBackend(client),
    roomId,
    userId: alice.userId,
    deviceId: alice.deviceId,
    delayedLeaveDelayMs: DELAY,
  });
  cleanup.push(() => manager.dispose());
  const errors: MembershipError[] = [];
  manager.errors$.subscribe((e) => errors.push(e));
  const key = manager.stateKey;
  const listed = () => jsSession(bob, roomId).memberships.some((m) => m.sender === alice.userId);
  const ourWrites = (since: number) =>
    hs
      .timeline(roomId)
      .filter((e) => e.type === CALL_MEMBER_EVENT_TYPE && e.state_key === key && e.origin_server_ts >= since);
  const mine = (since: number) => hs.requests.filter((r) => r.userId === alice.userId && r.ts >= since);
  return { hs, roomId, alice, manager, errors, key, listed, ourWrites, mine };
}

describe("the server changes dialect under a live call (issue 20 items 4, 5)", () => {
  it("upgraded to a server that speaks only MSC4140 as merged: heartbeats switch, nothing of ours is overwritten", async () => {
    const w = await world();
    w.manager.join();
    await waitFor(() => w.manager.status === "connected" && w.listed(), 5000, "connected and listed");
    const upgradedAt = Date.now();
    w.hs.configure(SYNAPSE_PRESETS.merged); // a restart into the new release (delayed events kept)
    await sleep(4 * DELAY);
    // No {} written over our membership; still listed; the heartbeat now goes to the merged endpoint.
    expect(w.ourWrites(upgradedAt).filter((e) => Object.keys(e.content).length === 0)).toEqual([]);
    expect(w.listed()).toBe(true);
    expect(w.manager.status).toBe("connected");
    // Heartbeats kept succeeding (the merged server's management endpoints, v1 once the backend asked
    // /versions again).
    expect(
      w.mine(upgradedAt + DELAY).filter((r) => r.route === "delayed.restart" && r.status === 200).length,
    ).toBeGreaterThan(2);
    expect(w.hs.pendingDelayedEvents().filter((e) => e.userId === w.alice.userId)).toHaveLength(1);
  });

  it("upgraded, and our delayed leave lost at the restart: the new one goes out in the merged shape (no {} over the membership)", async () => {
    const w = await world();
    w.manager.join();
    await waitFor(() => w.manager.status === "connected" && w.listed(), 5000, "connected and listed");
    const upgradedAt = Date.now();
    w.hs.configure(SYNAPSE_PRESETS.merged);
    for (const e of w.hs.pendingDelayedEvents().filter((d) => d.userId === w.alice.userId))
      w.hs.loseDelayedEvent(e.delayId);
    await waitFor(
      () => w.hs.pendingDelayedEvents().filter((e) => e.userId === w.alice.userId).length === 1,
      3 * DELAY,
      "a new delayed leave",
    );
    await sleep(2 * DELAY);
    expect(w.ourWrites(upgradedAt).filter((e) => Object.keys(e.content).length === 0)).toEqual([]);
    // The new delayed leave went through the merged schedule endpoint.
    expect(w.mine(upgradedAt).filter((r) => r.route === "delayed.schedule" && r.status === 200)).toHaveLength(
      1,
    );
    expect(w.listed()).toBe(true);
    expect(w.manager.status).toBe("connected");
  });

  it("/versions says merged but the merged endpoints answer 404 M_UNRECOGNIZED: the unstable shape it also advertises is used", async () => {
    const w = await world();
    // A server in transition that advertises the merged flag but whose merged routes are missing.
    w.hs.faults.add({
      route: "versions",
      respond: {
        status: 200,
        body: {
          versions: ["v1.12"],
          unstable_features: { "org.matrix.msc4140": true, "org.matrix.msc4140.stable": true },
        },
      },
    });
    w.manager.join();
    await waitFor(() => w.manager.status === "connected" && w.listed(), 5000, "connected and listed");
    await sleep(2 * DELAY);
    expect(w.manager.state).toEqual({ kind: "joined", delayedLeave: true });
    expect(w.hs.pendingDelayedEvents().filter((e) => e.userId === w.alice.userId)).toHaveLength(1);
    expect(w.errors.map((e) => e.code)).not.toContain("forbidden");
  });
});

describe("discovery is bounded and abortable (issue 20 items 6 and 11)", () => {
  /** A proxy that holds `/versions` open and counts the connections still open. */
  async function holdingVersions(target: string) {
    let open = 0;
    let versions = 0;
    const server = http.createServer((req, res) => {
      if (req.url?.startsWith("/_matrix/client/versions")) {
        versions++;
        open++;
        req.socket.on("close", () => open--);
        return; // never answered
      }
      const upstream = http.request(
        `${target}${req.url}`,
        { method: req.method, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      upstream.on("error", () => res.destroy());
      req.pipe(upstream);
    });
    server.keepAliveTimeout = 1;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanup.push(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      open: () => open,
      versions: () => versions,
    };
  }

  it("/versions hangs: joining says so, requests stay bounded, and dispose() leaves nothing open or to send", async () => {
    const w = await world();
    w.manager.dispose(); // the world's own manager is not used here: one behind the proxy is
    const proxy = await holdingVersions(w.hs.baseUrl);

    const client = createClient({ baseUrl: proxy.url, ...w.alice });
    const manager = new MembershipManager({
      backend: new ClientBackend(client),
      roomId: w.roomId,
      userId: w.alice.userId,
      deviceId: w.alice.deviceId,
      delayedLeaveDelayMs: DELAY,
    });
    const codes: string[] = [];
    manager.errors$.subscribe((e) => codes.push(e.code));
    manager.join();
    await sleep(3 * DELAY);
    expect(manager.status).toBe("connecting");
    expect(codes).toContain("network");
    // One /versions at a time, shared by every request that needs the answer (the probe, each schedule
    // attempt, the listing), bounded by the timeout of the request that started it (here the probe's
    // 10 s); each schedule attempt gave up at its own local timeout meanwhile.
    expect(proxy.versions()).toBe(1);
    expect(proxy.open()).toBe(1);
    const before = w.hs.requests.length;
    manager.leave().catch(() => undefined);
    manager.dispose();
    await sleep(manager.effectiveTiming.requestTimeoutMs + 300);
    expect(proxy.open()).toBe(0);
    expect(manager.pendingTimers).toBe(0);
    // Nothing reached the server after dispose(): no schedule went out once /versions gave up.
    expect(w.hs.requests.slice(before).filter((r) => r.userId === w.alice.userId)).toEqual([]);
  });
});

describe("an answer that proves the delay was ignored (issue 20 item 4)", () => {
  /** A proxy that drops the delay parameter: the server sends the delayed leave's `{}` at once. */
  async function droppingDelay(target: string) {
    let dropped = 0;
    const server = http.createServer((req, res) => {
      let url = req.url ?? "/";
      if (url.includes("org.matrix.msc4140.delay=")) {
        dropped++;
        url = url.replace(/([?&])org\.matrix\.msc4140\.delay=\d+&?/, "$1").replace(/[?&]$/, "");
      }
      const upstream = http.request(`${target}${url}`, { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      upstream.on("error", () => res.destroy());
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanup.push(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, dropped: () => dropped };
  }

  it("never retried as it was: asked again, then degraded mode that says so, the membership written", async () => {
    const w = await world();
    w.manager.dispose();
    const proxy = await droppingDelay(w.hs.baseUrl);
    const manager = new MembershipManager({
      backend: new ClientBackend(createClient({ baseUrl: proxy.url, ...w.alice })),
      roomId: w.roomId,
      userId: w.alice.userId,
      deviceId: w.alice.deviceId,
      delayedLeaveDelayMs: DELAY,
      // Twice the default: a schedule that times out locally on a loaded machine is sent again while
      // the first is still on its way, and both would be dropped (a third drop, not a retry after the proof).
      requestTimeoutMs: 400,
    });
    cleanup.push(() => manager.dispose());
    const codes: string[] = [];
    manager.errors$.subscribe((e) => codes.push(e.code));
    manager.join();
    await waitFor(() => manager.status === "connected", 5000, "connected (degraded)");
    await sleep(2 * DELAY);
    expect(codes).toContain("delay-ignored");
    // At most IGNORED_SCHEDULE_LIMIT (2) schedules whose delay was dropped, each after asking /versions.
    expect(proxy.dropped()).toBeLessThanOrEqual(2);
    expect(manager.state).toEqual({ kind: "joined", delayedLeave: false });
    let support: { delayedEvents?: boolean; reason?: string } = {};
    manager.support$.subscribe((s) => (support = s));
    expect(support).toMatchObject({
      delayedEvents: false,
      reason: expect.stringMatching(/ignores the delay/),
    });
    expect(
      Object.keys(w.hs.stateContent(w.roomId, CALL_MEMBER_EVENT_TYPE, manager.stateKey) ?? {}).length,
    ).toBeGreaterThan(0);
    expect(w.listed()).toBe(true);
  });
});

describe("a remount (issue 20 item 11)", () => {
  it("join, then leave()+dispose() 100 ms later over a 400 ms link, and a new manager: nothing of the first is sent after dispose(), the second stays in the call", async () => {
    const { startFaultyLink } = await import("../../../src/testing/index.js");
    const w = await world();
    w.manager.dispose();
    const link = await startFaultyLink({ target: w.hs.baseUrl });
    cleanup.push(() => link.close());
    link.setLatency(400);
    const first = new MembershipManager({
      backend: new ClientBackend(createClient({ baseUrl: link.url, ...w.alice })),
      roomId: w.roomId,
      userId: w.alice.userId,
      deviceId: w.alice.deviceId,
      delayedLeaveDelayMs: 2000,
    });
    first.join();
    await sleep(100);
    first.leave().catch(() => undefined);
    first.dispose();
    const disposedAt = Date.now();
    // The remounted page: a new manager for the same device, on a fast link.
    const second = new MembershipManager({
      backend: new ClientBackend(createClient({ baseUrl: w.hs.baseUrl, ...w.alice })),
      roomId: w.roomId,
      userId: w.alice.userId,
      deviceId: w.alice.deviceId,
      delayedLeaveDelayMs: 2000,
    });
    cleanup.push(() => second.dispose());
    second.join();
    await waitFor(() => second.status === "connected" && w.listed(), 5000, "the new manager in the call");
    await sleep(6000);
    // Through the link, after dispose(): no schedule, no write (a request already on the wire aside).
    const late = link.log.filter((e) => e.ts >= disposedAt + 50);
    expect(late.map((e) => `${e.method} ${e.path}`)).toEqual([]);
    expect(w.listed()).toBe(true);
    expect(second.status).toBe("connected");
    expect(w.ourWrites(disposedAt).filter((e) => Object.keys(e.content).length === 0)).toEqual([]);
  }, 30_000);
});

describe("discovery costs no round trip where an answer is at hand (the join regression of 4219b01)", () => {
  /** A manager behind a link with `rttMs`, on a bare client that already asked /versions and /capabilities. */
  async function behindLink(rttMs: number) {
    const { startFaultyLink } = await import("../../../src/testing/index.js");
    const w = await world();
    w.manager.dispose();
    const link = await startFaultyLink({ target: w.hs.baseUrl });
    cleanup.push(() => link.close());
    link.setLatency(rttMs / 2, 0);
    const client = createClient({ baseUrl: link.url, ...w.alice });
    // What an app's client has done long before it joins (js-sdk caches both answers).
    await client.doesServerSupportUnstableFeature("org.matrix.msc4140");
    await client.getCapabilities();
    const manager = new MembershipManager({
      backend: new ClientBackend(client),
      roomId: w.roomId,
      userId: w.alice.userId,
      deviceId: w.alice.deviceId,
      delayedLeaveDelayMs: 3000,
    });
    cleanup.push(() => manager.dispose());
    return { ...w, link, manager };
  }

  it("join: the schedule goes first, then the write; no /versions, no /capabilities of ours", async () => {
    const w = await behindLink(100);
    const since = Date.now();
    w.manager.join();
    await waitFor(() => w.manager.status === "connected", 3000, "connected");
    // Every request since, ours being the only client asking anything but bob's sync.
    const routes = w.hs.requests.filter((r) => r.ts >= since && r.route !== "sync").map((r) => r.route);
    expect(routes.slice(0, 2)).toEqual(["state.put.delayed", "state.put"]);
    expect(routes).not.toContain("versions");
    expect(routes).not.toContain("capabilities");
  });

  it("after a cut longer than the delay: /versions is asked beside the first restart, not before it", async () => {
    // A long round trip: asked before the restart, /versions would arrive at least 300 ms before it.
    const w = await behindLink(300);
    w.manager.join();
    await waitFor(() => w.manager.status === "connected" && w.listed(), 3000, "connected");
    w.link.cut();
    await waitFor(() => !w.listed(), 10_000, "the delayed leave to fire");
    const restoredAt = Date.now();
    w.link.restore();
    await waitFor(() => w.listed(), 5000, "back");
    const after = w.mine(restoredAt);
    // Our /versions is unauthenticated: the only one here is ours.
    const asked = w.hs.requests.filter((r) => r.ts >= restoredAt && r.route === "versions");
    const versions = asked[0];
    const restart = after.find((r) => r.route === "delayed.restart");
    const schedule = after.find((r) => r.route === "state.put.delayed");
    expect(restart?.status).toBe(404);
    // Asked again (the cut made the answer stale), at the restart's time rather than a round trip before.
    expect(versions).toBeDefined();
    expect(Math.abs(versions!.ts - restart!.ts)).toBeLessThan(150);
    // The schedule that follows needs no further /versions, and none came between.
    expect(asked).toHaveLength(1);
    expect(schedule!.ts).toBeGreaterThan(restart!.ts);
  });
});

describe("Synapse before 1.143 (management with the action in the body only)", () => {
  it("after the first M_UNRECOGNIZED, each heartbeat is one request, not two", async () => {
    const w = await world(SYNAPSE_PRESETS["1.116"]);
    w.manager.join();
    await waitFor(() => w.manager.status === "connected" && w.listed(), 5000, "connected");
    // The first requests (those already out when the first M_UNRECOGNIZED came back) try both forms.
    await sleep(DELAY);
    const since = Date.now();
    await sleep(4 * DELAY);
    const management = w
      .mine(since)
      .filter((r) => r.method === "POST" && r.path.includes("/delayed_events/"));
    const restarts = management.filter((r) => r.route === "delayed.legacy" && r.status === 200);
    expect(restarts.length).toBeGreaterThanOrEqual(4);
    // Nothing else: no per-action attempt answered 404 M_UNRECOGNIZED before each of them.
    expect(management.filter((r) => r.route !== "delayed.legacy")).toEqual([]);
    expect(w.manager.status).toBe("connected");
  });
});
