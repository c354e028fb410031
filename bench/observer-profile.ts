/**
 * An observer's own CPU, measured the same way for ours and for js-sdk's: V8's sampling profiler
 * (`node:inspector`) runs through the observer's measured rounds, and the samples of each round whose
 * stack runs through the observer's code are charged to it (inclusive time under its entry points: what
 * it calls of the client's code counts, the client's own sync processing around it does not).
 *
 * Why a profiler: js-sdk's recalculation (`ensureRecalculateSessionMembers` → the async
 * `sessionMembershipsForSlot`) runs in promise continuations after the sync that caused it, so it cannot
 * be bracketed synchronously as ours can; and whole-process CPU minus a client-only run is below the
 * noise for a burst or a catch-up. A sample's stack shows the async continuation's own frames, which is
 * all the attribution needs.
 *
 * The rule, per sample, from the innermost frame outwards: the first frame that is either observer code
 * or bench code decides. Observer code → charged; bench code (the probe's list check, called from the
 * observer's emission) → not charged: that is the app's work, not the observer's. Samples in V8's garbage
 * collector carry no stack: they are charged when the sample just before them was (a scavenge runs when
 * the code that was running ran out of new space), and reported separately.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { Session } from "node:inspector/promises";

/** The part of a `Profiler.Profile` (Chrome DevTools protocol) read here. */
export interface SampledProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string }; children?: number[] }[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** What a frame's script is: the observer's code, the bench's, or neither (the client's, node's, V8's). */
export type FrameClass = "observer" | "bench" | undefined;

export interface Attribution {
  /** µs charged to the observer, garbage collection included. */
  us: number;
  /** Of which garbage collection right after the observer's code. */
  gcUs: number;
  /** Samples charged, of all samples in the window. */
  samples: number;
  totalSamples: number;
  /** The window's length (µs). */
  spanUs: number;
}

const GC = "(garbage collector)";

/**
 * Charge the samples of `profile` taken within `window` (µs on the clock of `process.hrtime`, which V8's
 * profiler shares) to the observer whose frames `classify` recognises. A sample lasts until the next one,
 * at most `capUs` (a thread descheduled on a busy machine is not running the observer; see
 * `typicalIntervalUs`).
 */
export function attributeProfile(
  profile: SampledProfile,
  classify: (url: string) => FrameClass,
  capUs: number,
  window: { fromUs: number; toUs: number } = { fromUs: -Infinity, toUs: Infinity },
): Attribution {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
  // The decision of each node: its own frame's class, else its parent's (memoised).
  const decided = new Map<number, FrameClass>();
  const decide = (id: number): FrameClass => {
    const path: number[] = [];
    let cur: number | undefined = id;
    let result: FrameClass;
    while (cur !== undefined) {
      if (decided.has(cur)) {
        result = decided.get(cur);
        break;
      }
      path.push(cur);
      const own = classify(byId.get(cur)?.callFrame.url ?? "");
      if (own) {
        result = own;
        break;
      }
      cur = parentOf.get(cur);
    }
    for (const p of path) decided.set(p, result);
    return result;
  };
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let us = 0;
  let gcUs = 0;
  let charged = 0;
  let inWindow = 0;
  let previousCharged = false;
  // Sample i was taken at startTime + deltas[0] + … + deltas[i] (µs, the clock of process.hrtime).
  let at = profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    at += deltas[i] ?? 0;
    if (at < window.fromUs) continue;
    if (at >= window.toUs) break;
    inWindow++;
    const node = byId.get(samples[i]);
    // It lasts until the next sample (the last one, until the profile's end).
    const next = i + 1 < samples.length ? (deltas[i + 1] ?? 0) : profile.endTime - at;
    const duration = Math.min(capUs, Math.max(0, next));
    if (node?.callFrame.functionName === GC) {
      if (previousCharged) {
        us += duration;
        gcUs += duration;
        charged++;
      }
      continue;
    }
    previousCharged = decide(samples[i]) === "observer";
    if (previousCharged) {
      us += duration;
      charged++;
    }
  }
  return {
    us,
    gcUs,
    samples: charged,
    totalSamples: inWindow,
    spanUs: Math.min(profile.endTime, window.toUs) - Math.max(profile.startTime, window.fromUs),
  };
}

/**
 * The interval the profiler achieved: the median time between two samples. The sampler interrupts the
 * main thread at that pace whenever it runs (idle or busy); a longer gap before a sample means the thread
 * was not running.
 */
