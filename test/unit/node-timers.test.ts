/**
 * `matrixrtc-membership/node`'s timer scopes: what a scope's code arms (directly, after an await, from a
 * timer of the scope) is recorded; `release()` unrefs (the timers still fire), `stop()` clears (nothing of
 * the scope runs again); code outside the scope is untouched. And `startClient` / `stopClient` over a
 * client whose sync loop, like matrix-js-sdk's, arms timeouts it never clears.
 */
import { describe, expect, it } from "@jest/globals";
import { clientTimers, startClient, stopClient, timerScope, trackEverything } from "../../src/node/index.js";

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
const hasRef = (t: ReturnType<typeof setTimeout>) => t.hasRef();

describe("timerScope", () => {
  it("records timers armed in run(), after an await and from a timer of the scope; not those outside", async () => {
    const scope = timerScope();
    const outside = setTimeout(() => undefined, 60_000);
    let later: ReturnType<typeof setTimeout> | undefined;
    let nested: ReturnType<typeof setTimeout> | undefined;
    const direct = scope.run(() => {
      void (async () => {
        await tick();
        later = setTimeout(() => undefined, 60_000);
      })();
      setTimeout(() => {
        nested = setTimeout(() => undefined, 60_000);
      }, 1);
      return setTimeout(() => undefined, 60_000);
    });
    await tick(20);
    expect(later).toBeDefined();
    expect(nested).toBeDefined();
    // direct, later, nested; the 1 ms timer fired and was forgotten.
    expect(scope.size).toBe(3);
    scope.release();
    expect(scope.state).toBe("released");
    for (const t of [direct, later!, nested!]) expect(hasRef(t)).toBe(false);
    expect(hasRef(outside)).toBe(true);
    // Armed in the scope after release: unref'd at birth, still runs.
    let ran = false;
    const afterRelease = scope.run(() => setTimeout(() => (ran = true), 1));
    expect(hasRef(afterRelease)).toBe(false);
    await tick(20);
    expect(ran).toBe(true);
    for (const t of [outside, direct, later!, nested!]) clearTimeout(t);
  });

  it("clearTimeout and clearInterval forget a timer; a fired timeout is forgotten", async () => {
    const scope = timerScope();
    const [a, b] = scope.run(() => [
      setTimeout(() => undefined, 60_000),
      setInterval(() => undefined, 60_000),
    ]);
    scope.run(() => setTimeout(() => undefined, 1));
    expect(scope.size).toBe(3);
    await tick(20);
    expect(scope.size).toBe(2);
    clearTimeout(a);
    clearInterval(b);
    expect(scope.size).toBe(0);
  });

  it("stop() clears what is pending, and nothing armed in the scope later ever runs", async () => {
    const scope = timerScope();
    const ran: string[] = [];
    let loops = 0;
    scope.run(() => {
      setTimeout(() => ran.push("pending"), 30);
      // A retry loop like a MatrixRTCSession's after its homeserver went away.
      const loop = () => {
        loops++;
        setTimeout(loop, 5);
      };
      loop();
    });
    await tick(12);
    const before = loops;
    expect(before).toBeGreaterThan(0);
    scope.stop();
    expect(scope.size).toBe(0);
    // Armed in the scope after stop (a late promise continuation): never runs.
    scope.run(() => setTimeout(() => ran.push("after stop"), 1));
    await tick(60);
    expect(ran).toEqual([]);
    expect(loops).toBe(before);
  });

  it("trackEverything records every timer armed on its global from then on, in or out of other scopes", () => {
    // A global of its own: an "everything" scope stays in force on its global for good (a test file's).
    const g = { setTimeout, setInterval, clearTimeout, clearInterval } as unknown as typeof globalThis;
    const everything = trackEverything(g);
    const inner = timerScope(g);
    const a = g.setTimeout(() => undefined, 60_000);
    const b = inner.run(() => g.setTimeout(() => undefined, 60_000));
    const untouched = setTimeout(() => undefined, 60_000);
    expect(everything.size).toBe(2);
    expect(inner.size).toBe(1);
    everything.release();
    expect([hasRef(a), hasRef(b), hasRef(untouched)]).toEqual([false, false, true]);
    expect(inner.size).toBe(1);
    g.clearTimeout(a);
    g.clearTimeout(b);
    clearTimeout(untouched);
    expect(inner.size).toBe(0);
    // Later timers on that global are born unref'd.
    const c = g.setTimeout(() => undefined, 60_000);
    expect(hasRef(c)).toBe(false);
    g.clearTimeout(c);
  });

  it("keeps setTimeout's promisified form", async () => {
    timerScope();
    const { promisify } = await import("node:util");
    const sleep = promisify(setTimeout);
    await expect(sleep(1, "value")).resolves.toBe("value");
  });
});

describe("startClient / stopClient", () => {
  /** A client whose sync loop arms a local timeout per request and never clears it, like matrix-js-sdk 43. */
  function fakeClient() {
    let running = false;
    const leftovers: ReturnType<typeof setTimeout>[] = [];
    const rtcStopped: boolean[] = [];
    const client = {
      matrixRTC: { stop: () => rtcStopped.push(true) },
      async startClient() {
        running = true;
        void (async () => {
          while (running) {
            leftovers.push(setTimeout(() => undefined, 110_000)); // the request's local timeout
            await tick(5); // the long poll
          }
        })();
      },
      stopClient() {
        running = false;
      },
    };
    return { client, leftovers, rtcStopped };
  }

  it("stopClient lets go of every timeout the sync loop armed; nothing else is touched", async () => {
    const { client, leftovers, rtcStopped } = fakeClient();
    const mine = setTimeout(() => undefined, 60_000);
    await startClient(client);
    await tick(30);
    expect(leftovers.length).toBeGreaterThan(2);
    expect(leftovers.every(hasRef)).toBe(true);
    stopClient(client);
    await tick(10);
    expect(rtcStopped).toEqual([true]);
    expect(leftovers.some(hasRef)).toBe(false);
    expect(hasRef(mine)).toBe(true);
    expect(clientTimers(client).state).toBe("released");
    // Idempotent; and a stopped client is not started again in a released scope.
    stopClient(client);
    expect(() => startClient(client)).toThrow(/stopped/);
    for (const t of [mine, ...leftovers]) clearTimeout(t);
  });

  it("stopClient on a client that never started (a bare client) is harmless", () => {
    const stops: string[] = [];
    stopClient({
      startClient: async () => undefined,
      stopClient: () => stops.push("client"),
      matrixRTC: {
        stop: () => {
          throw new Error("never started");
        },
      },
    });
    expect(stops).toEqual(["client"]);
  });
});
