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

/** How long one set-up call may spend waiting out 429s in total (the test's own rate limits apply). */
const SETUP_RETRY_BUDGET_MS = 20_000;

/**
 * Client-server API call with a token; throws with Synapse's error body on failure. A 429 is waited out
 * (Synapse's `retry_after_ms`, clamped to 100 ms – 5 s, within SETUP_RETRY_BUDGET_MS): set-up helpers
 * such as `createRoom` run under whatever rate limits the test chose (e.g. Element Call's), and must not
 * fail because a test's own traffic filled the bucket.
 */
export async function clientCall(
  baseUrl: string,
  accessToken: string | undefined,
  method: "GET" | "POST" | "PUT",
  path: string,
  body?: unknown,
): Promise<Record<string, unknown>> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (accessToken) headers.authorization = `Bearer ${accessToken}`;
  const giveUpAt = Date.now() + SETUP_RETRY_BUDGET_MS;
  for (;;) {
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 429 && Date.now() < giveUpAt) {
      const text = await res.text();
      let hint = 1000;
      try {
        const ms = (JSON.parse(text) as { retry_after_ms?: unknown }).retry_after_ms;
        if (typeof ms === "number" && Number.isFinite(ms)) hint = ms;
      } catch {
        // not JSON: keep the default wait
      }
      const wait = Math.min(5000, Math.max(100, hint), Math.max(0, giveUpAt - Date.now()));
      await new Promise((resolve) => setTimeout(resolve, wait));
      continue;
    }
    return json(res, `${method} ${path}`);
  }
}
