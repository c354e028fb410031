/**
 * Issue 23's acceptance, on the test homeserver: a new project outside the repository installs the
 * packed package (shared pack, one npm install) and runs what the README and docs/widget.md give it,
 * with nothing else of this repository:
 * (a) a bot that joins, waits with whenConnected, lists the call's members and exits by itself (on
 *     Node 22, and on the machine's Node 20 when it has one);
 * (b) the network-loss test under jest with the documented preset (no forceExit) and under node:test;
 * (c) a widget host and a widget in Chromium: the widget lists the call's members, itself included,
 *     and never reports a false `membership-removed`.
 * Each is checked on what the server holds afterwards, not only on what the app printed.
 * The same checks run on real Synapse in test/synapse/consumer.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { existsSync } from "node:fs";
import { relative } from "node:path";
import {
  jestSeconds,
  repo,
  resultOf,
  runBot,
  runJest,
  runNodeTest,
  runWidget,
  setUpConsumer,
  type BotResult,
  type Consumer,
  type WidgetResult,
} from "./consumer.js";
import type { RunResult } from "./packing.js";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const REQUIRED = process.env.REQUIRE_BROWSER_TESTS === "1";
/** A process that exits by itself does so right after its work; matrix-js-sdk's leftovers held it 110 s. */
const EXITS_WITHIN_MS = 5000;

let consumer: Consumer;
type Timed = RunResult & { ms: number; exitAfterLastLineMs?: number };
let bot22: Timed;
let bot20: Timed | undefined;
let jest: Timed;
let nodeTest22: Timed;
let nodeTest20: Timed | undefined;
let widget: Timed | undefined;

beforeAll(async () => {
  const started = Date.now();
  consumer = await setUpConsumer();
  const setUp = Date.now();
  if (consumer.install.code !== 0) return;
  // All at once: they mostly wait on real time (a 10 s delay, a 15 s cut).
  [bot22, bot20, jest, nodeTest22, nodeTest20, widget] = await Promise.all([
    runBot(consumer, consumer.node),
    consumer.node20 ? runBot(consumer, consumer.node20) : undefined,
    runJest(consumer),
    runNodeTest(consumer, consumer.node),
    consumer.node20 ? runNodeTest(consumer, consumer.node20) : undefined,
    HAVE_CHROMIUM || REQUIRED ? runWidget(consumer) : undefined,
  ]);
  console.log(
    `consumer checks: pack + project ${setUp - started - consumer.install.ms} ms, npm install ` +
      `${consumer.install.ms} ms, the runs side by side ${Date.now() - setUp} ms`,
  );
}, 300_000);

afterAll(() => consumer?.close());

describe("a call app's first day, from the packed package (test homeserver)", () => {
  it("installs into a new project outside the repository", () => {
    expect(consumer.install.out).not.toMatch(/ERR!/);
    expect(consumer.install.code).toBe(0);
    expect(relative(repo, consumer.dir).startsWith("..")).toBe(true);
  });

  const checkBot = (run: Timed | undefined) => {
    const r = resultOf<BotResult>(run!);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    // It listed the call with itself in it, left, and said so.
    expect(r.stdout).toContain(`in the call: ${r.userId} (${r.deviceId})`);
    expect(r.stdout).toMatch(/^leave: left$/m);
    // Its trace: one line per request and answer, no delay id.
    expect(r.stdout).toMatch(/^→ #\d+ schedule the delayed leave \(delay 10000 ms, timeout \d+ ms\)$/m);
    expect(r.stdout).toMatch(/^← #\d+ send leave#1 ok in \d+ ms$/m);
    expect(r.stdout).not.toMatch(/syd_|delay_id/);
    // It exited by itself right after its work (a leftover js-sdk timer would hold it for 110 s).
    expect(r.exitAfterDoneMs).not.toBeNull();
    expect(r.exitAfterDoneMs).toBeLessThan(EXITS_WITHIN_MS);
    // The server: its membership is gone and nothing of it is pending.
    expect(r.membershipAfter).toEqual({});
    expect(r.pendingAfter).toBe(0);
  };

  it("(a) the README's bot joins, lists the call with itself in it, leaves, and exits by itself", () => {
    checkBot(bot22);
  });

  it("(a) the same bot on the machine's Node 20, when it has one (≥ 20.19)", () => {
    if (!consumer.node20) {
      console.warn("no Node 20.19+ at /usr/bin/node or /usr/local/bin/node: the bot ran on Node 22 only");
      return;
    }
    checkBot(bot20);
  });

  it("(b) the README's network-loss test passes under jest with the preset, and jest exits by itself", () => {
    expect(jest.out).toMatch(/Tests:\s+1 passed, 1 total/);
    expect(jest.code).toBe(0);
    expect(jest.out).not.toMatch(/did not exit|Force exiting|failed to exit gracefully/);
    // matrix-js-sdk's logs are quiet; the preset's environment and setup ran.
    expect(jest.out).not.toMatch(/FetchHttpApi|sync Getting/);
    // It ran the whole 15 s story, and exited right after its summary.
    expect(jestSeconds(jest.out)).toBeGreaterThan(14);
    expect(jest.exitAfterLastLineMs).toBeLessThan(EXITS_WITHIN_MS);
  });

  const checkNodeTest = (run: Timed | undefined) => {
    expect(run!.out).toMatch(/^# pass 1$/m);
    expect(run!.out).toMatch(/^# fail 0$/m);
    expect(run!.code).toBe(0);
    expect(Number(/^# duration_ms ([\d.]+)/m.exec(run!.out)?.[1])).toBeGreaterThan(14_000);
    expect(run!.exitAfterLastLineMs).toBeLessThan(EXITS_WITHIN_MS);
  };

  it("(b) the same test under node:test passes and the run ends with it", () => {
    checkNodeTest(nodeTest22);
  });

  it("(b) node:test on the machine's Node 20, when it has one", () => {
    if (!consumer.node20) return;
    checkNodeTest(nodeTest20);
  });

  (HAVE_CHROMIUM || REQUIRED ? it : it.skip)(
    "(c) docs/widget.md's host and widget in Chromium: the widget lists itself, no false membership-removed",
    () => {
      if (!HAVE_CHROMIUM) throw new Error(`REQUIRE_BROWSER_TESTS=1 but there is no Chromium at ${CHROMIUM}`);
      const r = resultOf<WidgetResult>(widget!);
      const states = r.lines.filter((l) => l.startsWith("state "));
      expect(r.lines.filter((l) => l.startsWith("pageerror"))).toEqual([]);
      expect(states).toContain("state joined");
      expect(r.listedSelfAfterMs).not.toBeNull();
      expect(r.lines.filter((l) => /membership-removed/.test(l))).toEqual([]);
      expect(states.at(-1)).toBe("state joined");
      // The server agrees: the membership is there, with its delayed leave behind it.
      expect(r.membershipOnServer).toMatchObject({ device_id: r.deviceId });
      expect(r.pendingOnServer).toBe(1);
    },
  );
});
