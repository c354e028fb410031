import type { Config } from "jest";

// `npm run test:synapse`: the suites that need a real Synapse (pip-installed on first use, see
// src/testing/synapse). Kept out of `npm test`, which must stay fast and need no Python. Same ESM
// set-up as jest.config.ts (a TypeScript jest config cannot import another here).
const config: Config = {
  extensionsToTreatAsEsm: [".ts"],
  moduleNameMapper: {
    "^(\\.{1,2}/.*)\\.js$": "$1",
  },
  transform: {
    "^.+\\.tsx?$": ["ts-jest", { useESM: true, tsconfig: "tsconfig.json", diagnostics: false }],
  },
  testMatch: ["<rootDir>/test/synapse/**/*.test.ts", "<rootDir>/examples/network-loss.test.ts"],
  // Makes startTestCall() pick real Synapse for the unchanged example, and quiets matrix-js-sdk.
  setupFiles: ["<rootDir>/test/synapse/setup.ts"],
  testEnvironment: "<rootDir>/src/jest/environment.ts",
  setupFilesAfterEnv: ["<rootDir>/src/jest/setup.ts"],
  // Each file starts its own Synapse (about 2 s of CPU and 150 MB). One file at a time: with two, two
  // Synapses and two jest workers share 2 cores and the timings these suites assert on get noisy.
  maxWorkers: 1,
  testTimeout: 90_000,
};

export default config;
