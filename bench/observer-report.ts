/**
 * The observer section's tables: our `callMembers$` beside js-sdk's `MatrixRTCSession` at each N, as
 * text (printed), markdown (the `bench:observer` block of docs/benchmark.md, and the goals table of issue
 * 24 in the `bench:observer-goals` block, generated from the same run so that it cannot go stale) and
 * JSON (bench/results/observer.json).
 *
 * CPU rows are each observer's own CPU from the profiled rounds (bench/observer-profile.ts): medians over
 * the rounds, with the spread (p25–p75) in the note; the whole-process figures (a variant's process CPU
 * minus the client-only run's) stay in the note for context.
 */
import { existsSync, readFileSync } from "node:fs";
import {
  median,
  percentile,
  type ObserverSizeResult,
  type ObserverVariantResult,
  type ProfiledStep,
} from "./observer.js";
import { prettify, writeFileEnsuringDir } from "./report.js";

/** The sizes the goal is judged at (issue 24: "at 1,000 and 5,000"). */
export const GOAL_SIZES = [1000, 5000];

export interface ObserverRow {
  figure: string;
  n: number;
  unit: string;
  ours: number;
  theirs: number;
  /** "met", "not met" (at the goal's sizes), "—" (outside them, or nothing to judge), "failed". */
  verdict: string;
  note?: string;
  /** CPU rows: p25–p75 of the profiled rounds (same unit). */
  spread?: { ours: [number, number]; theirs: [number, number]; rounds: number };
}

export const fmt = (x: number): string =>
  !Number.isFinite(x)
    ? "n/a"
    : Math.abs(x) >= 100
      ? x.toFixed(0)
      : Math.abs(x) >= 10
        ? x.toFixed(1)
        : Math.abs(x) >= 1
          ? x.toFixed(2)
          : x.toFixed(3);

const sizeName = (n: number) => n.toLocaleString("en-US");

/** An observer's cost by the whole process: its run's figure minus the client-only run's, never below 0. */
const over = (x: number, baseline: number): number => Math.max(0, x - baseline);

/** The step names (bench/observer.ts) whose failure voids each kind of row. */
const STEPS = {
  firstList: ["first list", "profiled first list"],
  change: ["changes", "profiled changes"],
  burst: ["burst", "profiled burst"],
  catchUp: ["catch-up", "profiled catch-up"],
  chat: ["chat", "profiled chat"],
} as const;

/** "ours: burst FAILED: …" for the failed steps among `steps`, or undefined. */
function failuresOf(r: ObserverSizeResult, steps: readonly string[]): string | undefined {
  const out: string[] = [];
  for (const variant of ["none", "ours", "js-sdk"] as const)
    for (const f of r.variants[variant]?.failures ?? [])
      if (steps.includes(f.step))
        out.push(`${variant === "none" ? "client alone" : variant}: ${f.step} FAILED: ${f.message}`);
  return out.length > 0 ? out.join("; ") : undefined;
}

/** The profiled rounds of one step, in `scale` units per µs (ours: charged to our code; js-sdk: to its). */
function profiledOf(
  v: ObserverVariantResult,
  side: "ours" | "sdk",
  step: ProfiledStep,
  scale: number,
): number[] {
  return (v.profiled?.rounds[step] ?? []).map((r) => r[side] * scale);
}

/** ours ≤ js-sdk at the goal's sizes. */
function judge(n: number, ours: number, theirs: number, failed: boolean): string {
  if (failed) return "failed";
  if (!GOAL_SIZES.includes(n)) return "—";
  if (!Number.isFinite(ours) || !Number.isFinite(theirs)) return "n/a";
  return ours <= theirs ? "met" : "not met";
}

