import type { Config } from "jest";

// ESM all the way: matrix-js-sdk 43 ships only ESM, so tests run with
// --experimental-vm-modules (see the test:jest script) and ts-jest emits ESM.
const config: Config = {
  testEnvironment: "node",
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
  // Integration tests use real sockets on 127.0.0.1; two workers match the 2-core machines.
  maxWorkers: 2,
  // matrix-js-sdk never clears the 80-110 s timeout timers of its sync requests after stopClient(), so
  // a run would wait for them. Our own code's timers are asserted in the tests (pendingTimers === 0).
  forceExit: true,
};

export default config;
