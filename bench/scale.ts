/**
 * Scale: N managers in one process against a no-op backend (every request resolves at once), memory per
 * joined manager and CPU per heartbeat. Each variant runs in its own child process (clean heap, `gc()`):
 *
 *   node --expose-gc --import tsx bench/scale.ts <variant> [managers] [window ms] [warm-up ms]
 *
 * variants:
 * - ours-virtual: our manager on an RxJS VirtualTimeScheduler, driven like test/helpers/virtualTime.ts;
 * - ours-mocktimers: our manager on its default scheduler under the same node:test mock timers as sdk-virtual
 *   (the like-for-like virtual-time pair);
 * - sdk-virtual: js-sdk's MembershipManager (lib/matrixrtc/MembershipManager.js) under node:test mock timers
 *   (it takes no scheduler: it calls setTimeout and Date.now directly);
 * - ours-real / sdk-real: both on real timers, for a like-for-like comparison.
 * Prints one JSON line (ScaleResult).
 */
import { mock } from "node:test";
import { existsSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { spawn } from "node:child_process";
import { MembershipManager as SdkMembershipManager } from "matrix-js-sdk/lib/matrixrtc/MembershipManager.js";
import { Status as SdkStatus } from "matrix-js-sdk/lib/matrixrtc/index.js";
import type { MembershipBackend } from "../src/backends/types.js";
import type { MembershipManager as ManagerClass } from "../src/manager/MembershipManager.js";
import { settle, VirtualTime } from "../test/helpers/virtualTime.js";
import { quietMatrixSdkLogs } from "../src/testing/index.js";

export type ScaleVariant = "ours-virtual" | "ours-mocktimers" | "sdk-virtual" | "ours-real" | "sdk-real";

export interface ScaleResult {
  variant: ScaleVariant;
  managers: number;
  /** Managers reporting connected before the measured window. */
  connected: number;
  /** heapUsed growth per joined manager, after gc (bytes). */
  heapBytesPerManager: number;
  /** The same after the measured window: growth here means something accumulates per heartbeat. */
  heapBytesPerManagerAfter: number;
  /** Time measured (virtual or real ms). */
  windowMs: number;
  heartbeats: number;
  /**
   * Process CPU (user+system) per heartbeat, µs: the median over 3 equal parts of the window (one part if under 15 s) (the
   * machine is shared, so one part can be disturbed). Includes the scheduler's own cost.
   */
  cpuUsPerHeartbeat: number;
  cpuSamples: number[];
  /** Wall-clock time the window took (ms). */
  wallMs: number;
  gcAvailable: boolean;
  note?: string;
}

const DELAY_MS = 10_000;

/**
 * Our manager as the package ships it (dist/esm, from `npm run build`), as js-sdk's is its shipped lib/.
 * Run from src/ through tsx, every named closure of ours would go through esbuild's keepNames helper
 * (`__name`, a defineProperty that turns the function into a dictionary-mode object): measured at 10,000
 * managers, about 0.5 KB more per manager and a third more CPU per heartbeat than the build costs.
 */
async function shippedManager(): Promise<typeof ManagerClass> {
  const url = new URL("../dist/esm/manager/MembershipManager.js", import.meta.url);
  if (!existsSync(url))
    throw new Error("bench/scale.ts measures the built package: run `npm run build` first");
  return ((await import(url.href)) as { MembershipManager: typeof ManagerClass }).MembershipManager;
}
const gcFn = (globalThis as { gc?: () => void }).gc;
function heapAfterGc(): number {
  if (gcFn) for (let i = 0; i < 3; i++) gcFn();
  return process.memoryUsage().heapUsed;
}

/** Our backend interface, every call resolving at once; counts restarts. */
class NoopBackend implements MembershipBackend {
  static restarts = 0;
  private n = 0;
  sendDelayedStateEvent(): Promise<string> {
    return Promise.resolve(`d${++this.n}`);
  }
  sendStateEvent(): Promise<void> {
    return Promise.resolve();
  }
  updateDelayedEvent(_id: string, action: string): Promise<void> {
    if (action === "restart") NoopBackend.restarts++;
    return Promise.resolve();
  }
}

/** The client subset js-sdk's MembershipManager calls, every call resolving at once; counts restarts. */
function noopSdkClient(userId: string, deviceId: string) {
  let n = 0;
  return {
    getUserId: () => userId,
    getDeviceId: () => deviceId,
    sendStateEvent: () => Promise.resolve({ event_id: `$e${++n}` }),
    _unstable_sendDelayedStateEvent: () => Promise.resolve({ delay_id: `d${++n}` }),
    _unstable_updateDelayedEvent: () => Promise.resolve({}),
    _unstable_cancelScheduledDelayedEvent: () => Promise.resolve({}),
    _unstable_restartScheduledDelayedEvent: () => {
      sdkRestarts++;
      return Promise.resolve({});
    },
    _unstable_sendScheduledDelayedEvent: () => Promise.resolve({}),
  };
}
let sdkRestarts = 0;
/** js-sdk's restart interval (its `delayedLeaveEventRestartMs` default). */
const SDK_RESTART_MS = 5000;

/**
 * Run `advance` over 3 parts of about `windowMs` / 3, counting heartbeats and CPU in each. The managers
 * joined together, so they heartbeat in clusters, one per `cycleMs` (js-sdk 5 s; ours its adaptive
 * interval, 6.75 s here): each part holds a whole number of cycles, or a part would hold one cluster or
 * two by its phase alone (6.7 s parts over 6.75 s cycles read 15 to 60 µs per heartbeat).
 */
async function measureWindows(
  windowMs: number,
  advance: (ms: number) => Promise<unknown>,
  count: () => number,
  cycleMs: number,
): Promise<{ heartbeats: number; cpuUsPerHeartbeat: number; cpuSamples: number[]; wallMs: number }> {
  const parts = windowMs >= 15_000 ? 3 : 1;
  const partMs = Math.max(1, Math.round(windowMs / parts / cycleMs)) * cycleMs;
  const cpuSamples: number[] = [];
  let heartbeats = 0;
  const wall0 = performance.now();
  for (let i = 0; i < parts; i++) {
    const n0 = count();
    const cpu0 = process.cpuUsage();
    await advance(partMs);
    const cpu = process.cpuUsage(cpu0);
    const n = count() - n0;
    heartbeats += n;
    if (n > 0) cpuSamples.push(Number(((cpu.user + cpu.system) / n).toFixed(1)));
  }
  const sorted = [...cpuSamples].sort((a, b) => a - b);
  return {
    heartbeats,
    cpuUsPerHeartbeat: sorted.length ? sorted[sorted.length >> 1] : NaN,
    cpuSamples,
    wallMs: performance.now() - wall0,
  };
}

/** Advance node:test mock timers in 10 ms ticks (finer than any timer here), letting promises settle. */
async function advanceMockTimers(ms: number): Promise<void> {
  const step = 10;
  await settle();
  for (let t = 0; t < ms; t += step) {
    mock.timers.tick(step);
    await settle(2);
  }
}

async function runOurs(
  variant: ScaleVariant,
  n: number,
  windowMs: number,
  warmupMs: number,
): Promise<ScaleResult> {
  // Driven like the unit tests: one due time at a time, promises settling in between.
  const virt = variant === "ours-virtual" ? new VirtualTime() : undefined;
  const mocked = variant === "ours-mocktimers";
  if (mocked) mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now: Date.now() });
  const advance = (ms: number): Promise<unknown> =>
    virt ? virt.advance(ms) : mocked ? advanceMockTimers(ms) : new Promise((r) => setTimeout(r, ms));
  const MembershipManager = await shippedManager();
  const base = heapAfterGc();
  const managers: ManagerClass[] = [];
  for (let i = 0; i < n; i++) {
    const m = new MembershipManager({
      backend: new NoopBackend(),
      roomId: "!room:bench",
      userId: `@u${i}:bench`,
      deviceId: `D${i}`,
      delayedLeaveDelayMs: DELAY_MS,
      fociPreferred: [{ type: "livekit", livekit_service_url: "https://livekit.bench.test" }],
      scheduler: virt?.scheduler,
    });
    managers.push(m);
    m.join();
  }
  // Let every join finish (and the heartbeat that follows a membership write).
  // Then the warm-up, if any: the first heartbeats compile and optimise code (heap that is no growth).
  await advance(1000 + warmupMs);
  const connected = managers.filter((m) => m.status === "connected").length;
  const heap = heapAfterGc();
  const { heartbeats, cpuUsPerHeartbeat, cpuSamples, wallMs } = await measureWindows(
    windowMs,
    advance,
    () => NoopBackend.restarts,
    managers[0].effectiveTiming.heartbeatIntervalMs,
  );
  const still = managers.filter((m) => m.status === "connected").length;
  const heapAfter = heapAfterGc();
  for (const m of managers) m.dispose();
  if (mocked) mock.timers.reset();
  return {
    variant,
    managers: n,
    connected: Math.min(connected, still),
    heapBytesPerManager: Math.round((heap - base) / n),
    heapBytesPerManagerAfter: Math.round((heapAfter - base) / n),
    windowMs,
    heartbeats,
    cpuUsPerHeartbeat,
    cpuSamples,
    wallMs: Math.round(wallMs),
    gcAvailable: !!gcFn,
  };
}

