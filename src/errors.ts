import { MAX_TIMER_MS } from "./core/limits.js";
import { redactText } from "./log/redact.js";

/**
 * One classifier for every failure either backend can produce: matrix-js-sdk's MatrixError /
 * HTTPError / ConnectionError, matrix-widget-api's WidgetApiResponseError (with or without
 * `matrix_api_error`, headers or not), the widget transport's "Request timed out", plain host
 * errors, and our own local timeouts. The manager decides what to do from the class alone.
 */

import type { DelayedEventStatus } from "./backends/types.js";

/** Which request failed; a 403 means different things for a delayed schedule and a state send. */
export type Operation = "schedule-leave" | "restart" | "send-leave" | "cancel" | "send-state" | "delegate";

/**
 * What a failure means for the manager, whatever the transport: whether to retry, wait, schedule a
 * new delayed leave, or stop. Discriminated on `kind`; the other fields are the facts that decide how.
 */
export type ErrorClass =
  /** 429: wait `retryAfterMs` when the server said (header first, then body), else back off. */
  | {
      /** Rate limited (429 or `M_LIMIT_EXCEEDED`). */
      kind: "rate-limited";
      /** The server's wait hint in ms, capped at MAX_TIMER_MS; absent when it gave none. */
      retryAfterMs?: number;
    }
  /** Connection failure, local timeout, widget transport timeout: retry with backoff. */
  | {
      /** The request may not have reached the server, or its answer did not reach us. */
      kind: "network";
    }
  /**
   * 5xx: retry with backoff. Also an answer we cannot use (`malformed`: a 200 whose `delay_id` is
   * missing or not a string, a listing that is not a list): the server is broken, not our request.
   */
  | {
      /** The server failed (5xx) or answered something unusable. */
      kind: "server";
      /** The HTTP status (a malformed answer with no known status counts as 200). */
      status: number;
      /** Set when the answer was a success we could not use (MalformedResponseError). */
      malformed?: true;
    }
  /**
   * 404 M_NOT_FOUND (or 409 from MSC4140 as merged) on a delayed-event action: it is not pending.
   * `finalised`: what the server's lookup said after a 409 (sent, cancelled, failed), when known.
   */
  | {
      /** The delayed event is no longer pending (already sent, cancelled, or never known). */
      kind: "gone";
      /** What the server's lookup said became of it, when the backend asked after a 409. */
      finalised?: DelayedEventStatus;
    }
  /** The delay is over the server's maximum; `maxDelayMs` when the server said (legacy dialect). */
  | {
      /** The requested delay is longer than the server allows; the manager retries with a shorter one. */
      kind: "max-delay";
      /** The server's maximum in ms, when its answer stated it. */
      maxDelayMs?: number;
    }
  /** Delayed events disabled or unsupported by the server or the widget host. */
  | {
      /** No delayed events here: the manager continues in degraded mode (membership expiry only). */
      kind: "unsupported";
      /** Why, for `support$` and logs (redacted). */
      reason: string;
    }
  /** The server or host refused: power levels, a refused widget capability, a bad token. */
  | {
      /** Not allowed; retrying the same request will not help. */
      kind: "forbidden";
      /** Status, errcode and message of the refusal (redacted). */
      reason: string;
    }
  /** Any other 4xx: our request is wrong; retrying the same request will not help. */
  | {
      /** The server rejected the request as invalid. */
      kind: "rejected";
      /** The HTTP status (4xx). */
      status: number;
      /** The Matrix errcode, when the body had one. */
      errcode?: string;
    }
  /**
   * A schedule answered with an event id and no delay id: the server ignored the delay and wrote the
   * delayed leave (`{}`) at once (a server that speaks only MSC4140 as merged, a proxy that drops the
   * query). Never retried as it was: the backend detects the dialect again first.
   */
  | {
      /** The server ignored the delay: it wrote our delayed leave's content now. */
      kind: "delay-ignored";
    }
  /**
   * The sticky membership format cannot be spoken here: the server does not advertise MSC4354
   * (`org.matrix.msc4354` in `/versions`; Synapse with the feature off would send a plain event that
   * nobody reads as a membership), or the widget host refused the sticky capability. Never retried.
   */
  | {
      /** No sticky events here: the manager fails with a typed error (or falls back, when the app chose so). */
      kind: "sticky-unsupported";
      /** Why, for logs and the error (redacted). */
      reason: string;
    }
  /**
   * The room is encrypted and the membership could not go out encrypted (a client without crypto, or
   * one that does not know the room yet): it is not sent in the clear. Never retried.
   */
  | {
      /** The membership was not sent: it would have gone out unencrypted in an encrypted room. */
      kind: "unencryptable";
      /** Why (redacted). */
      reason: string;
    }
  /** Nothing recognisable (untyped host errors): treated as transient, within the give-up bound. */
  | {
      /** Unrecognised failure; retried with backoff until the manager gives up. */
      kind: "unknown";
    };