/** One CPU row from the profiled rounds, with the whole-process figures as context. */
function cpuRow(
  r: ObserverSizeResult,
  figure: string,
  unit: "ms" | "µs",
  step: ProfiledStep,
  wholeProcess: { ours: number; theirs: number },
  extraNote?: string,
): ObserverRow {
  const { ours, "js-sdk": sdk } = r.variants;
  const scale = unit === "ms" ? 1 / 1000 : 1;
  const mine = profiledOf(ours, "ours", step, scale);
  const theirs = profiledOf(sdk, "sdk", step, scale);
  const failure = failuresOf(r, STEPS[step]);
  const row: ObserverRow = {
    figure,
    n: r.n,
    unit,
    ours: median(mine),
    theirs: median(theirs),
    verdict: judge(r.n, median(mine), median(theirs), failure !== undefined),
    spread: {
      ours: [percentile(mine, 25), percentile(mine, 75)],
      theirs: [percentile(theirs, 25), percentile(theirs, 75)],
      rounds: Math.min(mine.length, theirs.length),
    },
  };
  const s = row.spread!;
  const overlap = s.ours[0] <= s.theirs[1] && s.theirs[0] <= s.ours[1];
  if (row.verdict === "met" || row.verdict === "not met")
    if (overlap && row.ours !== row.theirs) row.verdict += " (spreads overlap)";
  row.note = [
    `${s.rounds} rounds, p25–p75 ${fmt(s.ours[0])}–${fmt(s.ours[1])} vs ${fmt(s.theirs[0])}–${fmt(s.theirs[1])}`,
    `whole process ${fmt(wholeProcess.ours)} vs ${fmt(wholeProcess.theirs)}`,
    extraNote,
    failure,
  ]
    .filter(Boolean)
    .join("; ");
  return row;
}

