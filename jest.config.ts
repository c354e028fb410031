import type { Config } from "jest";

// ESM all the way: matrix-js-sdk 43 ships only ESM, so tests run with
// --experimental-vm-modules (see the test:jest script) and ts-jest emits ESM.
const config: Config = {
  extensionsToTreatAsEsm: [".ts"],
  moduleNameMapper: {
    "^(\\.{1,2}/.*)\\.js$": "$1",
  },
  transform: {
    "^.+\\.tsx?$": ["ts-jest", { useESM: true, tsconfig: "tsconfig.json", diagnostics: false }],
  },
  testMatch: ["<rootDir>/test/**/*.test.ts", "<rootDir>/examples/**/*.test.ts"],
  // Real-Synapse suites run with `npm run test:synapse` (jest.synapse.config.ts), never in `npm test`.
  testPathIgnorePatterns: ["/node_modules/", "<rootDir>/test/synapse/"],
  testTimeout: 30_000,
  // What consumers get from `preset: "matrixrtc-membership"`: timers a test file leaves pending are
  // stopped when it ends (matrix-js-sdk's request timeouts and retries; src/jest/environment.ts), and
  // matrix-js-sdk's debug logging is off unless DEBUG_MATRIX_SDK=1 (src/jest/setup.ts).
  testEnvironment: "<rootDir>/src/jest/environment.ts",
  setupFilesAfterEnv: ["<rootDir>/src/jest/setup.ts"],
  // Three workers on the 2-core machines: most integration tests wait on real time (delays, cuts) far
  // more than they compute (a full run used 250 s of CPU in 400 s on two workers), so a third keeps the
  // cores busy. Tests must hold under that load: it is the load they are judged under.
  maxWorkers: 3,
};

export default config;
