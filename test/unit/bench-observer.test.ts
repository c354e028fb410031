/**
 * The observer bench's attribution of sampled CPU to an observer (bench/observer-profile.ts) and its
 * report's verdicts and goals table (bench/observer-report.ts), on made-up profiles and results: which
 * samples are charged, and that a row says "met", "not met", "failed" or "not measured" when it should.
 */
import { describe, expect, it } from "@jest/globals";
import type {
  ObserverSizeResult,
  ObserverVariantResult,
  ProfiledRound,
  ProfiledStep,
} from "../../bench/observer.js";
import {
  JS_SDK_OBSERVER,
  OUR_OBSERVER,
  attributeProfile,
  typicalIntervalUs,
  type SampledProfile,
} from "../../bench/observer-profile.js";
import { goalsTable, observerRows } from "../../bench/observer-report.js";

const OURS = "file:///pkg/src/membership/store.ts";
const CLIENT = "file:///pkg/node_modules/matrix-js-sdk/lib/sync.js";
const RTC = "file:///pkg/node_modules/matrix-js-sdk/lib/matrixrtc/MatrixRTCSession.js";
const BENCH = "file:///pkg/bench/observer-probes.ts";

/**
 * A profile from stacks (outermost first, as script URLs; "(garbage collector)" and "(idle)" stand for
 * V8's own entries) and the time from each sample to the next (µs).
 */
function profileOf(samples: { stack: string[]; nextUs: number }[]): SampledProfile {
  const nodes: SampledProfile["nodes"] = [
    { id: 1, callFrame: { functionName: "(root)", url: "" }, children: [] },
  ];
  const ids: number[] = [];
  for (const { stack } of samples) {
    let parent = nodes[0];
    for (const frame of stack) {
      const meta = frame.startsWith("(");
      const name = meta ? frame : `f${nodes.length}`;
      const url = meta ? "" : frame;
      let child = (parent.children ?? [])
        .map((id) => nodes.find((n) => n.id === id)!)
        .find((n) => n.callFrame.url === url && (meta ? n.callFrame.functionName === frame : true));
      if (!child) {
        child = { id: nodes.length + 1, callFrame: { functionName: name, url }, children: [] };
        nodes.push(child);
        parent.children!.push(child.id);
      }
      parent = child;
    }
    ids.push(parent.id);
  }
  const timeDeltas = [0, ...samples.slice(0, -1).map((s) => s.nextUs)];
  const total = samples.reduce((sum, s) => sum + s.nextUs, 0);
  return { nodes, startTime: 1_000, endTime: 1_000 + total, samples: ids, timeDeltas };
}

describe("attributeProfile", () => {
  it("charges samples whose innermost classified frame is the observer's, and the GC right after them", () => {
    const profile = profileOf([
      { stack: [CLIENT, OURS], nextUs: 100 }, // our listener inside the client's sync: charged
      { stack: [CLIENT, OURS, CLIENT], nextUs: 100 }, // the client's code our listener calls: charged
      { stack: [CLIENT, OURS, BENCH], nextUs: 100 }, // the bench's subscriber, called by our emission: not
      { stack: [BENCH, OURS], nextUs: 100 }, // our code called by the bench (attach): charged
      { stack: ["(garbage collector)"], nextUs: 100 }, // right after ours: charged, as GC
      { stack: [CLIENT], nextUs: 100 }, // the client alone: not
      { stack: ["(garbage collector)"], nextUs: 100 }, // right after the client: not
      { stack: ["(idle)"], nextUs: 100 },
    ]);
    const ours = attributeProfile(profile, OUR_OBSERVER, 400);
    expect(ours).toMatchObject({ us: 400, gcUs: 100, samples: 4, totalSamples: 8 });
    // The same profile holds no js-sdk MatrixRTC code.
    expect(attributeProfile(profile, JS_SDK_OBSERVER, 400).us).toBe(0);
  });

  it("charges js-sdk's asynchronous continuations by their own frames", () => {
    const profile = profileOf([
      { stack: ["(program)", RTC], nextUs: 80 }, // a microtask running its recalculation
      { stack: ["(program)", RTC, CLIENT], nextUs: 80 }, // what it calls (room state reads)
      { stack: [CLIENT, RTC, BENCH], nextUs: 80 }, // the bench's listener on MembershipsChanged: not
      { stack: [CLIENT], nextUs: 80 },
    ]);
    expect(attributeProfile(profile, JS_SDK_OBSERVER, 400)).toMatchObject({ us: 160, samples: 2 });
    expect(attributeProfile(profile, OUR_OBSERVER, 400).us).toBe(0);
  });

  it("caps each sample, and counts only the samples in the window", () => {
    // Samples at 1000, 1100, 6100, 6200 (µs): the second is followed by a 5 ms gap (a descheduled thread).
    const profile = profileOf([
      { stack: [CLIENT, OURS], nextUs: 100 },
      { stack: [CLIENT, OURS], nextUs: 5_000 },
      { stack: [CLIENT, OURS], nextUs: 100 },
      { stack: [CLIENT, OURS], nextUs: 100 },
    ]);
    expect(attributeProfile(profile, OUR_OBSERVER, 400).us).toBe(100 + 400 + 100 + 100);
    expect(attributeProfile(profile, OUR_OBSERVER, 400, { fromUs: 1_050, toUs: 6_150 })).toMatchObject({
      us: 500,
      samples: 2,
      totalSamples: 2,
    });
  });
});

