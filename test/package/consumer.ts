/**
 * A call app's first day, as a check: a new project outside this repository, one `npm install` of the
 * packed package and its peers (from npm's cache), and nothing else of this repository. Its files are the
 * README's and docs/widget.md's own blocks (marked `<!-- file: NAME -->`), read from the installed
 * package; only the harness scripts that start a server and watch the app are this check's own.
 *
 * Used by test/package/consumer.test.ts (the test homeserver, in `npm test`) and
 * test/synapse/consumer.test.ts (real Synapse, in `npm run test:synapse`).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { childEnv, repo, repoVersion, runAsync, sharedPack, type RunResult } from "./packing.js";

const PKG = "matrixrtc-membership";

/** The files the docs give a new project, and where they are. */
export const DOC_FILES: Record<string, string> = {
  "bot.mjs": "README.md",
  "jest.config.js": "README.md",
  "network-loss.test.ts": "README.md",
  "network-loss.node-test.mjs": "README.md",
  "jest.global-setup.js": "README.md",
  "jest.synapse.config.js": "README.md",
  "widget-host.ts": "docs/widget.md",
  "widget.ts": "docs/widget.md",
};

/** Every `<!-- file: NAME -->` block of a markdown text: the fenced code right after the marker. */
export function docBlocks(markdown: string): Map<string, string> {
  const blocks = new Map<string, string>();
  for (const m of markdown.matchAll(/<!-- file: ([^ ]+) -->\s*```[a-z]*\n([\s\S]*?)^```/gm))
    blocks.set(m[1], m[2]);
  return blocks;
}

export interface Consumer {
  dir: string;
  /** The node that runs the repository's scripts (22), and the machine's Node 20.19+ if it has one. */
  node: string;
  node20?: string;
  install: RunResult & { ms: number };
  close(): void;
}

/** The machine's own Node 20 (≥ 20.19), when it has one beside the repository's Node 22. */
export function findNode20(): string | undefined {
  return ["/usr/bin/node", "/usr/local/bin/node"].find((bin) => {
    if (!existsSync(bin)) return false;
    const [major, minor] = spawnSync(bin, ["-p", "process.versions.node"], { encoding: "utf8" })
      .stdout.trim()
      .split(".")
      .map(Number);
    return major === 20 && minor >= 19;
  });
}

