import { describe, expect, it } from "@jest/globals";
import { WidgetApiResponseError } from "matrix-widget-api";
import { classifyError } from "../../src/errors.js";

/** Host refusals that carry only a message (no matrix_api_error): permanent, never retried. */
describe("classifyError: widget host refusals without HTTP details", () => {
  it("room_id without the timeline capability is forbidden (a refused capability, not transient)", () => {
    const e = new WidgetApiResponseError("Unable to access room timeline: !room:example.org", {});
    expect(classifyError(e, "send-state")).toEqual({
      kind: "forbidden",
      reason: "Unable to access room timeline: !room:example.org",
    });
    expect(classifyError(e, "schedule-leave")).toMatchObject({ kind: "forbidden" });
  });

  it("a host that does not know update_delayed_event at all: unsupported", () => {
    const e = new WidgetApiResponseError(
      "Unknown or unsupported from-widget action: org.matrix.msc4157.update_delayed_event",
      {},
    );
    expect(classifyError(e, "restart")).toMatchObject({ kind: "unsupported" });
    expect(classifyError(e, "send-leave")).toMatchObject({ kind: "unsupported" });
  });

  it("other unknown actions stay unknown (transient)", () => {
    const e = new WidgetApiResponseError("Unknown or unsupported from-widget action: org.example.thing", {});
    expect(classifyError(e, "restart")).toEqual({ kind: "unknown" });
  });
});
