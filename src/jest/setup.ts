/**
 * The jest preset's setup file (`setupFilesAfterEnv`), run in every test file's environment:
 * - records every timer the file arms, so that the preset's environment (environment.ts) stops those still
 *   pending when the file is over: nothing of a finished file runs on, and no worker waits 110 s for
 *   matrix-js-sdk's request timeouts;
 * - quiets matrix-js-sdk's logs (hundreds of lines per file), and only those; `DEBUG_MATRIX_SDK=1` keeps them.
 */
import { quietMatrixSdkLogs } from "../log/quietMatrixSdk.js";
import { trackEverything } from "../node/timers.js";

trackEverything(globalThis);
quietMatrixSdkLogs();
