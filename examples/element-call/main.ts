/**
 * `npm run demo:element-call`: the real Element Call (the published embedded build) joins a call through
 * our widget host on the embedded test homeserver. Open the printed URL in a browser (allow camera and
 * microphone); one line per request to the homeserver and the stub LiveKit token service, and the
 * server's side (membership in room state, the delayed leave's deadline, the leave firing). The host
 * page's "Hang up" sends `im.vector.hangup`; "Remove the widget" does what a crashed tab does, and the
 * server fires the delayed leave one delay later. Ctrl-C stops.
 *
 * `--headless out/element-call.png`: drive Debian's Chromium itself (playwright-core), screenshot the
 * call, hang up, and exit 0 when Element Call joined and left as expected (1 otherwise).
 * `--delay-ms N`: Element Call's delayed leave (default 6000; Element Call's own default is 18000).
 */
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { CALL_MEMBER_EVENT_TYPE } from "../../src/index.js";
import {
  startTestHomeserver,
  startTestSfuAuth,
  type TestHomeserver,
  type TestSfuAuth,
} from "../../src/testing/index.js";
import { startElementCallServers } from "./server.js";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

/** Prints new requests and state changes as they happen, in time order, with seconds since the start. */
function watch(hs: TestHomeserver, sfu: TestSfuAuth, roomId: string, stateKey: string, t0: number) {
  const at = (ms: number) => `${((ms - t0) / 1000).toFixed(3).padStart(8)}s`;
  let seenHs = 0;
  let seenSfu = 0;
  let due: number | undefined;
  let inCall = false;
  let livekitNoted = false;
  const tick = () => {
    const lines: [number, string][] = [];
    for (; seenHs < hs.requests.length; seenHs++) {
      const r = hs.requests[seenHs];
      if (r.method === "OPTIONS") continue;
      const path = decodeURIComponent(
        r.path.replace(/^\/_matrix\/client\/(v3|unstable\/org\.matrix\.msc4140)/, ""),
      );
      lines.push([r.ts, `server  ${r.method} ${path} → ${r.status}  (${r.route})`]);
    }
    for (; seenSfu < sfu.requests.length; seenSfu++) {
      const r = sfu.requests[seenSfu];
      if (r.path.startsWith("/livekit")) {
        if (!livekitNoted)
          lines.push([
            r.at,
            "sfu     Element Call tries LiveKit: no SFU runs here, so its media never connects",
          ]);
        livekitNoted = true;
        continue;
      }
      const answer = r.status === 200 ? "200 { url, jwt }" : String(r.status);
      lines.push([r.at, `sfu     ${r.method} ${r.path} → ${answer}  (stub LiveKit token service)`]);
    }
    const now = Date.now();
    const pending = hs.pendingDelayedEvents().find((d) => d.roomId === roomId && d.stateKey === stateKey);
    if (pending && pending.sendTs !== due)
      lines.push([
        now,
        `server  delayed leave pending: fires at ${at(pending.sendTs).trim()} unless restarted`,
      ]);
    due = pending?.sendTs;
    const member = hs.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, stateKey);
    const joined = Object.keys(member ?? {}).length > 0;
    if (joined !== inCall)
      lines.push([
        now,
        joined
          ? "server  Element Call's membership is in room state: in the call"
          : "server  membership is {}: out of the call",
      ]);
    inCall = joined;
    for (const [ts, line] of lines.sort((a, b) => a[0] - b[0])) console.log(`${at(ts)}  ${line}`);
  };
  const timer = setInterval(tick, 50);
  return { stop: () => clearInterval(timer), inCall: () => inCall, tick };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      headless: { type: "string" },
      "delay-ms": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log("usage: npm run demo:element-call [-- --delay-ms 6000] [-- --headless out/element-call.png]");
    return 0;
  }
  const delayMs = Number(values["delay-ms"] ?? 6000);
  if (!Number.isInteger(delayMs) || delayMs < 1000 || delayMs > 600_000) {
    console.error("--delay-ms must be an integer from 1000 to 600000");
    return 2;
  }
  const t0 = Date.now();
  const hs = await startTestHomeserver({ rateLimits: { message: null, delayedEventMgmt: null } });
  const alice = await hs.createUser("alice");
  const roomId = await hs.createRoom(alice.accessToken, { name: "Element Call demo" });
  const sfu = await startTestSfuAuth();
  const servers = await startElementCallServers({ delayMs });
  const url = servers.hostUrl({ homeserver: hs.baseUrl, ...alice, roomId, sfu: sfu.url });
  const stateKey = `_${alice.userId}_${alice.deviceId}_m.call`;
  const closeAll = () => Promise.all([servers.close(), sfu.close(), hs.close()]);

  console.log(`test homeserver ${hs.baseUrl}, room ${roomId}, ${alice.userId} device ${alice.deviceId}`);
  console.log(
    `stub LiveKit token service ${sfu.url}; Element Call ${servers.elementCallOrigin} (delayed leave ${delayMs} ms)`,
  );
  const watcher = watch(hs, sfu, roomId, stateKey, t0);

  if (values.headless === undefined) {
    console.log(`\nopen: ${url}\n(Ctrl-C stops)\n`);
    await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
    watcher.stop();
    await closeAll();
    return 0;
  }

  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"],
  });
  const until = async (pred: () => boolean, ms: number) => {
    const end = Date.now() + ms;
    while (!pred() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    return pred();
  };
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.goto(url);
    if (!(await until(() => watcher.inCall(), 30_000)))
      throw new Error("Element Call did not join within 30 s");
    const restarts = () =>
      hs.requests.filter((r) => r.route === "delayed.restart" && r.status === 200).length;
    if (!(await until(() => restarts() >= 3, delayMs * 2)))
      throw new Error("Element Call did not restart its delayed leave");
    // Element Call hides its controls until the pointer moves, as a person's would.
    await page.mouse.move(500, 400);
    await page.mouse.move(540, 430, { steps: 5 });
    await new Promise((r) => setTimeout(r, 1000));
    await mkdir(dirname(values.headless), { recursive: true });
    await page.screenshot({ path: values.headless });
    console.log(
      `${((Date.now() - t0) / 1000).toFixed(3).padStart(8)}s  host    screenshot: ${values.headless}`,
    );
    await page.evaluate(() => window.elementCallHost!.hangup());
    console.log(
      `${((Date.now() - t0) / 1000).toFixed(3).padStart(8)}s  host    im.vector.hangup sent to Element Call`,
    );
    if (!(await until(() => !watcher.inCall(), 10_000)))
      throw new Error("Element Call did not leave on hangup");
    watcher.tick();
    console.log(
      "\ndemo passed: Element Call joined through our host, heartbeated, and left on the host's hangup",
    );
    return 0;
  } catch (e) {
    console.error(`demo FAILED: ${(e as Error).message}`);
    return 1;
  } finally {
    watcher.stop();
    await browser.close();
    await closeAll();
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error("demo crashed:", e);
    process.exit(1);
  },
);