export function observerRows(sizes: ObserverSizeResult[]): ObserverRow[] {
  const rows: ObserverRow[] = [];
  for (const r of sizes) {
    const { none, ours, "js-sdk": sdk } = r.variants;
    const n = r.n;
    const plain = (
      figure: string,
      unit: string,
      a: number,
      b: number,
      steps: readonly string[],
      note?: string,
      judged = true,
    ): ObserverRow => {
      const failure = failuresOf(r, steps);
      return {
        figure,
        n,
        unit,
        ours: a,
        theirs: b,
        verdict: judged ? judge(n, a, b, failure !== undefined) : failure ? "failed" : "—",
        note: [note, failure].filter(Boolean).join("; ") || undefined,
      };
    };
    const perChange = (v: ObserverVariantResult) => over(median(v.changeCpuUs), median(none.changeCpuUs));
    const chat = (v: ObserverVariantResult) => over(median(v.chatCpuUs), median(none.chatCpuUs));
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
    const catchUp = cpuRow(r, "catch-up of all N in one sync: CPU", "ms", "catchUp", {
      ours: over(ours.catchUp.cpuMs, none.catchUp.cpuMs),
      theirs: over(sdk.catchUp.cpuMs, none.catchUp.cpuMs),
    });
    catchUp.note = `${fmt((catchUp.ours * 1000) / n)} vs ${fmt((catchUp.theirs * 1000) / n)} µs per member; ${catchUp.note}`;
    rows.push(
      cpuRow(r, "first full list: CPU", "ms", "firstList", {
        ours: ours.firstListCpuMs,
        theirs: sdk.firstListCpuMs,
      }),
      cpuRow(
        r,
        "CPU per membership change",
        "µs",
        "change",
        { ours: perChange(ours), theirs: perChange(sdk) },
        ours.own ? `our sync listener bracketed: ${fmt(median(ours.own.changeUs))}` : undefined,
      ),
      plain(
        "write → list updated, p50",
        "ms",
        median(ours.changeLatencyMs),
        median(sdk.changeLatencyMs),
        STEPS.change,
        `client alone ${fmt(median(none.changeLatencyMs))} ms`,
      ),
      plain(
        "write → list updated, p99",
        "ms",
        percentile(ours.changeLatencyMs, 99),
        percentile(sdk.changeLatencyMs, 99),
        STEPS.change,
        `client alone ${fmt(percentile(none.changeLatencyMs, 99))} ms`,
      ),
      cpuRow(
        r,
        "burst of 50 in one sync: CPU",
        "ms",
        "burst",
        { ours: over(ours.burst.cpuMs, none.burst.cpuMs), theirs: over(sdk.burst.cpuMs, none.burst.cpuMs) },
        ours.own ? `our sync listener bracketed: ${fmt(ours.own.burstMs)}` : undefined,
      ),
      plain(
        "burst of 50 in one sync: lists emitted",
        "lists",
        ours.burst.emissions,
        sdk.burst.emissions,
        STEPS.burst,
      ),
      catchUp,
      plain(
        "catch-up of all N: lists emitted",
        "lists",
        ours.catchUp.emissions,
        sdk.catchUp.emissions,
        STEPS.catchUp,
      ),
      cpuRow(
        r,
        "sync with only a chat message: CPU",
        "µs",
        "chat",
        { ours: chat(ours), theirs: chat(sdk) },
        `mean ${fmt(mean(profiledOf(ours, "ours", "chat", 1)))} vs ${fmt(mean(profiledOf(sdk, "sdk", "chat", 1)))}` +
          (ours.own ? `; our sync listener bracketed: ${fmt(median(ours.own.chatUs))}` : ""),
      ),
      // "0 work on a sync that did not touch the call": no evaluation of ours, whatever js-sdk does.
      plain(
        "sync with only a chat message: evaluations",
        "per 10 syncs",
        ours.chatEvaluations,
        sdk.chatEvaluations,
        STEPS.chat,
      ),
      plain("memory per observer", "KB", ours.memoryBytes / 1024, sdk.memoryBytes / 1024, STEPS.firstList),
      {
        figure: "same list as js-sdk (both on one client)",
        n,
        unit: "checks",
        ours: r.agreement.equal,
        theirs: r.agreement.checks,
        verdict: r.agreementFailure
          ? "failed"
          : r.agreement.checks > 0 && r.agreement.equal === r.agreement.checks
            ? "met"
            : "not met",
        note: r.agreementFailure
          ? `FAILED: ${r.agreementFailure}`
          : r.agreement.firstDifference
            ? `first difference: ${r.agreement.firstDifference}`
            : "every check equal",
      },
    );
    const evaluations = rows.find((row) => row.n === n && row.figure.endsWith("evaluations"))!;
    if (evaluations.verdict === "met" || evaluations.verdict === "not met")
      evaluations.verdict = ours.chatEvaluations === 0 ? "met" : "not met";
  }
  return rows;
}

const ratio = (row: ObserverRow): string =>
  row.unit === "checks" ? "" : row.theirs > 0 ? fmt(row.ours / row.theirs) : row.ours === 0 ? "—" : "n/a";

export function observerTable(rows: ObserverRow[], markdown: boolean): string {
  const header = ["figure", "N", "unit", "ours", "js-sdk 43", "ours/js-sdk", "verdict", "note"];
  const body = rows.map((r) => [
    r.figure,
    sizeName(r.n),
    r.unit,
    r.unit === "checks" ? `${r.ours} of ${r.theirs}` : fmt(r.ours),
    r.unit === "checks" ? "" : fmt(r.theirs),
    ratio(r),
    r.verdict,
    r.note ?? "",
  ]);
  if (markdown)
    return [header, header.map(() => "---"), ...body].map((cells) => `| ${cells.join(" | ")} |`).join("\n");
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((c) => c[i].length)));
  return [header, ...body].map((cells) => cells.map((c, i) => c.padEnd(widths[i])).join("  ")).join("\n");
}

/**
 * The slope at size n: a catch-up's CPU per changed member (µs; K = N), and a burst of 50 counted in
 * single changes (its CPU over one change's).
 */