/** An HTTP-shaped view of an error, whichever way it arrived. */
export interface HttpFacts {
  /** The HTTP status, when the error carries one (absent for connection failures and host errors). */
  status?: number;
  /** The Matrix `errcode` from the response body, when there is one. */
  errcode?: string;
  /** The error's message (or the error itself as a string); not redacted. */
  message: string;
  /** The parsed Matrix error body (`{}` when none). */
  body: Record<string, unknown>;
  /** The response headers, names lower-cased (`{}` when the error carries none, e.g. Element X). */
  headers: Record<string, string>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null;
}

function headersToRecord(h: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  if (typeof (h as Headers).forEach === "function" && typeof (h as Headers).get === "function") {
    (h as Headers).forEach((value, key) => (out[key.toLowerCase()] = value));
    return out;
  }
  if (isRecord(h))
    for (const [k, v] of Object.entries(h)) if (typeof v === "string") out[k.toLowerCase()] = v;
  return out;
}

/** Pull status, errcode, body and headers out of any error shape we know. */
export function httpFacts(error: unknown): HttpFacts {
  const message = isRecord(error) && typeof error.message === "string" ? error.message : String(error);
  if (!isRecord(error)) return { message, body: {}, headers: {} };

  // matrix-widget-api: WidgetApiResponseError.data.matrix_api_error (Element Web adds headers, Element X not).
  const widgetData = isRecord(error.data) ? error.data : undefined;
  const mae = widgetData && isRecord(widgetData.matrix_api_error) ? widgetData.matrix_api_error : undefined;
  if (mae) {
    const body = isRecord(mae.response) ? mae.response : {};
    return {
      status: typeof mae.http_status === "number" ? mae.http_status : undefined,
      errcode: typeof body.errcode === "string" ? body.errcode : undefined,
      message,
      body,
      headers: headersToRecord(mae.http_headers),
    };
  }

  // matrix-js-sdk MatrixError / HTTPError (also what RoomWidgetClient rebuilds from widget errors).
  const status = typeof error.httpStatus === "number" ? error.httpStatus : undefined;
  const body = isRecord(error.data) ? error.data : {};
  const errcode = typeof error.errcode === "string" ? error.errcode : undefined;
  return { status, errcode, message, body, headers: headersToRecord(error.httpHeaders) };
}

/**
 * The server's wait hint in ms: the `Retry-After` header first (RFC 9110: whole delay-seconds, or an
 * HTTP date), then the body's `retry_after_ms`; undefined when neither is usable. A header that is
 * neither (`-5`, `1.5`, `soon`) is ignored rather than read as a date (`Date.parse("-5")` is the year
 * -5). A date in the past gives 0, and every result is at most MAX_TIMER_MS. This is the raw hint:
 * the wait itself comes from `retryWaitMs` (core/policy), which applies the floor and the ceiling.
 */
export function retryAfterMs(facts: HttpFacts, now: number = Date.now()): number | undefined {
  const header = facts.headers["retry-after"]?.trim();
  if (header) {
    if (/^\d+$/.test(header)) return Math.min(Number(header) * 1000, MAX_TIMER_MS);
    // HTTP dates always contain a month or weekday name; anything without letters is not one.
    const date = /[a-z]/i.test(header) ? Date.parse(header) : NaN;
    if (Number.isFinite(date)) return Math.min(Math.max(0, date - now), MAX_TIMER_MS);
  }
  const ms = facts.body.retry_after_ms;
  if (typeof ms === "number" && Number.isFinite(ms) && ms >= 0) return Math.min(ms, MAX_TIMER_MS);
  return undefined;
}