/** Packs (shared), makes the project, installs, writes the docs' files and the harness scripts. */
export async function setUpConsumer(): Promise<Consumer> {
  const { tarball } = await sharedPack();
  const dir = mkdtempSync(join(tmpdir(), "mrtc-consumer-"));
  writeFileSync(
    join(dir, "package.json"),
    JSON.stringify({ name: "first-day", private: true, type: "module" }, null, 2),
  );
  // One install for every check: the package and what its docs tell an app to install, at the versions
  // this repository tests (so npm finds them in its cache), plus what the harness uses (esbuild,
  // playwright-core, for the widget pages).
  const deps = [
    "matrix-js-sdk",
    "matrix-widget-api",
    "jest",
    "ts-jest",
    "typescript",
    "esbuild",
    "playwright-core",
  ].map((name) => `${name}@${repoVersion(name)}`);
  const install = await runAsync(
    "npm",
    ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", tarball, ...deps],
    dir,
    { timeout: 240_000 },
  );
  if (install.code === 0) {
    const installed = join(dir, "node_modules", PKG);
    for (const [file, doc] of Object.entries(DOC_FILES)) {
      const blocks = docBlocks(readFileSync(join(installed, doc), "utf8"));
      const code = blocks.get(file);
      if (code === undefined) throw new Error(`${doc} of the installed package has no block for ${file}`);
      writeFileSync(join(dir, file), code);
    }
    for (const [file, code] of Object.entries(HARNESS)) writeFileSync(join(dir, file), code);
  }
  return {
    dir,
    node: process.execPath,
    node20: findNode20(),
    install,
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A harness's result: its `RESULT {json}` line, parsed. */
export function resultOf<T>(run: RunResult): T {
  const line = run.stdout.split("\n").find((l) => l.startsWith("RESULT "));
  if (!line) throw new Error(`no RESULT line; exit ${run.code}; output:\n${run.out.slice(-4000)}`);
  return JSON.parse(line.slice("RESULT ".length)) as T;
}

/** What check-bot.mjs reports. */
export interface BotResult {
  code: number | null;
  stdout: string;
  stderr: string;
  userId: string;
  deviceId: string;
  /** ms from the bot's "done" line to its exit. */
  exitAfterDoneMs: number;
  /** Its membership in room state after it exited, and its delayed events still pending. */
  membershipAfter: Record<string, unknown> | null;
  pendingAfter: number;
}

export function runBot(c: Consumer, node: string, env: NodeJS.ProcessEnv = {}) {
  return runAsync(c.node, ["check-bot.mjs", node], c.dir, { timeout: 180_000, env: childEnv(env) });
}

/** jest with the README's configuration; `config` picks another config file. */
export function runJest(c: Consumer, env: NodeJS.ProcessEnv = {}, config?: string) {
  return runAsync(c.node, ["node_modules/jest/bin/jest.js", ...(config ? ["-c", config] : [])], c.dir, {
    timeout: 240_000,
    env: childEnv({ NODE_OPTIONS: "--experimental-vm-modules", ...env }),
    // jest's last words; then it should exit (it would wait for leftover timers otherwise).
    lastLine: /Ran all test suites/,
  });
}

export function runNodeTest(c: Consumer, node: string, env: NodeJS.ProcessEnv = {}) {
  return runAsync(node, ["--test", "network-loss.node-test.mjs"], c.dir, {
    timeout: 180_000,
    env: childEnv(env),
    lastLine: /^# duration_ms /m,
  });
}

/** What check-widget.mjs reports. */
export interface WidgetResult {
  userId: string;
  deviceId: string;
  /** Console lines of both pages ("state joined", "members @u|D"). */
  lines: string[];
  /** When the widget first listed itself, ms after the page opened. */
  listedSelfAfterMs: number | null;
  membershipOnServer: Record<string, unknown> | null;
  pendingOnServer: number;
}

export function runWidget(c: Consumer, env: NodeJS.ProcessEnv = {}) {
  return runAsync(c.node, ["check-widget.mjs"], c.dir, { timeout: 180_000, env: childEnv(env) });
}

/** Seconds jest reports for its run ("Time: 16.07 s"). */
export function jestSeconds(out: string): number | undefined {
  const m = /Time:\s+([\d.]+) s/.exec(out);
  return m ? Number(m[1]) : undefined;
}

// ------------------------------------------------------------------------------------------------------
// The harness: this check's own scripts, run inside the consumer project with its installed packages.
// ------------------------------------------------------------------------------------------------------

/** A server for the harness: the test homeserver, or real Synapse with MATRIXRTC_TEST_SERVER=synapse. */
const SERVER = `
export async function startServer() {
  if (process.env.MATRIXRTC_TEST_SERVER === "synapse") {
    const { startSynapse } = await import("matrixrtc-membership/testing/synapse");
    return startSynapse();
  }
  const { startTestHomeserver } = await import("matrixrtc-membership/testing");
  return startTestHomeserver();
}
`;

const CHECK_BOT = `
// Starts a server, gives bot.mjs a user and a room, and watches it: its output, when it exits after
// saying "done", and what the server holds for it afterwards.
import { spawn } from "node:child_process";
import { startServer } from "./harness-server.mjs";

const node = process.argv[2];
const hs = await startServer();
try {
  const bot = await hs.createUser("bot");
  const roomId = await hs.createRoom(bot.accessToken);
  let doneAt;
  let stdout = "";
  let stderr = "";
  const child = spawn(node, ["bot.mjs"], {
    env: { ...process.env, HOMESERVER: hs.baseUrl, TOKEN: bot.accessToken, ROOM: roomId },
  });
  child.stdout.on("data", (d) => {
    stdout += d;
    if (doneAt === undefined && /^done$/m.test(stdout)) doneAt = Date.now();
  });
  child.stderr.on("data", (d) => (stderr += d));
  // Bounded: a bot that hangs after its work is killed at 150 s, and its exit is then far too late.
  const killer = setTimeout(() => child.kill("SIGKILL"), 150_000);
  const code = await new Promise((resolve) => child.on("close", (c) => resolve(c)));
  clearTimeout(killer);
  const exitedAt = Date.now();
  const stateKey = "_" + bot.userId + "_" + bot.deviceId + "_m.call";
  console.log("RESULT " + JSON.stringify({
    code,
    stdout,
    stderr,
    userId: bot.userId,
    deviceId: bot.deviceId,
    exitAfterDoneMs: doneAt === undefined ? null : exitedAt - doneAt,
    membershipAfter: hs.stateContent(roomId, "org.matrix.msc3401.call.member", stateKey) ?? null,
    pendingAfter: hs.pendingDelayedEvents().filter((e) => e.roomId === roomId).length,
  }));
} finally {
  await hs.close();
}
`;

const CHECK_WIDGET = `
// Bundles the docs' host and widget pages, serves them on two origins, and opens the host in Chromium
// with a user of a fresh server: the widget joins and lists the call; its console lines say what it saw.
import { build } from "esbuild";
import { createServer } from "node:http";
import { chromium } from "playwright-core";
import { startServer } from "./harness-server.mjs";

const bundle = async (entry) =>
  (await build({
    entryPoints: [entry], bundle: true, platform: "browser", format: "esm", target: "es2022", write: false,
    logLevel: "silent", define: { global: "globalThis", "process.env.NODE_ENV": '"production"' },
  })).outputFiles[0].contents;
const pages = {
  "/host.html": "<!doctype html><meta charset=utf-8><title>host</title><body><script type=module src=/host.js></script>",
  "/widget.html": "<!doctype html><meta charset=utf-8><title>widget</title><body><script type=module src=/widget.js></script>",
  "/host.js": await bundle("widget-host.ts"),
  "/widget.js": await bundle("widget.ts"),
};
const serve = (host) => new Promise((resolve) => {
  const server = createServer((req, res) => {
    const body = pages[new URL(req.url, "http://x").pathname];
    if (body === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": req.url.endsWith(".js") ? "text/javascript" : "text/html" }).end(body);
  });
  server.listen(0, host, () => resolve(server));
});
const hostServer = await serve("127.0.0.1");
const widgetServer = await serve("localhost");
const hs = await startServer();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic"],
});
try {
  const alice = await hs.createUser("alice");
  const roomId = await hs.createRoom(alice.accessToken);
  const page = await browser.newPage();
  const lines = [];
  const opened = Date.now();
  let listedSelfAfterMs = null;
  const me = alice.userId + "|" + alice.deviceId;
  page.on("console", (m) => {
    const text = m.text();
    if (text.startsWith("[PostmessageTransport]")) return;
    lines.push(text);
    if (listedSelfAfterMs === null && text.startsWith("members ") && text.split(" ").includes(me))
      listedSelfAfterMs = Date.now() - opened;
  });
  page.on("pageerror", (e) => lines.push("pageerror: " + e.message));
  const query = new URLSearchParams({
    hs: hs.baseUrl, token: alice.accessToken, user: alice.userId, device: alice.deviceId, room: roomId,
    widget: "http://localhost:" + widgetServer.address().port,
  });
  await page.goto("http://127.0.0.1:" + hostServer.address().port + "/host.html?" + query);
  const deadline = Date.now() + 20_000;
  while (listedSelfAfterMs === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  // Long enough for a false removal to show: the manager's grace is 1 s, a sync or two on top.
  await new Promise((r) => setTimeout(r, 4000));
  const stateKey = "_" + alice.userId + "_" + alice.deviceId + "_m.call";
  console.log("RESULT " + JSON.stringify({
    userId: alice.userId,
    deviceId: alice.deviceId,
    lines,
    listedSelfAfterMs,
    membershipOnServer: hs.stateContent(roomId, "org.matrix.msc3401.call.member", stateKey) ?? null,
    pendingOnServer: hs.pendingDelayedEvents().filter((e) => e.roomId === roomId).length,
  }));
} finally {
  await browser.close();
  hostServer.closeAllConnections();
  hostServer.close();
  widgetServer.closeAllConnections();
  widgetServer.close();
  await hs.close();
}
`;

const HARNESS: Record<string, string> = {
  "harness-server.mjs": SERVER,
  "check-bot.mjs": CHECK_BOT,
  "check-widget.mjs": CHECK_WIDGET,
};

export { repo };
