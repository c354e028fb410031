/**
 * The per-widget bounds on their own, on explicit times: token buckets, OpenID token reuse, the driver's
 * `delay` check, and to-device messages going out as one request.
 */
import { describe, expect, it } from "@jest/globals";
import { WidgetApiResponseError } from "matrix-widget-api";
import { classifyError } from "../../src/index.js";
import {
  DelayedEventWidgetDriver,
  HostRefusalError,
  type DriverClient,
} from "../../src/widget-host/index.js";
import { TokenBucket, WidgetBuckets } from "../../src/widget-host/limits.js";
import { OpenIdTokens } from "../../src/widget-host/openIdTokens.js";
import { sendToDeviceWith } from "../../src/widget-host/toDevice.js";

describe("TokenBucket", () => {
  it("allows the burst at once, then one per 1/perSecond, and says how long to wait", () => {
    const bucket = new TokenBucket({ burst: 3, perSecond: 2 });
    expect([0, 0, 0].map(() => bucket.take(1000))).toEqual([0, 0, 0]);
    expect(bucket.take(1000)).toBe(500);
    expect(bucket.take(1250)).toBe(250);
    expect(bucket.take(1500)).toBe(0);
    expect(bucket.take(1500)).toBe(500);
    // Refills up to the burst, not beyond.
    expect([0, 0, 0, 0].map(() => bucket.take(100_000))).toEqual([0, 0, 0, 500]);
  });

  it("a clock that steps back refills nothing and breaks nothing", () => {
    const bucket = new TokenBucket({ burst: 1, perSecond: 1 });
    expect(bucket.take(5000)).toBe(0);
    expect(bucket.take(1000)).toBe(1000);
    expect(bucket.take(6000)).toBe(0);
  });

  it("refuses nonsense limits", () => {
    for (const limit of [
      { burst: 0, perSecond: 1 },
      { burst: 1, perSecond: 0 },
      { burst: 1, perSecond: Infinity },
      { burst: Number.NaN, perSecond: 1 },
    ])
      expect(() => new TokenBucket(limit)).toThrow(RangeError);
    expect(() => new WidgetBuckets({ maxDelayMs: -1 })).toThrow(RangeError);
    expect(() => new WidgetBuckets({ maxDelayMs: 2 ** 31 })).toThrow(RangeError);
  });

  it("null turns one limit off", () => {
    const buckets = new WidgetBuckets({ toDevice: null });
    for (let i = 0; i < 1000; i++) expect(buckets.take("toDevice", 0)).toBe(0);
  });
});

describe("OpenIdTokens", () => {
  const token = (n: number, expiresIn = 3600) => ({
    access_token: `t${n}`,
    expires_in: expiresIn,
    matrix_server_name: "x",
    token_type: "Bearer",
  });

  function tokens(opts: { expiresIn?: number; mintBudget?: number } = {}) {
    let now = 0;
    let minted = 0;
    let budget = opts.mintBudget ?? Infinity;
    const cache = new OpenIdTokens(
      async () => token(++minted, opts.expiresIn),
      () => (budget-- > 0 ? 0 : 60_000),
      () => now,
    );
    return {
      cache,
      minted: () => minted,
      advance: (ms: number) => (now += ms),
    };
  }

  it("concurrent requests share one mint; later ones reuse it with what is left of its life", async () => {
    const t = tokens();
    const all = await Promise.all(Array.from({ length: 300 }, () => t.cache.get()));
    expect(new Set(all.map((x) => x.access_token))).toEqual(new Set(["t1"]));
    expect(t.minted()).toBe(1);
    t.advance(600_000);
    expect(await t.cache.get()).toMatchObject({ access_token: "t1", expires_in: 3000 });
    expect(t.minted()).toBe(1);
  });

  it("mints a new one when less than 5 minutes (or half a short life) is left", async () => {
    const t = tokens();
    await t.cache.get();
    t.advance(3600_000 - 300_000 + 1);
    expect((await t.cache.get()).access_token).toBe("t2");
    const short = tokens({ expiresIn: 60 });
    await short.cache.get();
    short.advance(29_000);
    expect((await short.cache.get()).access_token).toBe("t1");
    short.advance(2000);
    expect((await short.cache.get()).access_token).toBe("t2");
  });

  it("out of mints: a still-valid token is handed out, else 429", async () => {
    const t = tokens({ mintBudget: 1 });
    await t.cache.get();
    t.advance(3600_000 - 60_000);
    expect((await t.cache.get()).access_token).toBe("t1");
    t.advance(55_000);
    await expect(t.cache.get()).rejects.toMatchObject({
      httpStatus: 429,
      data: { errcode: "M_LIMIT_EXCEEDED", retry_after_ms: 60_000 },
    });
  });

  it("a token without a usable lifetime is never reused", async () => {
    const t = tokens({ expiresIn: Number.NaN });
    await t.cache.get();
    await t.cache.get();
    expect(t.minted()).toBe(2);
  });
});