describe("typicalIntervalUs", () => {
  it("is the median time between samples, so that a descheduled gap is not counted as running", () => {
    // Samples 120, 110, 130, 5000, 125 and 115 µs apart (the last until the profile's end).
    const samples = [120, 110, 130, 5_000, 125, 115].map((nextUs) => ({ stack: [CLIENT, OURS], nextUs }));
    const profile = profileOf(samples);
    const typical = typicalIntervalUs(profile);
    expect(typical).toBe(125);
    // The 5 ms gap (the thread waited for a core) counts as one typical interval, not 5 ms.
    expect(attributeProfile(profile, OUR_OBSERVER, typical).us).toBe(120 + 110 + 125 + 125 + 125 + 115);
  });
});

const round = (ours: number, sdk: number): ProfiledRound => ({
  ours,
  oursGc: 0,
  sdk,
  sdkGc: 0,
  cpuUs: 0,
  spanUs: 0,
  samples: 0,
});

/** A variant whose profiled rounds charge `us` to its own observer, each step the same. */
function variant(
  side: "ours" | "sdk" | "none",
  us: Partial<Record<ProfiledStep, number>>,
): ObserverVariantResult {
  const steps: ProfiledStep[] = ["firstList", "change", "burst", "catchUp", "chat"];
  const rounds = Object.fromEntries(
    steps.map((s) => [
      s,
      [1, 1, 1].map(() => round(side === "ours" ? (us[s] ?? 0) : 0, side === "sdk" ? (us[s] ?? 0) : 0)),
    ]),
  ) as Record<ProfiledStep, ProfiledRound[]>;
  return {
    firstListMs: 1,
    firstListCpuMs: 1,
    memoryBytes: side === "ours" ? 1024 : 2048,
    changeCpuUs: [1000],
    changeLatencyMs: [side === "ours" ? 3 : 5],
    burst: { cpuMs: 1, emissions: 1, wallMs: 1 },
    catchUp: { cpuMs: 1, emissions: 1, wallMs: 1 },
    chatCpuUs: [10],
    chatEvaluations: 0,
    ...(side === "none"
      ? {}
      : { profiled: { intervalUs: 100, typicalUs: 120, sampler: "realtime", slowdown: 1.3, rounds } }),
    failures: [],
  };
}

function sizeResult(
  n: number,
  ours: Partial<Record<ProfiledStep, number>>,
  sdk: Partial<Record<ProfiledStep, number>>,
): ObserverSizeResult {
  return {
    n,
    changes: 3,
    setupMs: 0,
    variants: { none: variant("none", {}), ours: variant("ours", ours), "js-sdk": variant("sdk", sdk) },
    agreement: { checks: 22, equal: 22 },
  };
}

