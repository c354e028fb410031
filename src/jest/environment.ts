/**
 * The jest preset's test environment: jest's own `node` environment, plus one step at teardown (after the
 * file's last test and hook): every timer the file armed that is still pending is stopped (see
 * src/node/timers.ts; the preset's setup file records them). matrix-js-sdk leaves request timeouts of up
 * to 110 s and, after its homeserver is gone, MatrixRTC retries that would otherwise run on into the
 * next test file of the same worker and send requests to ports other tests listen on by then.
 *
 * Self-contained on purpose (jest loads environments outside the test's module system): it finds the
 * timers through a well-known symbol on the file's global, and jest-environment-node from the project.
 */
import { createRequire } from "node:module";
import { join } from "node:path";

type NodeEnvironmentModule = typeof import("jest-environment-node");

function loadNodeEnvironment(): NodeEnvironmentModule {
  // The project's jest (what runs this file), then the jest that was started, then this package's view.
  const from = [join(process.cwd(), "package.json"), process.argv[1]].filter((p): p is string => !!p);
  for (const base of from) {
    try {
      return createRequire(base)("jest-environment-node") as NodeEnvironmentModule;
    } catch {
      // next
    }
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- CommonJS build only; ESM has no require
  return require("jest-environment-node") as NodeEnvironmentModule;
}

const REGISTRY = Symbol.for("matrixrtc-membership.timer-registry");

interface TimerRegistry {
  everything: Set<{ stop(): void }>;
}

const { TestEnvironment } = loadNodeEnvironment();

/** `testEnvironment` of `preset: "matrixrtc-membership"`. */
export default class MatrixRtcTestEnvironment extends TestEnvironment {
  override async teardown(): Promise<void> {
    const global = this.global as unknown as Record<symbol, TimerRegistry | undefined>;
    for (const scope of global[REGISTRY]?.everything ?? []) scope.stop();
    await super.teardown();
  }
}