describe("DelayedEventWidgetDriver: delay and rate limits", () => {
  function fakeClient() {
    const calls: unknown[][] = [];
    return {
      calls,
      _unstable_sendDelayedStateEvent: async (...a: unknown[]) => (
        calls.push(["delayed", ...a]),
        { delay_id: "d1" }
      ),
      sendStateEvent: async (...a: unknown[]) => (calls.push(["state", ...a]), { event_id: "$e" }),
    } as unknown as DriverClient & { calls: unknown[][] };
  }
  const asWidgetSees = (driver: DelayedEventWidgetDriver, e: unknown) =>
    new WidgetApiResponseError("Error sending event", driver.processError(e) ?? {});

  it("refuses a delay that is not a non-negative integer, without a request (400 M_INVALID_PARAM)", async () => {
    const client = fakeClient();
    const driver = new DelayedEventWidgetDriver(client, { roomId: "!r:x" });
    for (const delay of [null, undefined, "1000", -1, 1.5, Number.NaN, Infinity, {}]) {
      const e = await driver.sendDelayedEvent(delay as never, "t", {}, "k").catch((x: unknown) => x);
      expect(e).toBeInstanceOf(HostRefusalError);
      expect(classifyError(asWidgetSees(driver, e), "schedule-leave")).toMatchObject({
        kind: "rejected",
        status: 400,
      });
    }
    expect(client.calls).toEqual([]);
    await driver.sendDelayedEvent(0, "t", {}, "k");
    expect(client.calls).toHaveLength(1);
  });

  it("a delay over maxDelayMs is refused the way the server refuses one over its maximum", async () => {
    const driver = new DelayedEventWidgetDriver(fakeClient(), {
      roomId: "!r:x",
      limits: { maxDelayMs: 5000 },
    });
    const e = await driver.sendDelayedEvent(5001, "t", {}, "k").catch((x: unknown) => x);
    expect(classifyError(asWidgetSees(driver, e), "schedule-leave")).toEqual({
      kind: "max-delay",
      maxDelayMs: 5000,
    });
  });

  it("past its bucket a request is refused as rate limited, with the wait in retry_after_ms", async () => {
    const client = fakeClient();
    const driver = new DelayedEventWidgetDriver(client, {
      roomId: "!r:x",
      limits: { sendEvents: { burst: 2, perSecond: 1 } },
    });
    await driver.sendEvent("t", {}, "k");
    await driver.sendEvent("t", {}, "k");
    const e = await driver.sendEvent("t", {}, "k").catch((x: unknown) => x);
    const seen = classifyError(asWidgetSees(driver, e), "send-state");
    expect(seen.kind).toBe("rate-limited");
    expect((seen as { retryAfterMs?: number }).retryAfterMs).toBeGreaterThan(900);
    expect((seen as { retryAfterMs?: number }).retryAfterMs).toBeLessThanOrEqual(1000);
    expect(client.calls).toHaveLength(2);
  });
});

describe("sendToDeviceWith: one request per widget request", () => {
  it("encrypted payloads that differ per device still go out together", async () => {
    const sends: unknown[] = [];
    const client = {
      sendToDevice: async (type: string, map: Map<string, Map<string, object>>) => {
        sends.push([type, Object.fromEntries([...map].map(([u, d]) => [u, Object.fromEntries(d)]))]);
      },
      getCrypto: () => ({
        encryptToDeviceMessages: async (
          _t: string,
          devices: { userId: string; deviceId: string }[],
          p: object,
        ) => ({
          eventType: "m.room.encrypted",
          batch: devices.map((d) => ({ ...d, payload: { c: JSON.stringify(p) } })),
        }),
      }),
    };
    await sendToDeviceWith(client as never, "k", true, {
      "@a:x": { A: { n: 1 }, B: { n: 2 } },
      "@b:x": { C: { n: 3 } },
    });
    expect(sends).toEqual([
      [
        "m.room.encrypted",
        { "@a:x": { A: { c: '{"n":1}' }, B: { c: '{"n":2}' } }, "@b:x": { C: { c: '{"n":3}' } } },
      ],
    ]);
  });
});
