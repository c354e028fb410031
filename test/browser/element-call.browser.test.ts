/**
 * The real Element Call widget (the published embedded build, `@element-hq/element-call-embedded`, a
 * pinned devDependency) joins a call through our widget host, in Debian's Chromium (playwright-core,
 * never a downloaded browser). The host page (localhost:A) runs ClientWidgetApi with our
 * DelayedEventWidgetDriver on a MatrixClient against the test homeserver; Element Call runs in an
 * iframe on localhost:B (same site, or Chromium gives it no localStorage) with a config.json that makes
 * its delayed leave 3 s; its LiveKit token service is the testing kit's stub. Assertions are on the
 * homeserver (room state, pending delayed events, request log), the token service's log, and what a
 * second user's synced client sees through our callMembers$ and through js-sdk's MatrixRTCSession.
 *
 * Without Chromium the suite is skipped with a message; with REQUIRE_BROWSER_TESTS=1 (CI) it fails.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { existsSync } from "node:fs";
import type { MatrixClient } from "matrix-js-sdk";
import { chromium, type Browser, type Page } from "playwright-core";
import type { Subscription } from "rxjs";
import { CALL_MEMBER_EVENT_TYPE, callMembers$, type CallMember } from "../../src/index.js";
import {
  startTestHomeserver,
  startTestSfuAuth,
  type TestHomeserver,
  type TestSfuAuth,
} from "../../src/testing/index.js";
import { callWidgetCapabilities } from "../../src/widget-host/index.js";
import { startElementCallServers, type ElementCallServers } from "../../examples/element-call/server.js";
import { rtcMembers, stopClient, syncedClient, waitFor, type UserCreds } from "../helpers/matrix.js";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const REQUIRED = process.env.REQUIRE_BROWSER_TESTS === "1";
const HAVE_CHROMIUM = existsSync(CHROMIUM);
/** Element Call's delayed leave (its config.json); it restarts it every DELAY / 4. */
const DELAY = 3000;

if (!HAVE_CHROMIUM && !REQUIRED)
  console.warn(
    `Skipping the Element Call browser test: no Chromium at ${CHROMIUM} (see widget.browser.test.ts).`,
  );

describe("browser: Element Call needs Chromium when required", () => {
  it(`finds Chromium at ${CHROMIUM} (REQUIRE_BROWSER_TESTS=${REQUIRED ? "1" : "unset"})`, () => {
    if (REQUIRED && !HAVE_CHROMIUM)
      throw new Error(`REQUIRE_BROWSER_TESTS=1 but there is no Chromium at ${CHROMIUM} (set CHROMIUM_PATH)`);
    expect(true).toBe(true);
  });
});

