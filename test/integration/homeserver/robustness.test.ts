/** Bad input never crashes the server; injected faults and simulated restarts behave as documented. */
import { afterEach, describe, expect, it } from "@jest/globals";
import fc from "fast-check";
import { connect } from "node:net";
import type { MatrixClient } from "matrix-js-sdk";
import {
  createManualClock,
  startTestHomeserver,
  type Credentials,
  type ManualClock,
  type TestHomeserver,
  type TestHomeserverOptions,
} from "../../../src/testing/index.js";
import {
  CALL_MEMBER,
  client,
  delayQuery,
  mgmt,
  NO_LIMITS,
  raw,
  scheduleState,
  sendPath,
  statePath,
  syncedClient,
  UNSTABLE,
  waitFor,
} from "./helpers.js";

interface Setup {
  hs: TestHomeserver;
  alice: Credentials;
  bob: Credentials;
  roomId: string;
}

const servers: TestHomeserver[] = [];
const clients: MatrixClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.stopClient();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function setup(options: TestHomeserverOptions = {}): Promise<Setup> {
  const hs = await startTestHomeserver({ ...NO_LIMITS, ...options });
  servers.push(hs);
  const alice = await hs.createUser("alice");
  const bob = await hs.createUser("bob");
  const roomId = await hs.createRoom(alice.accessToken);
  await hs.joinRoom(bob.accessToken, roomId);
  return { hs, alice, bob, roomId };
}

const alive = async (hs: TestHomeserver): Promise<void> => {
  expect((await raw(hs, "GET", "/_matrix/client/versions")).status).toBe(200);
};

describe("bad input", () => {
  it("malformed JSON and wrong types get Matrix errors and the server keeps serving", async () => {
    const s = await setup();
    const t = s.alice.accessToken;
    const cases: [string, string, string | undefined, string, number, string][] = [
      ["PUT", statePath(s.roomId, CALL_MEMBER, "k"), t, "{not json", 400, "M_NOT_JSON"],
      ["PUT", statePath(s.roomId, CALL_MEMBER, "k"), t, "", 400, "M_NOT_JSON"],
      ["PUT", statePath(s.roomId, CALL_MEMBER, "k"), t, '"a string"', 400, "M_BAD_JSON"],
      ["PUT", statePath(s.roomId, CALL_MEMBER, "k"), t, "null", 400, "M_BAD_JSON"],
      ["PUT", sendPath(s.roomId, "m.x", "t"), t, "[]", 400, "M_BAD_JSON"],
      ["POST", "/_matrix/client/v3/login", undefined, "{", 400, "M_NOT_JSON"],
      ["POST", "/_matrix/client/v3/login", undefined, '{"type":5}', 400, "M_INVALID_PARAM"],
      [
        "POST",
        "/_matrix/client/v3/login",
        undefined,
        '{"type":"m.login.password","identifier":{"user":7}}',
        400,
        "M_INVALID_PARAM",
      ],
      ["POST", "/_matrix/client/v3/createRoom", t, '{"invite":"bob"}', 400, "M_BAD_JSON"],
      ["POST", "/_matrix/client/v3/createRoom", t, '{"power_level_content_override":[]}', 400, "M_BAD_JSON"],
      [
        "POST",
        "/_matrix/client/v3/createRoom",
        t,
        '{"room_version":"99"}',
        400,
        "M_UNSUPPORTED_ROOM_VERSION",
      ],
      [
        "POST",
        `/_matrix/client/v3/user/${encodeURIComponent(s.alice.userId)}/filter`,
        t,
        "{",
        400,
        "M_NOT_JSON",
      ],
      ["GET", "/_matrix/client/v3/sync?filter=%7Bbroken", t, undefined as never, 400, "M_INVALID_PARAM"],
      ["GET", "/_matrix/client/v3/sync?since=garbage", t, undefined as never, 400, "M_INVALID_PARAM"],
      ["POST", `${UNSTABLE}/delayed_events/syd_x`, undefined, "[1,2]", 400, "M_BAD_JSON"],
      ["GET", "/_matrix/client/v3/rooms/%E0%A4%A/state", t, undefined as never, 404, "M_UNRECOGNIZED"],
    ];
    for (const [method, path, token, body, status, errcode] of cases) {
      const res = await raw(s.hs, method, path, { token, raw: body });
      expect([method, path, res.status, res.body.errcode]).toEqual([method, path, status, errcode]);
    }
    await alive(s.hs);
  });

  it("odd request targets and broken HTTP do not take the server down", async () => {
    const s = await setup();
    const { port } = new URL(s.hs.baseUrl);
    const send = (text: string) =>
      new Promise<string>((resolve) => {
        const socket = connect(Number(port), "127.0.0.1", () => socket.end(text));
        let data = "";
        socket.on("data", (chunk) => (data += chunk.toString()));
        socket.on("close", () => resolve(data));
        socket.on("error", () => resolve(data));
      });
    expect(
      await send("GET //evil/_matrix/client/versions HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
    ).toMatch(/^HTTP\/1.1 404/);
    expect(
      await send("GET http://evil/_matrix/client/versions HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
    ).toMatch(/^HTTP\/1.1 404/);
    expect(await send("NONSENSE\r\n\r\n")).toMatch(/^HTTP\/1.1 400/);
    await alive(s.hs);
  });

  it("bodies over maxBodyBytes get 413 M_TOO_LARGE; events over 64 KiB too, but a delayed one only fails when it fires", async () => {
    const s = await setup({ maxBodyBytes: 200_000 });
    const huge = JSON.stringify({ pad: "x".repeat(1_000_000) });
    const res = await raw(s.hs, "PUT", statePath(s.roomId, CALL_MEMBER, "k"), {
      token: s.alice.accessToken,
      raw: huge,
    });
    expect(res.status).toBe(413);
    expect(res.body.errcode).toBe("M_TOO_LARGE");
    await alive(s.hs);
    const bigEvent = JSON.stringify({ pad: "x".repeat(70_000) });
    const ev = await raw(s.hs, "PUT", statePath(s.roomId, CALL_MEMBER, "k"), {
      token: s.alice.accessToken,
      raw: bigEvent,
    });
    expect(ev.status).toBe(413);
    expect(ev.body).toEqual({ errcode: "M_TOO_LARGE", error: "event too large" });
    const delayed = await raw(s.hs, "PUT", statePath(s.roomId, CALL_MEMBER, "k"), {
      token: s.alice.accessToken,
      raw: bigEvent,
      query: delayQuery(300),
    });
    // Real Synapse 1.116–1.163 schedules it (validate_builder has no size check) and drops it on firing.
    expect(delayed.status).toBe(200);
    await waitFor(
      () => s.hs.pendingDelayedEvents().length === 0,
      3000,
      "the oversized delayed event to fire",
    );
    expect(s.hs.stateContent(s.roomId, CALL_MEMBER, "k")).toBeUndefined();
    await alive(s.hs);
  });

  it("random requests never produce a 5xx", async () => {
    const s = await setup();
    const segments = [
      "rooms",
      encodeURIComponent(s.roomId),
      "state",
      "send",
      CALL_MEMBER,
      "x",
      "%FF",
      "..",
      "delayed_events",
      "sync",
      "",
    ];
    const prefixes = [
      "/_matrix/client/v3/",
      "/_matrix/client/r0/",
      "/_matrix/client/unstable/org.matrix.msc4140/",
      "/",
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "PUT", "POST", "DELETE"),
        fc.constantFrom(...prefixes),
        fc.array(fc.constantFrom(...segments), { maxLength: 6 }),
        fc.option(fc.oneof(fc.json(), fc.string()), { nil: undefined }),
        fc.boolean(),
        fc.option(fc.constantFrom("-1", "abc", "0", "99999999999999999999", "5"), { nil: undefined }),
        async (method, prefix, parts, body, withToken, delay) => {
          const res = await raw(s.hs, method, prefix + parts.join("/"), {
            token: withToken ? s.alice.accessToken : undefined,
            raw: method === "GET" ? undefined : body,
            query: delay === undefined ? {} : delayQuery(delay),
          });
          expect(res.status).toBeLessThan(500);
          expect(typeof res.body).toBe("object");
        },
      ),
      { numRuns: 150, seed: 4140 },
    );
    await alive(s.hs);
  });
});

