/**
 * What a call widget such as Element Call asks of its host, through matrix-widget-api's real WidgetApi ⇄
 * ClientWidgetApi (in one process) and our driver on a bare client against the test homeserver: the
 * capability policy, MSC4515 transports, an OpenID token from `/openid/request_token`, and Element
 * Call's own actions both ways. (The browser test runs the real Element Call.)
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "@jest/globals";
import { MatrixCapabilities, type IWidgetApiRequest, type IWidgetApiRequestData } from "matrix-widget-api";
import { startTestHomeserver, type TestHomeserver } from "../../../src/testing/index.js";
import {
  attachCallWidgetActions,
  callWidgetCapabilities,
  DelayedEventWidgetDriver,
  type CallWidgetControls,
  type DelayedEventWidgetDriverOptions,
} from "../../../src/widget-host/index.js";
import { bareClient, type UserCreds } from "../../helpers/matrix.js";
import { connectWidget, quietWidgetLogs, type WidgetPair } from "../../helpers/widgetBus.js";

let restoreConsole: () => void;
beforeAll(() => {
  restoreConsole = quietWidgetLogs();
});
afterAll(() => restoreConsole());

const LIVEKIT = { type: "livekit", livekit_service_url: "http://127.0.0.1:1/sfu" };

describe("a call widget through our host", () => {
  let hs: TestHomeserver;
  let alice: UserCreds;
  let roomId: string;
  let pair: WidgetPair | undefined;

  beforeEach(async () => {
    hs = await startTestHomeserver();
    alice = await hs.createUser("alice");
    roomId = await hs.createRoom(alice.accessToken);
  });
  afterEach(async () => {
    pair?.close();
    pair = undefined;
    await hs.close();
  });

  /**
   * The call set without room-state reading (the host's initial state push would outlive these short
   * tests; the browser test has it).
   */
  const callSet = () =>
    callWidgetCapabilities({ roomId, ...alice }).filter(
      (c) => !c.startsWith("org.matrix.msc2762.receive.state_event:"),
    );
  /** What Element Call asks for: the call set, plus things a host should not hand out unasked. */
  const elementCallAsks = () => [
    ...callSet(),
    `org.matrix.msc2762.send.state_event:org.matrix.msc3401.call.member#${alice.userId}`,
    "org.matrix.msc4039.download_file",
  ];

  async function connect(
    options: Partial<DelayedEventWidgetDriverOptions>,
    capabilities = elementCallAsks(),
  ) {
    const driver = new DelayedEventWidgetDriver(bareClient(hs.baseUrl, alice), { roomId, ...options });
    pair = await connectWidget({ driver, capabilities, creatorUserId: alice.userId });
    return pair;
  }

  it("approves only the host's policy; the default policy approves nothing", async () => {
    const listed = await connect({ validateCapabilities: callSet() });
    const approved = elementCallAsks().filter((c) => listed.widgetApi.hasCapability(c));
    expect(approved.sort()).toEqual(callSet().sort());
    listed.close();

    const unlisted = await connect({});
    expect(elementCallAsks().filter((c) => unlisted.widgetApi.hasCapability(c))).toEqual([]);
  });

  it("answers MSC4515 get_rtc_transports and get_openid with a token the homeserver issued", async () => {
    const { widgetApi } = await connect({
      validateCapabilities: callSet(),
      rtcTransports: [LIVEKIT],
      openId: "allow",
    });
    await expect(widgetApi.getRtcTransports()).resolves.toEqual({ rtc_transports: [LIVEKIT] });
    const token = await widgetApi.requestOpenIDConnectToken();
    expect(token).toMatchObject({
      token_type: "Bearer",
      matrix_server_name: hs.serverName,
      expires_in: 3600,
    });
    expect(token.access_token).toMatch(/^\S{16,}$/);
    expect(hs.requests.filter((r) => r.route === "openid")).toEqual([
      expect.objectContaining({ method: "POST", status: 200, userId: alice.userId }),
    ]);
  });

  it("without the options: transports fail and OpenID is blocked, with no token requested", async () => {
    const { widgetApi } = await connect({
      validateCapabilities: callSet(),
    });
    await expect(widgetApi.getRtcTransports()).rejects.toThrow();
    await expect(widgetApi.requestOpenIDConnectToken()).rejects.toThrow(/declined/i);
    expect(hs.requests.filter((r) => r.route === "openid")).toEqual([]);
  });

  describe("Element Call's own actions", () => {
    let controls: CallWidgetControls;
    const heard: unknown[][] = [];

    async function connectWithActions(capabilities?: string[]) {
      heard.length = 0;
      const p = await connect({ validateCapabilities: (requested) => requested }, capabilities);
      controls = attachCallWidgetActions(p.clientApi, {
        onJoin: (d) => heard.push(["join", d]),
        onHangup: (d) => heard.push(["hangup", d]),
        onClose: (d) => heard.push(["close", d]),
        onDeviceMute: (s) => heard.push(["mute", s]),
        onAlwaysOnScreen: (v) => (heard.push(["aos", v]), v),
      });
      return p;
    }

    it("from the widget: answered and passed to the hooks", async () => {
      const { widgetApi } = await connectWithActions();
      const send = (action: string, data: IWidgetApiRequestData = {}) =>
        widgetApi.transport.send(action, data);
      await expect(send("io.element.join")).resolves.toEqual({});
      await expect(
        send("io.element.device_mute", { audio_enabled: false, video_enabled: true }),
      ).resolves.toEqual({});
      await expect(widgetApi.setAlwaysOnScreen(true)).resolves.toBe(true);
      await expect(widgetApi.setAlwaysOnScreen(false)).resolves.toBe(false);
      await expect(send("im.vector.hangup")).resolves.toEqual({});
      await expect(send("io.element.close")).resolves.toEqual({});
      expect(heard).toEqual([
        ["join", {}],
        ["mute", { audio_enabled: false, video_enabled: true }],
        ["aos", true],
        ["aos", false],
        ["hangup", {}],
        ["close", {}],
      ]);
      controls.dispose();
      await expect(send("io.element.join")).rejects.toThrow(/unknown or unsupported/i);
    });

    it("always-on-screen needs its capability", async () => {
      const { widgetApi } = await connectWithActions(
        elementCallAsks().filter((c) => c !== MatrixCapabilities.AlwaysOnScreen),
      );
      await expect(widgetApi.setAlwaysOnScreen(true)).rejects.toThrow(/missing capability/i);
      expect(heard).toEqual([]);
    });

    it("to the widget: hangup, join and device mute", async () => {
      const { widgetApi } = await connectWithActions();
      const received: [string, unknown][] = [];
      for (const action of ["im.vector.hangup", "io.element.join", "io.element.device_mute"])
        widgetApi.on(`action:${action}`, (ev: CustomEvent<IWidgetApiRequest>) => {
          ev.preventDefault();
          received.push([action, ev.detail.data]);
          const reply =
            action === "io.element.device_mute" ? { audio_enabled: true, video_enabled: false } : {};
          widgetApi.transport.reply(ev.detail, reply);
        });
      await controls.hangup();
      await controls.join({ audioInput: "mic" });
      await expect(controls.setDeviceMute({ video_enabled: false })).resolves.toEqual({
        audio_enabled: true,
        video_enabled: false,
      });
      expect(received).toEqual([
        ["im.vector.hangup", {}],
        ["io.element.join", { audioInput: "mic", videoInput: null }],
        ["io.element.device_mute", { video_enabled: false }],
      ]);
    });
  });
});
