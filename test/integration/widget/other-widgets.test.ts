/**
 * Issue 20 item 8: a widget manages only the delayed events it scheduled. The call widget (our manager
 * through createClientWidgetApi) is joined; a second widget on the same host (its own driver on the same
 * client, only `update_delayed_event` approved) and a widget on another user's host each try `cancel`
 * and `send` on the call widget's delay id (delay ids are bearer capabilities on Synapse's unstable
 * management endpoints, and the test homeserver mirrors that). Judged on the server's pending delayed
 * events and the membership. Also: one driver cannot serve two live widgets.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "@jest/globals";
import { Widget, WidgetApiResponseError } from "matrix-widget-api";
import { classifyError } from "../../../src/index.js";
import {
  createClientWidgetApi,
  DelayedEventWidgetDriver,
  WidgetHostSetupError,
} from "../../../src/widget-host/index.js";
import { bareClient, waitFor } from "../../helpers/matrix.js";
import { connectWidget, installWindowShim, quietWidgetLogs } from "../../helpers/widgetBus.js";
import { sleep, startWidgetWorld, type WidgetCall, type WidgetWorld } from "./harness.js";

const UPDATE = "org.matrix.msc4157.update_delayed_event";

let restoreConsole: () => void;
beforeAll(() => {
  restoreConsole = quietWidgetLogs();
});
afterAll(() => restoreConsole());

describe("widget host: another widget cannot fire or drop the call widget's delayed leave", () => {
  let world: WidgetWorld;
  const closers: (() => void)[] = [];
  beforeEach(async () => {
    world = await startWidgetWorld();
  });
  afterEach(async () => {
    for (const c of closers.splice(0)) c();
    await world.close();
  });

  async function joined(): Promise<{ c: WidgetCall; delayId: string }> {
    const c = await world.call();
    c.manager.join();
    await waitFor(() => c.manager.status === "connected" && c.pending().length === 1, 5000, "joined");
    return { c, delayId: c.pending()[0].delayId };
  }

  /** A widget with only `update_delayed_event`, on its own driver over `creds`' client. */
  async function hostileWidget(creds: { userId: string; deviceId: string; accessToken: string }) {
    const client = bareClient(world.hs.baseUrl, creds);
    const driver = new DelayedEventWidgetDriver(client, {
      roomId: world.roomId,
      validateCapabilities: [UPDATE],
    });
    const pair = await connectWidget({ driver, capabilities: [UPDATE], creatorUserId: creds.userId });
    closers.push(() => {
      pair.close();
      client.stopClient();
    });
    expect(pair.widgetApi.hasCapability(UPDATE)).toBe(true);
    return pair.widgetApi;
  }

  async function triesAndFails(widgetApi: Awaited<ReturnType<typeof hostileWidget>>, delayId: string) {
    for (const attempt of [
      () => widgetApi.cancelScheduledDelayedEvent(delayId),
      () => widgetApi.sendScheduledDelayedEvent(delayId),
      () => widgetApi.restartScheduledDelayedEvent(delayId),
    ]) {
      const error = await attempt().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(WidgetApiResponseError);
      // Answered as the server answers an id it does not know: the widget's classifier says "gone".
      expect((error as WidgetApiResponseError).data.matrix_api_error).toMatchObject({
        http_status: 404,
        response: { errcode: "M_NOT_FOUND" },
      });
      expect(classifyError(error, "send-leave")).toEqual({ kind: "gone" });
    }
  }

  it("a second widget on the same host (same user, own driver)", async () => {
    const { c, delayId } = await joined();
    const managementBefore = world.hs.requests.filter((r) => r.route.startsWith("delayed.")).length;
    await triesAndFails(await hostileWidget(world.alice), delayId);
    await sleep(300);
    expect(c.pending().map((d) => d.delayId)).toEqual([delayId]);
    expect(c.joinedOnServer()).toBe(true);
    expect(c.manager.status).toBe("connected");
    // None of the six reached the server: only the call widget's restarts did.
    const management = world.hs.requests
      .filter((r) => r.route.startsWith("delayed."))
      .slice(managementBefore);
    expect(management.every((r) => r.route === "delayed.restart" && r.userId === world.alice.userId)).toBe(
      true,
    );
  });

  it("a widget on another user's host", async () => {
    const { c, delayId } = await joined();
    const bob = await world.hs.createUser("bob");
    await world.hs.joinRoom(bob.accessToken, world.roomId);
    await triesAndFails(await hostileWidget(bob), delayId);
    await sleep(300);
    expect(c.pending().map((d) => d.delayId)).toEqual([delayId]);
    expect(c.joinedOnServer()).toBe(true);
    expect(
      world.hs.requests.filter((r) => r.userId === bob.userId && r.route.startsWith("delayed.")),
    ).toEqual([]);
  });

  it("the call widget itself still manages its own: it leaves with `send`", async () => {
    const { c } = await joined();
    await expect(c.manager.leave({ timeoutMs: 5000 })).resolves.toEqual({
      status: "left",
      via: "delayed-event-sent",
    });
    expect(c.membership()).toEqual({});
    expect(c.pending()).toEqual([]);
  });
});

describe("widget host: one driver per widget", () => {
  beforeAll(() => installWindowShim());

  it("createClientWidgetApi refuses a driver that serves another live widget, accepts it once that one stopped", () => {
    const driver = new DelayedEventWidgetDriver({} as never, { roomId: "!r:x" });
    const iframe = () =>
      ({ contentWindow: { postMessage: () => undefined }, addEventListener: () => undefined }) as never;
    const widget = (id: string) =>
      new Widget({ id, creatorUserId: "@a:x", type: "m.custom", url: "https://w.example/w" });
    const first = createClientWidgetApi(widget("one"), iframe(), driver);
    expect(() => createClientWidgetApi(widget("two"), iframe(), driver)).toThrow(WidgetHostSetupError);
    first.stop();
    const third = createClientWidgetApi(widget("three"), iframe(), driver);
    third.stop();
  });
});
