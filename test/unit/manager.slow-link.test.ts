/**
 * Issue 20 item 15: a slow link and the first schedule. On a 2.3 s round trip no more than two delayed
 * leaves of ours are ever pending at once (a schedule answered after our timeout is adopted, not
 * answered by yet another); and a Retry-After on a schedule before joining is honoured in full (waiting
 * only costs time there; only the heartbeat caps hints, where our delayed leave would fire first).
 * Virtual time against the FakeServer.
 */
import { describe, expect, it } from "@jest/globals";
import { matrixError } from "../helpers/fakeServer.js";
import { harness, isJoinedOnServer } from "../helpers/managerHarness.js";

describe("slow link and the first schedule (issue 20 item 15)", () => {
  it("a 2.3 s round trip over a 500 ms request timeout: joins, and at most two delayed leaves of ours are ever pending", async () => {
    const h = harness({ delayedLeaveDelayMs: 10_000, requestTimeoutMs: 500 });
    h.server.latencyMs = 2300;
    h.manager.join();
    let most = 0;
    for (let t = 0; t < 60_000; t += 50) {
      await h.time.advance(50);
      most = Math.max(most, h.server.pendingFor(h.key).length);
    }
    expect(most).toBeLessThanOrEqual(2);
    expect(h.manager.status).toBe("connected");
    expect(isJoinedOnServer(h)).toBe(true);
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
    h.manager.dispose();
  });

  it("a 429 with retry_after_ms 4000 on the first schedule: the next one 4 s later, not 2 s", async () => {
    const h = harness({ delayedLeaveDelayMs: 10_000 });
    h.server.inject("schedule", {
      kind: "error",
      error: () => matrixError(429, "M_LIMIT_EXCEEDED", { retry_after_ms: 4000 }),
    });
    h.manager.join();
    await h.time.until(() => h.server.count("schedule") >= 2, 20_000, 10);
    const [first, second] = h.server.log.filter((e) => e.op === "schedule");
    expect(second.at - first.at).toBeGreaterThanOrEqual(4000);
    await h.time.until(() => h.manager.status === "connected", 10_000);
    expect(h.server.count("schedule")).toBe(2);
    h.manager.dispose();
  });
});