describe("fault injection", () => {
  it("respond: chosen status/body/headers, limited times, only for the chosen user", async () => {
    const s = await setup();
    const id = await scheduleState(s.hs, s.alice, s.roomId, "k", 60_000);
    s.hs.faults.add({
      route: "delayed.restart",
      times: 1,
      userId: s.alice.userId,
      respond: {
        status: 429,
        body: { errcode: "M_LIMIT_EXCEEDED", error: "Too Many Requests" },
        headers: { "Retry-After": "3" },
      },
    });
    expect((await mgmt(s.hs, id, "restart", s.bob.accessToken)).status).toBe(200);
    const faulted = await mgmt(s.hs, id, "restart", s.alice.accessToken);
    expect(faulted.status).toBe(429);
    expect(faulted.headers.get("retry-after")).toBe("3");
    expect((await mgmt(s.hs, id, "restart", s.alice.accessToken)).status).toBe(200);
    expect(s.hs.requests.filter((r) => r.fault === "respond")).toHaveLength(1);

    const fid = s.hs.faults.add({ route: /\/versions$/, method: "GET", respond: { status: 502 } });
    expect((await raw(s.hs, "GET", "/_matrix/client/versions")).status).toBe(502);
    s.hs.faults.remove(fid);
    await alive(s.hs);
  });

  it("hang never answers until the fault is cleared; drop resets the connection", async () => {
    const s = await setup();
    const id = await scheduleState(s.hs, s.alice, s.roomId, "k", 60_000);
    s.hs.faults.add({ route: "delayed.restart", respond: "hang" });
    let settled = false;
    const hung = mgmt(s.hs, id, "restart").then(
      () => (settled = true),
      () => (settled = true),
    );
    await waitFor(() => s.hs.requests.some((r) => r.fault === "hang"));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(settled).toBe(false);
    s.hs.faults.clear();
    await hung;
    await expect(mgmt(s.hs, id, "restart")).resolves.toMatchObject({ status: 200 });

    s.hs.faults.add({ route: "delayed.cancel", respond: "drop", times: 1 });
    await expect(mgmt(s.hs, id, "cancel")).rejects.toThrow();
    expect(s.hs.pendingDelayedEvents()).toHaveLength(1); // never processed
  });

  it("process-then-drop: the server does the work, the client never hears", async () => {
    const clock = createManualClock(5_000_000);
    const s = await setup({ clock });
    const id = await scheduleState(s.hs, s.alice, s.roomId, "k", 10_000);
    clock.advance(5_000);
    s.hs.faults.add({ route: "delayed.restart", respond: "process-then-drop", times: 1 });
    await expect(mgmt(s.hs, id, "restart")).rejects.toThrow();
    expect(s.hs.pendingDelayedEvents()[0].sendTs).toBe(5_015_000);
  });

  it("delayMs: the server does the work at once and answers that much later; removing the fault answers now", async () => {
    const s = await setup();
    const id = s.hs.faults.add({ route: "state.put", userId: s.alice.userId, respond: { delayMs: 400 } });
    const started = Date.now();
    let answered: number | undefined;
    const put = raw(s.hs, "PUT", statePath(s.roomId, CALL_MEMBER, "k"), {
      body: { n: 1 },
      token: s.alice.accessToken,
    }).then((res) => {
      answered = Date.now();
      return res;
    });
    // Processed before the answer: the state is there while the answer waits.
    await waitFor(() => s.hs.roomState(s.roomId).some((e) => e.state_key === "k"));
    expect(answered).toBeUndefined();
    expect((await put).status).toBe(200);
    expect(answered! - started).toBeGreaterThanOrEqual(400);
    expect(s.hs.requests.filter((r) => r.fault === "delay")).toHaveLength(1);
    // Another user's requests are not held.
    expect(
      (
        await raw(s.hs, "PUT", statePath(s.roomId, CALL_MEMBER, "b"), {
          body: { n: 1 },
          token: s.bob.accessToken,
        })
      ).status,
    ).toBe(200);
    // Held answers go out as soon as the fault is removed.
    s.hs.faults.add({ route: "state.put", userId: s.alice.userId, respond: { delayMs: 60_000 } });
    s.hs.faults.remove(id);
    const held = raw(s.hs, "PUT", statePath(s.roomId, CALL_MEMBER, "k"), {
      body: { n: 2 },
      token: s.alice.accessToken,
    });
    await waitFor(() => s.hs.roomState(s.roomId).some((e) => (e.content as { n?: number }).n === 2));
    s.hs.faults.clear();
    expect((await held).status).toBe(200);
  });
});