async function runSdk(
  variant: ScaleVariant,
  n: number,
  windowMs: number,
  warmupMs: number,
): Promise<ScaleResult> {
  quietMatrixSdkLogs();
  const virtual = variant === "sdk-virtual";
  if (virtual) mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now: Date.now() });
  const advance = (ms: number) =>
    virtual ? advanceMockTimers(ms) : new Promise<void>((r) => setTimeout(r, ms));
  const base = heapAfterGc();
  const managers: SdkMembershipManager[] = [];
  const room = { roomId: "!room:bench", getVersion: () => "10" };
  for (let i = 0; i < n; i++) {
    const m = new SdkMembershipManager(
      {
        delayedLeaveEventDelayMs: DELAY_MS,
        networkErrorRetryMs: 1000,
        maximumNetworkErrorRetryCount: 11,
      },
      room as never,
      noopSdkClient(`@u${i}:bench`, `D${i}`) as never,
      { application: "m.call", id: "ROOM" },
    );
    managers.push(m);
    m.join([], { type: "livekit", livekit_service_url: "https://livekit.bench.test" } as never);
  }
  await advance(1000 + warmupMs);
  const connected = managers.filter((m) => m.status === SdkStatus.Connected).length;
  const heap = heapAfterGc();
  const { heartbeats, cpuUsPerHeartbeat, cpuSamples, wallMs } = await measureWindows(
    windowMs,
    advance,
    () => sdkRestarts,
    SDK_RESTART_MS,
  );
  const still = managers.filter((m) => m.status === SdkStatus.Connected).length;
  const heapAfter = heapAfterGc();
  if (virtual) mock.timers.reset();
  return {
    variant,
    managers: n,
    connected: Math.min(connected, still),
    heapBytesPerManager: Math.round((heap - base) / n),
    heapBytesPerManagerAfter: Math.round((heapAfter - base) / n),
    windowMs,
    heartbeats,
    cpuUsPerHeartbeat,
    cpuSamples,
    wallMs: Math.round(wallMs),
    gcAvailable: !!gcFn,
    note: virtual ? "node:test mock timers (setTimeout/Date), 10 ms ticks" : undefined,
  };
}

