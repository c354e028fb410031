/** Raw-HTTP and MatrixClient helpers for the test homeserver's own tests. */
import loglevel from "loglevel";
import { ClientEvent, createClient, SyncState, type MatrixClient } from "matrix-js-sdk";
import type { Logger } from "matrix-js-sdk/lib/logger.js";
import type { Credentials, TestHomeserver } from "../../../src/testing/index.js";

export const CALL_MEMBER = "org.matrix.msc3401.call.member";
export const UNSTABLE = "/_matrix/client/unstable/org.matrix.msc4140";
export const NO_LIMITS = { rateLimits: { message: null, delayedEventMgmt: null } };

export interface RawResponse {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  headers: Headers;
}

export interface RawOptions {
  token?: string;
  /** JSON-encoded unless `raw` is given. */
  body?: unknown;
  raw?: string;
  query?: Record<string, string | number>;
}

/** One request with global fetch; never throws on HTTP errors. */
export async function raw(
  hs: TestHomeserver,
  method: string,
  path: string,
  opts: RawOptions = {},
): Promise<RawResponse> {
  const url = new URL(hs.baseUrl + path);
  for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, String(v));
  const headers: Record<string, string> = {};
  if (opts.token !== undefined) headers.Authorization = `Bearer ${opts.token}`;
  let body: string | undefined = opts.raw;
  if (body === undefined && opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers["Content-Type"] = "application/json";
  }
  const res = await fetch(url, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep text
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

const enc = encodeURIComponent;

export const statePath = (roomId: string, type: string, stateKey: string): string =>
  `/_matrix/client/v3/rooms/${enc(roomId)}/state/${enc(type)}/${enc(stateKey)}`;

export const sendPath = (roomId: string, type: string, txnId: string): string =>
  `/_matrix/client/v3/rooms/${enc(roomId)}/send/${enc(type)}/${enc(txnId)}`;

export const delayQuery = (ms: number | string): Record<string, string> => ({
  "org.matrix.msc4140.delay": String(ms),
});

/** Schedules a delayed state event over raw HTTP and returns its id (asserting success). */
export async function scheduleState(
  hs: TestHomeserver,
  user: Credentials,
  roomId: string,
  stateKey: string,
  delayMs: number,
  content: Record<string, unknown> = {},
  type = CALL_MEMBER,
): Promise<string> {
  const res = await raw(hs, "PUT", statePath(roomId, type, stateKey), {
    token: user.accessToken,
    body: content,
    query: delayQuery(delayMs),
  });
  if (res.status !== 200) throw new Error(`schedule failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.delay_id as string;
}

export const mgmt = (
  hs: TestHomeserver,
  delayId: string,
  action: string,
  token?: string,
): Promise<RawResponse> => raw(hs, "POST", `${UNSTABLE}/delayed_events/${enc(delayId)}/${action}`, { token });

export const mgmtLegacy = (
  hs: TestHomeserver,
  delayId: string,
  body: unknown,
  token?: string,
): Promise<RawResponse> => raw(hs, "POST", `${UNSTABLE}/delayed_events/${enc(delayId)}`, { token, body });

// matrix-js-sdk creates child loggers of "matrix" (with level DEBUG) for MatrixRTCSession and friends;
// they copy the parent's method factory, so a no-op factory on the parent silences them all.
const sdkRoot = loglevel.getLogger("matrix");
sdkRoot.methodFactory = () => () => undefined;
sdkRoot.rebuild();

/** A logger that drops everything (matrix-js-sdk is chatty). */
export const silentLogger: Logger = {
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  getChild: () => silentLogger,
};

export function client(hs: TestHomeserver, user: Credentials): MatrixClient {
  return createClient({
    baseUrl: hs.baseUrl,
    userId: user.userId,
    accessToken: user.accessToken,
    deviceId: user.deviceId,
    logger: silentLogger,
  });
}

/** A started client that has finished its first sync. */
export async function syncedClient(hs: TestHomeserver, user: Credentials): Promise<MatrixClient> {
  const c = client(hs, user);
  const ready = new Promise<void>((resolve) => {
    const onSync = (state: SyncState): void => {
      if (state === SyncState.Prepared || state === SyncState.Syncing) {
        c.off(ClientEvent.Sync, onSync);
        resolve();
      }
    };
    c.on(ClientEvent.Sync, onSync);
  });
  await c.startClient({ initialSyncLimit: 20 });
  await ready;
  return c;
}

/** Polls `check` until it returns a truthy value (returned) or `timeoutMs` passes (throws). */
export async function waitFor<T>(
  check: () => T | undefined | false | null,
  timeoutMs = 3000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
