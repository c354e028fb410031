/**
 * The manager's elapsed-time clock: it never steps with the wall clock, keeps counting when timers turn
 * out to run on mocked time (node:test's mock timers move `Date` and `setTimeout` but not `performance`),
 * and `predictedLeaveAt` is reported on the wall clock an app reads.
 */
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
