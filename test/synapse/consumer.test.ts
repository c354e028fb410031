/**
 * Issue 23's acceptance on real Synapse: the same new project as test/package/consumer.test.ts (the
 * packed package, one npm install, the README's and docs/widget.md's files), with the documented
 * pre-install step (`npx matrixrtc-install-synapse`, and installSynapse() in jest's globalSetup), then
 * the bot, the network-loss test under jest and node:test, and the widget pair in Chromium, each against
 * a real Synapse (MATRIXRTC_TEST_SERVER=synapse), one after the other (each starts its own Synapse).
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  jestSeconds,
  resultOf,
  runBot,
  runJest,
  runNodeTest,
  runWidget,
  setUpConsumer,
  type BotResult,
  type Consumer,
  type WidgetResult,
} from "../package/consumer.js";
import { childEnv, runAsync, type RunResult } from "../package/packing.js";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const EXITS_WITHIN_MS = 5000;
const ON_SYNAPSE = { MATRIXRTC_TEST_SERVER: "synapse" };

type Timed = RunResult & { ms: number; exitAfterLastLineMs?: number };
let consumer: Consumer;
let preinstall: Timed;

beforeAll(async () => {
  consumer = await setUpConsumer();
  if (consumer.install.code !== 0) throw new Error(`npm install failed:\n${consumer.install.out}`);
  // The documented pre-install step, as CI runs it before the tests.
  preinstall = await runAsync(
    join(consumer.dir, "node_modules/.bin/matrixrtc-install-synapse"),
    [],
    consumer.dir,
    {
      timeout: 20 * 60_000,
      env: childEnv(),
    },
  );
}, 25 * 60_000);

afterAll(() => consumer?.close());

describe("a call app's first day, from the packed package, on real Synapse", () => {
  it("npx matrixrtc-install-synapse installs (or finds) Synapse before any test", () => {
    expect(preinstall.code).toBe(0);
    expect(preinstall.stdout).toMatch(
      /^synapse 1\.\d+\.\d+: ready in .* \((cached|installed now), \d+ ms\)$/m,
    );
  });

  it("(a) the README's bot joins, lists the call with itself in it, leaves, and exits by itself", async () => {
    const r = resultOf<BotResult>(await runBot(consumer, consumer.node, ON_SYNAPSE));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`in the call: ${r.userId} (${r.deviceId})`);
    expect(r.stdout).toMatch(/^leave: left$/m);
    expect(r.exitAfterDoneMs).toBeLessThan(EXITS_WITHIN_MS);
    expect(r.membershipAfter).toEqual({});
    expect(r.pendingAfter).toBe(0);
  }, 120_000);

  it("(b) the network-loss test under jest, with the globalSetup pre-install, and jest exits by itself", async () => {
    const jest = await runJest(consumer, ON_SYNAPSE, "jest.synapse.config.js");
    expect(jest.out).toMatch(/Tests:\s+1 passed, 1 total/);
    expect(jest.code).toBe(0);
    expect(jest.out).not.toMatch(/Multiple matrix-js-sdk entrypoints|did not exit|Force exiting/);
    expect(jestSeconds(jest.out)).toBeGreaterThan(14);
    expect(jest.exitAfterLastLineMs).toBeLessThan(EXITS_WITHIN_MS);
  }, 180_000);

  it("(b) the same test under node:test", async () => {
    const run = await runNodeTest(consumer, consumer.node, ON_SYNAPSE);
    expect(run.out).toMatch(/^# pass 1$/m);
    expect(run.code).toBe(0);
    expect(run.exitAfterLastLineMs).toBeLessThan(EXITS_WITHIN_MS);
  }, 180_000);

  it("(c) the widget pair in Chromium: the widget lists itself, no false membership-removed", async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (set CHROMIUM_PATH)`);
    const r = resultOf<WidgetResult>(await runWidget(consumer, ON_SYNAPSE));
    const states = r.lines.filter((l) => l.startsWith("state "));
    expect(r.lines.filter((l) => l.startsWith("pageerror"))).toEqual([]);
    expect(r.listedSelfAfterMs).not.toBeNull();
    expect(r.lines.filter((l) => /membership-removed/.test(l))).toEqual([]);
    expect(states.at(-1)).toBe("state joined");
    expect(r.membershipOnServer).toMatchObject({ device_id: r.deviceId });
    expect(r.pendingOnServer).toBe(1);
  }, 120_000);
});
