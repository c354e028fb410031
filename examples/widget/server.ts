/**
 * Bundles the example's host and widget pages with esbuild (in memory) and serves them from two
 * origins: the host on `http://127.0.0.1:<port>`, the widget on `http://localhost:<port>`, so the
 * widget runs in a real cross-origin iframe.
 *
 * `npx tsx examples/widget/server.ts` starts a test homeserver too, creates a user and a room, and
 * prints the host page's URL.
 */
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = fileURLToPath(new URL(".", import.meta.url));

/** The example's files, ready to serve: two HTML pages and their bundles. */
export async function buildWidgetExample(): Promise<
  Map<string, { type: string; body: string | Uint8Array }>
> {
  const files = new Map<string, { type: string; body: string | Uint8Array }>();
  for (const page of ["host", "widget"]) {
    const result = await build({
      entryPoints: [`${here}${page}.ts`],
      bundle: true,
      platform: "browser",
      format: "esm",
      target: "es2022",
      write: false,
      sourcemap: "inline",
      logLevel: "silent",
      define: { global: "globalThis", "process.env.NODE_ENV": '"development"' },
    });
    files.set(`/${page}.js`, {
      type: "text/javascript; charset=utf-8",
      body: result.outputFiles[0].contents,
    });
    files.set(`/${page}.html`, {
      type: "text/html; charset=utf-8",
      body: await readFile(`${here}${page}.html`, "utf8"),
    });
  }
  return files;
}

export interface ExampleServers {
  /** e.g. `http://127.0.0.1:41234` */
  hostOrigin: string;
  /** e.g. `http://localhost:41235` */
  widgetOrigin: string;
  /** The host page for one user, device and room. */
  hostUrl(params: {
    homeserver: string;
    userId: string;
    deviceId: string;
    accessToken: string;
    roomId: string;
    delayMs?: number;
    autojoin?: boolean;
  }): string;
  close(): Promise<void>;
}

async function listen(server: Server, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

/** Serve the example from two origins (both serve every file; the pages choose which to load). */
export async function startExampleServers(): Promise<ExampleServers> {
  const files = await buildWidgetExample();
  const handler = (req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const file = files.get(path);
    if (!file) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": file.type, "cache-control": "no-store" }).end(file.body);
  };
  const hostServer = createServer(handler);
  const widgetServer = createServer(handler);
  const hostPort = await listen(hostServer, "127.0.0.1");
  const widgetPort = await listen(widgetServer, "127.0.0.1");
  const hostOrigin = `http://127.0.0.1:${hostPort}`;
  // Another origin for the browser (host name and port differ); "localhost" resolves to loopback.
  const widgetOrigin = `http://localhost:${widgetPort}`;
  const close = (s: Server) =>
    new Promise<void>((resolve) => {
      s.closeAllConnections();
      s.close(() => resolve());
    });
  return {
    hostOrigin,
    widgetOrigin,
    hostUrl(p) {
      const url = new URL("/host.html", hostOrigin);
      url.searchParams.set("hs", p.homeserver);
      url.searchParams.set("user", p.userId);
      url.searchParams.set("device", p.deviceId);
      url.searchParams.set("token", p.accessToken);
      url.searchParams.set("room", p.roomId);
      url.searchParams.set("widget", widgetOrigin);
      url.searchParams.set("delay", String(p.delayMs ?? 10_000));
      url.searchParams.set("autojoin", p.autojoin ? "1" : "0");
      return url.toString();
    },
    async close() {
      await Promise.all([close(hostServer), close(widgetServer)]);
    },
  };
}

async function main(): Promise<void> {
  const { startTestHomeserver } = await import("../../src/testing/index.js");
  const hs = await startTestHomeserver({ rateLimits: { message: null, delayedEventMgmt: null } });
  const alice = await hs.createUser("alice");
  const roomId = await hs.createRoom(alice.accessToken);
  const servers = await startExampleServers();
  console.log(`test homeserver: ${hs.baseUrl}`);
  console.log(
    `open: ${servers.hostUrl({ homeserver: hs.baseUrl, ...alice, roomId, delayMs: 10_000, autojoin: true })}`,
  );
  console.log("Ctrl-C to stop");
  process.once("SIGINT", () => {
    void Promise.all([servers.close(), hs.close()]).then(() => process.exit(0));
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) void main();
