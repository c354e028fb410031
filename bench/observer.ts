/**
 * Reading a call at scale: our `callMembers$` beside matrix-js-sdk 43's `MatrixRTCSession`, each on a
 * synced matrix-js-sdk client of the same room (N members, each with its own call membership).
 *
 * One child process per N (`node --expose-gc --import tsx bench/observer.ts <N> <changes>`), which runs
 * the homeserver in a grandchild (bench/observer-server.ts) so that only the observing side is counted.
 * In it, each variant gets a fresh client that syncs the room from scratch (js-sdk 43 starts its own
 * MatrixRTC manager after the first sync: kept off except in the js-sdk variant):
 * - "client only": no observer (the baseline: what the client itself costs);
 * - "ours": `callMembers$(client, { roomId })`;
 * - "js-sdk": `client.matrixRTC.start()` and the room's `MatrixRTCSession` (what Element Call runs);
 * - "both": ours and js-sdk's on one client, to compare their lists.
 * Two measures of CPU:
 * - whole process: `process.cpuUsage()`; an observer's cost is its variant's minus the baseline's (kept
 *   for context: a sync's own processing dwarfs the observers' work, so this is mostly noise);
 * - the observer's own: separate rounds of each step under V8's sampling profiler, the samples whose
 *   stack runs through the observer's code charged to it (bench/observer-profile.ts). This is the figure
 *   the goals are judged on.
 * Every step is bounded: one that does not finish in time fails its rows with a message, and the run
 * goes on with the next step.
 * OBSERVER_PROFILE_DUMP=<prefix> also writes each observer's profile and its rounds' windows to
 * <prefix>-<N>-<variant>.json (to see what was charged).
 * Prints one JSON line (ObserverSizeResult).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { ClientEvent, RoomEvent, type MatrixClient, type MatrixEvent, type Room } from "matrix-js-sdk";
import { bareClient, quietMatrixSdkLogs, stopClient, type UserCreds } from "../src/testing/index.js";
import { clientProbe, jsSdkProbe, ourProbe, type Probe } from "./observer-probes.js";
import {
  JS_SDK_OBSERVER,
  OUR_OBSERVER,
  StepProfiler,
  attributeProfile,
  profilerClockUs,
  typicalIntervalUs,
  type SampledProfile,
} from "./observer-profile.js";

export type ObserverVariant = "none" | "ours" | "js-sdk";

/** The steps measured under the profiler, and how many rounds of each (the medians are taken over them). */
export const PROFILED_ROUNDS = { firstList: 9, change: 30, burst: 9, catchUp: 9, chat: 10 } as const;
export type ProfiledStep = keyof typeof PROFILED_ROUNDS;

/** One profiled round: what the sampling profiler charged to each observer's code (µs), and the window. */
export interface ProfiledRound {
  /** Charged to our observer's code (src/membership), and of that, garbage collection right after it. */
  ours: number;
  oursGc: number;
  /** Charged to js-sdk's MatrixRTC code (lib/matrixrtc). */
  sdk: number;
  sdkGc: number;
  /** The process's CPU over the profiled window (µs; profiler overhead included), and the window (µs). */
  cpuUs: number;
  spanUs: number;
  /** Samples taken in the window (span / samples is the interval the profiler achieved). */
  samples: number;
}

export interface ProfiledSteps {
  /** The profiler's sampling interval (µs), and the one it achieved (the median time between samples). */
  intervalUs: number;
  typicalUs: number;
  /** How its sampler thread ran: "normal" samples busy stretches sparsely on a loaded machine. */
  sampler: "realtime" | "normal";
  /** How much slower a fixed computation ran with the profiler on (both observers pay it alike). */
  slowdown: number;
  rounds: Record<ProfiledStep, ProfiledRound[]>;
}

/** A step that failed (did not finish within its bound, or threw): its rows say so. */
export interface StepFailure {
  step: string;
  message: string;
}

