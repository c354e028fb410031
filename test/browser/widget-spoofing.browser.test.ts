/**
 * Issue 25 part 1 in a real browser: the host page (127.0.0.1) runs createClientWidgetApi +
 * DelayedEventWidgetDriver for the call widget (MembershipManager on WidgetBackend, on localhost). Then
 * other windows post `fromWidget` requests carrying the call widget's id: a frame from a third origin,
 * a frame from the widget's own origin, and the host page itself. Each tries the three requests a
 * hostile frame made at 825c5d3: `{}` at the widget's membership key, a delayed `{}`, and a rewrite to a
 * foreign SFU. Judged on the test homeserver (membership, pending delayed events, request log) and on
 * what another user's matrix-js-sdk MatrixRTCSession lists.
 */
import { afterAll, beforeAll, expect, it } from "@jest/globals";
import type { MatrixClient } from "matrix-js-sdk";
import type { Browser, Frame, Page } from "playwright-core";
import { CALL_MEMBER_EVENT_TYPE } from "../../src/index.js";
import { startTestHomeserver, type TestHomeserver } from "../../src/testing/index.js";
import { startExampleServers, type ExampleServers } from "../../examples/widget/server.js";
import { rtcMembers, stopClient, syncedClient, waitFor, type UserCreds } from "../helpers/matrix.js";
import { browserDescribe, launchChromium } from "./chromium.js";

const DELAY = 2000;
const WIDGET_ID = "matrixrtc-membership-example";

