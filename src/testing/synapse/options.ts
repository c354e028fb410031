/**
 * What `startSynapse()` can be asked for, and the homeserver.yaml that says it. The switches mirror the
 * test homeserver's (`TestHomeserverOptions`) where real Synapse has a config key for them.
 */
import type { AppServiceRegistration } from "../homeserver/appservices.js";
import {
  ELEMENT_CALL_RATE_LIMITS,
  SYNAPSE_STOCK_RATE_LIMITS,
  type RateLimitConfig,
  type RateLimits,
} from "../homeserver/options.js";

/** The newest Synapse release this package is tested against. */
export const DEFAULT_SYNAPSE_VERSION = "1.163.2";

/**
 * `relaxed` (default): both MSC4140 buckets effectively unlimited, so tests only meet a 429 when they
 * ask for one. `synapse-defaults`: Synapse's stock `rc_message`/`rc_delayed_event_mgmt`.
 * `element-call`: Element Call's self-hosting recommendation. Or per-bucket values (`null` = unlimited,
 * an omitted bucket stays relaxed).
 */
export type SynapseRateLimitPreset = "relaxed" | "synapse-defaults" | "element-call";

/** What `startSynapse()` and `startTestCall({ server: "synapse" })` can be asked for; all optional. */
export interface SynapseOptions {
  /** A PyPI version of `matrix-synapse`. Default {@link DEFAULT_SYNAPSE_VERSION}. */
  version?: string;
  /**
   * The MSC4140 rate-limit buckets (`rc_message`, `rc_delayed_event_mgmt`): a preset (default `relaxed`,
   * see SynapseRateLimitPreset) or per-bucket values (`null` = unlimited, an omitted bucket stays relaxed).
   */
  rateLimits?: SynapseRateLimitPreset | Partial<RateLimits>;
  /** Sets `max_event_delay_duration` (default true); false leaves it unset, which turns MSC4140 off. */
  delayedEvents?: boolean;
  /** `max_event_delay_duration` in ms. Default 24 h. */
  maxDelayMs?: number;
  /**
   * `experimental_features.msc4140_max_delayed_events_per_user` (Synapse ≥1.157; 0 turns MSC4140 off).
   * Unset: the version's own default (100).
   */
  maxScheduledPerUser?: number;
  /** `experimental_features.msc4354_enabled` (sticky events). Default true. */
  stickyEvents?: boolean;
  /**
   * Extra homeserver.yaml keys, merged over the generated config (shallow, except `experimental_features`
   * which merges key by key). For switches a version has that this type does not name, e.g. the
   * management-auth switch of the versions that have one.
   */
  extraConfig?: Record<string, unknown>;
  /**
   * Application service registrations, written beside homeserver.yaml and listed in
   * `app_service_config_files`. For MSC4512's proxy also set
   * `extraConfig: { experimental_features: { msc4512_enabled: true } }`.
   */
  appServices?: AppServiceRegistration[];
  /** `server_name`. Default "localhost". */
  serverName?: string;
  /** Give up waiting for the server to answer after this long. Default 60 000 ms. */
  startTimeoutMs?: number;
  /** Give up installing after this long. Default 15 min (a first install downloads ~100 packages). */
  installTimeoutMs?: number;
  /** Called with progress lines (install steps); default silent. */
  onProgress?: (line: string) => void;
}

/** Never reached by a test: Synapse's bucket with these values never empties. */
const UNLIMITED: RateLimitConfig = { perSecond: 100_000, burstCount: 100_000 };

/** The MSC4140 buckets `rateLimits` resolves to (`null` = unlimited). */
export function resolveRateLimits(option: SynapseOptions["rateLimits"]): RateLimits {
  if (option === undefined || option === "relaxed") return { message: null, delayedEventMgmt: null };
  if (option === "synapse-defaults") return SYNAPSE_STOCK_RATE_LIMITS;
  if (option === "element-call") return ELEMENT_CALL_RATE_LIMITS;
  return { message: option.message ?? null, delayedEventMgmt: option.delayedEventMgmt ?? null };
}

