/**
 * The host side a call widget such as Element Call needs, on a fake client: MSC4515 transports, the
 * OpenID policy, to-device forwarding, the call-widget capability set (sticky events:
 * widget.driver-sticky.test.ts).
 */
import { describe, expect, it } from "@jest/globals";
import {
  OpenIDRequestState,
  SimpleObservable,
  WidgetEventCapability,
  type IOpenIDUpdate,
} from "matrix-widget-api";
import {
  callWidgetCapabilities,
  DelayedEventWidgetDriver,
  type DriverClient,
  type DelayedEventWidgetDriverOptions,
} from "../../src/widget-host/index.js";

const ROOM = "!call:example.org";
const TOKEN = {
  access_token: "oidc",
  expires_in: 3600,
  matrix_server_name: "example.org",
  token_type: "Bearer",
};

function fakeClient(opts: { tokenFails?: boolean; crypto?: boolean } = {}) {
  const calls: unknown[][] = [];
  const client = {
    calls,
    getOpenIdToken: async () => {
      calls.push(["getOpenIdToken"]);
      if (opts.tokenFails) throw new Error("no token");
      return TOKEN;
    },
    sendToDevice: async (type: string, map: Map<string, Map<string, object>>) => {
      const plain = Object.fromEntries([...map].map(([u, d]) => [u, Object.fromEntries(d)]));
      calls.push(["sendToDevice", type, plain]);
      return {};
    },
    getCrypto: () =>
      opts.crypto
        ? {
            encryptToDeviceMessages: async (
              type: string,
              devices: { userId: string; deviceId: string }[],
              payload: object,
            ) => ({
              eventType: "m.room.encrypted",
              batch: devices.map((d) => ({
                ...d,
                payload: { ciphertext: `${type}:${JSON.stringify(payload)}` },
              })),
            }),
          }
        : undefined,
  };
  return client as unknown as DriverClient & { calls: unknown[][] };
}

const driverWith = (client: DriverClient, options: Partial<DelayedEventWidgetDriverOptions> = {}) =>
  new DelayedEventWidgetDriver(client, { roomId: ROOM, ...options });

/** Every update the driver feeds the OpenID observer, once it has said Allowed or Blocked. */
async function openIdUpdates(driver: DelayedEventWidgetDriver): Promise<IOpenIDUpdate[]> {
  const updates: IOpenIDUpdate[] = [];
  await new Promise<void>((resolve) => {
    const observer = new SimpleObservable<IOpenIDUpdate>((u) => {
      updates.push(u);
      if (u.state !== OpenIDRequestState.PendingUserConfirmation) resolve();
    });
    driver.askOpenID(observer);
  });
  return updates;
}

describe("DelayedEventWidgetDriver: MSC4515 RTC transports", () => {
  const livekit = { type: "livekit", livekit_service_url: "https://sfu.example.org" };

  it("answers with the host's list, or what its function returns", async () => {
    await expect(driverWith(fakeClient(), { rtcTransports: [livekit] }).getRtcTransports()).resolves.toEqual({
      rtc_transports: [livekit],
    });
    const fromFunction = driverWith(fakeClient(), { rtcTransports: async () => [livekit, livekit] });
    await expect(fromFunction.getRtcTransports()).resolves.toEqual({ rtc_transports: [livekit, livekit] });
  });

  it("fails without the option (the widget then falls back to its own config)", async () => {
    await expect(driverWith(fakeClient()).getRtcTransports()).rejects.toThrow(/no RTC transports/);
  });
});

