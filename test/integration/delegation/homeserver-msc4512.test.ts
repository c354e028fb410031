/**
 * The test homeserver's pieces a MatrixRTC token service leans on, as Synapse 1.163.2 has them: the
 * federation OpenID userinfo endpoint, an application service acting as a user (`as_token` +
 * `?user_id=`), and the MSC4512 proxy of `/_matrix/client/…/rtc/livekit/…` to the service, checked
 * against a small recording service over real HTTP.
 */
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import {
  startTestHomeserver,
  type AppServiceRegistration,
  type Credentials,
  type TestHomeserver,
} from "../../../src/testing/index.js";

interface Heard {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** An app service that records what reaches it and answers 201 with a fixed body. */
async function recordingService(): Promise<{ url: string; heard: Heard[]; server: Server }> {
  const heard: Heard[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      heard.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      });
      res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify({ answered: true }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, heard, server };
}

const registration = (proxyUrl: string): AppServiceRegistration => ({
  id: "rtc",
  url: null,
  as_token: "as-secret",
  hs_token: "hs-secret",
  sender_localpart: "_rtc",
  namespaces: { users: [{ exclusive: false, regex: "@alice:.*" }] },
  rate_limited: false,
  "io.element.msc4512.proxy_prefix": "rtc/livekit",
  "io.element.msc4512.proxy_url": proxyUrl,
});