(HAVE_CHROMIUM ? describe : describe.skip)(
  "browser: the real Element Call joins through our widget host",
  () => {
    let hs: TestHomeserver;
    let sfu: TestSfuAuth;
    let servers: ElementCallServers;
    let browser: Browser;
    let page: Page;
    let roomId: string;
    let alice: UserCreds;
    let bob: MatrixClient;
    let ours: CallMember[] | undefined;
    let subscription: Subscription;
    const consoleLines: string[] = [];

    beforeAll(async () => {
      hs = await startTestHomeserver({ rateLimits: { message: null, delayedEventMgmt: null } });
      alice = await hs.createUser("alice");
      const bobCreds = await hs.createUser("bob");
      roomId = await hs.createRoom(alice.accessToken);
      await hs.joinRoom(bobCreds.accessToken, roomId);
      [sfu, servers, bob, browser] = await Promise.all([
        startTestSfuAuth(),
        startElementCallServers({ delayMs: DELAY }),
        syncedClient(hs.baseUrl, bobCreds),
        chromium.launch({
          executablePath: CHROMIUM,
          args: [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
            // Element Call asks for camera and microphone: grant them, and give it fake ones.
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
          ],
        }),
      ]);
      // Bob, another user in the room, watches the call with our observer.
      subscription = callMembers$(bob, { roomId }).subscribe((members) => (ours = members));
      page = await browser.newPage();
      page.on("console", (m) => {
        if (m.type() === "error" || m.type() === "warning") consoleLines.push(`${m.type()}: ${m.text()}`);
      });
      page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
    }, 30_000);

    afterAll(async () => {
      subscription?.unsubscribe();
      if (bob) stopClient(bob);
      await browser?.close();
      await servers?.close();
      await sfu?.close();
      await hs?.close();
    });

    const stateKey = () => `_${alice.userId}_${alice.deviceId}_m.call`;
    const membership = () => hs.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, stateKey());
    const joinedOnServer = () => Object.keys(membership() ?? {}).length > 0;
    const pending = () =>
      hs.pendingDelayedEvents().filter((d) => d.roomId === roomId && d.stateKey === stateKey());
    const aliceRequests = (since = 0) =>
      hs.requests.filter((r) => r.userId === alice.userId && r.ts >= since && r.method !== "OPTIONS");
    const device = () => `${alice.userId}|${alice.deviceId}`;
    const oursSee = () => (ours ?? []).map((m) => `${m.userId}|${m.deviceId}`);
    const jsSdkSees = () => rtcMembers(bob, roomId);

    /** Wait on the server; show the browser's errors and warnings when it does not happen. */
    async function until(pred: () => boolean, ms: number, what: string): Promise<number> {
      try {
        return await waitFor(pred, ms, what);
      } catch (e) {
        throw new Error(`${(e as Error).message}\nbrowser console:\n${consoleLines.slice(-40).join("\n")}`);
      }
    }

    async function openHost(): Promise<void> {
      await page.goto(servers.hostUrl({ homeserver: hs.baseUrl, ...alice, roomId, sfu: sfu.url }));
      await until(joinedOnServer, 20_000, "Element Call's membership in room state");
    }

    it("joins: host policy, MSC4515 transport, OpenID, token service, then a delayed leave and the membership", async () => {
      const opened = Date.now();
      await openHost();

      // What Element Call wrote, under this device's state key.
      expect(membership()).toMatchObject({
        application: "m.call",
        call_id: "",
        scope: "m.room",
        device_id: alice.deviceId,
        focus_active: { type: "livekit", focus_selection: "multi_sfu" },
        foci_preferred: [{ type: "livekit", livekit_service_url: sfu.url, livekit_alias: roomId }],
      });
      expect(pending()).toHaveLength(1);
      expect(pending()[0]).toMatchObject({ delayMs: DELAY, content: {} });

      // The order on the server: an OpenID token, the delayed leave, then the membership.
      const routes = aliceRequests(opened).map((r) => r.route);
      const openid = routes.indexOf("openid");
      const delayed = routes.indexOf("state.put.delayed");
      const put = routes.indexOf("state.put");
      expect(openid).toBeGreaterThanOrEqual(0);
      expect(delayed).toBeGreaterThan(openid);
      expect(put).toBeGreaterThan(delayed);

      // The token service was asked with that OpenID token before the membership went out.
      const asked = sfu.requests.filter((r) => r.path === "/sfu/get" || r.path === "/get_token");
      expect(asked.length).toBeGreaterThanOrEqual(1);
      expect(asked[0].body).toMatchObject({
        room: roomId,
        device_id: alice.deviceId,
        openid_token: { token_type: "Bearer", matrix_server_name: hs.serverName },
      });
      const membershipPut = aliceRequests(opened).find((r) => r.route === "state.put")!;
      expect(asked[0].at).toBeLessThanOrEqual(membershipPut.ts);
      expect(sfu.requests.some((r) => r.path === "/delegate_delayed_leave")).toBe(true);

      // The host approved only its policy: what a call widget needs, not all Element Call asked for.
      const host = await page.evaluate(() => window.elementCallHost!);
      const policy = new Set(
        callWidgetCapabilities({ roomId, userId: alice.userId, deviceId: alice.deviceId }),
      );
      expect(host.capabilities.approved.every((c) => policy.has(c))).toBe(true);
      expect(host.capabilities.approved.length).toBeLessThan(host.capabilities.requested.length);
      expect(host.capabilities.approved).not.toContain(
        `org.matrix.msc2762.send.state_event:${CALL_MEMBER_EVENT_TYPE}#${alice.userId}`,
      );
      expect(host.capabilities.approved).toContain("org.matrix.msc4515.rtc_transports");
      // Element Call's own actions reached the host's hooks.
      expect(host.actions).toEqual(expect.arrayContaining(["io.element.join", "set_always_on_screen:true"]));

      // Another user's client lists Element Call's device: our observer and js-sdk's MatrixRTCSession.
      await until(() => oursSee().includes(device()), 5000, "our callMembers$ to list Element Call");
      await until(
        () => jsSdkSees().includes(device()),
        5000,
        "js-sdk's MatrixRTCSession to list Element Call",
      );
    }, 40_000);

    it("restarts its pending delayed leave while in the call", async () => {
      const first = pending()[0].sendTs;
      const since = Date.now();
      await until(
        () => (pending()[0]?.sendTs ?? 0) >= first + DELAY / 2,
        DELAY * 2,
        "restarts moving the deadline",
      );
      expect(aliceRequests(since).filter((r) => r.route === "delayed.restart").length).toBeGreaterThanOrEqual(
        2,
      );
      expect(pending()).toHaveLength(1);
      expect(joinedOnServer()).toBe(true);
    }, 15_000);

    it("leaves on the host's im.vector.hangup: `{}` and nothing pending", async () => {
      const since = Date.now();
      await page.evaluate(() => window.elementCallHost!.hangup());
      await until(
        () => !joinedOnServer() && pending().length === 0,
        5000,
        "the leave after the host's hangup",
      );
      expect(membership()).toEqual({});
      // The leave is the pending delayed leave, sent at once (MSC4140 `send`).
      expect(aliceRequests(since).map((r) => r.route)).toContain("delayed.send");
      await until(() => oursSee().length === 0 && jsSdkSees().length === 0, 5000, "observers to drop it");
      // Element Call then lets go of the screen and asks the host to close it.
      const actions = () => page.evaluate(() => window.elementCallHost!.actions);
      const started = Date.now();
      while (!(await actions()).includes("io.element.close") && Date.now() - started < 3000)
        await new Promise((r) => setTimeout(r, 50));
      expect(await actions()).toEqual(
        expect.arrayContaining(["set_always_on_screen:false", "io.element.close"]),
      );
    }, 15_000);

    it("a removed iframe: the host sends Element Call's pending delayed leave at once (issue 22)", async () => {
      const reopened = Date.now();
      await openHost();
      await until(() => pending().length === 1, 5000, "a pending delayed leave");
      await until(
        () => aliceRequests(reopened).some((r) => r.route === "delayed.restart"),
        DELAY,
        "a heartbeat",
      );
      await until(() => oursSee().includes(device()), 5000, "our observer to list it again");
      await until(() => jsSdkSees().includes(device()), 5000, "js-sdk's MatrixRTCSession to list it again");
      const due = pending()[0].sendTs;

      // Element Call says nothing; the host stops its api and removes the iframe, which sends the pending
      // delayed leave Element Call scheduled (the driver's widgetClosed).
      const removedAt = Date.now();
      await page.evaluate(() => window.elementCallHost!.removeWidget());
      await until(() => !joinedOnServer(), 2000, "the host to send the delayed leave");
      expect(membership()).toEqual({});
      expect(pending()).toEqual([]);
      // After the removal the server heard from alice only the host's `send` (and at most a heartbeat that
      // was already on its way), never a membership write.
      const after = aliceRequests(removedAt).map((r) => r.route);
      expect(after.filter((r) => r === "delayed.send")).toHaveLength(1);
      expect(after.filter((r) => r !== "delayed.restart" && r !== "delayed.send")).toEqual([]);
      // The `{}` landed within a round trip of the removal, not at the delayed leave's due time.
      const left = hs
        .roomState(roomId)
        .find((e) => e.type === CALL_MEMBER_EVENT_TYPE && e.state_key === stateKey())!;
      expect(left.origin_server_ts - removedAt).toBeLessThanOrEqual(300);
      expect(left.origin_server_ts).toBeLessThan(due - DELAY / 2);
      // Both observers drop it long before the delay would have passed.
      const dropped = await until(
        () => oursSee().length === 0 && jsSdkSees().length === 0,
        5000,
        "observers to drop it",
      );
      expect(dropped).toBeLessThan(DELAY / 2);
      expect(consoleLines.filter((l) => l.startsWith("pageerror"))).toEqual([]);
    }, 40_000);
  },
);
