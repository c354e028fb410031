/**
 * `quietMatrixSdkLogs()` quiets matrix-js-sdk's loggers, and only those: this package's warnings and the
 * app's own logs still come out, js-sdk's loggers made later are quiet too, `"warn"` lets js-sdk's
 * warnings through, and the returned function undoes it. Asserted on what reaches the console.
 */
import { afterAll, afterEach, beforeEach, describe, expect, it, jest } from "@jest/globals";
import log from "loglevel";
import { logger as sdkLogger } from "matrix-js-sdk/lib/logger.js";
import { quietMatrixSdkLogs } from "../../src/index.js";

type Method = "debug" | "info" | "warn" | "error" | "log" | "trace";
let printed: string[];

beforeEach(() => {
  printed = [];
  for (const m of ["debug", "info", "warn", "error", "log", "trace"] as Method[])
    jest
      .spyOn(console, m)
      .mockImplementation((...args: unknown[]) => void printed.push(`${m} ${args.join(" ")}`));
});
afterEach(() => {
  jest.restoreAllMocks();
});
// The preset's setup file quieted js-sdk for this file; leave it so.
afterAll(() => void quietMatrixSdkLogs());

/** loglevel's default factory binds console methods when a logger is (re)built: rebuild after spying. */
function rebuilt<T extends log.Logger>(logger: T): T {
  logger.rebuild();
  return logger;
}

describe("quietMatrixSdkLogs", () => {
  it("silences js-sdk's loggers, old and new, and nothing else", () => {
    const undo = quietMatrixSdkLogs();
    const ours = rebuilt(log.getLogger("matrixrtc-membership"));
    const app = rebuilt(log.getLogger("my-app"));
    app.setLevel("info");
    ours.setLevel("warn");
    const sdk = sdkLogger as unknown as log.Logger;
    const child = sdkLogger.getChild("[test-child]") as unknown as log.Logger;
    const madeLater = log.getLogger("matrix-made-later");
    madeLater.setLevel("debug");
    for (const l of [sdk, child, madeLater]) {
      l.debug("sdk debug");
      l.warn("sdk warn");
      l.error("sdk error");
    }
    ours.warn("our warning");
    ours.info("our info (below our level)");
    app.info("app info");
    expect(printed).toEqual(["warn our warning", "info app info"]);
    undo();
    quietMatrixSdkLogs();
  });

  it("'warn' lets js-sdk's warnings and errors through; the undo brings its debug lines back", () => {
    const undo = quietMatrixSdkLogs("warn");
    const sdk = sdkLogger as unknown as log.Logger;
    sdk.debug("sdk debug");
    sdk.warn("sdk warn");
    sdk.error("sdk error");
    expect(printed).toEqual(["warn sdk warn", "error sdk error"]);
    printed.length = 0;
    undo();
    sdk.debug("sdk debug again");
    expect(printed).toEqual(["debug sdk debug again"]);
    quietMatrixSdkLogs();
  });

  it("wraps a root factory set after it (js-sdk loaded later sets one)", () => {
    quietMatrixSdkLogs()(); // the root's factory without quieting, to put back at the end
    const original = log.methodFactory;
    const undo = quietMatrixSdkLogs();
    const seen: string[] = [];
    log.methodFactory = (method, _level, name) => (msg: unknown) =>
      void seen.push(`${String(name)} ${method} ${String(msg)}`);
    const sdkLate = log.getLogger("matrix-late-factory");
    sdkLate.setLevel("debug");
    const appLate = log.getLogger("app-late-factory");
    appLate.setLevel("debug");
    sdkLate.warn("hidden");
    appLate.warn("shown");
    expect(seen).toEqual(["app-late-factory warn shown"]);
    undo();
    log.methodFactory = original;
    quietMatrixSdkLogs();
  });

  it("rejects an unknown level", () => {
    expect(() => quietMatrixSdkLogs("loud" as never)).toThrow(TypeError);
  });
});