export function typicalIntervalUs(profile: SampledProfile): number {
  const deltas = (profile.timeDeltas ?? []).slice(1).filter((d) => d > 0);
  if (deltas.length === 0) return 0;
  deltas.sort((a, b) => a - b);
  return deltas[deltas.length >> 1];
}

/** Frame classifiers: a frame's script URL says whose code it is. */
export const OUR_OBSERVER = (url: string): FrameClass =>
  url.includes("/src/membership/") && !url.includes("/node_modules/")
    ? "observer"
    : url.includes("/bench/")
      ? "bench"
      : undefined;
export const JS_SDK_OBSERVER = (url: string): FrameClass =>
  url.includes("/node_modules/matrix-js-sdk/lib/matrixrtc/")
    ? "observer"
    : url.includes("/bench/")
      ? "bench"
      : undefined;

/** Now, in µs on the profiler's clock. */
export const profilerClockUs = (): number => Number(process.hrtime.bigint() / 1000n);

/**
 * The sampling profiler of this process. One session per observer, its rounds cut out of it by time:
 * V8 loses track of code it optimised or moved between two sessions (its frames vanish from the next
 * session's stacks), so a session per round would drop the observer's own frames.
 */
export class StepProfiler {
  private readonly session = new Session();
  private enabled = false;

  constructor(readonly intervalUs: number) {}

  /**
   * Starts a session. Resolves with how its sampler thread runs: "realtime" when it could be given a
   * real-time priority (SCHED_FIFO, Linux, permitted), else "normal". Why: V8's sampler is a thread that
   * wakes every interval to interrupt the main thread; on a loaded machine, or when the two share a core,
   * the scheduler lets the busy main thread run on for milliseconds before the sampler gets the core, so
   * busy stretches get few samples (measured here under load, every 100 µs: a known 0.51 ms of work per
   * round read as a median of 0.35–0.42 ms, 0 in a fifth of the rounds). With SCHED_FIFO it preempts at
   * once: a median of 0.59 ms, every round 0.35–1.09 ms. The thread sleeps between samples; it costs a fraction of one core while profiling.
   */
  async start(): Promise<{ sampler: "realtime" | "normal"; slowdown: number }> {
    if (!this.enabled) {
      this.session.connect();
      await this.session.post("Profiler.enable");
      await this.session.post("Profiler.setSamplingInterval", { interval: this.intervalUs });
      this.enabled = true;
    }
    const before = fixedWorkMs();
    await this.session.post("Profiler.start");
    const sampler = raiseSamplerPriority();
    // V8 first records every existing function for the session (on the sampler's thread, which now
    // preempts ours): let that pass before anything is measured.
    await new Promise((resolve) => setTimeout(resolve, 500));
    return { sampler, slowdown: fixedWorkMs() / before };
  }

  async stop(): Promise<SampledProfile> {
    const { profile } = await this.session.post("Profiler.stop");
    return profile as SampledProfile;
  }

  close(): void {
    if (this.enabled) this.session.disconnect();
    this.enabled = false;
  }
}

/**
 * The time of a fixed computation (ms): run before and after the profiler starts, their ratio says
 * how much slower code runs while it samples (signals, the sampler's own work, a virtual machine's exits).
 * Both observers' figures carry that factor alike.
 */
function fixedWorkMs(): number {
  let fastest = Infinity;
  let sink = 0;
  // The fastest of 15 runs: the one least disturbed by other processes on a shared machine.
  for (let r = 0; r < 15; r++) {
    const t = performance.now();
    for (let i = 0; i < 200_000; i++) sink += Math.sqrt(i) * (i & 7);
    fastest = Math.min(fastest, performance.now() - t);
  }
  return sink < 0 ? NaN : fastest;
}

/** V8's sampler thread of this process ("v8:ProfEvntProc"), given SCHED_FIFO priority 1 if permitted. */
function raiseSamplerPriority(): "realtime" | "normal" {
  let raised = 0;
  try {
    for (const tid of readdirSync("/proc/self/task")) {
      const name = readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim();
      if (!name.startsWith("v8:Prof")) continue;
      execFileSync("chrt", ["-f", "-p", "1", tid], { stdio: "ignore", timeout: 5000 });
      raised++;
    }
  } catch {
    return "normal";
  }
  return raised > 0 ? "realtime" : "normal";
}
