/**
 * Issue 20 item 13: an app that toggles join()/leave() (a re-rendering effect, a hammered button) or
 * cycles honestly is not held back by the manager's own request budget, and never leaves it in debt;
 * an app stuck in its own loop is still bounded. Virtual time against the FakeServer (1 ms link).
 */
import { describe, expect, it } from "@jest/globals";
import { harness, isJoinedOnServer } from "../helpers/managerHarness.js";

function fastHarness() {
  const h = harness({ delayedLeaveDelayMs: 2000 });
  h.server.latencyMs = 1;
  return h;
}

/** The most requests the server saw in any one second. */
function peakPerSecond(log: { at: number }[]): number {
  let peak = 0;
  for (let i = 0, j = 0; i < log.length; i++) {
    while (log[i].at - log[j].at >= 1000) j++;
    peak = Math.max(peak, i - j + 1);
  }
  return peak;
}

describe("join()/leave() toggling (issue 20 item 13)", () => {
  it("200 pairs 20 ms apart, then join(): connected within a second (was 59 s), a bounded request rate", async () => {
    const h = fastHarness();
    for (let i = 0; i < 200; i++) {
      h.manager.join();
      await h.time.advance(10);
      void h.manager.leave();
      await h.time.advance(10);
    }
    h.manager.join();
    const took = await h.time.until(() => h.manager.status === "connected", 120_000, 5);
    expect(took).toBeLessThan(1000);
    expect(isJoinedOnServer(h)).toBe(true);
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
    // The app's own loop is bounded too: its requests draw on a bucket of 20 at once and 20 a second
    // (plus the manager's own 8 at once and 3 a second for cleanups and heartbeats).
    expect(peakPerSecond(h.server.log)).toBeLessThanOrEqual(20 + 20 + 8 + 3);
    h.manager.dispose();
  });

  it("200 honest join/leave cycles back to back take well under 150 s (were ~270 s: 667 ms per join and per leave)", async () => {
    const h = fastHarness();
    const start = h.time.now();
    for (let i = 0; i < 200; i++) {
      h.manager.join();
      await h.time.until(() => h.manager.status === "connected", 60_000, 1);
      const left = h.manager.leave();
      let result: unknown;
      void left.then((r) => (result = r));
      await h.time.until(() => result !== undefined, 60_000, 1);
      expect(result).toEqual({ status: "left", via: "delayed-event-sent" });
    }
    const took = h.time.now() - start;
    expect(took).toBeLessThan(60_000);
    expect(isJoinedOnServer(h)).toBe(false);
    expect(h.server.pendingFor(h.key)).toHaveLength(0);
    h.manager.dispose();
  });
});