/**
 * A success answer whose body we cannot use: a schedule without a string `delay_id`, a delayed-event
 * listing that is not a list, a state read that is not an object. Thrown by the backends (see
 * core/validate.ts) and classified `server` with `malformed: true`: retried with backoff, and never
 * taken as a delayed leave.
 */
export class MalformedResponseError extends Error {
  constructor(
    /** What we asked for, e.g. "schedule-leave". */
    readonly request: string,
    detail: string,
    /** The HTTP status of the answer when known (a malformed answer is usually a 200). */
    readonly status = 200,
  ) {
    super(`malformed answer to ${request}: ${detail}`);
    this.name = "MalformedResponseError";
  }
}

/**
 * A schedule's answer proves the delay was ignored: an event id, no delay id (the server wrote `{}` at our
 * key at once). Thrown by the backends; classified `delay-ignored`.
 */
export class DelayIgnoredError extends Error {
  constructor(detail = "the server answered a schedule with an event id: it ignored the delay") {
    super(detail);
    this.name = "DelayIgnoredError";
  }
}

/**
 * The server does not speak MSC4354 sticky events (its `/versions` lacks `org.matrix.msc4354`), or the
 * widget host refused the sticky capability: a sticky membership would go out as a plain event. Named
 * like matrix-js-sdk's own refusal, so both classify alike (`sticky-unsupported`).
 */
export class StickyEventsUnsupportedError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = "UnsupportedStickyEventsEndpointError";
  }
}

/**
 * The room is encrypted, and the sticky membership cannot be encrypted by this client (no crypto, or the
 * client does not know the room): it is not sent in the clear. Classified `unencryptable`.
 */
export class EncryptionUnavailableError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = "EncryptionUnavailableError";
  }
}

/** The server (or widget host) offers no delayed events at all (its `/versions` says so). */
export class DelayedEventsUnsupportedError extends Error {
  constructor(detail: string) {
    super(detail);
    // The name matrix-js-sdk gives its own refusal, so both classify alike.
    this.name = "UnsupportedDelayedEventsEndpointError";
  }
}

const NETWORK_NAMES = new Set(["ConnectionError", "AbortError", "TimeoutError", "LocalTimeoutError"]);
const NETWORK_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "UND_ERR_SOCKET"]);

function looksLikeNetworkError(error: unknown, message: string): boolean {
  if (!isRecord(error)) return false;
  if (typeof error.name === "string" && NETWORK_NAMES.has(error.name)) return true;
  const cause = isRecord(error.cause) ? error.cause : undefined;
  if (cause && typeof cause.code === "string" && NETWORK_CODES.has(cause.code)) return true;
  if (typeof error.code === "string" && NETWORK_CODES.has(error.code)) return true;
  // The widget transport's own timeout, and fetch's generic failure.
  return /request timed out|failed to fetch|fetch failed|network ?error|socket hang up/i.test(message);
}

/**
 * Classify one failure of `op`. Pure: no I/O, no clock other than for an HTTP-date Retry-After. The
 * `reason` strings it returns are redacted (they quote the error message, which may hold a URL).
 */
export function classifyError(error: unknown, op: Operation, now: number = Date.now()): ErrorClass {
  const cls = classifyRaw(error, op, now);
  return "reason" in cls ? { ...cls, reason: redactText(cls.reason) } : cls;
}

