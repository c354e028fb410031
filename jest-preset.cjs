/**
 * `preset: "matrixrtc-membership"` in a call app's jest config. What it sets, and why:
 * - matrix-js-sdk 43 ships only ES modules, so the tests run as ES modules: jest must run with
 *   `NODE_OPTIONS=--experimental-vm-modules` (without it jest fails with "Must use import to load ES
 *   Module"; this file warns). With ts-jest installed in the project, `.ts` tests are compiled to ES
 *   modules (no type check: run `tsc --noEmit` for that), and `./x.js` imports find `./x.ts`.
 * - testEnvironment: jest's `node` environment that stops, when a test file is over, every timer the
 *   file left pending (matrix-js-sdk never clears its request timeouts, up to 110 s): jest exits by
 *   itself, no `forceExit`, and nothing of a finished file runs on into the next one.
 * - setupFilesAfterEnv: records those timers and quiets matrix-js-sdk's logs, and only those
 *   (`DEBUG_MATRIX_SDK=1` keeps them).
 * - testTimeout 30 s: a network-loss test waits out real delays.
 * Anything here can be overridden in the project's own config.
 */
const { existsSync } = require("node:fs");
const { createRequire } = require("node:module");
const { join } = require("node:path");
const vm = require("node:vm");

if (typeof vm.SourceTextModule !== "function") {
  console.warn(
    "matrixrtc-membership jest preset: ES modules are off. matrix-js-sdk 43 ships only ES modules: run jest " +
      'with NODE_OPTIONS=--experimental-vm-modules (e.g. "test": "NODE_OPTIONS=--experimental-vm-modules jest").',
  );
}

const project = createRequire(join(process.cwd(), "package.json"));
const hasTsJest = (() => {
  try {
    project.resolve("ts-jest");
    return true;
  } catch {
    return false;
  }
})();

module.exports = {
  testEnvironment: require.resolve("./dist/cjs/jest/environment.js"),
  setupFilesAfterEnv: [require.resolve("./dist/cjs/jest/setup.js")],
  testTimeout: 30_000,
  ...(hasTsJest
    ? {
        extensionsToTreatAsEsm: [".ts"],
        transform: {
          "^.+\\.tsx?$": [
            "ts-jest",
            {
              useESM: true,
              diagnostics: false,
              // A project without a tsconfig.json would be compiled to CommonJS, which ES module mode
              // cannot run ("exports is not defined"): give it ES modules. A project's own tsconfig.json
              // is used as it is (its `module` should be nodenext, node16 or esnext).
              ...(existsSync(join(process.cwd(), "tsconfig.json"))
                ? {}
                : {
                    tsconfig: {
                      module: "esnext",
                      target: "es2022",
                      esModuleInterop: true,
                      isolatedModules: true,
                    },
                  }),
            },
          ],
        },
        moduleNameMapper: { "^(\\.{1,2}/.*)\\.js$": "$1" },
      }
    : {}),
};
