import { describe, expect, it } from "@jest/globals";
import { createClient } from "matrix-js-sdk";
import { WidgetApi } from "matrix-widget-api";

describe("toolchain", () => {
  it("runs on Node 22+ and loads the ESM peers", () => {
    expect(Number(process.versions.node.split(".")[0])).toBeGreaterThanOrEqual(22);
    expect(typeof createClient).toBe("function");
    expect(typeof WidgetApi).toBe("function");
  });
});