const cheap = { firstList: 5_000, change: 300, burst: 1_000, catchUp: 5_000, chat: 0 };
const costly = { firstList: 8_000, change: 6_000, burst: 6_000, catchUp: 4_000, chat: 0 };

describe("observer report", () => {
  it("takes each CPU row from the profiled rounds and judges ours ≤ js-sdk at 1,000 and 5,000 only", () => {
    const rows = observerRows([sizeResult(100, costly, cheap), sizeResult(1000, cheap, costly)]);
    const row = (n: number, figure: string) => rows.find((r) => r.n === n && r.figure === figure)!;
    expect(row(1000, "CPU per membership change")).toMatchObject({ ours: 300, theirs: 6000, verdict: "met" });
    expect(row(1000, "catch-up of all N in one sync: CPU")).toMatchObject({
      ours: 5,
      theirs: 4,
      verdict: "not met",
    });
    expect(row(1000, "first full list: CPU")).toMatchObject({ ours: 5, theirs: 8, unit: "ms" });
    // N = 100 is outside the goal: no verdict, even where ours costs more.
    expect(row(100, "CPU per membership change")).toMatchObject({ ours: 6000, theirs: 300, verdict: "—" });
    expect(row(1000, "sync with only a chat message: evaluations").verdict).toBe("met");
  });

  it("says which step failed instead of judging its rows", () => {
    const r = sizeResult(5000, cheap, costly);
    r.variants.none.failures.push({ step: "burst", message: "the list showing all 50: not done in time" });
    const rows = observerRows([r]);
    const burst = rows.find((x) => x.figure === "burst of 50 in one sync: CPU")!;
    expect(burst.verdict).toBe("failed");
    expect(burst.note).toContain("client alone: burst FAILED: the list showing all 50");
    // The other rows are judged as usual.
    expect(rows.find((x) => x.figure === "CPU per membership change")!.verdict).toBe("met");
  });

  it("generates the goals table from the rows: verdicts per size, sizes not measured, the slope", () => {
    const rows = observerRows([sizeResult(1000, cheap, costly), sizeResult(5000, cheap, costly)]);
    const table = goalsTable(rows);
    const line = (goal: string) => table.split("\n").find((l) => l.startsWith(`| ${goal}`))!;
    expect(line("CPU per membership change")).toMatch(/\| 300 vs 6000 µs \| 300 vs 6000 µs \| met \|$/);
    expect(line("catch-up of all N")).toContain("**not met** at 1,000 (1.25×); **not met** at 5,000 (1.25×)");
    // Catch-up per member 5 µs at 1,000 and 1 µs at 5,000: not growing; a burst costs 3.33 changes.
    expect(line("bursts and catch-up linear")).toContain(
      "| met: ours per member in a catch-up 5.00 (1,000) → 1.00 (5,000) µs; a burst of 50 = 3.33 (1,000) → 3.33 (5,000) single changes |",
    );

    const partial = goalsTable(observerRows([sizeResult(1000, cheap, costly)]), [
      { n: 5000, reason: "observer bench N=5000: no result within 900000 ms" },
    ]);
    expect(partial).toContain("not measured: observer bench N=5000: no result within 900000 ms");
    expect(partial).toContain("met at 1,000; not measured at 5,000");
  });

  it("calls a catch-up whose cost per member grows with the call not linear", () => {
    const rows = observerRows([
      sizeResult(1000, { ...cheap, catchUp: 5_000 }, costly),
      sizeResult(5000, { ...cheap, catchUp: 125_000 }, costly), // 25 µs per member, 5× that at 1,000
    ]);
    expect(goalsTable(rows)).toContain("**catch-up not linear**");
  });

  it("calls a burst that costs like a pass over the call per change not linear", () => {
    const rows = observerRows([
      sizeResult(1000, cheap, costly),
      sizeResult(5000, { ...cheap, burst: 50 * 300 }, costly), // 50 single changes
    ]);
    const table = goalsTable(rows);
    expect(table).toContain("**burst not linear**");
    expect(table).not.toContain("catch-up not linear");
  });
});
