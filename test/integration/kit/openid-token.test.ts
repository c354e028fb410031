/** The test homeserver's `POST /user/{userId}/openid/request_token` (what a widget's OpenID request uses). */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { startTestHomeserver, type TestHomeserver } from "../../../src/testing/index.js";
import { bareClient, type UserCreds } from "../../helpers/matrix.js";

describe("test homeserver: OpenID tokens", () => {
  let hs: TestHomeserver;
  let alice: UserCreds;
  let bob: UserCreds;
  beforeAll(async () => {
    hs = await startTestHomeserver();
    alice = await hs.createUser("alice");
    bob = await hs.createUser("bob");
  });
  afterAll(() => hs.close());

  const request = (asUser: UserCreds, forUser: string) =>
    fetch(`${hs.baseUrl}/_matrix/client/v3/user/${encodeURIComponent(forUser)}/openid/request_token`, {
      method: "POST",
      headers: { Authorization: `Bearer ${asUser.accessToken}`, "content-type": "application/json" },
      body: "{}",
    });

  it("issues a fresh Bearer token for oneself, as matrix-js-sdk's getOpenIdToken asks", async () => {
    const first = await bareClient(hs.baseUrl, alice).getOpenIdToken();
    const second = await bareClient(hs.baseUrl, alice).getOpenIdToken();
    expect(first).toMatchObject({
      token_type: "Bearer",
      matrix_server_name: hs.serverName,
      expires_in: 3600,
    });
    expect(first.access_token).not.toBe(second.access_token);
    expect(hs.requests.filter((r) => r.route === "openid").map((r) => r.status)).toEqual([200, 200]);
  });

  it("403 M_FORBIDDEN for another user, 401 without a token", async () => {
    const res = await request(bob, alice.userId);
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ errcode: "M_FORBIDDEN" });
    const anonymous = await fetch(
      `${hs.baseUrl}/_matrix/client/v3/user/${encodeURIComponent(alice.userId)}/openid/request_token`,
      { method: "POST", body: "{}" },
    );
    expect(anonymous.status).toBe(401);
  });
});
