/**
 * The ghost world (issue 22 part 1), shared by test/browser/ghost.browser.test.ts and the bench's
 * "ghost on tab close / widget removal" rows: the test homeserver behind a link adding `rttMs` per
 * round trip, call pages in Debian's Chromium (playwright-core), and an observer: another user's
 * synced matrix-js-sdk client whose MatrixRTCSession says who is in the call, connected directly.
 *
 * Every device gets its own user, room and browser context. A device is ours (MembershipManager) or
 * js-sdk's (MatrixRTCSession with Element Call's settings), in client mode (its own page, talking to the
 * homeserver) or widget mode (a call widget in a host page's cross-origin iframe; the host runs our
 * DelayedEventWidgetDriver and does nothing of its own when the iframe goes).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import type { MatrixClient } from "matrix-js-sdk";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { CALL_MEMBER_EVENT_TYPE } from "../../../src/index.js";
import {
  rtcMembers,
  startFaultyLink,
  startTestHomeserver,
  stopClient,
  syncedClient,
  type FaultyLink,
  type TestHomeserver,
  type UserCreds,
} from "../../../src/testing/index.js";

const here = fileURLToPath(new URL(".", import.meta.url));

export type Impl = "ours" | "js-sdk";
export type Mode = "client" | "widget";

export interface GhostWorldOptions {
  /** Added per round trip between every page and the homeserver. */
  rttMs: number;
  /** Every device's delayed-leave delay. */
  delayMs: number;
  /** Debian's Chromium. */
  chromiumPath: string;
}

/** One device in the call, in its own page. */
export interface GhostDevice {
  readonly impl: Impl;
  readonly mode: Mode;
  readonly userId: string;
  readonly deviceId: string;
  readonly roomId: string;
  readonly stateKey: string;
  readonly page: Page;
  /** Joins; resolves once the device says connected and the observer lists it. */
  join(): Promise<void>;
  /** The device's own state, as its page says. */
  state(): Promise<string>;
  /** Does the observer's MatrixRTCSession list the device? */
  seen(): boolean;
  /** Closes the tab as a user does (pagehide runs) / removes the widget's iframe; resolves the time it happened. */
  goAway(): Promise<number>;
  /** Resolves the time the observer stops listing the device (rejects after `timeoutMs`). */
  whenGone(timeoutMs: number): Promise<number>;
  /** The server's timestamp of the `{}` written at the device's key since `since`, if any. */
  leftAtServer(since: number): number | undefined;
  /** The membership the server holds now. */
  membership(): Record<string, unknown> | undefined;
  /** Delayed events the server holds at the device's key. */
  pending(): ReturnType<TestHomeserver["pendingDelayedEvents"]>;
  /** The browser console of its page (and widget). */
  console: string[];
  /** Closes its browser context (whatever is left of its page). */
  close(): Promise<void>;
}

export interface GhostWorld {
  readonly hs: TestHomeserver;
  readonly link: FaultyLink;
  readonly observer: MatrixClient;
  readonly browser: Browser;
  /** Median round trip of a trivial request through the link, measured at start. */
  readonly rttMs: number;
  /** Where the call pages are served (`/blank.html` is a page elsewhere to navigate to). */
  readonly pageOrigin: string;
  device(mode: Mode, impl: Impl, name: string): Promise<GhostDevice>;
  close(): Promise<void>;
}

async function bundle(entry: string): Promise<Uint8Array> {
  const result = await build({
    entryPoints: [`${here}${entry}.ts`],
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    write: false,
    sourcemap: "inline",
    logLevel: "silent",
    define: { global: "globalThis", "process.env.NODE_ENV": '"development"' },
  });
  return result.outputFiles[0].contents;
}

const html = (script: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>ghost</title></head>` +
  `<body><script type="module" src="/${script}.js"></script></body></html>`;

async function listen(server: Server, host: string): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  return `http://${host}:${(server.address() as AddressInfo).port}`;
}

async function pageServers(): Promise<{ pageOrigin: string; widgetOrigin: string; close(): Promise<void> }> {
  const files = new Map<string, { type: string; body: string | Uint8Array }>();
  for (const page of ["client", "host", "widget"]) {
    files.set(`/${page}.js`, { type: "text/javascript; charset=utf-8", body: await bundle(page) });
    files.set(`/${page}.html`, { type: "text/html; charset=utf-8", body: html(page) });
  }
  files.set("/blank.html", { type: "text/html; charset=utf-8", body: "<!doctype html><p>elsewhere</p>" });
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const file = files.get(new URL(req.url ?? "/", "http://x").pathname);
    if (!file) return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": file.type }).end(file.body);
  };
  const pages = createServer(handler);
  const widgets = createServer(handler);
  const pageOrigin = await listen(pages, "127.0.0.1");
  // Another origin (another port), same site: the widget runs cross-origin, as on a real host, and keeps
  // its localStorage (Chromium gives a cross-site iframe none, and js-sdk's widget client needs it).
  const widgetOrigin = await listen(widgets, "127.0.0.1");
  const close = (s: Server) =>
    new Promise<void>((resolve) => {
      s.closeAllConnections();
      s.close(() => resolve());
    });
  return {
    pageOrigin,
    widgetOrigin,
    close: async () => void (await Promise.all([close(pages), close(widgets)])),
  };
}

