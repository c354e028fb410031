/**
 * `leaveOnExit` against a fake process and fake managers: which listeners it holds and when it lets go,
 * what it does with a signal (leave, dispose, raise the same signal again unless the app listens), the
 * bound, beforeExit, and nothing in a browser. The real-process behaviour is in
 * test/integration/exit/leave-on-exit.test.ts.
 */
import { describe, expect, it } from "@jest/globals";
import { EventEmitter } from "node:events";
import { BehaviorSubject } from "rxjs";
import { leaveOnExit, MembershipConfigError, type ExitingManager } from "../../src/index.js";

class FakeProcess extends EventEmitter {
  readonly pid = 4242;
  readonly kills: [number, string][] = [];
  kill(pid: number, signal: string): boolean {
    this.kills.push([pid, signal]);
    return true;
  }
}

interface FakeManager extends ExitingManager {
  leaves: (number | undefined)[];
  finishLeave(): void;
  disposed: boolean;
}

function fakeManager(autoLeave = true): FakeManager {
  const state$ = new BehaviorSubject<unknown>({ kind: "joined" });
  let finish: () => void = () => {};
  const m: FakeManager = {
    leaves: [],
    disposed: false,
    state$,
    leave(options) {
      m.leaves.push(options?.timeoutMs);
      return autoLeave ? Promise.resolve({ status: "left" }) : new Promise((r) => (finish = () => r({})));
    },
    finishLeave: () => finish(),
    dispose() {
      if (m.disposed) return;
      m.disposed = true;
      state$.complete();
    },
  };
  return m;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const EVENTS = ["SIGINT", "SIGTERM", "beforeExit"];
const counts = (p: FakeProcess) => EVENTS.map((e) => p.listenerCount(e));

describe("leaveOnExit", () => {
  it("listens to SIGINT, SIGTERM and beforeExit; on a signal leaves every manager, disposes them, and raises the signal again", async () => {
    const proc = new FakeProcess();
    const a = fakeManager();
    const b = fakeManager();
    leaveOnExit([a, b], { process: proc, timeoutMs: 1500 });
    expect(counts(proc)).toEqual([1, 1, 1]);
    proc.emit("SIGTERM", "SIGTERM");
    expect(a.leaves).toEqual([1500]);
    expect(b.leaves).toEqual([1500]);
    expect(proc.kills).toEqual([]); // not before the leaves are done
    await sleep(0);
    expect(a.disposed && b.disposed).toBe(true);
    expect(proc.kills).toEqual([[4242, "SIGTERM"]]);
    expect(counts(proc)).toEqual([0, 0, 0]);
  });

  it("bounded: a leave that never ends lets the process go after timeoutMs", async () => {
    const proc = new FakeProcess();
    const m = fakeManager(false);
    leaveOnExit(m, { process: proc, timeoutMs: 100 });
    const at = Date.now();
    proc.emit("SIGINT", "SIGINT");
    await sleep(50);
    expect(proc.kills).toEqual([]);
    await sleep(150);
    expect(proc.kills).toEqual([[4242, "SIGINT"]]);
    expect(Date.now() - at).toBeGreaterThanOrEqual(100);
    expect(m.disposed).toBe(true);
  });

  it("a second signal while leaving is raised at once", async () => {
    const proc = new FakeProcess();
    const m = fakeManager(false);
    leaveOnExit(m, { process: proc, timeoutMs: 10_000 });
    proc.emit("SIGINT", "SIGINT");
    proc.emit("SIGINT", "SIGINT");
    expect(proc.kills).toEqual([[4242, "SIGINT"]]);
    expect(m.leaves).toHaveLength(1);
    m.finishLeave();
    await sleep(0);
    expect(proc.kills).toHaveLength(1);
  });

  it("an app that listens to the signal itself decides: the helper leaves but raises nothing", async () => {
    const proc = new FakeProcess();
    const m = fakeManager();
    const appHeard: string[] = [];
    proc.on("SIGTERM", () => appHeard.push("SIGTERM"));
    leaveOnExit(m, { process: proc });
    proc.emit("SIGTERM", "SIGTERM");
    await sleep(0);
    expect(m.leaves).toHaveLength(1);
    expect(appHeard).toEqual(["SIGTERM"]);
    expect(proc.kills).toEqual([]);
    expect(proc.listenerCount("SIGTERM")).toBe(1); // the app's own
  });

  it("beforeExit leaves once, then lets the process end by itself", async () => {
    const proc = new FakeProcess();
    const m = fakeManager();
    leaveOnExit(m, { process: proc });
    proc.emit("beforeExit", 0);
    await sleep(0);
    expect(m.leaves).toHaveLength(1);
    expect(m.disposed).toBe(true);
    expect(proc.kills).toEqual([]);
    expect(counts(proc)).toEqual([0, 0, 0]);
  });

  it("lets go of the process once every manager is disposed, or when told to", () => {
    const proc = new FakeProcess();
    const a = fakeManager();
    const b = fakeManager();
    leaveOnExit([a, b], { process: proc });
    a.dispose();
    expect(counts(proc)).toEqual([1, 1, 1]);
    b.dispose();
    expect(counts(proc)).toEqual([0, 0, 0]);

    const stop = leaveOnExit(fakeManager(), { process: proc, signals: ["SIGHUP"], beforeExit: false });
    expect(proc.listenerCount("SIGHUP")).toBe(1);
    expect(counts(proc)).toEqual([0, 0, 0]);
    stop();
    expect(proc.listenerCount("SIGHUP")).toBe(0);
    // Nothing to watch: nothing is added.
    leaveOnExit([a, b], { process: proc });
    expect(counts(proc)).toEqual([0, 0, 0]);
  });

  it("does nothing where there is no process (a browser)", () => {
    const g = globalThis as { process?: unknown };
    const saved = g.process;
    let stop: () => void;
    try {
      g.process = undefined;
      stop = leaveOnExit(fakeManager());
    } finally {
      g.process = saved;
    }
    expect(() => stop()).not.toThrow();
  });

  it("refuses a timeout no timer can keep", () => {
    for (const timeoutMs of [-1, NaN, 2 ** 31, Infinity])
      expect(() => leaveOnExit(fakeManager(), { process: new FakeProcess(), timeoutMs })).toThrow(
        MembershipConfigError,
      );
  });
});