export async function runScaleVariant(
  variant: ScaleVariant,
  n: number,
  windowMs: number,
  warmupMs = 0,
): Promise<ScaleResult> {
  return variant.startsWith("ours")
    ? runOurs(variant, n, windowMs, warmupMs)
    : runSdk(variant, n, windowMs, warmupMs);
}

/** Run one variant in a child process with --expose-gc; rejects on failure or after `timeoutMs`. */
export function runScaleChild(
  variant: ScaleVariant,
  n: number,
  windowMs: number,
  timeoutMs = 180_000,
  warmupMs = 0,
): Promise<ScaleResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        "--expose-gc",
        "--import",
        "tsx",
        "bench/scale.ts",
        variant,
        String(n),
        String(windowMs),
        String(warmupMs),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`scale ${variant}: no result within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      const line = out.trim().split("\n").pop() ?? "";
      try {
        resolve(JSON.parse(line) as ScaleResult);
      } catch {
        reject(new Error(`scale ${variant} exited ${code}: ${err.slice(-2000) || out.slice(-2000)}`));
      }
    });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  // tsx turns on source-mapped stack traces; production code runs without them, and they make every
  // Error's stack (js-sdk builds one per restart: its never-cleared timeout timer) several times dearer.
  process.setSourceMapsEnabled(false);
  const variant = (process.argv[2] ?? "ours-virtual") as ScaleVariant;
  const n = Number(process.argv[3] ?? 10_000);
  const windowMs = Number(process.argv[4] ?? 60_000);
  const warmupMs = Number(process.argv[5] ?? 0);
  const result = await runScaleVariant(variant, n, windowMs, warmupMs);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}
