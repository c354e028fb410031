// The homeserver.yaml startSynapse() writes, and where it caches virtualenvs (no Python needed).
import { afterEach, describe, expect, it } from "@jest/globals";
import { synapseConfig } from "../../src/testing/synapse/options.js";
import { synapseCacheDir } from "../../src/testing/synapse/install.js";
import { ELEMENT_CALL_RATE_LIMITS, SYNAPSE_STOCK_RATE_LIMITS } from "../../src/testing/index.js";

const paths = {
  dataDir: "/tmp/x",
  port: 1234,
  logConfigPath: "/tmp/x/log.yaml",
  signingKeyPath: "/tmp/x/signing.key",
  registrationSecret: "s",
};
const rc = (l: { perSecond: number; burstCount: number }) => ({
  per_second: l.perSecond,
  burst_count: l.burstCount,
});

describe("startSynapse's homeserver.yaml", () => {
  it("defaults: one client listener on 127.0.0.1, SQLite, MSC4140 on for 24 h, sticky events on, relaxed limits", () => {
    const c = synapseConfig({}, paths);
    expect(c.listeners).toEqual([
      expect.objectContaining({ port: 1234, bind_addresses: ["127.0.0.1"], type: "http", tls: false }),
    ]);
    expect(c.database).toEqual({ name: "sqlite3", args: { database: "/tmp/x/homeserver.db" } });
    expect(c.max_event_delay_duration).toBe(24 * 3600 * 1000);
    expect(c.experimental_features).toEqual({ msc4354_enabled: true });
    expect((c.rc_message as { per_second: number }).per_second).toBeGreaterThanOrEqual(10_000);
    expect((c.rc_delayed_event_mgmt as { burst_count: number }).burst_count).toBeGreaterThanOrEqual(10_000);
  });

  it("rate-limit presets and per-bucket values", () => {
    const stock = synapseConfig({ rateLimits: "synapse-defaults" }, paths);
    expect(stock.rc_message).toEqual(rc(SYNAPSE_STOCK_RATE_LIMITS.message!));
    expect(stock.rc_delayed_event_mgmt).toEqual(rc(SYNAPSE_STOCK_RATE_LIMITS.delayedEventMgmt!));
    const ec = synapseConfig({ rateLimits: "element-call" }, paths);
    expect(ec.rc_delayed_event_mgmt).toEqual(rc(ELEMENT_CALL_RATE_LIMITS.delayedEventMgmt!));
    const one = synapseConfig({ rateLimits: { delayedEventMgmt: { perSecond: 1, burstCount: 4 } } }, paths);
    expect(one.rc_delayed_event_mgmt).toEqual({ per_second: 1, burst_count: 4 });
    expect((one.rc_message as { per_second: number }).per_second).toBeGreaterThanOrEqual(10_000);
  });

  it("delayed events off, max delay, per-user limit, sticky events off, extra keys", () => {
    expect(synapseConfig({ delayedEvents: false }, paths)).not.toHaveProperty("max_event_delay_duration");
    const c = synapseConfig(
      {
        maxDelayMs: 5000,
        maxScheduledPerUser: 3,
        stickyEvents: false,
        extraConfig: { experimental_features: { msc9999: true }, public_baseurl: "http://x/" },
      },
      paths,
    );
    expect(c.max_event_delay_duration).toBe(5000);
    expect(c.experimental_features).toEqual({
      msc4354_enabled: false,
      msc4140_max_delayed_events_per_user: 3,
      msc9999: true,
    });
    expect(c.public_baseurl).toBe("http://x/");
  });
});

describe("startSynapse's homeserver.yaml for a MatrixRTC token service", () => {
  it("serves the openid resource (federation userinfo) and lists app service registrations", () => {
    const c = synapseConfig({}, { ...paths, appServiceFiles: ["/tmp/x/appservice-0.yaml"] });
    expect(c.listeners).toEqual([
      expect.objectContaining({ resources: [{ names: ["client", "openid"], compress: false }] }),
    ]);
    expect(c.app_service_config_files).toEqual(["/tmp/x/appservice-0.yaml"]);
    expect(synapseConfig({}, paths)).not.toHaveProperty("app_service_config_files");
  });
});

describe("the virtualenv cache", () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });
  it("$MATRIXRTC_SYNAPSE_CACHE_DIR, else under $XDG_CACHE_HOME", () => {
    process.env.MATRIXRTC_SYNAPSE_CACHE_DIR = "/somewhere";
    expect(synapseCacheDir()).toBe("/somewhere");
    delete process.env.MATRIXRTC_SYNAPSE_CACHE_DIR;
    process.env.XDG_CACHE_HOME = "/cache";
    expect(synapseCacheDir()).toBe("/cache/matrixrtc-membership/synapse");
  });
});