export interface ObserverVariantResult {
  /** Subscribing to the first full list: wall ms and CPU ms. */
  firstListMs: number;
  firstListCpuMs: number;
  /** Heap growth from attaching the observer to a synced client (bytes, after gc). */
  memoryBytes: number;
  /** Per single membership change: process CPU (µs) and write → list (ms), one sample each. */
  changeCpuUs: number[];
  changeLatencyMs: number[];
  /**
   * 50 memberships rewritten, all delivered in one sync: CPU from the last write until the list shows
   * them (ms), lists emitted.
   */
  burst: { cpuMs: number; emissions: number; wallMs: number };
  /** The same with all N rewritten (a catch-up after everyone refreshed). */
  catchUp: { cpuMs: number; emissions: number; wallMs: number };
  /** Per sync carrying only a chat message: CPU (µs), and the observer's evaluations over all of them. */
  chatCpuUs: number[];
  chatEvaluations: number;
  /** Ours only: CPU inside the observer (bracketed), per change (µs), burst and catch-up (ms), per chat sync (µs). */
  own?: { changeUs: number[]; burstMs: number; catchUpMs: number; chatUs: number[] };
  /** The observers only: each step again under the sampling profiler. */
  profiled?: ProfiledSteps;
  /** Steps that failed. */
  failures: StepFailure[];
}

export interface ObserverSizeResult {
  n: number;
  changes: number;
  setupMs: number;
  variants: Record<ObserverVariant, ObserverVariantResult>;
  /** Ours and js-sdk's lists on one client compared after every step: how many times, how many equal. */
  agreement: { checks: number; equal: number; firstDifference?: string };
  /** The comparison's failure, if it did not finish. */
  agreementFailure?: string;
}

const BURST = 50;
/**
 * The profiler's interval (µs). At 50 µs code ran 2.4× slower under it on this kind of machine (a 2-core
 * VM), at 100 and 200 µs 1.3–1.45×; a change of ours (~0.3 ms) still spans a few samples.
 */
const SAMPLING_US = 100;

const progress = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const gcFn = (globalThis as { gc?: () => void }).gc;
function heapAfterGc(): number {
  if (gcFn) for (let i = 0; i < 3; i++) gcFn();
  return process.memoryUsage().heapUsed;
}
const cpuUs = (from: NodeJS.CpuUsage) => {
  const d = process.cpuUsage(from);
  return d.user + d.system;
};

/** A wait that did not finish within its step's bound. */
export class StepTimeout extends Error {
  override name = "StepTimeout";
}

/** `promise`, or a StepTimeout naming `what` once `deadline` (a `Date.now()` time) has passed. */
function by<T>(promise: Promise<T>, deadline: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new StepTimeout(`${what}: not done when the step's time ran out`)),
      Math.max(0, deadline - Date.now()),
    );
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Each step's bound (ms) at size n: generous (the machine is shared), but never endless. */
export function stepBudgetMs(step: string, n: number): number {
  switch (step) {
    case "first list":
      return 60_000 + 40 * n;
    case "changes":
    case "profiled changes":
      return 90_000 + 20 * n;
    case "burst":
    case "profiled burst":
      return 60_000 + 10 * n;
    case "catch-up":
    case "profiled catch-up":
      // Each round writes all N memberships first (about 1–3 ms each on a shared machine).
      return 60_000 + PROFILED_ROUNDS.catchUp * 20 * n;
    default:
      return 60_000 + 10 * n;
  }
}

/** The whole child's bound: every step of the three variants and the comparison, plus set-up. */
export function observerChildBudgetMs(n: number): number {
  const steps = ["first list", "changes", "burst", "catch-up", "chat"];
  const perVariant = steps.reduce((sum, s) => sum + stepBudgetMs(s, n) + stepBudgetMs(`profiled ${s}`, n), 0);
  return 120_000 + 60 * n + 3 * perVariant + stepBudgetMs("catch-up", n) + stepBudgetMs("changes", n);
}

