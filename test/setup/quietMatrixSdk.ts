/**
 * Runs before every test file (jest `setupFilesAfterEnv`): matrix-js-sdk's logging is off unless asked
 * for with `DEBUG_MATRIX_SDK=1` (it logs every request and sync at debug level: hundreds of lines a file).
 *
 * js-sdk sets loglevel's root `methodFactory` when it loads and forces each of its loggers ("matrix",
 * "matrix-<prefix>") to DEBUG, so neither levels nor a factory set before it loads would hold. Instead
 * every factory installed on the root is wrapped: loggers named "matrix" or "matrix-…" get no-op
 * methods, every other logger (ours are "matrixrtc-membership…") logs as before. Importing js-sdk here
 * would cost every test file its load time; this does not.
 */
import log from "loglevel";

const JS_SDK_LOGGER = /^matrix(-|$)/;

if (!process.env.DEBUG_MATRIX_SDK && !process.env.MATRIX_SDK_LOGS) {
  const quietFor = (factory: log.MethodFactory): log.MethodFactory =>
    function (this: unknown, methodName, level, loggerName) {
      if (typeof loggerName === "string" && JS_SDK_LOGGER.test(loggerName)) return () => undefined;
      return factory.call(this, methodName, level, loggerName);
    };
  let current = quietFor(log.methodFactory);
  Object.defineProperty(log, "methodFactory", {
    configurable: true,
    get: () => current,
    set: (factory: log.MethodFactory) => {
      current = quietFor(factory);
    },
  });
}
