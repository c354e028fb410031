/**
 * The host acts only on its widget's own window and origin (issue 25 part 1), on the in-process bus:
 * the call widget (MembershipManager on WidgetBackend) is joined; then other windows post `fromWidget`
 * requests carrying the call widget's id. Judged on the test homeserver: the membership, the pending
 * delayed events and the request log. The browser test does the same in Chromium.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "@jest/globals";
import { CALL_MEMBER_EVENT_TYPE } from "../../../src/index.js";
import { waitFor } from "../../helpers/matrix.js";
import { quietWidgetLogs, type MessageSender } from "../../helpers/widgetBus.js";
import { sleep, startWidgetWorld, type WidgetCall, type WidgetWorld } from "./harness.js";

let restoreConsole: () => void;
beforeAll(() => {
  restoreConsole = quietWidgetLogs();
});
afterAll(() => restoreConsole());

/** The three requests a hostile frame tried (issue 25), as `fromWidget` messages with the widget's id. */
function hostileRequests(c: WidgetCall, tag: string): Record<string, unknown>[] {
  const base = { api: "fromWidget", widgetId: c.pair.widgetId, action: "send_event" };
  const stateKey = c.manager.stateKey;
  return [
    // (1) `{}` at the call widget's membership key: others drop the device.
    {
      ...base,
      requestId: `${tag}-empty`,
      data: { type: CALL_MEMBER_EVENT_TYPE, state_key: stateKey, content: {} },
    },
    // (2) a delayed `{}` the call widget never learns of.
    {
      ...base,
      requestId: `${tag}-delayed`,
      data: { type: CALL_MEMBER_EVENT_TYPE, state_key: stateKey, content: {}, delay: 1500 },
    },
    // (3) the membership rewritten to point at a foreign SFU.
    {
      ...base,
      requestId: `${tag}-sfu`,
      data: {
        type: CALL_MEMBER_EVENT_TYPE,
        state_key: stateKey,
        content: {
          ...c.membership(),
          foci_preferred: [{ type: "livekit", livekit_service_url: "https://evil.example/sfu" }],
          focus_active: { type: "livekit", focus_selection: "oldest_membership" },
        },
      },
    },
  ];
}

describe("widget host: only the widget's own window and origin", () => {
  let world: WidgetWorld;
  beforeEach(async () => {
    world = await startWidgetWorld();
  });
  afterEach(async () => {
    await world.close();
  });

  async function joined(): Promise<WidgetCall> {
    const c = await world.call();
    c.manager.join();
    await waitFor(() => c.manager.status === "connected" && c.pending().length === 1, 5000, "joined");
    return c;
  }

  const senders: [string, MessageSender][] = [
    ["another frame from another origin", { window: "other-frame", origin: "https://evil.example" }],
    ["another frame from the widget's origin", { window: "other-frame", origin: "https://widget.example" }],
    ["the host page's own window", { window: "host" }],
    [
      "the widget's window after it navigated to another origin",
      { window: "widget", origin: "https://evil.example" },
    ],
  ];

  it.each(senders)("drops requests from %s: nothing reaches the server", async (_, sender) => {
    const c = await joined();
    const before = c.membership();
    const delayIds = c.pending().map((d) => d.delayId);
    const stateWrites = () =>
      world.hs.requests.filter(
        (r) => r.method === "PUT" && r.path.includes(`/state/${CALL_MEMBER_EVENT_TYPE}`),
      ).length;
    const writesBefore = stateWrites();
    const requestsBefore = world.hs.requests.length;

    for (const message of hostileRequests(c, "spoof")) c.pair.postToHost(message, sender);
    // Two heartbeats' worth of time: enough for any of them to have reached the server.
    await sleep(600);

    expect(c.membership()).toEqual(before);
    expect(c.pending().map((d) => d.delayId)).toEqual(delayIds);
    expect(world.hs.pendingDelayedEvents()).toHaveLength(1);
    expect(stateWrites()).toBe(writesBefore);
    // Only the manager's heartbeats (and its reads of its own key, issue 25 part 2) went out meanwhile.
    const since = world.hs.requests.slice(requestsBefore);
    expect(since.filter((r) => r.route !== "delayed.restart" && r.method !== "GET")).toEqual([]);
    expect(c.manager.status).toBe("connected");
  });

  it("the same messages from the widget's own window and origin are acted on (the test can see them)", async () => {
    const c = await joined();
    const [empty] = hostileRequests(c, "own");
    c.pair.postToHost(empty, { window: "widget" });
    await waitFor(() => Object.keys(c.membership() ?? {}).length === 0, 2000, "the widget's own {} write");
  });

  it("after the widget's iframe navigates to another origin, the host neither acts for it nor answers it", async () => {
    const c = await joined();
    const writes = () => world.hs.requests.filter((r) => r.method === "PUT").length;
    const before = writes();
    c.pair.navigateWidget("https://evil.example");
    // The widget's own send goes unanswered (dropped by the host): the transport times out.
    c.pair.widgetApi.transport.timeoutSeconds = 0.3;
    await expect(
      c.pair.widgetApi.sendStateEvent(CALL_MEMBER_EVENT_TYPE, c.manager.stateKey, {}),
    ).rejects.toThrow(/timed out/);
    expect(writes()).toBe(before);
    expect(Object.keys(c.membership() ?? {}).length).toBeGreaterThan(0);
    // Whatever the host posts goes to the widget's origin only (a browser drops it for another origin).
    expect(c.pair.clientApi.transport.targetOrigin).toBe("https://widget.example");
  });
});