describe("simulated restart", () => {
  let clock: ManualClock;

  it("keeps pending rows, fires what fell due while down at once and in order, serves again on the same URL", async () => {
    clock = createManualClock(9_000_000);
    const s = await setup({ clock });
    const later = await scheduleState(s.hs, s.alice, s.roomId, "late", 60_000);
    await scheduleState(s.hs, s.alice, s.roomId, "b", 2_000, { n: 2 });
    await scheduleState(s.hs, s.bob, s.roomId, "a", 1_000, { n: 1 });
    const baseUrl = s.hs.baseUrl;
    const restarting = s.hs.restart({ downMs: 100 });
    clock.advance(5_000); // due while down: nothing fires yet
    expect(s.hs.pendingDelayedEvents()).toHaveLength(3);
    await expect(fetch(`${baseUrl}/_matrix/client/versions`)).rejects.toThrow();
    await restarting;
    expect(s.hs.baseUrl).toBe(baseUrl);
    const fired = s.hs.timeline(s.roomId).filter((e) => e.type === CALL_MEMBER);
    expect(fired.map((e) => [e.state_key, e.origin_server_ts])).toEqual([
      ["a", 9_001_000],
      ["b", 9_002_000],
    ]);
    expect(s.hs.pendingDelayedEvents().map((d) => d.delayId)).toEqual([later]);
    expect((await mgmt(s.hs, later, "restart")).status).toBe(200);
  });

  it("drops in-flight requests; a synced MatrixClient reconnects and sees later events", async () => {
    const s = await setup();
    const observer = await syncedClient(s.hs, s.bob);
    clients.push(observer);
    const room = await waitFor(() => observer.getRoom(s.roomId));
    await waitFor(() =>
      s.hs.requests.some((r) => r.route === "sync" && r.userId === s.bob.userId && r.status === 0),
    );
    await s.hs.restart({ downMs: 50 });
    // What an app does when the network returns; without it js-sdk waits out its own backoff (~5 s).
    await waitFor(() => observer.retryImmediately(), 3000, "sync error noticed");
    await client(s.hs, s.alice).sendStateEvent(
      s.roomId,
      CALL_MEMBER as never,
      { after: true } as never,
      "after-restart",
    );
    await waitFor(
      () => room.currentState.getStateEvents(CALL_MEMBER, "after-restart"),
      10_000,
      "event after restart",
    );
  });
});
