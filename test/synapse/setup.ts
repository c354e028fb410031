// Runs before every real-Synapse test file (jest.synapse.config.ts setupFiles).
import { quietMatrixSdkLogs } from "../../src/testing/scenario.js";

// A test that picks no server (examples/network-loss.test.ts) runs on real Synapse here, unchanged.
process.env.MATRIXRTC_TEST_SERVER ??= "synapse";
// Set MATRIX_SDK_LOGS=1 to see matrix-js-sdk's logs.
if (!process.env.MATRIX_SDK_LOGS) quietMatrixSdkLogs();
