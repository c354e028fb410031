/**
 * Widget mode's delegated delayed leave (MSC4533 → MSC4195): the widget's manager asks the host
 * (`org.matrix.msc4533.rtc_livekit_delegate_delayed_leave`), our DelayedEventWidgetDriver calls the
 * homeserver's delegation endpoint, the test homeserver's MSC4512 proxy hands it to the test token
 * service. Shortened time as in test/integration/delegation/manager-delegation.test.ts: the delegated
 * delay 6 s, restarts every 500 ms, the normal delay 1 s. Asserted on what the homeserver holds.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "@jest/globals";
import { widgetCapabilities } from "../../../src/index.js";
import { startTestSfuAuth, waitFor, type TestSfuAuth } from "../../../src/testing/index.js";
import { quietWidgetLogs } from "../../helpers/widgetBus.js";
import { sleep, startWidgetWorld, type WidgetWorld } from "./harness.js";

const HOUR = 6000;
let restoreConsole: () => void;
beforeAll(() => {
  restoreConsole = quietWidgetLogs();
});
afterAll(() => restoreConsole());

let sfu: TestSfuAuth;
let world: WidgetWorld;

beforeEach(async () => {
  sfu = await startTestSfuAuth({ delegation: { minDelayMs: HOUR } });
  world = await startWidgetWorld({ appServices: [sfu.appServiceRegistration()], msc4512Enabled: true });
  sfu.useHomeserver(world.hs.baseUrl);
});
afterEach(async () => {
  await world.close();
  await sfu.close();
});

const delegating = () => ({
  sfuUrl: sfu.livekitUrl,
  delegatedDelayMs: HOUR,
  delegatedHeartbeatIntervalMs: HOUR / 12,
});

describe("widget mode: delegation through the host (MSC4533)", () => {
  it("with the capability: the host delegates, the homeserver holds the delegated leave alone, the SFU's disconnect sends it", async () => {
    const capabilities = [
      ...widgetCapabilities({ userId: world.alice.userId, deviceId: world.alice.deviceId, delegation: true }),
    ];
    const call = await world.call({ capabilities, manager: { ...delegating(), autoRejoin: false } });
    sfu.connected({ userId: world.alice.userId });
    call.manager.join();
    await waitFor(() => call.manager.support.delayedLeaveHolder === "delegated", 5000);
    await waitFor(() => call.pending().length === 1, 2000);
    expect(call.pending().map((d) => d.delayMs)).toEqual([HOUR]);
    expect(sfu.delegations()).toMatchObject([{ via: "homeserver", state: "connected", delayMs: HOUR }]);
    await sleep(2500);
    expect(call.joinedOnServer()).toBe(true);
    sfu.disconnected({ userId: world.alice.userId });
    await waitFor(() => !call.joinedOnServer(), 2000);
    expect(call.pending()).toEqual([]);
  }, 30_000);

  it("without the capability: one 404, the widget holds its leave itself, no gap", async () => {
    const call = await world.call({ manager: delegating() });
    sfu.connected({ userId: world.alice.userId });
    call.manager.join();
    await waitFor(() => call.manager.support.delegation === "unsupported", 5000);
    await sleep(2000);
    expect(call.manager.support.delayedLeaveHolder).toBe("self");
    expect(call.pending().map((d) => d.delayMs)).toEqual([1000]);
    expect(call.joinedOnServer()).toBe(true);
    expect(sfu.requests.filter((r) => r.path.endsWith("/delegate_delayed_leave"))).toEqual([]);
  }, 30_000);
});
