/**
 * MSC4140 (and MSC4354 sticky-event) conformance scenarios as data: what to send, as whom, in which order. A runner executes one
 * against any server (the test homeserver or a real Synapse) and records what came back in a form
 * that does not depend on random ids or the wall clock, so two servers' records can be compared.
 */
import type { SynapsePreset } from "../../src/testing/index.js";

/**
 * Server configurations the scenarios need. Each maps to emulator options and to a Synapse config
 * (test/conformance/targets.ts), so both servers run with the same limits.
 * - `relaxed`: no rate limits, max delay 24 h, per-user pending limit 5 (≥1.157).
 * - `limited`: `rc_message` and `rc_delayed_event_mgmt` at 0.1/s, burst 3 (a 429 on the 4th request).
 * - `disabled`: `max_event_delay_duration` unset (the feature off).
 * - `sticky`: `relaxed` with MSC4354 sticky events on (`msc4354_enabled`); off in every other one.
 */
export type ServerConfig = "relaxed" | "limited" | "disabled" | "sticky";

/**
 * Who sends a request: an actor name (its first device), `actor#2` (a second device of that actor),
 * `none` (no access token), `bogus` (an access token the server never issued).
 */
export type As = string;

/** A projection of the response body, applied before normalisation (keeps records to what matters). */
export type View = (body: unknown, ctx: ViewContext) => unknown;

export interface ViewContext {
  /** The user id of an actor (to filter timelines by sender). */
  userId(actor: string): string;
  /** The scenario's room (to pick it out of a /sync answer). */
  roomId: string;
}

export interface Mark {
  name: string;
  offsetMs?: number;
}

export interface RequestStep {
  kind: "request";
  /** Shown in records and diffs. */
  label: string;
  as?: As;
  method: "GET" | "PUT" | "POST" | "OPTIONS";
  /**
   * Path with placeholders: `{room}`, `{U}` (the MSC4140 unstable prefix), `{id:x}` (a saved delay
   * id), `{user:alice}`, `{since:x}` (a saved /sync `next_batch`). Placeholders are URL-encoded when
   * substituted.
   */
  path: string;
  /** Extra request headers (e.g. `Origin` for a CORS preflight). */
  headers?: Record<string, string>;
  /** Response headers to record beside `retry-after` (lower case), e.g. the CORS ones. */
  recordHeaders?: string[];
  /** JSON body; `rawBody` sends bytes as they are. Neither: no body. */
  body?: unknown;
  rawBody?: string;
  /** Save `delay_id` of a 200 answer under this name (for `{id:x}` and for normalising ids). */
  save?: string;
  /** Save `next_batch` of a 200 /sync answer under this name (for `{since:x}`). */
  saveToken?: string;
  /**
   * Remember the moment of this request as a named time window, optionally shifted by `offsetMs`
   * (e.g. "due" = request time + delay). Timestamps in later bodies that fall into it show as `<ts:name>`.
   */
  mark?: Mark | Mark[];
  view?: View;
  /**
   * Repeat the request (every 50 ms) until the normalised record satisfies `until`, or `timeoutMs`
   * passes; the record gets `settled: true|false`. For effects real Synapse applies asynchronously.
   */
  poll?: { until: (record: StepRecord) => boolean; timeoutMs: number };
}

export interface WaitStep {
  kind: "wait";
  ms: number;
}

/** Sleep until `plusMs` after the end of a marked window (a deadline relative to a request, not to now). */
export interface WaitUntilStep {
  kind: "waitUntil";
  mark: string;
  plusMs: number;
}

/** Stop the server, stay down `downMs`, start it again on the same data (needs `ownServer`). */
export interface RestartServerStep {
  kind: "restartServer";
  downMs: number;
}

export type Step = RequestStep | WaitStep | WaitUntilStep | RestartServerStep;

export interface Scenario {
  name: string;
  /** What the scenario shows (documentation only). */
  what: string;
  config: ServerConfig;
  /** Actors created fresh for this scenario (unique localparts) and joined to one fresh room. */
  actors: string[];
  /** Which actors also log in a second device (`actor#2`). */
  secondDevices?: string[];
  /** Actors created fresh but not joined (a step joins them, e.g. to test what a newly joined user gets). */
  lateActors?: string[];
  /**
   * Only the presets (and their Synapse versions) that run this scenario; all when absent. The sticky
   * scenarios run on `1.163` (Synapse 1.163.2) only.
   */
  presets?: SynapsePreset[];
  /**
   * The scenario needs a server of its own (IP-keyed rate-limit buckets would otherwise be shared
   * with other scenarios).
   */
  ownServer?: boolean;
  steps: Step[];
}

/** What a request step produced, normalised. */
export interface StepRecord {
  label: string;
  status: number;
  body: unknown;
  /** Only headers clients act on (`retry-after`) and those a step asks for (`recordHeaders`). */
  headers?: Record<string, string>;
  /** Present on polled steps: whether `until` held before the timeout. */
  settled?: boolean;
}

/** A server the runner can drive: the shape shared by `startTestHomeserver()` and `startSynapse()`. */
export interface ConformanceServer {
  readonly baseUrl: string;
  createUser(localpart: string): Promise<{ userId: string; accessToken: string; deviceId: string }>;
  createRoom(accessToken: string): Promise<string>;
  joinRoom(accessToken: string, roomId: string): Promise<void>;
  restart?(options: { downMs?: number }): Promise<void>;
}
