/**
 * A stub of the LiveKit token service (lk-jwt-service) a MatrixRTC call widget asks for its SFU access
 * before it writes its membership: `POST /sfu/get` (legacy) and `POST /get_token` (Matrix 2.0) answer
 * `{ url, jwt }`; `/delegate_delayed_leave` answers 404, so the widget keeps its own delayed leave.
 * CORS on every route (the widget calls it from its iframe). It checks no OpenID token and runs no SFU:
 * `url` points at nothing that answers, and the JWT is unsigned. Every request but CORS preflights is recorded.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One request the stub answered (CORS preflights are not recorded). */
export interface SfuAuthRequest {
  /** The HTTP method, e.g. `POST`. */
  method: string;
  /** e.g. `/sfu/get` */
  path: string;
  /** The parsed JSON body (undefined when there was none or it was not JSON). */
  body: unknown;
  /** Date.now() when it arrived. */
  at: number;
  /** The HTTP status answered. */
  status: number;
}

/** A running stub token service, from `startTestSfuAuth()`. */
export interface TestSfuAuth {
  /** The `livekit_service_url` to advertise, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  /** What it was asked, in order. */
  readonly requests: readonly SfuAuthRequest[];
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

/** Options of `startTestSfuAuth()`; all optional. */
export interface TestSfuAuthOptions {
  /** The LiveKit URL handed out. Default: this server's own `ws://` address (no SFU answers there). */
  livekitUrl?: string;
  /** Listen address. Default 127.0.0.1, port 0 (any free port). */
  host?: string;
  /** Listen port. Default 0 (any free port; read the chosen one from `url`). */
  port?: number;
}

const CORS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
  "Access-Control-Allow-Headers": "*",
};

const b64url = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString("base64url");

/** An unsigned JWT with the claims a widget reads: `sub` (the participant) and `video.room`. */
function jwtFor(identity: string, room: string): string {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: "matrixrtc-membership-test-sfu-auth",
    sub: identity,
    nbf: now,
    exp: now + 3600,
    video: { room, roomJoin: true, canPublish: true, canSubscribe: true },
  };
  return `${b64url({ alg: "none", typ: "JWT" })}.${b64url(claims)}.`;
}

function field(body: unknown, ...path: string[]): string | undefined {
  let v: unknown = body;
  for (const key of path)
    v = typeof v === "object" && v !== null ? (v as Record<string, unknown>)[key] : undefined;
  return typeof v === "string" ? v : undefined;
}

/** Start the stub token service on 127.0.0.1. */
export async function startTestSfuAuth(options: TestSfuAuthOptions = {}): Promise<TestSfuAuth> {
  const requests: SfuAuthRequest[] = [];
  let livekitUrl = options.livekitUrl ?? "";

  const answer = (res: ServerResponse, status: number, body: object): void => {
    const entry = requests.at(-1);
    if (entry) entry.status = status;
    res.writeHead(status, { ...CORS, "content-type": "application/json" }).end(JSON.stringify(body));
  };

  const handle = (req: IncomingMessage, res: ServerResponse, raw: string): void => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const method = req.method ?? "GET";
    if (method === "OPTIONS") {
      res.writeHead(204, CORS).end();
      return;
    }
    let body: unknown;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      body = undefined;
    }
    requests.push({ method, path, body, at: Date.now(), status: 0 });
    if (method === "POST" && path === "/sfu/get") {
      const room = field(body, "room");
      const device = field(body, "device_id");
      if (!room || !device || field(body, "openid_token", "access_token") === undefined)
        return answer(res, 400, { errcode: "M_BAD_JSON", error: "room, device_id and openid_token needed" });
      // The real service learns the user from the OpenID token; the stub names the device only.
      return answer(res, 200, { url: livekitUrl, jwt: jwtFor(device, room) });
    }
    if (method === "POST" && path === "/get_token") {
      const room = field(body, "room_id");
      const member = field(body, "member", "id");
      if (!room || !member || field(body, "openid_token", "access_token") === undefined)
        return answer(res, 400, { errcode: "M_BAD_JSON", error: "room_id, member and openid_token needed" });
      return answer(res, 200, { url: livekitUrl, jwt: jwtFor(member, room) });
    }
    return answer(res, 404, { errcode: "M_NOT_FOUND", error: "Not found" });
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handle(req, res, Buffer.concat(chunks).toString("utf8")));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  const url = `http://${address}:${port}`;
  if (!livekitUrl) livekitUrl = `ws://${address}:${port}/livekit`;
  return {
    url,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
