/**
 * Leave at once when the app goes away (issue 22 part 1), in Debian's Chromium (playwright-core, never a
 * downloaded browser): call pages on the test homeserver behind a link adding 50 ms per round trip,
 * cross-origin to it, Element Call's 10 s delay. Ours beside matrix-js-sdk's own manager in the same
 * run, each in its own room; what counts is what the server holds (room state, pending delayed events,
 * its request log) and when another user's synced js-sdk MatrixRTCSession stops listing the device.
 *
 * - tab closed (`page.close({ runBeforeUnload: true })`, as a user closes it): ours fires its delayed
 *   leave from `pagehide` with a keepalive request; js-sdk's waits for the server to fire it;
 * - widget removed (the host takes the iframe out and does nothing itself): ours fires it through the
 *   widget API from the widget's own `pagehide`; js-sdk's (createRoomWidgetClient, as Element Call)
 *   waits for the delay;
 * - navigating away and back: the leave goes on `pagehide`, and a back/forward-cache restore joins again.
 * The figures are the bench's (`npm run bench`, "ghost on tab close / widget removal"); here the bounds
 * are loose: ours well within one delay, js-sdk's at least half of it.
 *
 * Without Chromium the suite is skipped with a message; with REQUIRE_BROWSER_TESTS=1 (CI) it fails.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { existsSync } from "node:fs";
import { startGhostWorld, type GhostDevice, type GhostWorld } from "./ghost/world.js";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const REQUIRED = process.env.REQUIRE_BROWSER_TESTS === "1";
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const DELAY = 10_000;
const RTT = 50;

if (!HAVE_CHROMIUM && !REQUIRED)
  console.warn(`Skipping the ghost browser tests: no Chromium at ${CHROMIUM} (see widget.browser.test.ts).`);

describe("browser: ghost tests need Chromium when required", () => {
  it(`finds Chromium at ${CHROMIUM} (REQUIRE_BROWSER_TESTS=${REQUIRED ? "1" : "unset"})`, () => {
    if (REQUIRED && !HAVE_CHROMIUM)
      throw new Error(`REQUIRE_BROWSER_TESTS=1 but there is no Chromium at ${CHROMIUM} (set CHROMIUM_PATH)`);
    expect(true).toBe(true);
  });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

(HAVE_CHROMIUM ? describe : describe.skip)("browser: leave at once when the app goes away", () => {
  let world: GhostWorld;

  beforeAll(async () => {
    world = await startGhostWorld({ rttMs: RTT, delayMs: DELAY, chromiumPath: CHROMIUM });
  }, 60_000);
  afterAll(async () => {
    await world?.close();
  });

  const sendsBy = (d: GhostDevice) =>
    world.hs.requests.filter((r) => r.userId === d.userId && r.route.startsWith("delayed.send"));

  /** On failure, show what the pages said. */
  async function explained<T>(devices: GhostDevice[], run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      const consoles = devices.map((d) => `${d.impl} ${d.mode}:\n${d.console.join("\n")}`).join("\n");
      throw new Error(`${(e as Error).message}\n${consoles}`);
    }
  }

  async function compare(mode: "client" | "widget"): Promise<void> {
    const [ours, sdk] = await Promise.all([
      world.device(mode, "ours", `ours-${mode}`),
      world.device(mode, "js-sdk", `sdk-${mode}`),
    ]);
    await explained([ours, sdk], async () => {
      await Promise.all([ours.join(), sdk.join()]);
      // (with the device's own state, should it be degraded: joined without a delayed leave)
      expect({ pending: ours.pending().length, state: await ours.state() }).toMatchObject({ pending: 1 });
      expect({ pending: sdk.pending().length, state: await sdk.state() }).toMatchObject({ pending: 1 });
      await sleep(1000); // past the restart both send right after joining

      const [oursAt, sdkAt] = await Promise.all([ours.goAway(), sdk.goAway()]);
      const oursGone = await ours.whenGone(DELAY / 2);
      // Ours: one round trip after the page went, not one delay.
      expect(oursGone - oursAt).toBeLessThan(DELAY / 5);
      const oursServerAt = ours.leftAtServer(oursAt);
      expect(oursServerAt).toBeDefined();
      expect(oursServerAt! - oursAt).toBeLessThan(DELAY / 5);
      expect(ours.membership()).toEqual({});
      // Nothing left to clean on the next page load: no delayed leave of ours is pending.
      expect(ours.pending()).toEqual([]);
      // Client mode: the token-less send (no CORS preflight) fired it, the authenticated one (a round trip
      // later, after its preflight) found it gone. Widget mode: the host's one send.
      const oursSends = () =>
        world.hs.requests
          .filter((r) => r.ts >= oursAt && r.route.startsWith("delayed.send"))
          .filter((r) => r.userId === ours.userId || r.userId === undefined)
          .map((r) => `${r.status} ${r.userId ? "with token" : "without token"}`)
          .sort();
      const expected = mode === "client" ? ["200 without token", "404 with token"] : ["200 with token"];
      await sleep(3 * RTT);
      expect(oursSends()).toEqual(expected);
      // js-sdk's: nothing sent when the page went; the server fired its leave at its time.
      const sdkGone = await sdk.whenGone(DELAY + 2000);
      expect(sdkGone - sdkAt).toBeGreaterThan(DELAY / 2);
      expect(sendsBy(sdk)).toEqual([]);
      expect(sdk.membership()).toEqual({});
      expect(sdk.pending()).toEqual([]);
      expect(ours.console.filter((l) => l.startsWith("pageerror"))).toEqual([]);
    });
  }

  it("tab closed → others see ours leave within a round trip; js-sdk's waits for its delay", async () => {
    await compare("client");
  }, 60_000);

  it("widget removed → others see ours leave within a round trip (the widget's own pagehide); js-sdk's waits", async () => {
    await compare("widget");
  }, 60_000);

  it("navigating away leaves at once; coming back from the back/forward cache joins again", async () => {
    const d = await world.device("client", "ours", "ours-nav");
    await explained([d], async () => {
      await d.join();
      const at = Date.now();
      await d.page.goto(`${world.pageOrigin}/blank.html`);
      await d.whenGone(DELAY / 2);
      expect(d.leftAtServer(at)! - at).toBeLessThan(DELAY / 5);
      expect(d.pending()).toEqual([]);
      // A restore from the cache fires pageshow, not load.
      await d.page.goBack({ waitUntil: "commit" });
      await d.page.waitForFunction(() => (window.ghostCall?.events.length ?? 0) >= 3, undefined, {
        timeout: 10_000,
      });
      const events = await d.page.evaluate(() => window.ghostCall?.events ?? []);
      // The first load, the navigation away into the cache, the restore: the same page, still running.
      expect(events).toEqual([
        "pageshow persisted=false",
        "pagehide persisted=true",
        "pageshow persisted=true",
      ]);
      await d.page.waitForFunction(() => window.ghostCall!.connected(), undefined, { timeout: 10_000 });
      await waitSeen(d);
      expect(d.pending()).toHaveLength(1);
      expect(Object.keys(d.membership() ?? {}).length).toBeGreaterThan(0);
    });
  }, 60_000);

  async function waitSeen(d: GhostDevice): Promise<void> {
    const start = Date.now();
    while (!d.seen()) {
      if (Date.now() - start > 5000) throw new Error("the observer does not list the device again");
      await sleep(10);
    }
  }
});