const rc = (limit: RateLimitConfig | null) => {
  const l = limit ?? UNLIMITED;
  return { per_second: l.perSecond, burst_count: l.burstCount };
};

export interface ConfigPaths {
  dataDir: string;
  port: number;
  logConfigPath: string;
  signingKeyPath: string;
  registrationSecret: string;
  /** The written `appServices` registrations. */
  appServiceFiles?: string[];
}

/**
 * homeserver.yaml as an object (written as JSON, which is YAML). Only what a test needs: one client
 * listener on 127.0.0.1 (with the `openid` resource, so a token service can check OpenID tokens at
 * `/_matrix/federation/v1/openid/userinfo`), SQLite, no federation keys, no metrics. Limits a test never studies
 * (registration, login, joins, room creation) are always relaxed so fixtures never wait on them.
 */
export function synapseConfig(options: SynapseOptions, paths: ConfigPaths): Record<string, unknown> {
  const limits = resolveRateLimits(options.rateLimits);
  const experimental: Record<string, unknown> = {
    msc4354_enabled: options.stickyEvents ?? true,
  };
  if (options.maxScheduledPerUser !== undefined) {
    experimental.msc4140_max_delayed_events_per_user = options.maxScheduledPerUser;
  }
  const relaxed = rc(null);
  const config: Record<string, unknown> = {
    server_name: options.serverName ?? "localhost",
    pid_file: `${paths.dataDir}/homeserver.pid`,
    listeners: [
      {
        port: paths.port,
        bind_addresses: ["127.0.0.1"],
        type: "http",
        tls: false,
        x_forwarded: false,
        resources: [{ names: ["client", "openid"], compress: false }],
      },
    ],
    database: { name: "sqlite3", args: { database: `${paths.dataDir}/homeserver.db` } },
    log_config: paths.logConfigPath,
    media_store_path: `${paths.dataDir}/media`,
    signing_key_path: paths.signingKeyPath,
    registration_shared_secret: paths.registrationSecret,
    report_stats: false,
    enable_metrics: false,
    trusted_key_servers: [],
    suppress_key_server_warning: true,
    experimental_features: experimental,
    rc_message: rc(limits.message),
    rc_delayed_event_mgmt: rc(limits.delayedEventMgmt),
    rc_registration: relaxed,
    rc_login: { address: relaxed, account: relaxed, failed_attempts: relaxed },
    rc_joins: { local: relaxed, remote: relaxed },
    rc_joins_per_room: relaxed,
    rc_room_creation: relaxed,
    rc_invites: { per_room: relaxed, per_user: relaxed, per_issuer: relaxed },
    rc_presence: { per_user: relaxed },
  };
  if (paths.appServiceFiles?.length) config.app_service_config_files = paths.appServiceFiles;
  if (options.delayedEvents ?? true) {
    // An integer is milliseconds to Synapse's parse_duration (a string would need s/m/h units).
    config.max_event_delay_duration = options.maxDelayMs ?? 24 * 60 * 60 * 1000;
  }
  const extra = options.extraConfig ?? {};
  const extraExperimental = (extra.experimental_features ?? {}) as Record<string, unknown>;
  return {
    ...config,
    ...extra,
    experimental_features: { ...experimental, ...extraExperimental },
  };
}

/** Python logging config: INFO to one file, whose tail a failed start shows. */
export function loggingConfig(logPath: string): Record<string, unknown> {
  return {
    version: 1,
    formatters: { precise: { format: "%(asctime)s - %(name)s - %(levelname)s - %(message)s" } },
    handlers: { file: { class: "logging.FileHandler", formatter: "precise", filename: logPath } },
    root: { level: "INFO", handlers: ["file"] },
    disable_existing_loggers: false,
  };
}
