/**
 * Serves the Element Call example from two ports of `localhost` (same site, two origins): the host
 * page (bundled with esbuild, in memory) and Element Call's published embedded build
 * (`@element-hq/element-call-embedded`, a devDependency) with our own `config.json`.
 */
import { randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = fileURLToPath(new URL(".", import.meta.url));
/** Element Call's embedded build: static files only. */
export const ELEMENT_CALL_DIST = fileURLToPath(
  new URL("../../node_modules/@element-hq/element-call-embedded/dist/", import.meta.url),
);

/**
 * Element Call's MatrixRTC mode (its config.json `matrix_rtc_mode`): `compatibility` writes the membership
 * as an `org.matrix.msc3401.call.member` state event; `matrix_2_0` as a sticky `org.matrix.msc4143.rtc.member`
 * event (MSC4354; the homeserver must advertise `org.matrix.msc4354`) and asks only the token service's
 * `/get_token`.
 */
export type ElementCallRtcMode = "compatibility" | "matrix_2_0";

/**
 * Element Call's `config.json`: its delayed leave (default 18 s, restarted every 4 s) made short so a
 * test or a person sees the server act within seconds; the membership as a state event (compatibility
 * mode) unless told otherwise; no analytics, no rageshake.
 */
export function elementCallConfig(
  delayMs: number,
  rtcMode: ElementCallRtcMode = "compatibility",
): Record<string, unknown> {
  return {
    matrix_rtc_mode: rtcMode,
    matrix_rtc_session: {
      wait_for_key_rotation_ms: 1000,
      network_error_retry_ms: 500,
      delayed_leave: { delay_ms: delayMs, restart_ms: Math.round(delayMs / 4) },
    },
  };
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".webp": "image/webp",
  ".woff2": "font/woff2",
  ".woff": "font/woff",
  ".mp3": "audio/mpeg",
  ".ogg": "audio/ogg",
};

export interface ElementCallServers {
  /** e.g. `http://localhost:41234`: the host page. */
  hostOrigin: string;
  /** e.g. `http://localhost:41235`: Element Call. */
  elementCallOrigin: string;
  /**
   * The host page for one user, device and room, with Element Call using `sfu` as its token service
   * (the URL names a session the host server keeps; the access token is not in it).
   */
  hostUrl(params: {
    homeserver: string;
    userId: string;
    deviceId: string;
    accessToken: string;
    roomId: string;
    sfu: string;
    /**
     * The host's client syncs before the widget loads (as Element Web's does), so the host feeds the
     * widget state changes and sticky events. Default false: a bare client.
     */
    sync?: boolean;
  }): string;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

async function buildHostPage(): Promise<Map<string, { type: string; body: string | Uint8Array }>> {
  const result = await build({
    entryPoints: [`${here}host.ts`],
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    write: false,
    sourcemap: "inline",
    logLevel: "silent",
    define: { global: "globalThis", "process.env.NODE_ENV": '"development"' },
  });
  return new Map<string, { type: string; body: string | Uint8Array }>([
    ["/host.js", { type: TYPES[".js"], body: result.outputFiles[0].contents }],
    ["/host.html", { type: TYPES[".html"], body: await readFile(`${here}host.html`, "utf8") }],
  ]);
}

/**
 * Start both servers. `delayMs` is Element Call's delayed leave, `rtcMode` its MatrixRTC mode (its
 * config.json; default `compatibility`).
 */
export async function startElementCallServers(options: {
  delayMs: number;
  rtcMode?: ElementCallRtcMode;
}): Promise<ElementCallServers> {
  const hostFiles = await buildHostPage();
  const config = JSON.stringify(elementCallConfig(options.delayMs, options.rtcMode));

  // Sessions by id: the host page fetches its own, so no access token is in a URL (or a printed line).
  const sessions = new Map<string, string>();
  const hostServer = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const session = /^\/session\/([\w-]+)\.json$/.exec(path);
    if (session && sessions.has(session[1]))
      return void res
        .writeHead(200, { "content-type": TYPES[".json"], "cache-control": "no-store" })
        .end(sessions.get(session[1]));
    const file = hostFiles.get(path);
    if (!file) return void res.writeHead(404, { "content-type": "text/plain" }).end("not found");
    res.writeHead(200, { "content-type": file.type, "cache-control": "no-store" }).end(file.body);
  });

  const serveElementCall = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    if (path === "/config.json")
      return void res
        .writeHead(200, { "content-type": TYPES[".json"], "cache-control": "no-store" })
        .end(config);
    if (path === "/" || path === "") path = "/index.html";
    const file = normalize(join(ELEMENT_CALL_DIST, path));
    if (!file.startsWith(ELEMENT_CALL_DIST)) return void res.writeHead(403).end();
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) return void res.writeHead(404, { "content-type": "text/plain" }).end("not found");
    res.writeHead(200, {
      "content-type": TYPES[extname(file)] ?? "application/octet-stream",
      "content-length": info.size,
    });
    createReadStream(file).pipe(res);
  };
  const elementCallServer = createServer((req, res) => {
    serveElementCall(req, res).catch(() => res.destroy());
  });

  const hostPort = await listen(hostServer);
  const elementCallPort = await listen(elementCallServer);
  // Both on "localhost" (it resolves to loopback): same site, different origins.
  const hostOrigin = `http://localhost:${hostPort}`;
  const elementCallOrigin = `http://localhost:${elementCallPort}`;
  const close = (s: Server) =>
    new Promise<void>((resolve) => {
      s.closeAllConnections();
      s.close(() => resolve());
    });
  return {
    hostOrigin,
    elementCallOrigin,
    hostUrl(p) {
      const id = randomUUID();
      sessions.set(
        id,
        JSON.stringify({
          hs: p.homeserver,
          user: p.userId,
          device: p.deviceId,
          token: p.accessToken,
          room: p.roomId,
          ec: elementCallOrigin,
          sfu: p.sfu,
          ...(p.sync ? { sync: "1" } : {}),
        }),
      );
      return `${hostOrigin}/host.html?session=${id}`;
    },
    async close() {
      await Promise.all([close(hostServer), close(elementCallServer)]);
    },
  };
}