browserDescribe("browser: the host listens only to its widget")("browser: spoofed widget messages", () => {
  let hs: TestHomeserver;
  let servers: ExampleServers;
  let browser: Browser;
  let page: Page;
  let roomId: string;
  let alice: UserCreds;
  let bob: MatrixClient;
  const consoleLines: string[] = [];

  beforeAll(async () => {
    hs = await startTestHomeserver({ rateLimits: { message: null, delayedEventMgmt: null } });
    alice = await hs.createUser("alice");
    const bobCreds = await hs.createUser("bob");
    roomId = await hs.createRoom(alice.accessToken);
    await hs.joinRoom(bobCreds.accessToken, roomId);
    [servers, browser, bob] = await Promise.all([
      startExampleServers(),
      launchChromium(),
      syncedClient(hs.baseUrl, bobCreds),
    ]);
    page = await browser.newPage();
    page.on("console", (m) => {
      if (!m.text().startsWith("[PostmessageTransport]")) consoleLines.push(`${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
  }, 30_000);

  afterAll(async () => {
    if (bob) stopClient(bob);
    await browser?.close();
    await servers?.close();
    await hs?.close();
  });

  const stateKey = () => `_${alice.userId}_${alice.deviceId}_m.call`;
  const membership = () => hs.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, stateKey());
  const joinedOnServer = () => Object.keys(membership() ?? {}).length > 0;
  const pending = () => hs.pendingDelayedEvents().filter((d) => d.roomId === roomId);
  const device = () => `${alice.userId}|${alice.deviceId}`;

  async function until(pred: () => boolean, ms: number, what: string): Promise<number> {
    try {
      return await waitFor(pred, ms, what);
    } catch (e) {
      throw new Error(`${(e as Error).message}\nbrowser console:\n${consoleLines.join("\n")}`);
    }
  }

  /** Adds an iframe at `url` to the host page and resolves to its frame once it has loaded. */
  async function addFrame(url: string): Promise<Frame> {
    await page.evaluate((src) => {
      const f = document.createElement("iframe");
      f.src = src;
      document.body.append(f);
    }, url);
    let frame: Frame | undefined;
    await until(() => (frame = page.frames().find((f) => f.url() === url)) !== undefined, 5000, url);
    await frame!.waitForLoadState("load");
    return frame!;
  }

  /** The three requests, as `fromWidget` messages with the call widget's id. */
  function hostile(tag: string): Record<string, unknown>[] {
    const base = { api: "fromWidget", widgetId: WIDGET_ID, action: "send_event" };
    return [
      {
        ...base,
        requestId: `spoof-${tag}-empty`,
        data: { type: CALL_MEMBER_EVENT_TYPE, state_key: stateKey(), content: {} },
      },
      {
        ...base,
        requestId: `spoof-${tag}-delayed`,
        data: { type: CALL_MEMBER_EVENT_TYPE, state_key: stateKey(), content: {}, delay: 1500 },
      },
      {
        ...base,
        requestId: `spoof-${tag}-sfu`,
        data: {
          type: CALL_MEMBER_EVENT_TYPE,
          state_key: stateKey(),
          content: {
            ...membership(),
            foci_preferred: [{ type: "livekit", livekit_service_url: "https://evil.example/sfu" }],
          },
        },
      },
    ];
  }

  it("drops fromWidget requests from another origin's frame, a same-origin frame and the host window", async () => {
    await page.goto(servers.hostUrl({ homeserver: hs.baseUrl, ...alice, roomId, delayMs: DELAY }));
    await page.waitForFunction(() => window.host?.ready === true, undefined, { timeout: 10_000 });
    let widget: Frame | undefined;
    await until(
      () => (widget = page.frames().find((f) => f.url().startsWith(servers.widgetOrigin))) !== undefined,
      5000,
      "the widget frame",
    );
    await widget!.waitForFunction(() => window.widget?.ready === true, undefined, { timeout: 10_000 });
    await widget!.evaluate(() => window.widget!.join());
    await until(() => joinedOnServer() && pending().length === 1, 8000, "joined with a delayed leave");
    await until(() => rtcMembers(bob, roomId).includes(device()), 5000, "bob's MatrixRTCSession lists alice");
    await widget!.waitForFunction(() => window.widget?.state.kind === "joined", undefined, { timeout: 5000 });

    const before = membership();
    const delayId = pending()[0].delayId;
    const requestsBefore = hs.requests.length;
    // The host window records every spoofed message it receives: proof that they were delivered.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { spoofSeen: string[] }).spoofSeen = seen;
      window.addEventListener("message", (ev) => {
        const id = (ev.data as { requestId?: unknown } | null)?.requestId;
        if (typeof id === "string" && id.startsWith("spoof-")) seen.push(id);
      });
    });

    // A third origin: the host's port on "localhost" (the host is 127.0.0.1, the widget another port).
    const otherOrigin = servers.hostOrigin.replace("127.0.0.1", "localhost");
    expect(otherOrigin).not.toBe(servers.widgetOrigin);
    const foreign = await addFrame(`${otherOrigin}/blank-foreign`);
    const sameOrigin = await addFrame(`${servers.widgetOrigin}/blank-same-origin`);
    expect(new URL(foreign.url()).origin).toBe(otherOrigin);
    expect(new URL(sameOrigin.url()).origin).toBe(servers.widgetOrigin);

    const post = (msgs: Record<string, unknown>[]) => msgs.forEach((m) => window.parent.postMessage(m, "*"));
    await foreign.evaluate(post, hostile("foreign"));
    await sameOrigin.evaluate(post, hostile("same-origin"));
    await page.evaluate((msgs) => msgs.forEach((m) => window.postMessage(m, "*")), hostile("host"));

    await page.waitForFunction(
      () => (window as unknown as { spoofSeen: string[] }).spoofSeen.length === 9,
      undefined,
      { timeout: 5000 },
    );
    // Time enough for any of them to reach the server (a request takes a few ms here).
    await new Promise((r) => setTimeout(r, 1000));

    expect(membership()).toEqual(before);
    expect(pending().map((d) => d.delayId)).toEqual([delayId]);
    const since = hs.requests.slice(requestsBefore).filter((r) => r.method !== "OPTIONS");
    // Only the widget's heartbeats (and its reads of its own key) went out meanwhile: no state write,
    // no schedule.
    expect(
      since
        .filter((r) => r.method !== "GET")
        .map((r) => r.route)
        .filter((r) => r !== "delayed.restart"),
    ).toEqual([]);
    expect(rtcMembers(bob, roomId)).toContain(device());
    expect(await widget!.evaluate(() => window.widget!.state)).toEqual({
      kind: "joined",
      delayedLeave: true,
    });

    // The widget itself is still heard: it leaves cleanly.
    expect(await widget!.evaluate(() => window.widget!.leave())).toEqual({
      status: "left",
      via: "delayed-event-sent",
    });
    expect(membership()).toEqual({});
    expect(pending()).toEqual([]);
    expect(consoleLines.filter((l) => l.startsWith("pageerror"))).toEqual([]);
  }, 40_000);
});