describe("test homeserver: what a token service needs (OpenID userinfo, app services, MSC4512)", () => {
  let hs: TestHomeserver;
  let service: Awaited<ReturnType<typeof recordingService>>;
  let alice: Credentials;
  let bob: Credentials;
  const DELEGATE = "/_matrix/client/unstable/io.element.msc4195/rtc/livekit/delegate_delayed_leave";

  beforeAll(async () => {
    service = await recordingService();
    hs = await startTestHomeserver({ appServices: [registration(service.url)], msc4512Enabled: true });
    alice = await hs.createUser("alice");
    bob = await hs.createUser("bob");
  });
  afterAll(async () => {
    await hs.close();
    service.server.closeAllConnections();
    await new Promise((r) => service.server.close(r));
  });

  it("exchanges an OpenID token for the user id at the federation userinfo endpoint", async () => {
    const res = await fetch(
      `${hs.baseUrl}/_matrix/client/v3/user/${encodeURIComponent(alice.userId)}/openid/request_token`,
      { method: "POST", headers: { Authorization: `Bearer ${alice.accessToken}` }, body: "{}" },
    );
    const { access_token } = (await res.json()) as { access_token: string };
    const info = await fetch(
      `${hs.baseUrl}/_matrix/federation/v1/openid/userinfo?access_token=${access_token}`,
    );
    expect(info.status).toBe(200);
    expect(await info.json()).toEqual({ sub: alice.userId });
    const unknown = await fetch(`${hs.baseUrl}/_matrix/federation/v1/openid/userinfo?access_token=nope`);
    expect(unknown.status).toBe(401);
    expect(await unknown.json()).toMatchObject({ errcode: "M_UNKNOWN_TOKEN" });
    const missing = await fetch(`${hs.baseUrl}/_matrix/federation/v1/openid/userinfo`);
    expect(missing.status).toBe(401);
    expect(await missing.json()).toMatchObject({ errcode: "M_MISSING_TOKEN" });
  });

  it("an as_token acts as ?user_id= in its namespace, as its sender without it; others are 403", async () => {
    const whoami = (query: string) =>
      fetch(`${hs.baseUrl}/_matrix/client/v3/account/whoami${query}`, {
        headers: { Authorization: "Bearer as-secret" },
      });
    const asAlice = await whoami(`?user_id=${encodeURIComponent(alice.userId)}`);
    expect(asAlice.status).toBe(200);
    expect(await asAlice.json()).toMatchObject({ user_id: alice.userId });
    const asSender = await whoami("");
    expect(await asSender.json()).toMatchObject({ user_id: `@_rtc:${hs.serverName}` });
    const asBob = await whoami(`?user_id=${encodeURIComponent(bob.userId)}`);
    expect(asBob.status).toBe(403);
    const asNobody = await whoami(`?user_id=${encodeURIComponent(`@alice:elsewhere`)}`);
    expect(asNobody.status).toBe(403);
    // The request log names the asserted user.
    expect(hs.requests.filter((r) => r.route === "whoami").map((r) => r.userId)).toEqual([
      alice.userId,
      `@_rtc:${hs.serverName}`,
      bob.userId,
      "@alice:elsewhere",
    ]);
  });

  it("proxies …/rtc/livekit/… to the service with hs_token and X-Matrix-User-Identifier, and answers with its reply", async () => {
    const before = service.heard.length;
    const res = await fetch(`${hs.baseUrl}${DELEGATE}?access_token=${alice.accessToken}&x=1`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-custom": "dropped" },
      body: JSON.stringify({ delay_id: "d" }),
    });
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ answered: true });
    const heard = service.heard.slice(before);
    expect(heard).toHaveLength(1);
    expect(heard[0].method).toBe("POST");
    // Same path, the access token stripped from the query.
    expect(heard[0].url).toBe(`${DELEGATE}?x=1`);
    expect(heard[0].headers.authorization).toBe("Bearer hs-secret");
    expect(heard[0].headers["x-matrix-user-identifier"]).toBe(alice.userId);
    expect(heard[0].headers["x-custom"]).toBeUndefined();
    expect(JSON.parse(heard[0].body)).toEqual({ delay_id: "d" });
    // The stable prefix too.
    const stable = await fetch(`${hs.baseUrl}/_matrix/client/v1/rtc/livekit/get_token`, {
      method: "POST",
      headers: { Authorization: `Bearer ${bob.accessToken}` },
      body: "{}",
    });
    expect(stable.status).toBe(201);
    expect(service.heard.at(-1)?.headers["x-matrix-user-identifier"]).toBe(bob.userId);
  });

  it("an unauthenticated probe is 401 (Element Call reads that as 'supported'); without MSC4512 it is 404", async () => {
    const before = service.heard.length;
    const probe = await fetch(`${hs.baseUrl}${DELEGATE}`, { method: "POST" });
    expect(probe.status).toBe(401);
    expect(await probe.json()).toMatchObject({ errcode: "M_MISSING_TOKEN" });
    expect(service.heard.length).toBe(before);
    hs.configure({ msc4512Enabled: false });
    try {
      const off = await fetch(`${hs.baseUrl}${DELEGATE}`, {
        method: "POST",
        headers: { Authorization: `Bearer ${alice.accessToken}` },
      });
      expect(off.status).toBe(404);
      expect(await off.json()).toMatchObject({ errcode: "M_UNRECOGNIZED" });
    } finally {
      hs.configure({ msc4512Enabled: true });
    }
    expect(hs.requests.filter((r) => r.path === DELEGATE).map((r) => `${r.route} ${r.status}`)).toEqual([
      "rtc.proxy 201",
      "rtc.proxy 401",
      "unknown 404",
    ]);
  });

  it("a dead service is 500 M_UNKNOWN; a bad registration is refused like Synapse refuses to start", async () => {
    hs.configure({ appServices: [registration("http://127.0.0.1:9")] });
    try {
      const res = await fetch(`${hs.baseUrl}${DELEGATE}`, {
        method: "POST",
        headers: { Authorization: `Bearer ${alice.accessToken}` },
        body: "{}",
      });
      expect(res.status).toBe(500);
      expect(await res.json()).toMatchObject({ errcode: "M_UNKNOWN" });
    } finally {
      hs.configure({ appServices: [registration(service.url)] });
    }
    const bad = { ...registration(service.url), "io.element.msc4512.proxy_prefix": "sync" };
    expect(() => hs.configure({ appServices: [bad] })).toThrow(/reserved proxy prefix/);
    const half = { ...registration(service.url), "io.element.msc4512.proxy_url": undefined };
    expect(() => hs.configure({ appServices: [half] })).toThrow(/set together/);
  });
});
