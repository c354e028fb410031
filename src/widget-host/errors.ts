/**
 * The host's own errors. `HostRefusalError` is what the driver throws when it refuses a widget's request
 * itself (an id the widget did not schedule, a rate limit, a bad `delay`): it has the shape of a
 * matrix-js-sdk `MatrixError` (`httpStatus`, `data`), so `processError` hands it to the widget as a
 * `matrix_api_error` and the widget classifies it like the server's own answer to the same request.
 */

/** The JSON body of a refusal, as a server would answer it. */
export interface HostRefusalBody {
  /** The Matrix error code (`M_NOT_FOUND`, `M_LIMIT_EXCEEDED`, `M_INVALID_PARAM`, ...). */
  errcode: string;
  /** What was refused, in words (no ids, no content). */
  error: string;
  /**
   * For `M_LIMIT_EXCEEDED`: when the widget may try again (in the body only: a `Retry-After` header would
   * round it up to whole seconds, and widgets read the header first).
   */
  retry_after_ms?: number;
  /** Other fields a server sends for the same case (e.g. `org.matrix.msc4140.max_delay`). */
  [field: string]: unknown;
}

/** A refusal by the host, shaped like the Matrix error a server gives for the same case. */
export class HostRefusalError extends Error {
  override readonly name = "HostRefusalError";
  /** No URL: nothing was requested from the server. */
  readonly url = "";

  constructor(
    /** The HTTP status a server would answer with (404, 429, 400). */
    readonly httpStatus: number,
    /** The JSON body the widget receives as `matrix_api_error.response`. */
    readonly data: HostRefusalBody,
  ) {
    super(data.error);
  }
}

/** The host cannot be set up safely (an unusable widget origin, a matrix-widget-api it cannot guard). */
export class WidgetHostSetupError extends Error {
  override readonly name = "WidgetHostSetupError";
}
