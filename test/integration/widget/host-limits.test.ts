/**
 * Issue 20 item 9: what one widget can make its host send is bounded, and a bad `delay` is refused.
 * One widget floods its host through matrix-widget-api (on the in-process bus); judged on the test
 * homeserver's request log and room state.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "@jest/globals";
import type { MatrixClient } from "matrix-js-sdk";
import { WidgetApiResponseError, type WidgetApi } from "matrix-widget-api";
import { CALL_MEMBER_EVENT_TYPE, classifyError, widgetCapabilities } from "../../../src/index.js";
import { startTestHomeserver, type TestHomeserver } from "../../../src/testing/index.js";
import {
  DelayedEventWidgetDriver,
  type DelayedEventWidgetDriverOptions,
} from "../../../src/widget-host/index.js";
import { bareClient, type UserCreds } from "../../helpers/matrix.js";
import { connectWidget, quietWidgetLogs, type WidgetPair } from "../../helpers/widgetBus.js";

const TO_DEVICE = "io.element.call.encryption_keys";
const ROOM_EVENT = "io.element.call.reaction";

let restoreConsole: () => void;
beforeAll(() => {
  restoreConsole = quietWidgetLogs();
});
afterAll(() => restoreConsole());

describe("widget host: one widget's requests are bounded", () => {
  let hs: TestHomeserver;
  let alice: UserCreds;
  let roomId: string;
  let client: MatrixClient;
  let pair: WidgetPair;
  let widget: WidgetApi;
  let stateKey: string;

  async function connect(options: Partial<DelayedEventWidgetDriverOptions> = {}): Promise<void> {
    const key = { userId: alice.userId, deviceId: alice.deviceId };
    stateKey = `_${alice.userId}_${alice.deviceId}_m.call`;
    const capabilities = [
      ...widgetCapabilities(key),
      `org.matrix.msc3819.send.to_device:${TO_DEVICE}`,
      `org.matrix.msc2762.send.event:${ROOM_EVENT}`,
    ];
    client = bareClient(hs.baseUrl, alice);
    const driver = new DelayedEventWidgetDriver(client, {
      roomId,
      validateCapabilities: capabilities,
      openId: "allow",
      ...options,
    });
    pair = await connectWidget({ driver, capabilities, creatorUserId: alice.userId });
    widget = pair.widgetApi;
  }

  beforeEach(async () => {
    hs = await startTestHomeserver({ rateLimits: { message: null, delayedEventMgmt: null } });
    alice = await hs.createUser("alice");
    roomId = await hs.createRoom(alice.accessToken);
  });
  afterEach(async () => {
    pair?.close();
    client?.stopClient();
    await hs.close();
  });

  const logged = (pred: (r: TestHomeserver["requests"][number]) => boolean) =>
    hs.requests.filter((r) => r.method !== "OPTIONS" && pred(r)).length;
  /** Runs `n` requests at once; resolves to their outcomes. */
  const flood = <T>(n: number, request: () => Promise<T>) =>
    Promise.allSettled(Array.from({ length: n }, () => request()));
  const refusedAsRateLimited = (outcomes: PromiseSettledResult<unknown>[]) =>
    outcomes.filter(
      (o) =>
        o.status === "rejected" &&
        o.reason instanceof WidgetApiResponseError &&
        classifyError(o.reason, "send-state").kind === "rate-limited",
    ).length;

  it("300 get_openid: one token minted, every request answered with it", async () => {
    await connect();
    const outcomes = await flood(300, () => widget.requestOpenIDConnectToken());
    expect(outcomes.every((o) => o.status === "fulfilled")).toBe(true);
    const tokens = new Set(
      outcomes.map((o) => (o as PromiseFulfilledResult<{ access_token?: string }>).value.access_token),
    );
    expect(tokens.size).toBe(1);
    expect(logged((r) => r.route === "openid")).toBe(1);
    // Later requests reuse it too, with what is left of its life.
    const again = await widget.requestOpenIDConnectToken();
    expect(again.access_token).toEqual([...tokens][0]);
    expect(again.expires_in).toBeGreaterThan(0);
    expect(logged((r) => r.route === "openid")).toBe(1);
  });

  it("300 to-device sends: at most the burst (30) plus the refill reach the server; the rest get 429", async () => {
    await connect();
    const started = Date.now();
    const outcomes = await flood(300, () =>
      widget.sendToDevice(TO_DEVICE, false, { [alice.userId]: { OTHER: { keys: "k" } } }),
    );
    const seconds = (Date.now() - started) / 1000;
    const sent = logged((r) => r.path.includes("/sendToDevice/"));
    expect(sent).toBe(outcomes.filter((o) => o.status === "fulfilled").length);
    expect(sent).toBeLessThanOrEqual(30 + Math.ceil(5 * seconds) + 1);
    expect(sent).toBeGreaterThanOrEqual(30);
    expect(refusedAsRateLimited(outcomes)).toBe(300 - sent);
  });

  it("300 room events, 300 delayed schedules, 300 restarts: each bounded by its bucket", async () => {
    await connect();
    let started = Date.now();
    let outcomes: PromiseSettledResult<unknown>[] = await flood(300, () =>
      widget.sendRoomEvent(ROOM_EVENT, { n: 1 }),
    );
    let sent = logged((r) => r.method === "PUT" && r.path.includes(`/send/${ROOM_EVENT}/`));
    expect(sent).toBeLessThanOrEqual(30 + Math.ceil(5 * ((Date.now() - started) / 1000)) + 1);
    expect(refusedAsRateLimited(outcomes)).toBe(300 - sent);

    started = Date.now();
    outcomes = await flood(300, () =>
      widget.sendStateEvent(CALL_MEMBER_EVENT_TYPE, stateKey, {}, undefined, 60_000),
    );
    const scheduled = hs.pendingDelayedEvents().length;
    expect(scheduled).toBeLessThanOrEqual(20 + Math.ceil(2 * ((Date.now() - started) / 1000)) + 1);
    expect(refusedAsRateLimited(outcomes)).toBe(300 - scheduled);

    const delayId = (
      outcomes.find((o) => o.status === "fulfilled") as PromiseFulfilledResult<{ delay_id: string }>
    ).value.delay_id;
    started = Date.now();
    outcomes = await flood(300, () => widget.restartScheduledDelayedEvent(delayId));
    sent = logged((r) => r.route === "delayed.restart");
    expect(sent).toBeLessThanOrEqual(30 + Math.ceil(10 * ((Date.now() - started) / 1000)) + 1);
    expect(refusedAsRateLimited(outcomes)).toBe(300 - sent);
  });

  it.each([
    ["null", null],
    ['"1000" (a string)', "1000"],
    ["-1000", -1000],
    ["1000.5", 1000.5],
    ["NaN", Number.NaN],
    ["24 h + 1 ms (past the host's maximum)", 24 * 3600_000 + 1],
    ["1e15", 1e15],
  ])("send_event with delay %s is refused, never sent as a plain event", async (_, delay) => {
    await connect();
    const before = hs.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, stateKey);
    const error = await widget
      .sendStateEvent(CALL_MEMBER_EVENT_TYPE, stateKey, { application: "m.call" }, undefined, delay as never)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(WidgetApiResponseError);
    const kind = classifyError(error, "schedule-leave").kind;
    expect(kind === "rejected" || kind === "max-delay").toBe(true);
    expect(hs.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, stateKey)).toEqual(before);
    expect(hs.pendingDelayedEvents()).toEqual([]);
    expect(logged((r) => r.method === "PUT" && r.path.includes("/state/"))).toBe(0);
  });

  it("a delay over the host's maximum is answered like the server's max-delay error, with the maximum", async () => {
    await connect({ limits: { maxDelayMs: 30_000 } });
    const error = await widget
      .sendStateEvent(CALL_MEMBER_EVENT_TYPE, stateKey, {}, undefined, 60_000)
      .catch((e: unknown) => e);
    expect(classifyError(error, "schedule-leave")).toEqual({ kind: "max-delay", maxDelayMs: 30_000 });
    await widget.sendStateEvent(CALL_MEMBER_EVENT_TYPE, stateKey, {}, undefined, 30_000);
    expect(hs.pendingDelayedEvents()).toHaveLength(1);
  });
});
