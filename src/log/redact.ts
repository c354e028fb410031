/**
 * Redaction of everything we write to a log or put in an error message. A request error from
 * matrix-js-sdk carries its URL in its message, and with `useAuthorizationHeader: false` that URL holds
 * `?access_token=…`; delayed-event URLs hold the delay id, which (MSC4140) lets anyone who knows it send
 * or cancel our leave without a token. Pattern-based, so it works whatever the client's settings.
 */
import type { Logger } from "loglevel";

/** What `redactText` and `redactValue` hide besides access tokens, which are always hidden. */
export interface RedactOptions {
  /** Also hide delay ids (everything above debug level, and error messages). Default true. */
  delayIds?: boolean;
}

export const REDACTED = "<redacted>";

// Tokens: query/form parameters (plain or percent-encoded `=`), JSON fields, Authorization headers,
// bare Bearer credentials, and Synapse-format tokens (`syt_…` access, `syr_…` refresh) anywhere.
const TOKEN_PARAM = /((?:access|refresh|login)_token)(=|%3D)[^&#\s"'<>)\]]*/gi;
const TOKEN_JSON = /("(?:access|refresh|login)_token"\s*:\s*)"(?:[^"\\]|\\.)*"/gi;
const AUTH_HEADER = /\b(authorization["']?\s*[:=]\s*["']?)(?:(bearer)\s+)?[^\s"',;}]+/gi;
const BEARER = /\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}/gi;
const SYNAPSE_TOKEN = /\bsy[tr]_[A-Za-z0-9_=-]+/g;
// Delay ids: the path segment after `delayed_events/`, JSON and query fields, Synapse's `syd_…` form.
const DELAY_PATH = /(delayed_events\/)[^/?#\s"'<>)\]]+/gi;
const DELAY_JSON = /("delay_id"\s*:\s*)"(?:[^"\\]|\\.)*"/gi;
const DELAY_PARAM = /(delay_id)(=|%3D)[^&#\s"'<>)\]]*/gi;
const SYNAPSE_DELAY_ID = /\bsyd_[A-Za-z0-9_-]+/g;

/** `text` with access tokens (and, unless `delayIds: false`, delay ids) replaced by `<redacted>`. */
export function redactText(text: string, options: RedactOptions = {}): string {
  let out = text
    .replace(TOKEN_PARAM, `$1$2${REDACTED}`)
    .replace(TOKEN_JSON, `$1"${REDACTED}"`)
    .replace(
      AUTH_HEADER,
      (_m, head: string, bearer?: string) => `${head}${bearer ? `${bearer} ` : ""}${REDACTED}`,
    )
    .replace(BEARER, `$1 ${REDACTED}`)
    .replace(SYNAPSE_TOKEN, REDACTED);
  if (options.delayIds ?? true)
    out = out
      .replace(DELAY_PATH, `$1${REDACTED}`)
      .replace(DELAY_JSON, `$1"${REDACTED}"`)
      .replace(DELAY_PARAM, `$1$2${REDACTED}`)
      .replace(SYNAPSE_DELAY_ID, REDACTED);
  return out;
}

/** One log argument, made safe: strings and errors redacted, objects as redacted JSON. */
export function redactValue(value: unknown, options: RedactOptions = {}): unknown {
  if (typeof value === "string") return redactText(value, options);
  if (value instanceof Error) return redactText(value.stack ?? `${value.name}: ${value.message}`, options);
  if (value === null || typeof value !== "object") return value;
  try {
    return redactText(JSON.stringify(value), options);
  } catch {
    return redactText(String(value), options);
  }
}

const LEVEL = { trace: 0, debug: 1, log: 1, info: 2, warn: 3, error: 4 } as const;

const WRAPPED = Symbol("matrixrtc-membership.redacting");
const WRAPPERS = new WeakMap<Logger, Logger>();

/**
 * A logger that redacts every argument before `inner` sees it: access tokens at every level, delay ids
 * at info and above (debug and trace may show them, for whoever debugs a delayed leave). Level changes
 * on `inner` keep working: the wrapper looks `inner`'s methods up at each call. Idempotent.
 */
export function redactingLogger(inner: Logger): Logger {
  if ((inner as unknown as Record<symbol, unknown>)[WRAPPED]) return inner;
  // One wrapper per logger, shared by every manager that logs to it: a process with thousands of
  // managers on the default logger pays for six closures once, not per manager (about 0.7 KB each).
  const known = WRAPPERS.get(inner);
  if (known) return known;
  const wrapped = Object.create(inner) as Logger & Record<symbol, unknown>;
  const wrap =
    (method: "trace" | "debug" | "log" | "info" | "warn" | "error", delayIds: boolean) =>
    (...args: unknown[]): void => {
      // Below the logger's level nothing is printed: skip the redaction work (managers log a lot at debug).
      if (typeof inner.getLevel === "function" && inner.getLevel() > LEVEL[method]) return;
      inner[method](...args.map((a) => redactValue(a, { delayIds })));
    };
  wrapped.trace = wrap("trace", false);
  wrapped.debug = wrap("debug", false);
  wrapped.log = wrap("log", false);
  wrapped.info = wrap("info", true);
  wrapped.warn = wrap("warn", true);
  wrapped.error = wrap("error", true);
  wrapped[WRAPPED] = true;
  WRAPPERS.set(inner, wrapped);
  return wrapped;
}
