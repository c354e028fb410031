/** The testing kit's stub LiveKit token service, over real HTTP as a call widget uses it. */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { startTestSfuAuth, type TestSfuAuth } from "../../../src/testing/index.js";

const OPENID = {
  access_token: "tok",
  token_type: "Bearer",
  matrix_server_name: "localhost",
  expires_in: 3600,
};

function claims(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString("utf8")) as Record<string, unknown>;
}

describe("startTestSfuAuth", () => {
  let sfu: TestSfuAuth;
  beforeAll(async () => {
    sfu = await startTestSfuAuth();
  });
  afterAll(() => sfu.close());

  const post = (path: string, body?: unknown) =>
    fetch(`${sfu.url}${path}`, {
      method: "POST",
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  it("POST /sfu/get answers { url, jwt } naming the room and the device, with CORS", async () => {
    const res = await post("/sfu/get", { room: "!r:localhost", openid_token: OPENID, device_id: "DEV" });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    const body = (await res.json()) as { url: string; jwt: string };
    expect(body.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\//);
    expect(claims(body.jwt)).toMatchObject({ sub: "DEV", video: { room: "!r:localhost", roomJoin: true } });
  });

  it("POST /get_token answers for the member id; bad bodies get 400 M_BAD_JSON", async () => {
    const res = await post("/get_token", {
      room_id: "!r:localhost",
      slot_id: "m.call#ROOM",
      openid_token: OPENID,
      member: { id: "member-1", claimed_user_id: "@a:localhost", claimed_device_id: "DEV" },
    });
    expect(res.status).toBe(200);
    expect(claims(((await res.json()) as { jwt: string }).jwt)).toMatchObject({
      sub: "member-1",
      video: { room: "!r:localhost" },
    });
    const bad = await post("/sfu/get", { room: "!r:localhost" });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ errcode: "M_BAD_JSON" });
  });

  it("/delegate_delayed_leave is 404 (the widget keeps its own delayed leave); preflights pass", async () => {
    const res = await post("/delegate_delayed_leave");
    expect(res.status).toBe(404);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    const preflight = await fetch(`${sfu.url}/sfu/get`, { method: "OPTIONS" });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-headers")).toBe("*");
  });

  it("records every request in order (not CORS preflights)", () => {
    expect(sfu.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      "POST /sfu/get",
      "POST /get_token",
      "POST /sfu/get",
      "POST /delegate_delayed_leave",
    ]);
    expect(sfu.requests[0].body).toMatchObject({ device_id: "DEV", openid_token: OPENID });
  });
});
