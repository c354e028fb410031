/**
 * The manager's elapsed-time clock: it never steps with the wall clock, keeps counting when timers turn
 * out to run on mocked time (node:test's mock timers move `Date` and `setTimeout` but not `performance`),
 * and `predictedLeaveAt` is reported on the wall clock an app reads.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { afterEach, describe, expect, it, jest } from "@jest/globals";
import { asyncScheduler } from "rxjs";
import { Clock } from "../../src/manager/clock.js";
import { harness } from "../helpers/managerHarness.js";

afterEach(() => {
  jest.useRealTimers();
  jest.restoreAllMocks();
});

describe("Clock", () => {
  it("on a real-time scheduler, a wall-clock step back or forward does not move elapsed time", () => {
    const clock = new Clock(asyncScheduler);
    let wall = Date.now();
    jest.spyOn(Date, "now").mockImplementation(() => wall);
    const a = clock.now();
    wall -= 3_600_000;
    const b = clock.now();
    wall += 7_200_000;
    const c = clock.now();
    expect(b - a).toBeLessThan(1000);
    expect(c - b).toBeLessThan(1000);
  });

  it("follows Date when timers run on mocked time that performance.now() does not see", () => {
    // Timers and Date are fake, performance is real: the way node:test's mock timers leave it.
    jest.useFakeTimers({ doNotFake: ["performance"] });
    const clock = new Clock(asyncScheduler);
    const start = clock.now();
    let firedAt = -1;
    clock.after(60_000, () => (firedAt = clock.now()));
    jest.advanceTimersByTime(60_000);
    expect(firedAt - start).toBeGreaterThanOrEqual(60_000);
    // From then on the clock follows the mocked time, and still never steps back.
    jest.advanceTimersByTime(25_000);
    expect(clock.now() - start).toBeGreaterThanOrEqual(85_000);
    jest.setSystemTime(Date.now() - 3_600_000);
    expect(clock.now() - start).toBeGreaterThanOrEqual(85_000);
    expect(clock.now() - start).toBeLessThan(86_000);
    clock.dispose();
  });

  it("a real timer (fired on time) keeps the clock on performance.now()", async () => {
    const clock = new Clock(asyncScheduler);
    await new Promise<void>((r) => clock.after(120, r));
    const wall = Date.now();
    jest.spyOn(Date, "now").mockImplementation(() => wall + 3_600_000);
    const before = clock.now();
    expect(clock.now() - before).toBeLessThan(1000);
  });
});

describe("predictedLeaveAt", () => {
  it("is on the wall clock the app reads, not on elapsed time", async () => {
    const wallOffset = 1_800_000_000_000;
    const h = harness((s) => ({ delayedLeaveDelayMs: 8000, wallClock: () => wallOffset + s.now() }));
    h.manager.join();
    await h.time.until(() => h.manager.status === "connected", 5000);
    const at = h.manager.predictedLeaveAt!;
    const wallNow = wallOffset + h.time.scheduler.now();
    expect(at).toBeGreaterThan(wallNow);
    expect(at).toBeLessThanOrEqual(wallNow + 8000);
    h.manager.dispose();
  });
});

/** The machine's Node 20 (the one CI and consumers have beside the scripts' 22), if any. */
function machineNode20(): string[] {
  return ["/usr/bin/node", "/usr/local/bin/node"]
    .filter((bin) => {
      const r = spawnSync(bin, ["-p", "process.versions.node"], { encoding: "utf8" });
      return r.status === 0 && r.stdout.trim().startsWith("20.");
    })
    .slice(0, 1);
}

describe("under node:test's mock timers", () => {
  it("each wake of the manager fires once (RxJS's setInterval-armed actions came back for ever there)", () => {
    // node:test's mock timers, as a consumer's node:test suite (and bench/sticky-hour.ts) use them: an
    // interval cleared from inside its own callback kept firing there, so with RxJS's AsyncScheduler
    // under the clock every wake came back thousands of times a virtual second once the manager read
    // its own key (memory ran out after ~20 virtual seconds). They patch the process's own globals,
    // which this test's sandbox does not share: the run is a child process (test/fixtures).
    // Node 20's mock timers have that second life (22's do not): run on both where the machine has 20.
    for (const node of [process.execPath, ...machineNode20()]) {
      const out = execFileSync(node, ["--import", "tsx", "test/fixtures/mock-timers-wakes.ts"], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
        timeout: 60_000,
      });
      const run = JSON.parse(out.trim().split("\n").at(-1)!) as { ticks: number; status: string };
      // About one wake per heartbeat and per read of our key: ~10 in 30 s (10 000+ on Node 20 before).
      expect({ node, ...run, ticks: run.ticks < 100 }).toEqual({ node, ticks: true, status: "connected" });
    }
  }, 90_000);
});
