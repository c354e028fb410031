/**
 * The switches of the test homeserver. Each one mirrors a real difference between Synapse releases or
 * deployments, so a test can say "behave like Synapse 1.127" instead of mocking.
 */

import type { AppServiceRegistration } from "./appservices.js";

/** Time source for event timestamps, rate limits and the delayed-event timer (tests may inject a fake). */
export interface Clock {
  /** Current time in ms since the epoch. */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds; returns a handle for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer returned by `setTimeout`. */
  clearTimeout(handle: unknown): void;
}

/** Synapse's leaky bucket: `burstCount` capacity, drains at `perSecond`. */
export interface RateLimitConfig {
  /** Drain rate: how many actions per second the bucket regains. */
  perSecond: number;
  /** Capacity: how many actions may go back to back before a 429. */
  burstCount: number;
}

/** The server's rate-limit buckets (Synapse's `rc_*` settings); `null` turns a bucket off. */
export interface RateLimits {
  /** `rc_message`: scheduling a delayed event, sending any event (also when a delayed event fires). */
  message: RateLimitConfig | null;
  /** `rc_delayed_event_mgmt` (≥1.126): cancel/restart/send and the GET listing. */
  delayedEventMgmt: RateLimitConfig | null;
}

/**
 * `1.161` (≥1.161): like `1.157` but a delay over the maximum is 400 `ORG.MATRIX.MSC4140_DELAY_TOO_LARGE`.
 * `1.157` (1.157–1.160): 403 M_FORBIDDEN for disabled / over the maximum, 429 count limit.
 * `legacy` (≤1.156): 400 M_UNKNOWN + org.matrix.msc4140.errcode, no count limit.
 */
export type ErrorDialect = "1.161" | "1.157" | "legacy";

/**
 * How management requests are authenticated:
 * `optional` (≥1.156) token validated if present, bucket per user, else per IP;
 * `none` (1.143–1.155) token ignored, bucket per IP;
 * `required` (≤1.142) token and ownership required, per-action routes absent.
 */
export type ManagementAuth = "optional" | "none" | "required";

/**
 * Which MSC4140 HTTP shape the server speaks (docs/compatibility.md, "MSC4140 as merged"):
 * `unstable` the `org.matrix.msc4140.delay` query parameter and unstable management (every Synapse
 * release so far); `merged` only the merged shape (dedicated scheduling endpoint, v1 management and
 * lookup, finalised events; the query parameter is ignored, so such a request sends at once);
 * `both` a server in transition that offers both.
 */
export type DelayedEventsShape = "unstable" | "merged" | "both";

/**
 * Which names MSC4354 sticky events use (docs/compatibility.md, "Sticky events"): `unstable` Synapse
 * 1.163's (`org.matrix.msc4354.sticky_duration_ms` on `/send` only, `msc4354_sticky`,
 * `unsigned.msc4354_sticky_duration_ttl_ms`, sync `msc4354_sticky`); `merged` the merged MSC text's
 * (`sticky_duration_ms` on `/send` and `/state`, `sticky`, `unsigned.sticky_duration_ttl_ms`, sync
 * `sticky`; the unstable parameter is then ignored). No server speaks `merged` yet.
 */
export type StickyEventsShape = "unstable" | "merged";

/**
 * Options of `startTestHomeserver`; every one left out takes its `DEFAULT_OPTIONS` value. Spread a
 * `SYNAPSE_PRESETS` entry in to behave like a given Synapse release.
 */
