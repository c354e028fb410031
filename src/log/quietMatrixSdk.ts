/**
 * matrix-js-sdk 43 logs through loglevel and forces each of its loggers to DEBUG when it makes them: about
 * 100 lines per client start, every request and sync. Setting levels cannot quiet it (it sets them
 * again); a method factory can. `quietMatrixSdkLogs()` wraps loglevel's factories so that only
 * matrix-js-sdk's loggers ("matrix", "matrix-<prefix>") lose their methods below the chosen level; every
 * other logger, this package's ("matrixrtc-membership…") and the app's own, logs as before.
 */
import log, { type Logger, type MethodFactory } from "loglevel";

/** matrix-js-sdk names its loggers "matrix" and "matrix-<prefix>"; ours are "matrixrtc-membership…". */
const JS_SDK_LOGGER = /^matrix(-|$)/;

const METHOD_LEVEL: Record<string, number> = { trace: 0, debug: 1, log: 1, info: 2, warn: 3, error: 4 };

/** How loud matrix-js-sdk may still be: `silent` (default) drops everything, `warn` keeps warnings and errors. */
export type MatrixSdkLogLevel = "silent" | "error" | "warn" | "info" | "debug";

const THRESHOLD: Record<MatrixSdkLogLevel, number> = { debug: 1, info: 2, warn: 3, error: 4, silent: 5 };

const QUIET = Symbol.for("matrixrtc-membership.quiet-factory");
type QuietFactory = MethodFactory & { [QUIET]?: MethodFactory };

interface Quieting {
  threshold: number;
  /** The factory the root would have without us. */
  rootFactory: MethodFactory;
  /** js-sdk loggers we changed, with the factory each had. */
  changed: Map<Logger, MethodFactory>;
}

const state = new WeakMap<object, Quieting>();

function unwrap(factory: MethodFactory): MethodFactory {
  return (factory as QuietFactory)[QUIET] ?? factory;
}

function quietFactory(inner: MethodFactory, quieting: Quieting): MethodFactory {
  const original = unwrap(inner);
  const wrapped: QuietFactory = function (this: unknown, methodName, level, loggerName) {
    if (
      typeof loggerName === "string" &&
      JS_SDK_LOGGER.test(loggerName) &&
      (METHOD_LEVEL[methodName] ?? 0) < quieting.threshold
    )
      return () => undefined;
    return original.call(this, methodName, level, loggerName);
  };
  wrapped[QUIET] = original;
  return wrapped;
}

/**
 * Quiets matrix-js-sdk's logging, and only that: its loggers log nothing below `level` (default
 * `silent`: nothing at all), now and those it makes later, whether js-sdk was loaded before or after
 * this call. This package's loggers and the app's own keep their levels and output. Call it again to
 * change the level; the returned function undoes it. `DEBUG_MATRIX_SDK=1` in the environment turns
 * it into a no-op (to see js-sdk's logs while debugging).
 *
 * It acts on the `loglevel` module this package resolves, which is matrix-js-sdk's own when npm
 * deduplicates it (it does for matrix-js-sdk 43, whose range matches ours); pass js-sdk's root logger
 * (`import loglevel from "loglevel"` in the app) as `root` if your installation holds two copies.
 */
export function quietMatrixSdkLogs(level: MatrixSdkLogLevel = "silent", root: typeof log = log): () => void {
  // Browsers have no `process`; a bundler may not define it either.
  if (typeof process !== "undefined" && process.env?.DEBUG_MATRIX_SDK) return () => undefined;
  const threshold = THRESHOLD[level];
  if (threshold === undefined) throw new TypeError(`quietMatrixSdkLogs: unknown level '${String(level)}'`);
  let quieting = state.get(root);
  if (!quieting) {
    const created: Quieting = { threshold, rootFactory: unwrap(root.methodFactory), changed: new Map() };
    quieting = created;
    state.set(root, created);
    // js-sdk assigns the root factory when it loads; whatever is assigned is wrapped.
    let current = quietFactory(created.rootFactory, created);
    Object.defineProperty(root, "methodFactory", {
      configurable: true,
      enumerable: true,
      get: () => current,
      set: (factory: MethodFactory) => {
        created.rootFactory = unwrap(factory);
        current = quietFactory(factory, created);
      },
    });
  }
  quieting.threshold = threshold;
  const active = quieting;
  // Loggers js-sdk made already took the root's factory (or their parent's) when they were made.
  for (const [name, logger] of Object.entries(root.getLoggers())) {
    if (!JS_SDK_LOGGER.test(name)) continue;
    if (!active.changed.has(logger)) active.changed.set(logger, unwrap(logger.methodFactory));
    logger.methodFactory = quietFactory(logger.methodFactory, active);
    logger.rebuild();
  }
  return () => {
    if (state.get(root) !== active) return;
    state.delete(root);
    const rootFactory = active.rootFactory;
    delete (root as { methodFactory?: MethodFactory }).methodFactory;
    root.methodFactory = rootFactory;
    for (const [logger, factory] of active.changed) {
      logger.methodFactory = factory;
      logger.rebuild();
    }
  };
}
