import log from "loglevel";
import { logger as sdkLogger } from "matrix-js-sdk/lib/logger.js";

// matrix-js-sdk forces every prefixed logger (MatrixRTCSession, sync, ...) to DEBUG when it creates it,
// so levels cannot quieten it; a no-op method factory can, for loggers made now and later.
// Set MATRIX_SDK_LOGS=1 to see them.
if (!process.env.MATRIX_SDK_LOGS) {
  const quiet: log.MethodFactory = () => () => undefined;
  log.methodFactory = quiet;
  // js-sdk types its logger narrowly; underneath it is a loglevel logger.
  const sdk = sdkLogger as unknown as log.Logger;
  sdk.methodFactory = quiet;
  sdk.rebuild();
}

export {
  bareClient,
  rtcMembers,
  stopClient,
  syncedClient,
  waitFor,
  type UserCreds,
} from "../../src/testing/scenario.js";