export interface TestHomeserverOptions {
  /** TCP port; 0 picks a free one. */
  port?: number;
  /** Address to listen on (default `127.0.0.1`). */
  host?: string;
  /** Server name in user and room ids (default `localhost`); unrelated to the listening address. */
  serverName?: string;
  /** Shape of delayed-event errors (default `1.157`); see `ErrorDialect`. */
  errorDialect?: ErrorDialect;
  /** `max_event_delay_duration` set at all; false = feature off (`/versions` flag false). */
  delayedEvents?: boolean;
  /**
   * `max_event_delay_duration`: the longest accepted delay (default 24 h), also advertised in
   * /capabilities. 0 or less turns delayed events off.
   */
  maxDelayMs?: number;
  /** Per-user pending limit (1.157 dialect only; 0 turns the feature off like Synapse). */
  maxScheduledPerUser?: number;
  /** Serve `org.matrix.msc4140.delayed_events` in /capabilities (≥1.157). */
  advertiseCapability?: boolean;
  /** How delayed-event management requests are authenticated (default `optional`); see `ManagementAuth`. */
  managementAuth?: ManagementAuth;
  /** ≤1.126: the owner's own state writes also cancel the owner's pending delayed state at that key. */
  ownWritesCancel?: boolean;
  /** ≤1.142: the `send` management action is rate limited by `rc_message` instead of the mgmt bucket. */
  sendUsesMessageLimit?: boolean;
  /** ≤1.125 had no `rc_delayed_event_mgmt`: management used the `rc_message` bucket. */
  managementBucket?: "delayedEventMgmt" | "message";
  /** ≥1.150: fired events carry `unsigned["org.matrix.msc4140.delay_id"]` for the sender. */
  delayIdInUnsigned?: boolean;
  /**
   * `/versions` `unstable_features["org.matrix.msc4140"]`: `enabled` (≥1.117) says whether the feature is
   * usable; `always` (1.116) is true even with delayed events off (verified on real 1.116.0).
   */
  versionsFlag?: "enabled" | "always";
  /** ≥1.161: `GET …/delayed_events/{id}` returns the requester's pending event (405 before: no such route). */
  getDelayedEvent?: boolean;
  /** ≥1.161: listing items also carry the MSC's `delay_ms` and `delayed_since_ts` beside `delay`/`running_since`. */
  listingMscFields?: boolean;
  /**
   * Rate limits (default `ELEMENT_CALL_RATE_LIMITS`). Merged per bucket: a bucket left out keeps its
   * current value, so one bucket can be changed alone.
   */
  rateLimits?: Partial<RateLimits>;
  /** User ids that no rate limit applies to (Synapse's per-user ratelimit override). */
  rateLimitExemptUsers?: string[];
  /** Time source (default: wall clock), e.g. `createManualClock()`; fixed once the server runs. */
  clock?: Clock;
  /** Counter-based ids instead of random ones, for reproducible snapshots. */
  deterministicIds?: boolean;
  /** Request bodies larger than this get 413 M_TOO_LARGE. */
  maxBodyBytes?: number;
  /** Events whose JSON is larger than this get 413 M_TOO_LARGE (the spec's 64 KiB PDU limit). */
  maxEventBytes?: number;
  /** How many entries `requests` keeps (oldest dropped first). */
  requestLogLimit?: number;
  /** MSC4140 HTTP shape (default `unstable`); see `DelayedEventsShape`. */
  delayedEventsShape?: DelayedEventsShape;
  /** Merged shape: how long finalised delayed events stay visible (the MSC recommends 7 days). */
  finalisedRetentionMs?: number;
  /** Merged shape: at most this many finalised delayed events kept per user (the MSC recommends 1000). */
  finalisedPerUser?: number;
  /**
   * Merged shape: field layout of `GET …/delayed_events/{delay_id}`. `nested` (the default) is what the
   * implementations agree on: `delayed_since_ts` (Synapse ≥1.161's lookup, matrix-js-sdk 43's types) and
   * a `finalised` object; `msc` is the July draft's flat `scheduled_at`, `finalised_ts`, `event_id`,
   * `error`.
   */
  mergedLookupShape?: "msc" | "nested";
  /**
   * MSC4354 sticky events, Synapse's `experimental_features.msc4354_enabled` (default false, as in
   * Synapse; `startSynapse()` turns it on by default). Off: the sticky parameter is ignored and a plain
   * event is sent, `/versions` says `org.matrix.msc4354: false`, /sync has no sticky section.
   */
  stickyEvents?: boolean;
  /** Names of the sticky-event fields (default `unstable`, Synapse 1.163's); see `StickyEventsShape`. */
  stickyEventsShape?: StickyEventsShape;
  /**
   * Application service registrations (Synapse's `app_service_config_files`): their `as_token` acts as
   * `?user_id=` (identity assertion), and with `msc4512Enabled` an `io.element.msc4512.proxy_prefix`
   * claims `/_matrix/client/…/rtc/livekit/…` for its `io.element.msc4512.proxy_url`. Default none.
   */
  appServices?: AppServiceRegistration[];
  /** `experimental_features.msc4512_enabled` (Synapse ≥1.161): proxy registrations' prefixes. Default false. */
  msc4512Enabled?: boolean;
}

/** Every option with the value in force (what `TestHomeserver.options` shows). */
export type ResolvedOptions = Required<Omit<TestHomeserverOptions, "rateLimits" | "clock">> & {
  /** Both buckets, after per-bucket merging. */
  rateLimits: RateLimits;
  /** The injected clock, or undefined for the wall clock. */
  clock: Clock | undefined;
};

/** Element Call's self-hosting recommendation; the default. */
export const ELEMENT_CALL_RATE_LIMITS: RateLimits = {
  message: { perSecond: 0.5, burstCount: 30 },
  delayedEventMgmt: { perSecond: 1, burstCount: 20 },
};

/** Synapse's stock defaults, for tests that want a stingy server. */
export const SYNAPSE_STOCK_RATE_LIMITS: RateLimits = {
  message: { perSecond: 0.2, burstCount: 10 },
  delayedEventMgmt: { perSecond: 1, burstCount: 5 },
};

/**
 * The value of every option left out: a Synapse 1.157–1.160-like server with delayed events on (24 h
 * maximum, 100 pending per user), Element Call's rate limits, on `127.0.0.1` with a free port.
 */