export function slopes(rows: ObserverRow[], n: number) {
  const find = (figure: string) => rows.find((r) => r.n === n && r.figure === figure);
  const catchUp = find("catch-up of all N in one sync: CPU");
  const burst = find("burst of 50 in one sync: CPU");
  const change = find("CPU per membership change");
  const perMember = (side: "ours" | "theirs") => ((catchUp?.[side] ?? NaN) * 1000) / n;
  const inChanges = (side: "ours" | "theirs") => ((burst?.[side] ?? NaN) * 1000) / (change?.[side] ?? NaN);
  return {
    catchUp: { ours: perMember("ours"), theirs: perMember("theirs") },
    burst: { ours: inChanges("ours"), theirs: inChanges("theirs") },
  };
}

/**
 * Linear in the changes, K, not K × N. A catch-up changes all N: its cost per member must not grow with the
 * call (K × N would grow it 5× from 1,000 to 5,000); met when ours at 5,000 is at most twice ours at 1,000.
 * A burst changes 50: a pass over the call per change would cost about 50 single changes (each a pass
 * with its own list); met when it costs at most 10. Both allow the one O(N) list a sync emits.
 */
const CATCH_UP_GROWTH = 2;
const BURST_IN_CHANGES = 10;
/** Issue 24's goals, one line each, at N = 1,000 and 5,000, from this run's rows. */
export function goalsTable(rows: ObserverRow[], missing: { n: number; reason: string }[] = []): string {
  const cellFor = (n: number, figures: string[], show: (rs: ObserverRow[]) => string): string => {
    const gone = missing.find((m) => m.n === n);
    if (gone) return `not measured: ${gone.reason}`;
    const rs = figures.map((f) => rows.find((r) => r.n === n && r.figure === f));
    if (rs.some((r) => r === undefined)) return "not measured";
    return show(rs as ObserverRow[]);
  };
  const verdictFor = (figures: string[]): string => {
    const parts = GOAL_SIZES.map((n) => {
      if (missing.some((m) => m.n === n)) return `not measured at ${sizeName(n)}`;
      const rs = figures.map((f) => rows.find((r) => r.n === n && r.figure === f));
      if (rs.some((r) => r === undefined)) return `not measured at ${sizeName(n)}`;
      const bad = rs.filter((r) => !r!.verdict.startsWith("met"));
      if (bad.length === 0)
        return `met at ${sizeName(n)}${rs.some((r) => r!.verdict.includes("overlap")) ? " (spreads overlap)" : ""}`;
      return bad
        .map(
          (r) =>
            `**${r!.verdict}** at ${sizeName(n)}` +
            (r!.verdict.startsWith("not met") && r!.theirs > 0 ? ` (${fmt(r!.ours / r!.theirs)}×)` : ""),
        )
        .join(", ");
    });
    return parts.every((p) => p.startsWith("met at") && !p.includes("overlap")) ? "met" : parts.join("; ");
  };
  const vs = (r: ObserverRow, digits = fmt) => `${digits(r.ours)} vs ${digits(r.theirs)} ${r.unit}`;
  /** Each goal: the figures shown, how, and (when not all of them) the figures it is judged on. */
  const lines: [string, string[], (rs: ObserverRow[]) => string, string[]?][] = [
    ["first full list: CPU ≤ js-sdk", ["first full list: CPU"], ([r]) => vs(r)],
    ["CPU per membership change ≤ js-sdk", ["CPU per membership change"], ([r]) => vs(r)],
    [
      "write → list p50 / p99 ≤ js-sdk",
      ["write → list updated, p50", "write → list updated, p99"],
      ([a, b]) => `${fmt(a.ours)} / ${fmt(b.ours)} vs ${fmt(a.theirs)} / ${fmt(b.theirs)} ms`,
    ],
    [
      "burst of 50 in one sync: CPU ≤ js-sdk, lists ≤ js-sdk",
      ["burst of 50 in one sync: CPU", "burst of 50 in one sync: lists emitted"],
      ([a, b]) => `${vs(a)}; ${fmt(b.ours)} vs ${fmt(b.theirs)} lists`,
    ],
    [
      "catch-up of all N in one sync: CPU ≤ js-sdk, lists ≤ js-sdk",
      ["catch-up of all N in one sync: CPU", "catch-up of all N: lists emitted"],
      ([a, b]) => `${vs(a)}; ${fmt(b.ours)} vs ${fmt(b.theirs)} lists`,
    ],
    [
      "0 work on a sync that did not touch the call",
      ["sync with only a chat message: evaluations", "sync with only a chat message: CPU"],
      ([a, b]) => `${fmt(a.ours)} vs ${fmt(a.theirs)} evaluations per 10 syncs; CPU ${vs(b)}`,
      ["sync with only a chat message: evaluations"],
    ],
    ["memory per observer ≤ js-sdk", ["memory per observer"], ([r]) => vs(r)],
    [
      "same list as js-sdk",
      ["same list as js-sdk (both on one client)"],
      ([r]) => `${r.ours} of ${r.theirs} checks`,
    ],
  ];
  const table: string[][] = lines.map(([goal, figures, show, judgedOn]) => [
    goal,
    cellFor(1000, figures, show),
    cellFor(5000, figures, show),
    verdictFor(judgedOn ?? figures),
  ]);
  // The slope, at every N measured.
  const sizes = [...new Set(rows.map((r) => r.n))].sort((a, b) => a - b);
  const slopeAt = new Map(sizes.map((n) => [n, slopes(rows, n)]));
  const slopeCell = (n: number): string => {
    const gone = missing.find((m) => m.n === n);
    const s = slopeAt.get(n);
    if (gone || !s) return `not measured${gone ? `: ${gone.reason}` : ""}`;
    return (
      `catch-up per member: ${fmt(s.catchUp.ours)} vs ${fmt(s.catchUp.theirs)} µs; ` +
      `a burst of 50 costs ${fmt(s.burst.ours)} vs ${fmt(s.burst.theirs)} single changes`
    );
  };
  const s1 = slopeAt.get(1000);
  const s5 = slopeAt.get(5000);
  const trend = (pick: (s: ReturnType<typeof slopes>) => number) =>
    sizes.map((n) => `${fmt(pick(slopeAt.get(n)!))} (${sizeName(n)})`).join(" → ");
  const slopeVerdict =
    (!s1 || !s5
      ? "not measured at both sizes"
      : [
          s5.catchUp.ours <= CATCH_UP_GROWTH * s1.catchUp.ours ? undefined : "**catch-up not linear**",
          s1.burst.ours <= BURST_IN_CHANGES && s5.burst.ours <= BURST_IN_CHANGES
            ? undefined
            : "**burst not linear**",
        ]
          .filter(Boolean)
          .join("; ") || "met") +
    `: ours per member in a catch-up ${trend((s) => s.catchUp.ours)} µs; a burst of 50 = ` +
    `${trend((s) => s.burst.ours)} single changes`;
  table.push([
    `bursts and catch-up linear (catch-up per member ≤ ${CATCH_UP_GROWTH}× from 1,000 to 5,000; a burst of 50 ≤ ${BURST_IN_CHANGES} single changes)`,
    slopeCell(1000),
    slopeCell(5000),
    slopeVerdict,
  ]);
  const header = [
    "goal (issue 24, item 5)",
    "N = 1,000: ours vs js-sdk 43",
    "N = 5,000: ours vs js-sdk 43",
    "verdict",
  ];
  return [header, header.map(() => "---"), ...table].map((cells) => `| ${cells.join(" | ")} |`).join("\n");
}