/** The homeserver process, driven over IPC. Every call is bounded. */
class ServerProcess {
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly ready: Promise<void>;
  private readonly child: ChildProcess;

  constructor() {
    this.child = spawn(process.execPath, ["--import", "tsx", "bench/observer-server.ts"], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.ready = new Promise((resolve, reject) => {
      this.child.on("message", (m: { ready?: boolean; id?: number; result?: unknown; error?: string }) => {
        if (m.ready) return resolve();
        const w = this.waiting.get(m.id!);
        this.waiting.delete(m.id!);
        if (m.error) w?.reject(new Error(m.error));
        else w?.resolve(m.result);
      });
      this.child.on("exit", (code) => {
        const error = new Error(`the homeserver process exited (${code})`);
        reject(error);
        for (const w of this.waiting.values()) w.reject(error);
        this.waiting.clear();
      });
    });
  }

  call<T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 120_000): Promise<T> {
    const id = ++this.next;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new StepTimeout(`the homeserver did not answer "${cmd}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ id, cmd, ...args });
    });
  }

  close(): void {
    this.child.send({ id: 0, cmd: "close" });
    setTimeout(() => this.child.kill("SIGKILL"), 5000).unref();
  }
}

/** Start (or restart) a client; js-sdk's own MatrixRTC manager stays off (a variant starts it itself). */
async function start(client: MatrixClient): Promise<void> {
  const ready = new Promise<void>((resolve) => {
    const onSync = (state: string) => {
      if (state !== "PREPARED" && state !== "SYNCING") return;
      client.off(ClientEvent.Sync, onSync);
      resolve();
    };
    client.on(ClientEvent.Sync, onSync);
  });
  const started = client.startClient({ initialSyncLimit: 1 });
  // js-sdk 43 starts `client.matrixRTC` after the first sync, with a session per call room.
  client.off(ClientEvent.Sync, (client as unknown as { startMatrixRTC: () => void }).startMatrixRTC);
  await started;
  await by(ready, Date.now() + 300_000, "the client's first sync");
}

async function startClient(
  url: string,
  owner: UserCreds,
  roomId: string,
): Promise<{ client: MatrixClient; room: Room }> {
  const client = bareClient(url, owner);
  await start(client);
  for (let i = 0; !client.getRoom(roomId); i++) {
    if (i > 3000) throw new Error("the observing client never saw the room");
    await sleep(10);
  }
  return { client, room: client.getRoom(roomId)! };
}

/** The median of a sample. */
export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The p-th percentile (nearest rank). */
export function percentile(xs: number[], p: number): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** A profiled round's window on the profiler's clock, and the process's CPU over it. */
interface RoundWindow {
  fromUs: number;
  toUs: number;
  cpuUs: number;
}

/**
 * What a profile charged to each observer within one round's window. A sample counts until the next one,
 * at most the session's typical interval: a thread descheduled on a busy machine runs nothing, and it is
 * sampled only when it runs again (counting the gap would measure wall time: on this machine, with two
 * test workers busy, a first list of ours charged 39 ms for 26 ms of CPU that way, 26 ms with the cap).
 */
function profiledRound(profile: SampledProfile, w: RoundWindow, capUs: number): ProfiledRound {
  const ours = attributeProfile(profile, OUR_OBSERVER, capUs, w);
  const sdk = attributeProfile(profile, JS_SDK_OBSERVER, capUs, w);
  return {
    ours: ours.us,
    oursGc: ours.gcUs,
    sdk: sdk.us,
    sdkGc: sdk.gcUs,
    cpuUs: w.cpuUs,
    spanUs: ours.spanUs,
    samples: ours.totalSamples,
  };
}

type Within = <T>(promise: Promise<T>, what: string) => Promise<T>;

export async function runObserverSize(n: number, changes: number): Promise<ObserverSizeResult> {
  quietMatrixSdkLogs();
  const server = new ServerProcess();
  await by(server.ready, Date.now() + 60_000, "the homeserver process");
  const t0 = performance.now();
  const { url, roomId, owner, userIds, stateKeys } = await server.call<{
    url: string;
    roomId: string;
    owner: UserCreds;
    userIds: string[];
    stateKeys: string[];
  }>("setup", { n }, 120_000 + 60 * n);
  const keyOf = new Map(userIds.map((u, i) => [u, stateKeys[i]]));
  const setupMs = performance.now() - t0;
  progress(`N = ${n}: room ready in ${(setupMs / 1000).toFixed(1)} s`);
  const variants: Partial<Record<ObserverVariant, ObserverVariantResult>> = {};
  const agreement = { checks: 0, equal: 0, firstDifference: undefined as string | undefined };
  const profiler = new StepProfiler(SAMPLING_US);
  const writeTimeoutMs = (count: number) => 60_000 + 20 * count;

  /** Resolves once `client` has processed the sync carrying the owner's next chat message. */
  const chatSynced = (client: MatrixClient) =>
    new Promise<void>((resolve) => {
      const onTimeline = (event: MatrixEvent) => {
        if (event.getType() !== "m.room.message" || event.getSender() !== owner.userId) return;
        client.off(RoomEvent.Timeline, onTimeline);
        client.once(ClientEvent.Sync, () => resolve());
      };
      client.on(RoomEvent.Timeline, onTimeline);
    });

  /**
   * Write `count` memberships so that they all reach the client in one sync: the link is cut (what the
   * client would receive waits there), a chat message ends the client's long poll (its answer waits at
   * the link too), then the writes go in. The caller measures from `release()`: the client gets the chat,
   * asks again, and receives every write in its next sync.
   */
  const holdWrites = async (count: number, intent: string, within: Within) => {
    await within(server.call("hold"), "cutting the link");
    try {
      await within(server.call("chat"), "the chat message");
      for (let i = 0; (await within(server.call<number>("held"), "the link's count")) < 1; i++) {
        if (i > 1000) throw new Error("the link never held the client's sync");
        await sleep(5);
      }
      await within(
        server.call("write", { from: 0, count, intent }, writeTimeoutMs(count)),
        `writing ${count} memberships`,
      );
    } catch (e) {
      await server.call("release").catch(() => undefined);
      throw e;
    }
    return { release: () => within(server.call("release"), "restoring the link") };
  };

  const probeFor = (variant: ObserverVariant, client: MatrixClient, room: Room): Probe =>
    variant === "ours"
      ? ourProbe(client, roomId, n)
      : variant === "js-sdk"
        ? jsSdkProbe(client, room, n)
        : clientProbe(client, room, keyOf);

  for (const variant of ["none", "ours", "js-sdk"] as const) {
    const { client, room } = await startClient(url, owner, roomId);
    await sleep(200);
    const failures: StepFailure[] = [];
    /** One step, bounded: a failure is recorded and the variant goes on with its next step. */
    const step = async <T>(name: string, run: (within: Within) => Promise<T>): Promise<T | undefined> => {
      const deadline = Date.now() + stepBudgetMs(name, n);
      try {
        return await run((promise, what) => by(promise, deadline, what));
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        failures.push({ step: name, message });
        progress(`  ${variant}: ${name} FAILED: ${message}`);
        return undefined;
      }
    };

    // The first full list: three attaches to warm the code up (an app pays that once; both sides need
    // a few passes before their code runs optimised), then the median of five, timed without forcing a
    // GC first. Memory: the first attach on this client (js-sdk keeps what it computed for a room's events
    // after `matrixRTC.stop()`, so a later attach would not show it).
    let probe = probeFor(variant, client, room);
    const first = await step("first list", async (within) => {
      const firsts: { ms: number; cpuMs: number }[] = [];
      let memoryBytes = NaN;
      const WARM_UP = 3;
      for (let round = 0; round < WARM_UP + 5; round++) {
        if (round > 0) {
          probe.detach();
          probe = probeFor(variant, client, room);
        }
        await sleep(50);
        // Only the memory round starts from a collected heap: a full GC right before a timed round would
        // charge the allocations of any code with the heap's regrowth.
        const heap0 = round === 0 ? heapAfterGc() : 0;
        const cpu0 = process.cpuUsage();
        const w0 = performance.now();
        await within(probe.attach(), "the first full list");
        if (round >= WARM_UP) firsts.push({ ms: performance.now() - w0, cpuMs: cpuUs(cpu0) / 1000 });
        await sleep(100);
        if (round === 0) memoryBytes = heapAfterGc() - heap0;
      }
      progress(
        `  ${variant}: first list CPU ${firsts.map((f) => f.cpuMs.toFixed(1)).join(", ")} ms; ${changes} single changes…`,
      );
      return {
        firstListMs: median(firsts.map((f) => f.ms)),
        firstListCpuMs: median(firsts.map((f) => f.cpuMs)),
        memoryBytes,
      };
    });

    // Single changes, one after another.
    const changeCpuUs: number[] = [];
    const changeLatencyMs: number[] = [];
    const ownChangeUs: number[] = [];
    await step("changes", async (within) => {
      for (let i = 0; i < changes; i++) {
        const user = userIds[i % n];
        const intent = `${variant}-change-${i}`;
        await sleep(10);
        const shown = probe.shows(user, intent);
        const own0 = probe.ownCpuUs();
        const c = process.cpuUsage();
        const t = performance.now();
        await within(server.call("write", { from: i % n, count: 1, intent }), "the write");
        await within(shown, `change ${i} in the list`);
        changeLatencyMs.push(performance.now() - t);
        changeCpuUs.push(cpuUs(c));
        ownChangeUs.push(probe.ownCpuUs() - own0);
      }
    });

    // A burst, and a catch-up of everyone, each arriving in one sync.
    const inOneSync = async (count: number, intent: string, within: Within) => {
      await sleep(50);
      const e0 = probe.emissions();
      const held = await holdWrites(count, intent, within);
      const shown = probe.shows(userIds[count - 1], intent);
      const own0 = probe.ownCpuUs();
      const c = process.cpuUsage();
      const t = performance.now();
      await held.release();
      await within(shown, `the list showing all ${count}`);
      const result = {
        cpuMs: cpuUs(c) / 1000,
        emissions: 0,
        wallMs: performance.now() - t,
        ownMs: (probe.ownCpuUs() - own0) / 1000,
      };
      await within(probe.settled(), "the observer settling");
      await sleep(200); // js-sdk's second, coalesced recalculation
      result.emissions = probe.emissions() - e0;
      return result;
    };
    // Medians of three (CPU, and the most lists any of them emitted).
    const repeat = (count: number, what: string) =>
      step(what, async (within) => {
        const runs = [];
        for (let r = 0; r < 3; r++) runs.push(await inOneSync(count, `${variant}-${what}-${r}`, within));
        return {
          cpuMs: median(runs.map((x) => x.cpuMs)),
          emissions: Math.max(...runs.map((x) => x.emissions)),
          wallMs: median(runs.map((x) => x.wallMs)),
          ownMs: median(runs.map((x) => x.ownMs)),
        };
      });
    progress(`  ${variant}: bursts and catch-ups…`);
    const burst = await repeat(Math.min(BURST, n), "burst");
    const catchUp = await repeat(n, "catch-up");

    // Syncs that carry only a chat message.
    const chatCpuUs: number[] = [];
    const ownChatUs: number[] = [];
    const ev0 = probe.evaluations();
    await step("chat", async (within) => {
      for (let i = 0; i < 10; i++) {
        await sleep(20);
        const arrived = chatSynced(client);
        const own0 = probe.ownCpuUs();
        const c = process.cpuUsage();
        await within(server.call("chat"), "the chat message");
        await within(arrived, "the chat's sync");
        await sleep(5);
        chatCpuUs.push(cpuUs(c));
        ownChatUs.push(probe.ownCpuUs() - own0);
      }
    });
    const chatEvaluations = probe.evaluations() - ev0;

    // The same steps again under the sampling profiler (the observers only: the client alone runs no
    // observer code): one profiler session for all of them, each round's window cut out of it. A round
    // ends once the observer is idle again.
    let profiled: ProfiledSteps | undefined;
    if (variant !== "none") {
      progress(`  ${variant}: profiled rounds…`);
      const windows: Record<ProfiledStep, RoundWindow[]> = {
        firstList: [],
        change: [],
        burst: [],
        catchUp: [],
        chat: [],
      };
      /** One round: its window is kept only if it finished. */
      const round = async (stepName: ProfiledStep, run: () => Promise<void>) => {
        const c = process.cpuUsage();
        const fromUs = profilerClockUs();
        await run();
        windows[stepName].push({ fromUs, toUs: profilerClockUs(), cpuUs: cpuUs(c) });
      };
      const { sampler, slowdown } = await by(profiler.start(), Date.now() + 60_000, "starting the profiler");
      try {
        await step("profiled changes", async (within) => {
          for (let i = 0; i < PROFILED_ROUNDS.change; i++) {
            const from = (changes + i) % n;
            const intent = `${variant}-profiled-change-${i}`;
            await sleep(10);
            const shown = probe.shows(userIds[from], intent);
            await round("change", async () => {
              await within(server.call("write", { from, count: 1, intent }), "the write");
              await within(shown, `profiled change ${i} in the list`);
              await within(probe.settled(), "the observer settling");
            });
          }
        });
        const profiledInOneSync = (count: number, what: "burst" | "catchUp", name: string) =>
          step(name, async (within) => {
            for (let r = 0; r < PROFILED_ROUNDS[what]; r++) {
              await sleep(50);
              const intent = `${variant}-profiled-${what}-${r}`;
              const held = await holdWrites(count, intent, within);
              const shown = probe.shows(userIds[count - 1], intent);
              await round(what, async () => {
                await held.release();
                await within(shown, `the list showing all ${count}`);
                await within(probe.settled(), "the observer settling");
              });
            }
          });
        await profiledInOneSync(Math.min(BURST, n), "burst", "profiled burst");
        await profiledInOneSync(n, "catchUp", "profiled catch-up");
        await step("profiled chat", async (within) => {
          for (let i = 0; i < PROFILED_ROUNDS.chat; i++) {
            await sleep(20);
            const arrived = chatSynced(client);
            await round("chat", async () => {
              await within(server.call("chat"), "the chat message");
              await within(arrived, "the chat's sync");
              await within(probe.settled(), "the observer settling");
            });
          }
        });
        await step("profiled first list", async (within) => {
          for (let r = 0; r < PROFILED_ROUNDS.firstList; r++) {
            probe.detach();
            probe = probeFor(variant, client, room);
            await sleep(50);
            await round("firstList", async () => {
              await within(probe.attach(), "the first full list");
              await within(probe.settled(), "the observer settling");
            });
          }
        });
      } finally {
        const recorded = await by(profiler.stop(), Date.now() + 120_000, "stopping the profiler");
        if (process.env.OBSERVER_PROFILE_DUMP)
          writeFileSync(
            `${process.env.OBSERVER_PROFILE_DUMP}-${n}-${variant}.json`,
            JSON.stringify({ profile: recorded, windows }),
          );
        const rounds = {} as ProfiledSteps["rounds"];
        const typicalUs = typicalIntervalUs(recorded);
        for (const key of Object.keys(windows) as ProfiledStep[])
          rounds[key] = windows[key].map((w) => profiledRound(recorded, w, typicalUs));
        profiled = { intervalUs: SAMPLING_US, typicalUs, sampler, slowdown, rounds };
      }
    }

    probe.detach();
    stopClient(client);
    variants[variant] = {
      firstListMs: first?.firstListMs ?? NaN,
      firstListCpuMs: first?.firstListCpuMs ?? NaN,
      memoryBytes: first?.memoryBytes ?? NaN,
      changeCpuUs,
      changeLatencyMs,
      burst: { cpuMs: burst?.cpuMs ?? NaN, emissions: burst?.emissions ?? NaN, wallMs: burst?.wallMs ?? NaN },
      catchUp: {
        cpuMs: catchUp?.cpuMs ?? NaN,
        emissions: catchUp?.emissions ?? NaN,
        wallMs: catchUp?.wallMs ?? NaN,
      },
      chatCpuUs,
      chatEvaluations,
      profiled,
      failures,
    };
    if (variant === "ours")
      variants[variant]!.own = {
        changeUs: ownChangeUs,
        burstMs: burst?.ownMs ?? NaN,
        catchUpMs: catchUp?.ownMs ?? NaN,
        chatUs: ownChatUs,
      };
  }
  profiler.close();

  progress(`  both on one client…`);
  // Both on one client: the same list after every step?
  let agreementFailure: string | undefined;
  {
    const { client, room } = await startClient(url, owner, roomId);
    const ours = ourProbe(client, roomId, n);
    const theirs = jsSdkProbe(client, room, n);
    const deadline = Date.now() + stepBudgetMs("catch-up", n) + stepBudgetMs("changes", n);
    const within: Within = (promise, what) => by(promise, deadline, what);
    const compare = (what: string) => {
      agreement.checks++;
      if (ours.ids().join() === theirs.ids().join()) agreement.equal++;
      else agreement.firstDifference ??= `${what}: ours ${ours.ids().length}, js-sdk ${theirs.ids().length}`;
    };
    try {
      await within(ours.attach(), "our first list");
      await within(theirs.attach(), "js-sdk's first list");
      compare("first list");
      for (let i = 0; i < Math.min(changes, 20); i++) {
        const intent = `both-${i}`;
        const shown = Promise.all([ours.shows(userIds[i % n], intent), theirs.shows(userIds[i % n], intent)]);
        await within(server.call("write", { from: i % n, count: 1, intent }), "the write");
        await within(shown, `change ${i} in both lists`);
        await sleep(20);
        compare(`change ${i}`);
      }
      const held = await holdWrites(n, "both-catchup", within);
      const shown = Promise.all([
        ours.shows(userIds[n - 1], "both-catchup"),
        theirs.shows(userIds[n - 1], "both-catchup"),
      ]);
      await held.release();
      await within(shown, "the catch-up in both lists");
      await within(theirs.settled(), "js-sdk settling");
      await sleep(200);
      compare("catch-up");
    } catch (e) {
      agreementFailure = e instanceof Error ? e.message : String(e);
      progress(`  both: FAILED: ${agreementFailure}`);
    }
    ours.detach();
    theirs.detach();
    stopClient(client);
  }
  server.close();
  return {
    n,
    changes,
    setupMs,
    variants: variants as Record<ObserverVariant, ObserverVariantResult>,
    agreement,
    ...(agreementFailure ? { agreementFailure } : {}),
  };
}

/** Run one size in a child process with --expose-gc. */
export function runObserverChild(
  n: number,
  changes: number,
  timeoutMs = observerChildBudgetMs(n),
): Promise<ObserverSizeResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--expose-gc", "--import", "tsx", "bench/observer.ts", String(n), String(changes)],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
      // Its progress, as it goes (the N = 5,000 child runs for many minutes).
      process.stderr.write(d);
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`observer bench N=${n}: no result within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      const line = out.trim().split("\n").pop() ?? "";
      try {
        resolve(JSON.parse(line) as ObserverSizeResult);
      } catch {
        reject(new Error(`observer bench N=${n} exited ${code}: ${err.slice(-2000) || out.slice(-2000)}`));
      }
    });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  process.setSourceMapsEnabled(false);
  const n = Number(process.argv[2] ?? 1000);
  const changes = Number(process.argv[3] ?? 50);
  const result = await runObserverSize(n, changes);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}