function classifyRaw(error: unknown, op: Operation, now: number): ErrorClass {
  const facts = httpFacts(error);
  const { status, errcode, body, message } = facts;
  const msc4140Errcode = body["org.matrix.msc4140.errcode"];

  if (isRecord(error) && error.name === "DelayIgnoredError") return { kind: "delay-ignored" };
  if (isRecord(error) && error.name === "UnsupportedStickyEventsEndpointError")
    return { kind: "sticky-unsupported", reason: message };
  if (isRecord(error) && error.name === "EncryptionUnavailableError")
    return { kind: "unencryptable", reason: message };
  // A widget host refusing MSC4407 (matrix-widget-api's wording): a plain event must not go out instead.
  if (/missing capability.*msc4407/i.test(message))
    return { kind: "sticky-unsupported", reason: `widget host refused: ${message}` };
  if (error instanceof MalformedResponseError || (isRecord(error) && error.name === "MalformedResponseError"))
    return { kind: "server", status: typeof status === "number" ? status : 200, malformed: true };

  if (status === 429 || errcode === "M_LIMIT_EXCEEDED")
    return { kind: "rate-limited", retryAfterMs: retryAfterMs(facts, now) };

  if (isRecord(error) && error.name === "UnsupportedDelayedEventsEndpointError")
    return {
      kind: "unsupported",
      reason:
        typeof error.message === "string" && error.message.startsWith("the server")
          ? error.message
          : "the server does not advertise org.matrix.msc4140",
    };
  if (msc4140Errcode === "M_MAX_DELAY_UNSUPPORTED")
    return { kind: "unsupported", reason: "delayed events are not supported on this server" };
  // Synapse ≥1.161 (verified on 1.161–1.163.2): 400 with its own errcode; the maximum is only in the message.
  if (errcode === "ORG.MATRIX.MSC4140_DELAY_TOO_LARGE") {
    const max = /allowed maximum \((\d+)ms\)/.exec(String(body.error ?? message))?.[1];
    return {
      kind: "max-delay",
      ...(max !== undefined && Number(max) > 0 ? { maxDelayMs: Number(max) } : {}),
    };
  }
  if (msc4140Errcode === "M_MAX_DELAY_EXCEEDED") {
    const max = body["org.matrix.msc4140.max_delay"];
    return { kind: "max-delay", maxDelayMs: typeof max === "number" && max > 0 ? max : undefined };
  }
  // Widget hosts refusing the delayed-event capabilities (matrix-widget-api and matrix-rust-sdk wording).
  if (
    /missing capability.*(msc4157|delayed_event)|msc4157.*capability/i.test(message) ||
    /^missing capability$/i.test(message)
  )
    return op === "send-state"
      ? { kind: "forbidden", reason: message }
      : { kind: "unsupported", reason: `widget host refused: ${message}` };
  if (/cannot send (state|room) events of this type|not allowed/i.test(message) && status === undefined)
    return { kind: "forbidden", reason: message };
  // matrix-widget-api: `room_id` sent without the `org.matrix.msc2762.timeline:<room>` capability.
  if (/^unable to access room timeline/i.test(message) && status === undefined)
    return { kind: "forbidden", reason: message };
  // A host whose widget API predates MSC4157 does not know the update action at all.
  if (
    /unknown or unsupported from-widget action: .*update_delayed_event/i.test(message) &&
    status === undefined
  )
    return { kind: "unsupported", reason: `widget host refused: ${message}` };

  if (status !== undefined) {
    if (status >= 500) return { kind: "server", status };
    if ((status === 404 && errcode === "M_NOT_FOUND") || status === 409) {
      const finalised = isRecord(error)
        ? (error.delayedEventStatus as DelayedEventStatus | undefined)
        : undefined;
      if (op === "restart" || op === "send-leave" || op === "cancel")
        return finalised ? { kind: "gone", finalised } : { kind: "gone" };
      return { kind: "rejected", status, errcode };
    }
    if (status === 404 && errcode === "M_UNRECOGNIZED")
      return op === "send-state"
        ? { kind: "rejected", status, errcode }
        : { kind: "unsupported", reason: "delayed-event endpoint missing" };
    if (status === 403 && op === "schedule-leave") {
      // Synapse ≥1.157: a 403 on scheduling is either "disallowed" or "over the maximum" (limit in /capabilities).
      if (
        /exceeds the allowed maximum/i.test(message) ||
        /exceeds the allowed maximum/i.test(String(body.error ?? ""))
      )
        return { kind: "max-delay" };
      if (
        /disallowed|not supported/i.test(message) ||
        /disallowed|not supported/i.test(String(body.error ?? ""))
      )
        return { kind: "unsupported", reason: "delayed events are disallowed on this server" };
      return { kind: "max-delay" };
    }
    if (status === 401 || status === 403)
      return { kind: "forbidden", reason: `${status} ${errcode ?? ""} ${message}`.trim() };
    if (status >= 400) return { kind: "rejected", status, errcode };
  }

  if (looksLikeNetworkError(error, message)) return { kind: "network" };
  return { kind: "unknown" };
}