const START = "<!-- bench:observer:start -->";
const END = "<!-- bench:observer:end -->";
const GOALS_START = "<!-- bench:observer-goals:start -->";
const GOALS_END = "<!-- bench:observer-goals:end -->";

/** `text` with the block between `start` and `end` replaced (or appended). */
function replaceBlock(text: string, start: string, end: string, body: string): string {
  const block = `${start}\n${body}\n${end}`;
  if (text.includes(start) && text.includes(end))
    return `${text.slice(0, text.indexOf(start))}${block}${text.slice(text.indexOf(end) + end.length)}`;
  return `${text.trimEnd()}\n\n${block}\n`;
}

export interface ObserverMeta {
  date: string;
  node: string;
  cpu: string;
  nproc: number;
  gitCommit: string;
  jsSdkVersion: string;
  quick: boolean;
  /** /proc/loadavg's 1-minute figure when the section started and when it ended. */
  loadAtStart?: number;
  loadAtEnd?: number;
}

/** How the profiler ran in this run (sampler priority, slowdown range), for the block's header. */
function profilerSummary(sizes: ObserverSizeResult[]): string {
  const runs = sizes
    .flatMap((r) => [r.variants.ours?.profiled, r.variants["js-sdk"]?.profiled])
    .filter((p) => p);
  if (runs.length === 0) return "no profiled rounds";
  const samplers = [...new Set(runs.map((p) => p!.sampler))].join(" / ");
  const slow = runs.map((p) => p!.slowdown).filter(Number.isFinite);
  return (
    `sampled every ${runs[0]!.intervalUs} µs, sampler thread ${samplers}` +
    (slow.length ? `; code ran ${fmt(Math.min(...slow))}–${fmt(Math.max(...slow))}× slower under it` : "")
  );
}

