/** Users without a captcha or email: Synapse's shared-secret registration (admin API, HMAC-SHA1). */
import { createHmac } from "node:crypto";
import type { Credentials } from "../homeserver/users.js";

async function json(res: Response, what: string): Promise<Record<string, unknown>> {
  const text = await res.text();
  if (!res.ok) throw new Error(`startSynapse: ${what} failed: ${res.status} ${text.slice(0, 500)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

export async function registerWithSharedSecret(
  baseUrl: string,
  secret: string,
  user: { localpart: string; password: string; admin: boolean },
): Promise<Credentials> {
  const url = `${baseUrl}/_synapse/admin/v1/register`;
  const { nonce } = (await json(await fetch(url), "getting a registration nonce")) as { nonce: string };
  const mac = createHmac("sha1", secret)
    .update([nonce, user.localpart, user.password, user.admin ? "admin" : "notadmin"].join("\0"))
    .digest("hex");
  const body = await json(
    await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        nonce,
        username: user.localpart,
        password: user.password,
        admin: user.admin,
        mac,
      }),
    }),
    `registering ${user.localpart}`,
  );
  return {
    userId: body.user_id as string,
    accessToken: body.access_token as string,
    deviceId: body.device_id as string,
  };
}

/** Client-server API call with a token; throws with Synapse's error body on failure. */
export async function clientCall(
  baseUrl: string,
  accessToken: string | undefined,
  method: "GET" | "POST" | "PUT",
  path: string,
  body?: unknown,
): Promise<Record<string, unknown>> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (accessToken) headers.authorization = `Bearer ${accessToken}`;
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return json(res, `${method} ${path}`);
}