describe("DelayedEventWidgetDriver: OpenID", () => {
  it("denies by default, without asking the server", async () => {
    const client = fakeClient();
    expect(await openIdUpdates(driverWith(client))).toEqual([{ state: OpenIDRequestState.Blocked }]);
    expect(client.calls).toEqual([]);
  });

  it('"allow" hands over a token from the client', async () => {
    const client = fakeClient();
    expect(await openIdUpdates(driverWith(client, { openId: "allow" }))).toEqual([
      { state: OpenIDRequestState.Allowed, token: TOKEN },
    ]);
    expect(client.calls).toEqual([["getOpenIdToken"]]);
  });

  it("a function decides; an asynchronous decision tells the widget to wait first", async () => {
    expect(await openIdUpdates(driverWith(fakeClient(), { openId: () => false }))).toEqual([
      { state: OpenIDRequestState.Blocked },
    ]);
    expect(await openIdUpdates(driverWith(fakeClient(), { openId: async () => true }))).toEqual([
      { state: OpenIDRequestState.PendingUserConfirmation },
      { state: OpenIDRequestState.Allowed, token: TOKEN },
    ]);
    expect(await openIdUpdates(driverWith(fakeClient(), { openId: async () => false }))).toEqual([
      { state: OpenIDRequestState.PendingUserConfirmation },
      { state: OpenIDRequestState.Blocked },
    ]);
  });

  it("blocks when the token cannot be had or the decision throws", async () => {
    expect(await openIdUpdates(driverWith(fakeClient({ tokenFails: true }), { openId: "allow" }))).toEqual([
      { state: OpenIDRequestState.Blocked },
    ]);
    const throws = () => {
      throw new Error("prompt broke");
    };
    expect(await openIdUpdates(driverWith(fakeClient(), { openId: throws }))).toEqual([
      { state: OpenIDRequestState.Blocked },
    ]);
  });
});

describe("DelayedEventWidgetDriver: to-device", () => {
  it("forwards unencrypted to-device messages as they are", async () => {
    const client = fakeClient();
    await driverWith(client).sendToDevice("io.element.call.encryption_keys", false, {
      "@a:x": { D1: { k: 1 }, D2: { k: 2 } },
    });
    expect(client.calls).toEqual([
      ["sendToDevice", "io.element.call.encryption_keys", { "@a:x": { D1: { k: 1 }, D2: { k: 2 } } }],
    ]);
  });

  it("encrypts with the client's crypto, and refuses to send in clear without it", async () => {
    const client = fakeClient({ crypto: true });
    await driverWith(client).sendToDevice("t", true, { "@a:x": { D1: { k: 1 } }, "@b:x": { D3: { k: 1 } } });
    expect(client.calls).toEqual([
      [
        "sendToDevice",
        "m.room.encrypted",
        { "@a:x": { D1: { ciphertext: 't:{"k":1}' } }, "@b:x": { D3: { ciphertext: 't:{"k":1}' } } },
      ],
    ]);
    const noCrypto = fakeClient();
    await expect(driverWith(noCrypto).sendToDevice("t", true, { "@a:x": { D1: {} } })).rejects.toThrow(
      /no crypto/,
    );
    expect(noCrypto.calls).toEqual([]);
  });
});

describe("callWidgetCapabilities", () => {
  const caps = callWidgetCapabilities({ roomId: ROOM, userId: "@a:x", deviceId: "DEV" });

  it("lets the widget write only this device's membership, in this room's timeline", () => {
    const sendState = WidgetEventCapability.findEventCapabilities(caps).filter(
      (c) => c.kind === "state_event" && c.direction === "send",
    );
    expect(sendState.map((c) => `${c.eventType}#${c.keyStr}`).sort()).toEqual([
      "org.matrix.msc3401.call.member#@a:x_DEV_m.call",
      "org.matrix.msc3401.call.member#_@a:x_DEV_m.call",
    ]);
    expect(caps.filter((c) => c.startsWith("org.matrix.msc2762.timeline:"))).toEqual([
      `org.matrix.msc2762.timeline:${ROOM}`,
    ]);
  });

  it("includes delayed events, transports, the sticky membership, media keys; not TURN or files", () => {
    expect(caps).toEqual(
      expect.arrayContaining([
        "org.matrix.msc4157.send.delayed_event",
        "org.matrix.msc4157.update_delayed_event",
        "org.matrix.msc4515.rtc_transports",
        "org.matrix.msc4407.send.sticky_event",
        "org.matrix.msc4407.receive.sticky_event",
        "org.matrix.msc2762.send.event:org.matrix.msc4143.rtc.member",
        "org.matrix.msc2762.receive.event:org.matrix.msc4143.rtc.member",
        "org.matrix.msc3819.send.to_device:io.element.call.encryption_keys",
        "org.matrix.msc2762.receive.state_event:org.matrix.msc3401.call.member",
        "m.always_on_screen",
      ]),
    );
    for (const absent of ["town.robin.msc3846.turn_servers", "org.matrix.msc4039.download_file"])
      expect(caps).not.toContain(absent);
  });
});