/** bench/results/observer.json, the observer block and the goals block of docs/benchmark.md. */
export async function writeObserverOutputs(
  sizes: ObserverSizeResult[],
  meta: ObserverMeta,
  missing: { n: number; reason: string }[] = [],
): Promise<void> {
  const rows = observerRows(sizes);
  writeFileEnsuringDir(
    "bench/results/observer.json",
    JSON.stringify({ ...meta, missing, rows, sizes }, null, 2) + "\n",
  );
  const load =
    meta.loadAtStart !== undefined
      ? ` Machine load (1-minute load average): ${fmt(meta.loadAtStart)} at the start, ${fmt(meta.loadAtEnd ?? NaN)} at the end.`
      : "";
  const generated = [
    `Measured ${meta.date.slice(0, 10)} with \`BENCH_ONLY=observer npm run bench\` at commit ${meta.gitCommit} on ` +
      `${meta.nproc}× ${meta.cpu}, node ${meta.node}, matrix-js-sdk ${meta.jsSdkVersion}` +
      `${meta.quick ? " — QUICK run, not for quoting" : ""}.${load} CPU rows: each observer's own CPU, the ` +
      `medians of its profiled rounds (${profilerSummary(sizes)}); the note gives the rounds' spread and ` +
      `the whole-process figures (its run minus the client-only run, 0 when below it) for context. ` +
      `Verdict: ours ≤ js-sdk at N = 1,000 and 5,000.` +
      (missing.length
        ? ` Not measured: ${missing.map((m) => `N = ${sizeName(m.n)} (${m.reason})`).join("; ")}.`
        : ""),
    "",
    observerTable(rows, true),
  ].join("\n");
  const goals = [
    `Generated from the block above (commit ${meta.gitCommit}, ${meta.date.slice(0, 10)}${meta.quick ? ", QUICK run" : ""}).`,
    "",
    goalsTable(rows, missing),
  ].join("\n");
  const path = "docs/benchmark.md";
  let text = existsSync(path) ? readFileSync(path, "utf8") : "";
  text = replaceBlock(text, START, END, generated);
  text = replaceBlock(text, GOALS_START, GOALS_END, goals);
  writeFileEnsuringDir(path, text);
  await prettify("bench/results/observer.json");
  await prettify(path);
}