/** True for classes where the same request may succeed later. */
export function isTransient(c: ErrorClass): boolean {
  return c.kind === "rate-limited" || c.kind === "network" || c.kind === "server" || c.kind === "unknown";
}

/**
 * A typed error the app can act on; `cause` is the original error. The message is redacted (access
 * tokens, delay ids), and so are the cause's `message`, `stack` and `url` (a matrix-js-sdk error
 * carries its request URL, with `?access_token=` when the client does not use the Authorization header).
 */
export class MembershipError extends Error {
  constructor(
    message: string,
    /** What went wrong, for the app to branch on (see MembershipErrorCode). */
    readonly code: MembershipErrorCode,
    /** The request that failed, or `"config"` for failures not tied to a request (disposed, left early). */
    readonly operation: Operation | "config",
    /** How the failure was classified, when it came from a request (absent for our own errors). */
    readonly errorClass?: ErrorClass,
    options?: { cause?: unknown },
  ) {
    super(redactText(message), options);
    this.name = "MembershipError";
    if (options?.cause !== undefined) scrubError(options.cause);
  }
}

/**
 * Redact, in place, the strings of an error that reached us from one of our own requests, so that
 * whoever logs a MembershipError with its cause leaks nothing. Best effort (frozen objects stay as they are).
 */
export function scrubError(error: unknown): void {
  if (!isRecord(error)) return;
  for (const key of ["message", "stack", "url"] as const) {
    const value = error[key];
    if (typeof value !== "string") continue;
    const clean = redactText(value);
    if (clean === value) continue;
    try {
      Object.defineProperty(error, key, { value: clean, writable: true, configurable: true });
    } catch {
      // non-configurable: leave it
    }
  }
}

/**
 * The `code` of a MembershipError. The first ones mirror ErrorClass kinds (`gone` becomes
 * `delayed-leave-lost`, `max-delay` becomes `max-delay-lowered`, `unsupported` becomes
 * `delayed-events-unsupported`); `gave-up` means the manager stopped retrying, the call ended or it was
 * disposed before the operation completed; `membership-removed` means someone else removed or
 * replaced our membership; `membership-expired` means no membership write got through before its
 * `expires`, so others no longer list us; `link-too-slow` means the measured round trip does not fit the
 * delay (requests time out although the server answers); `clock-skew` means this device's clock
 * disagrees with the server's by more than 30 s (a warning: the manager's own writes rest on the
 * server's clock); `removed-from-room` means we were kicked or banned, or left the room: the call ended;
 * `delay-ignored` means the server ignored a schedule's delay and wrote our delayed leave (`{}`) at once
 * (its MSC4140 dialect changed: the backend detects it again before the next try);
 * `sticky-events-unsupported` means the sticky format cannot be spoken (no MSC4354 on the server, or the
 * widget host refused it): nothing was sent as a plain event; `encryption-unavailable` means the room is
 * encrypted and the sticky membership could not be encrypted, so it was not sent.
 */
export type MembershipErrorCode =
  | "rate-limited"
  | "network"
  | "server"
  | "delayed-leave-lost"
  | "max-delay-lowered"
  | "delayed-events-unsupported"
  | "forbidden"
  | "rejected"
  | "unknown"
  | "gave-up"
  | "membership-removed"
  | "membership-expired"
  | "link-too-slow"
  | "clock-skew"
  | "removed-from-room"
  | "delay-ignored"
  | "sticky-events-unsupported"
  | "encryption-unavailable";

/** Our own local timeout for one request (the request itself may still reach the server). */
export class LocalTimeoutError extends Error {
  constructor(
    /** The timeout that expired, in ms. */
    readonly timeoutMs: number,
  ) {
    super(`no answer within ${timeoutMs} ms`);
    this.name = "LocalTimeoutError";
  }
}

/** Thrown from the constructor for contradictory or impossible options. */
export class MembershipConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MembershipConfigError";
  }
}