async function measureRtt(url: string): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 9; i++) {
    const t0 = performance.now();
    await (await fetch(`${url}/_matrix/client/versions`)).arrayBuffer();
    samples.push(performance.now() - t0);
  }
  const s = samples.slice(2).sort((a, b) => a - b);
  return s[s.length >> 1];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(pred: () => boolean, timeoutMs: number, what: string, everyMs = 2): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (pred()) return Date.now();
    if (Date.now() - start > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export async function startGhostWorld(options: GhostWorldOptions): Promise<GhostWorld> {
  const hs = await startTestHomeserver({
    rateLimits: { message: null, delayedEventMgmt: null },
    requestLogLimit: 50_000,
  });
  const link = await startFaultyLink({ target: hs.baseUrl });
  link.setLatency(options.rttMs, 0);
  const servers = await pageServers();
  const owner = await hs.createUser("ghost-owner");
  const bob = await hs.createUser("ghost-observer");
  const observer = await syncedClient(hs.baseUrl, bob);
  const browser = await chromium.launch({
    executablePath: options.chromiumPath,
    // Playwright turns the back/forward cache off; a user's browser has it (the restore is tested).
    ignoreDefaultArgs: ["--disable-back-forward-cache"],
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
  });
  const rttMs = await measureRtt(link.url);
  const contexts: BrowserContext[] = [];

  async function device(mode: Mode, impl: Impl, name: string): Promise<GhostDevice> {
    const user: UserCreds = await hs.createUser(name);
    const roomId = await hs.createRoom(owner.accessToken, { name });
    await hs.joinRoom(user.accessToken, roomId);
    await hs.joinRoom(bob.accessToken, roomId);
    await until(() => observer.getRoom(roomId) !== null, 10_000, "the observer to see the room", 5);
    const context = await browser.newContext();
    contexts.push(context);
    const page = await context.newPage();
    const consoleLines: string[] = [];
    page.on("console", (m) => {
      if (m.type() !== "debug" && !m.text().startsWith("[PostmessageTransport]"))
        consoleLines.push(`${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
    const params = new URLSearchParams({
      impl,
      hs: link.url,
      user: user.userId,
      device: user.deviceId,
      token: user.accessToken,
      room: roomId,
      delay: String(options.delayMs),
      widget: servers.widgetOrigin,
    });
    await page.goto(`${servers.pageOrigin}/${mode === "client" ? "client" : "host"}.html?${params}`);
    const callFrame = async () => {
      if (mode === "client") return page.mainFrame();
      await until(
        () => page.frames().some((f) => f.url().startsWith(servers.widgetOrigin)),
        10_000,
        "widget",
      );
      return page.frames().find((f) => f.url().startsWith(servers.widgetOrigin))!;
    };
    const frame = await callFrame();
    try {
      await frame.waitForFunction(() => window.ghostCall?.ready === true, undefined, { timeout: 20_000 });
    } catch (e) {
      throw new Error(
        `${name}'s page did not get ready: ${(e as Error).message}\n${consoleLines.join("\n")}`,
      );
    }
    const stateKey = `_${user.userId}_${user.deviceId}_m.call`;
    const seen = () => rtcMembers(observer, roomId).includes(`${user.userId}|${user.deviceId}`);
    return {
      impl,
      mode,
      userId: user.userId,
      deviceId: user.deviceId,
      roomId,
      stateKey,
      page,
      console: consoleLines,
      seen,
      state: () => frame.evaluate(() => window.ghostCall!.state()),
      close: () => context.close().catch(() => undefined),
      async join() {
        await frame.evaluate(() => window.ghostCall!.join());
        await frame.waitForFunction(() => window.ghostCall!.connected(), undefined, { timeout: 20_000 });
        await until(seen, 10_000, `the observer to list ${name}`);
      },
      async goAway() {
        if (mode === "client") {
          const at = Date.now();
          // As a user closing the tab: the page gets pagehide (and beforeunload) first.
          await page.close({ runBeforeUnload: true });
          return at;
        }
        return page.evaluate(() => {
          const at = Date.now();
          window.ghostHost!.removeIframe();
          return at;
        });
      },
      whenGone: (timeoutMs) => until(() => !seen(), timeoutMs, `the observer to drop ${name}`),
      leftAtServer(since) {
        return hs
          .timeline(roomId)
          .find(
            (e) =>
              e.type === CALL_MEMBER_EVENT_TYPE &&
              e.state_key === stateKey &&
              e.origin_server_ts >= since &&
              Object.keys(e.content ?? {}).length === 0,
          )?.origin_server_ts;
      },
      membership: () => hs.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, stateKey),
      pending: () => hs.pendingDelayedEvents().filter((d) => d.roomId === roomId && d.stateKey === stateKey),
    };
  }

  return {
    hs,
    link,
    observer,
    browser,
    rttMs,
    pageOrigin: servers.pageOrigin,
    device,
    async close() {
      for (const c of contexts) await c.close().catch(() => undefined);
      await browser.close();
      stopClient(observer);
      await servers.close();
      await link.close();
      await hs.close();
    },
  };
}
