/**
 * A clean leave's outcome on real HTTP. The manager fires its delayed leave; with the 200 ms local
 * timeout of a 1 s delay, a loaded machine can see the answer come after that timeout: the retry then
 * finds the delayed leave gone (our own first send, processed) and writes `{}` as well, since "gone"
 * could also mean someone else cancelled it. Either way the server holds `{}`; what a test can pin down
 * is that the delayed leave was fired by us (the server processed a send of ours) and how we said so.
 */
import { expect } from "@jest/globals";
import type { LeaveResult } from "../../src/index.js";
import type { RequestLogEntry } from "../../src/testing/index.js";

const SEND_ROUTES = new Set(["delayed.send", "delayed.legacy"]);

export function expectLeftThroughDelayedLeave(
  result: LeaveResult,
  requests: readonly RequestLogEntry[],
  userId: string,
): void {
  expect(result.status).toBe("left");
  expect(["delayed-event-sent", "state-written"]).toContain((result as { via?: string }).via);
  expect(requests.some((r) => SEND_ROUTES.has(r.route) && r.status === 200 && r.userId === userId)).toBe(
    true,
  );
}
