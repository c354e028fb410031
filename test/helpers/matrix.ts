import { quietMatrixSdkLogs } from "../../src/testing/scenario.js";

// Set MATRIX_SDK_LOGS=1 to see matrix-js-sdk's logs in tests.
if (!process.env.MATRIX_SDK_LOGS) quietMatrixSdkLogs();

export {
  bareClient,
  rtcMembers,
  stopClient,
  syncedClient,
  waitFor,
  type UserCreds,
} from "../../src/testing/scenario.js";
