/**
 * Matrix error responses, shaped and worded like Synapse's so that clients which branch on `errcode`
 * (matrix-js-sdk's delayed-event fallback, our own error classifier) see exactly what production sends.
 */

export type JsonObject = Record<string, unknown>;

/** A request failure that becomes a JSON error response (`{errcode, error, ...extra}`). */
export class MatrixHttpError extends Error {
  public constructor(
    public readonly status: number,
    public readonly errcode: string,
    message: string,
    public readonly extra: JsonObject = {},
    public readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "MatrixHttpError";
  }

  public body(): JsonObject {
    return { errcode: this.errcode, error: this.message, ...this.extra };
  }
}

/** Synapse answers both "no such route" (404) and "wrong method" (405) with M_UNRECOGNIZED. */
export const unrecognized = (status: 404 | 405 = 404): MatrixHttpError =>
  new MatrixHttpError(status, "M_UNRECOGNIZED", "Unrecognized request");

export const notFound = (message: string): MatrixHttpError =>
  new MatrixHttpError(404, "M_NOT_FOUND", message);

export const forbidden = (message: string, errcode = "M_FORBIDDEN"): MatrixHttpError =>
  new MatrixHttpError(403, errcode, message);

/** Synapse's SynapseError default errcode is M_UNKNOWN. */
export const badRequest = (message: string, errcode = "M_UNKNOWN", extra: JsonObject = {}): MatrixHttpError =>
  new MatrixHttpError(400, errcode, message, extra);

export const missingToken = (): MatrixHttpError =>
  new MatrixHttpError(401, "M_MISSING_TOKEN", "Missing access token");

export const unknownToken = (): MatrixHttpError =>
  new MatrixHttpError(401, "M_UNKNOWN_TOKEN", "Invalid access token passed.", { soft_logout: false });

export const guestForbidden = (): MatrixHttpError =>
  new MatrixHttpError(403, "M_GUEST_ACCESS_FORBIDDEN", "Guest access not allowed");

export const notJson = (): MatrixHttpError => badRequest("Content not JSON.", "M_NOT_JSON");

export const tooLarge = (message = "Request content is too large"): MatrixHttpError =>
  new MatrixHttpError(413, "M_TOO_LARGE", message);

/**
 * 429 as Synapse's LimitExceededError renders it: body `retry_after_ms` and a `Retry-After` header in
 * whole seconds rounded up. `retryAfterMs === null` (count limit with overdue blockers) omits the header.
 */
export function limitExceeded(retryAfterMs: number | null, message = "Too Many Requests"): MatrixHttpError {
  const headers: Record<string, string> =
    retryAfterMs !== null && retryAfterMs > 0
      ? { "Retry-After": String(Math.ceil(retryAfterMs / 1000)) }
      : {};
  return new MatrixHttpError(429, "M_LIMIT_EXCEEDED", message, { retry_after_ms: retryAfterMs }, headers);
}

export const delayedEventNotFound = (): MatrixHttpError => notFound("Delayed event not found");