export const DEFAULT_OPTIONS: ResolvedOptions = {
  port: 0,
  host: "127.0.0.1",
  serverName: "localhost",
  errorDialect: "1.157",
  delayedEvents: true,
  maxDelayMs: 24 * 60 * 60 * 1000,
  maxScheduledPerUser: 100,
  advertiseCapability: true,
  managementAuth: "optional",
  ownWritesCancel: false,
  sendUsesMessageLimit: false,
  managementBucket: "delayedEventMgmt",
  delayIdInUnsigned: true,
  versionsFlag: "enabled",
  getDelayedEvent: false,
  listingMscFields: false,
  rateLimits: ELEMENT_CALL_RATE_LIMITS,
  rateLimitExemptUsers: [],
  clock: undefined,
  deterministicIds: false,
  maxBodyBytes: 1024 * 1024,
  maxEventBytes: 65536,
  requestLogLimit: 20_000,
  delayedEventsShape: "unstable",
  finalisedRetentionMs: 7 * 24 * 60 * 60 * 1000,
  finalisedPerUser: 1000,
  mergedLookupShape: "nested",
  stickyEvents: false,
  stickyEventsShape: "unstable",
  appServices: [],
  msc4512Enabled: false,
};

/**
 * Keys of `SYNAPSE_PRESETS`: one Synapse release per distinct MSC4140 behaviour, plus
 * `disabled` (delayed events off) and `merged` (MSC4140 as merged, not a Synapse release).
 */
export type SynapsePreset = "1.116" | "1.127" | "1.143" | "1.156" | "1.157" | "1.163" | "disabled" | "merged";

/** Option patches that reproduce each Synapse release's MSC4140 behaviour. */
export const SYNAPSE_PRESETS: Readonly<Record<SynapsePreset, Readonly<TestHomeserverOptions>>> = {
  "1.116": {
    errorDialect: "legacy",
    delayedEvents: true,
    advertiseCapability: false,
    managementAuth: "required",
    ownWritesCancel: true,
    sendUsesMessageLimit: true,
    managementBucket: "message",
    delayIdInUnsigned: false,
    versionsFlag: "always",
  },
  "1.127": {
    errorDialect: "legacy",
    delayedEvents: true,
    advertiseCapability: false,
    managementAuth: "required",
    ownWritesCancel: false,
    sendUsesMessageLimit: true,
    managementBucket: "delayedEventMgmt",
    delayIdInUnsigned: false,
  },
  "1.143": {
    errorDialect: "legacy",
    delayedEvents: true,
    advertiseCapability: false,
    managementAuth: "none",
    ownWritesCancel: false,
    sendUsesMessageLimit: false,
    managementBucket: "delayedEventMgmt",
    delayIdInUnsigned: false,
  },
  "1.156": {
    errorDialect: "legacy",
    delayedEvents: true,
    advertiseCapability: false,
    managementAuth: "optional",
    ownWritesCancel: false,
    sendUsesMessageLimit: false,
    managementBucket: "delayedEventMgmt",
    delayIdInUnsigned: true,
  },
  "1.157": {
    errorDialect: "1.157",
    delayedEvents: true,
    advertiseCapability: true,
    managementAuth: "optional",
    ownWritesCancel: false,
    sendUsesMessageLimit: false,
    managementBucket: "delayedEventMgmt",
    delayIdInUnsigned: true,
  },
  /** What 1.161 changed (the GET one route, the list's new fields, the max-delay error), still so in 1.163.2. */
  "1.163": {
    errorDialect: "1.161",
    delayedEvents: true,
    advertiseCapability: true,
    managementAuth: "optional",
    ownWritesCancel: false,
    sendUsesMessageLimit: false,
    managementBucket: "delayedEventMgmt",
    delayIdInUnsigned: true,
    getDelayedEvent: true,
    listingMscFields: true,
  },
  disabled: { errorDialect: "1.157", delayedEvents: false, advertiseCapability: true },
  // Not a Synapse release: MSC4140 as merged (2026-09-08), only that shape. `{ ...merged,
  // delayedEventsShape: "both" }` is a server in transition that still honours the unstable shape.
  // Sticky events (MSC4354, merged 2026-10-20) on, with the merged text's stable names.
  merged: {
    errorDialect: "1.157",
    delayedEvents: true,
    advertiseCapability: true,
    managementAuth: "optional",
    ownWritesCancel: false,
    sendUsesMessageLimit: false,
    managementBucket: "delayedEventMgmt",
    delayIdInUnsigned: true,
    delayedEventsShape: "merged",
    stickyEvents: true,
    stickyEventsShape: "merged",
  },
};

/** Merges a patch over resolved options; `rateLimits` merges per bucket so one bucket can be switched alone. */
export function mergeOptions(base: ResolvedOptions, patch: TestHomeserverOptions): ResolvedOptions {
  const merged: ResolvedOptions = { ...base };
  for (const [key, value] of Object.entries(patch) as [keyof TestHomeserverOptions, unknown][]) {
    if (value === undefined || key === "rateLimits") continue;
    (merged as Record<string, unknown>)[key] = value;
  }
  if (patch.rateLimits) merged.rateLimits = { ...base.rateLimits, ...patch.rateLimits };
  return merged;
}

/** Synapse ≥1.157 turns the feature off when the per-user limit is 0; older releases had no such limit. */
export function delayedEventsEnabled(options: ResolvedOptions): boolean {
  if (!options.delayedEvents || options.maxDelayMs <= 0) return false;
  return options.errorDialect === "legacy" || options.maxScheduledPerUser > 0;
}
