/**
 * Issue 22 part 1, host side: a widget removed without leaving leaves its call in one round trip, not one
 * delay. The call widget (our manager through createClientWidgetApi, a 10 s delayed leave) is joined and
 * listed by another user's matrix-js-sdk MatrixRTCSession; then the widget vanishes (its transport stops,
 * no leave) and the host stops its api. Judged on the server: the `{}` lands within a round trip + 100 ms
 * of the stop, long before the delayed leave's due time, through a `send` (not the timer); and on bob's
 * MatrixRTCSession, which drops the device.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "@jest/globals";
import type { MatrixClient } from "matrix-js-sdk";
import { CALL_MEMBER_EVENT_TYPE } from "../../../src/index.js";
import { rtcMembers, stopClient, syncedClient, waitFor } from "../../helpers/matrix.js";
import { quietWidgetLogs } from "../../helpers/widgetBus.js";
import { sleep, startWidgetWorld, type WidgetWorld } from "./harness.js";

const DELAY = 10_000;

let restoreConsole: () => void;
beforeAll(() => {
  restoreConsole = quietWidgetLogs();
});
afterAll(() => restoreConsole());

describe("widget host: a removed widget leaves at once", () => {
  let world: WidgetWorld;
  let bob: MatrixClient | undefined;
  beforeEach(async () => {
    world = await startWidgetWorld();
  });
  afterEach(async () => {
    if (bob) stopClient(bob);
    bob = undefined;
    await world.close();
  });

  it("stopping the api sends the widget's pending delayed leave: others see it within a round trip", async () => {
    const bobCreds = await world.hs.createUser("bob");
    await world.hs.joinRoom(bobCreds.accessToken, world.roomId);
    bob = await syncedClient(world.hs.baseUrl, bobCreds);
    const device = `${world.alice.userId}|${world.alice.deviceId}`;

    const c = await world.call({ manager: { delayedLeaveDelayMs: DELAY } });
    c.manager.join();
    await waitFor(() => c.manager.status === "connected" && c.pending().length === 1, 5000, "joined");
    await waitFor(() => rtcMembers(bob!, world.roomId).includes(device), 5000, "bob to list alice");
    const due = c.pending()[0].sendTs;

    // A round trip to this server, measured the way the host's send goes (an authenticated POST).
    const rttStarted = Date.now();
    await c.hostClient.getProfileInfo(world.alice.userId).catch(() => undefined);
    const rtt = Date.now() - rttStarted;

    // The widget vanishes: no leave, no more heartbeats. Then the host takes its iframe away.
    c.manager.dispose();
    c.pair.widgetApi.transport.stop();
    const stoppedAt = Date.now();
    c.pair.clientApi.stop();

    await waitFor(() => !c.joinedOnServer(), 2000, "the leave on the server");
    const left = world.hs
      .roomState(world.roomId)
      .find((e) => e.type === CALL_MEMBER_EVENT_TYPE && e.state_key === c.manager.stateKey)!;
    expect(left.content).toEqual({});
    expect(left.origin_server_ts - stoppedAt).toBeLessThanOrEqual(rtt + 100);
    expect(left.origin_server_ts).toBeLessThan(due - DELAY / 2);
    expect(c.pending()).toEqual([]);
    // Through `send`, by the host, not the server's timer.
    const sends = world.hs.requests.filter(
      (r) => r.route === "delayed.send" && r.userId === world.alice.userId,
    );
    expect(sends).toHaveLength(1);
    expect(sends[0].status).toBe(200);

    const seen = await waitFor(
      () => !rtcMembers(bob!, world.roomId).includes(device),
      3000,
      "bob to drop alice",
    );
    expect(seen).toBeLessThan(DELAY / 2);
  });

  it("a widget that left on its own is not sent again, and nothing is sent twice", async () => {
    const c = await world.call({ manager: { delayedLeaveDelayMs: DELAY } });
    c.manager.join();
    await waitFor(() => c.manager.status === "connected" && c.pending().length === 1, 5000, "joined");
    await c.manager.leave({ timeoutMs: 5000 });
    const sendsBefore = world.hs.requests.filter((r) => r.route === "delayed.send").length;
    c.pair.clientApi.stop();
    c.pair.clientApi.stop();
    await sleep(300);
    expect(world.hs.requests.filter((r) => r.route === "delayed.send").length).toBe(sendsBefore);
  });

  it("driver.widgetClosed() on a host that built its own ClientWidgetApi", async () => {
    const c = await world.call({ manager: { delayedLeaveDelayMs: DELAY }, plainClientApi: true });
    c.manager.join();
    await waitFor(() => c.manager.status === "connected" && c.pending().length === 1, 5000, "joined");
    c.manager.dispose();
    c.pair.close();
    await expect(c.driver.widgetClosed()).resolves.toEqual({ sent: 1, gone: 0, failed: 0 });
    expect(c.membership()).toEqual({});
    expect(c.pending()).toEqual([]);
  });
});
