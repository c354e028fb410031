/**
 * Widget mode on a real Synapse 1.163.2: MembershipManager → WidgetBackend → WidgetApi ⇄ ClientWidgetApi
 * → DelayedEventWidgetDriver → MatrixClient → Synapse over HTTP. Asserted on Synapse's state and its
 * pending delayed events.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@jest/globals";
import log from "loglevel";
import {
  CALL_MEMBER_EVENT_TYPE,
  MembershipManager,
  WidgetBackend,
  widgetCapabilities,
  type MembershipError,
} from "../../src/index.js";
import {
  bareClient,
  connectWidget,
  quietWidgetLogs,
  startSynapse,
  stopClient,
  waitFor,
  type SynapseHomeserver,
} from "../../src/testing/index.js";
import { DelayedEventWidgetDriver } from "../../src/widget-host/index.js";
import { sleep, until } from "./helpers.js";

// Long enough that the manager's local request timeout (delay / 5) holds on a loaded machine's Synapse.
const DELAY = 4000;
const quiet = log.getLogger("synapse-widget-quiet");
quiet.setLevel("silent");

let restoreConsole: () => void;
beforeAll(() => {
  restoreConsole = quietWidgetLogs();
});
afterAll(() => restoreConsole());

let hs: SynapseHomeserver | undefined;
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) c();
  await hs?.close();
  hs = undefined;
});

async function widgetCall() {
  hs = await startSynapse();
  const alice = await hs.createUser("alice");
  const roomId = await hs.createRoom(alice.accessToken);
  const hostClient = bareClient(hs.baseUrl, alice);
  const key = { userId: alice.userId, deviceId: alice.deviceId };
  // The host approves only what it lists (the driver's default approves nothing).
  const driver = new DelayedEventWidgetDriver(hostClient, {
    roomId,
    validateCapabilities: widgetCapabilities(key),
  });
  const pair = await connectWidget({
    driver,
    capabilities: widgetCapabilities(key),
    creatorUserId: alice.userId,
  });
  const manager = new MembershipManager({
    backend: new WidgetBackend(pair.widgetApi, { membership: key }),
    roomId,
    userId: alice.userId,
    deviceId: alice.deviceId,
    delayedLeaveDelayMs: DELAY,
    logger: quiet,
    fociPreferred: [{ type: "livekit", livekit_service_url: "https://lk.example" }],
  });
  const errors: MembershipError[] = [];
  manager.errors$.subscribe((e) => errors.push(e));
  cleanups.push(
    () => stopClient(hostClient),
    () => pair.close(),
    () => manager.dispose(),
  );
  const server = hs;
  const membership = () => server.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, manager.stateKey);
  return {
    alice,
    manager,
    pair,
    errors,
    membership,
    joined: () => Object.keys(membership() ?? {}).length > 0,
    pending: () =>
      server.pendingDelayedEvents().filter((d) => d.roomId === roomId && d.stateKey === manager.stateKey),
  };
}

describe("widget mode on real Synapse", () => {
  it("joins with a pending delayed leave, keeps it alive over several delays, leaves cleanly", async () => {
    const c = await widgetCall();
    c.manager.join();
    await waitFor(() => c.manager.status === "connected", 8000, "connected");
    expect(c.membership()).toMatchObject({ application: "m.call", device_id: c.alice.deviceId });
    await until(() => c.pending().length === 1, 3000, "one pending delayed leave");
    expect(c.pending()[0]).toMatchObject({ delayMs: DELAY, content: {} });
    const firstDue = c.pending()[0].sendTs;

    await sleep(DELAY * 2);
    expect(c.joined()).toBe(true);
    expect(c.pending()).toHaveLength(1);
    expect(c.pending()[0].sendTs).toBeGreaterThan(firstDue + DELAY);
    expect(c.manager.probablyLeft).toBe(false);
    expect(c.errors).toEqual([]);

    expect(await c.manager.leave({ timeoutMs: 5000 })).toEqual({
      status: "left",
      via: "delayed-event-sent",
    });
    expect(c.membership()).toEqual({});
    expect(c.pending()).toEqual([]);
  });

  it("a widget that vanishes (no leave, no restarts) is removed by Synapse within the delay", async () => {
    const c = await widgetCall();
    c.manager.join();
    await waitFor(() => c.manager.status === "connected", 8000, "connected");
    await until(() => c.pending().length === 1, 3000, "one pending delayed leave");
    c.manager.dispose();
    // The widget is gone but its host's api runs on (a hung widget): nobody sends its leave.
    c.pair.widgetApi.transport.stop();
    const gone = await until(() => !c.joined(), DELAY + 2000, "Synapse to fire the delayed leave");
    expect(gone).toBeLessThanOrEqual(DELAY + 500);
    expect(gone).toBeGreaterThan(DELAY / 2);
    expect(c.pending()).toEqual([]);
  });

  it("a widget its host removes (api.stop()) leaves at once: the host sends its delayed leave", async () => {
    const c = await widgetCall();
    c.manager.join();
    await waitFor(() => c.manager.status === "connected", 8000, "connected");
    await until(() => c.pending().length === 1, 3000, "one pending delayed leave");
    c.manager.dispose();
    c.pair.widgetApi.transport.stop();
    c.pair.clientApi.stop();
    const gone = await until(() => !c.joined(), DELAY, "the host's send of the delayed leave");
    expect(gone).toBeLessThan(DELAY / 4);
    expect(c.membership()).toEqual({});
    expect(c.pending()).toEqual([]);
  });
});
