// `matrixrtc-membership/node`: helpers for Node programs that run matrix-js-sdk themselves (bots, servers,
// test suites), so that they exit once their work is done. Loads neither peer; Node only.
export { startClient, stopClient, clientTimers } from "./client.js";
export type { StartableClient } from "./client.js";
export { timerScope, trackEverything, TimerScope } from "./timers.js";
export { quietMatrixSdkLogs } from "../log/quietMatrixSdk.js";
export type { MatrixSdkLogLevel } from "../log/quietMatrixSdk.js";
