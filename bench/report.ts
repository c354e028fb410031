/** Turns the bench's rows into the printed table, the JSON file, the SVG chart and docs/benchmark.md. */
import { readFileSync, writeFileSync, existsSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import * as prettier from "prettier";

export interface Row {
  id: string;
  /** What is measured, short. */
  label: string;
  unit: string;
  ours: number;
  theirs: number;
  /** false when a larger number is better (margins, "still joined"). */
  lowerIsBetter: boolean;
  /** The physical floor (or ceiling) where there is one. */
  limit?: number;
  limitNote?: string;
  /** Our goal for this figure, checked against `ours`. */
  goal?: { max?: number; min?: number; text: string };
  reps: number;
  note?: string;
  /** Set when the two numbers do not compare like for like (shown instead of a win/loss verdict). */
  incomparable?: string;
  /** The same figure on a real Synapse (bench/synapse.ts), ours and js-sdk's, when it was measured. */
  synapse?: { ours: number; theirs: number; reps: number };
}

export interface Meta {
  command: string;
  date: string;
  node: string;
  nproc: number;
  cpu: string;
  rttNominalMs: number;
  rttMeasuredMs: number;
  delayMs: number;
  runSeconds: number;
  jsSdkVersion: string;
  /** The commit measured, with "+dirty" when src/ had uncommitted changes. */
  gitCommit: string;
  /** The real-Synapse column's server and RTT, when it ran. */
  synapse?: { version: string; rttMeasuredMs: number };
}

export const ratio = (r: Row): number => r.ours / r.theirs;

/** Does ours meet the goal (undefined when there is none). */
export function goalMet(r: Row): boolean | undefined {
  if (!r.goal || !Number.isFinite(r.ours)) return r.goal ? false : undefined;
  if (r.goal.max !== undefined && r.ours > r.goal.max) return false;
  if (r.goal.min !== undefined && r.ours < r.goal.min) return false;
  return true;
}

/** Is ours at least as good as js-sdk's (within the noise allowance below). */
export function atLeastAsGood(r: Row): boolean | undefined {
  if (!Number.isFinite(r.ours) || !Number.isFinite(r.theirs))
    return Number.isFinite(r.ours) ? true : undefined;
  // Timings get 2% (or 2 ms) for noise, CPU 10% (it varies by ±20% between runs on a shared machine);
  // counts and sizes are compared as they are.
  const slack =
    r.unit === "ms" ? Math.max(Math.abs(r.theirs) * 0.02, 2) : r.unit === "µs" ? Math.abs(r.theirs) * 0.1 : 0;
  return r.lowerIsBetter ? r.ours <= r.theirs + slack : r.ours >= r.theirs - slack;
}

function fmt(x: number | undefined, unit = ""): string {
  if (x === undefined) return "";
  if (!Number.isFinite(x)) return "n/a";
  const abs = Math.abs(x);
  const s = abs >= 100 ? Math.round(x).toString() : abs >= 10 ? x.toFixed(1) : x.toFixed(2);
  return unit === "yes/no" ? (x >= 1 ? "yes" : x <= 0 ? "no" : x.toFixed(2)) : s;
}

function fmtRatio(r: Row): string {
  if (isGrowthNoise(r)) return "n/a";
  const q = ratio(r);
  return Number.isFinite(q) ? q.toFixed(2) : "n/a";
}

/** Heap growth this small over a 10-minute window is GC noise (it even comes out negative): no growth. */
const GROWTH_NOISE_KB_PER_HOUR = 16;
const isGrowthNoise = (r: Row) =>
  r.unit === "KB/h" &&
  Math.abs(r.ours) < GROWTH_NOISE_KB_PER_HOUR &&
  Math.abs(r.theirs) < GROWTH_NOISE_KB_PER_HOUR;

function verdict(r: Row): string {
  const parts: string[] = [];
  const incomparable =
    r.incomparable ??
    (isGrowthNoise(r) ? `no growth beyond noise (< ${GROWTH_NOISE_KB_PER_HOUR} KB/h)` : undefined);
  const better = incomparable ? undefined : atLeastAsGood(r);
  if (incomparable) parts.push(incomparable);
  if (better === false) parts.push("LOSES");
  const g = goalMet(r);
  if (g === true) parts.push("goal met");
  if (g === false) parts.push("GOAL MISSED");
  return parts.join(", ");
}

const BASE_COLS = ["figure", "unit", "ours", "js-sdk", "ours/js-sdk"];
const SYNAPSE_COLS = ["ours (Synapse)", "js-sdk (Synapse)"];
const TAIL_COLS = ["limit", "goal (ours)", "verdict"];

/** The real-Synapse columns appear only when some row has them (a run without them prints as before). */
const withSynapse = (rows: Row[]) => rows.some((r) => r.synapse);

function columns(rows: Row[]): string[] {
  return [...BASE_COLS, ...(withSynapse(rows) ? SYNAPSE_COLS : []), ...TAIL_COLS];
}

/** Right-aligned (numeric) columns: the numbers up to and including "limit". */
const isNumeric = (cols: string[], i: number) => i >= 2 && i <= cols.indexOf("limit");

function cells(r: Row, synapseCols: boolean): string[] {
  return [
    r.label,
    r.unit,
    fmt(r.ours, r.unit),
    fmt(r.theirs, r.unit),
    r.unit === "yes/no" ? "" : fmtRatio(r),
    ...(synapseCols ? [fmt(r.synapse?.ours, r.unit), fmt(r.synapse?.theirs, r.unit)] : []),
    r.limit !== undefined ? fmt(r.limit) : "",
    r.goal?.text ?? "",
    verdict(r),
  ];
}

export function textTable(rows: Row[]): string {
  const cols = columns(rows);
  const all = [cols, ...rows.map((r) => cells(r, withSynapse(rows)))];
  const widths = cols.map((_, i) => Math.max(...all.map((row) => row[i].length)));
  const line = (row: string[]) =>
    row.map((c, i) => (isNumeric(cols, i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  ");
  return [line(cols), widths.map((w) => "-".repeat(w)).join("  "), ...all.slice(1).map(line)].join("\n");
}

export function markdownTable(rows: Row[]): string {
  const cols = columns(rows);
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  const head = `| ${cols.join(" | ")} |\n|${cols.map((_, i) => (isNumeric(cols, i) ? "---:" : "---")).join("|")}|`;
  return [head, ...rows.map((r) => `| ${cells(r, withSynapse(rows)).map(esc).join(" | ")} |`)].join("\n");
}

function xml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * One pair of bars per figure, each pair scaled to its larger value (so different units share a chart),
 * the value printed at the end of each bar.
 */
export function svgChart(rows: Row[], meta: Meta, only?: ReadonlySet<string>): string {
  const shown = rows.filter(
    (r) =>
      (!only || only.has(r.id)) &&
      r.unit !== "yes/no" &&
      Number.isFinite(r.ours) &&
      Number.isFinite(r.theirs),
  );
  const labelW = 330;
  const barW = 380;
  const rowH = 34;
  const top = 56;
  const width = labelW + barW + 120;
  const height = top + shown.length * rowH + 40;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="12" y="22" font-size="15" font-weight="bold">matrixrtc-membership vs matrix-js-sdk ${xml(meta.jsSdkVersion)} MembershipManager</text>`,
    `<text x="12" y="40" fill="#555">medians; +${meta.rttNominalMs} ms RTT (measured ${meta.rttMeasuredMs.toFixed(1)} ms), delay ${meta.delayMs} ms; each pair scaled to its larger value</text>`,
  );
  shown.forEach((r, i) => {
    const y = top + i * rowH;
    const max = Math.max(Math.abs(r.ours), Math.abs(r.theirs)) || 1;
    const better = r.lowerIsBetter ? "lower is better" : "higher is better";
    out.push(
      `<text x="12" y="${y + 12}">${xml(r.label)}</text>`,
      `<text x="12" y="${y + 25}" fill="#777" font-size="10">${xml(r.unit)}, ${better}</text>`,
    );
    const bars: [string, number, string][] = [
      ["ours", r.ours, "#2a7ae2"],
      ["js-sdk", r.theirs, "#aaa"],
    ];
    bars.forEach(([name, v, color], j) => {
      const w = Math.max(1, (Math.abs(v) / max) * barW);
      const by = y + j * 13;
      out.push(
        `<rect x="${labelW}" y="${by}" width="${w.toFixed(1)}" height="11" fill="${color}"><title>${name}: ${fmt(v)} ${xml(r.unit)}</title></rect>`,
        `<text x="${(labelW + w + 4).toFixed(1)}" y="${by + 10}" font-size="10">${name} ${fmt(v)}</text>`,
      );
    });
  });
  const ly = top + shown.length * rowH + 16;
  out.push(
    `<rect x="12" y="${ly}" width="11" height="11" fill="#2a7ae2"/><text x="28" y="${ly + 10}">ours</text>`,
    `<rect x="72" y="${ly}" width="11" height="11" fill="#aaa"/><text x="88" y="${ly + 10}">matrix-js-sdk (Element Call settings)</text>`,
    `<text x="${width - 12}" y="${ly + 10}" text-anchor="end" fill="#777" font-size="10">${xml(meta.date)} · ${meta.nproc}× ${xml(meta.cpu)} · node ${xml(meta.node)}</text>`,
    `</svg>`,
  );
  return out.join("\n") + "\n";
}

export function writeFileEnsuringDir(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

/** Format a file the way `npm run lint` (prettier --check .) expects; leaves it as is if prettier fails. */
export async function prettify(path: string): Promise<void> {
  try {
    const options = (await prettier.resolveConfig(path)) ?? {};
    const text = readFileSync(path, "utf8");
    writeFileSync(path, await prettier.format(text, { ...options, filepath: path }));
  } catch {
    // formatting is cosmetic
  }
}

const START = "<!-- bench:results:start -->";
const END = "<!-- bench:results:end -->";

/** Replace the generated block of docs/benchmark.md (creating the file around it if needed). */
export function updateBenchmarkDoc(path: string, generated: string, skeleton: string): void {
  const block = `${START}\n${generated.trim()}\n${END}`;
  let text = existsSync(path) ? readFileSync(path, "utf8") : skeleton;
  if (!text.includes(START) || !text.includes(END)) text = skeleton;
  const before = text.slice(0, text.indexOf(START));
  const after = text.slice(text.indexOf(END) + END.length);
  writeFileEnsuringDir(path, `${before}${block}${after}`);
}

export const DOC_MARKERS = { START, END };

export interface HomeserverLoadSummary {
  clients: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

export interface BenchResults {
  meta: Meta;
  quick: boolean;
  rows: Row[];
  homeserverLoad?: HomeserverLoadSummary;
  raw: Record<string, unknown>;
}

/** The figures the chart shows (the table has them all). */
const CHART = new Set([
  "join.connected",
  "leave.confirmed",
  "heartbeat.perHour",
  "ghost",
  "ghost.tabClose",
  "ghost.widgetRemoval",
  "recovery",
  "storm30000.requests",
  "scale.memory.real",
  "scale.cpu.real",
  "scale.cpu.virtual",
]);

function loadLine(load: HomeserverLoadSummary | undefined): string {
  return load
    ? `test homeserver load: ${load.clients} clients restarting once a second, ${load.requestsPerSecond} req/s, ` +
        `p50 ${load.p50Ms} ms, p99 ${load.p99Ms} ms, ${load.errors} errors`
    : "";
}

function synapseLine(meta: Meta): string {
  return meta.synapse
    ? `"(Synapse)" columns: the same scenarios on a real Synapse ${meta.synapse.version} (SQLite, Element Call's ` +
        `recommended rate limits), measured RTT through a link ${meta.synapse.rttMeasuredMs.toFixed(1)} ms`
    : "";
}

/** The printed report: heading, table, load check, machine. */
export function textReport({ meta, rows, homeserverLoad }: BenchResults): string {
  return [
    `matrixrtc-membership vs matrix-js-sdk ${meta.jsSdkVersion} MembershipManager (Element Call settings), medians`,
    `+${meta.rttNominalMs} ms RTT per device link (measured ${meta.rttMeasuredMs.toFixed(1)} ms), delay ${meta.delayMs} ms, observer connected directly`,
    synapseLine(meta),
    "",
    textTable(rows),
    "",
    loadLine(homeserverLoad),
    "",
    `${meta.nproc}× ${meta.cpu}, node ${meta.node}, commit ${meta.gitCommit}; ran in ${meta.runSeconds} s`,
  ].join("\n");
}

/** bench/results/latest.json and .svg, and the results block of docs/benchmark.md. */
export async function writeOutputs(results: BenchResults): Promise<void> {
  const { meta, rows, homeserverLoad, quick } = results;
  const json = {
    ...results,
    rows: rows.map((r) => ({
      ...r,
      ratio: ratio(r),
      atLeastAsGood: r.incomparable ? undefined : atLeastAsGood(r),
      goalMet: goalMet(r),
    })),
  };
  writeFileEnsuringDir("bench/results/latest.json", JSON.stringify(json, null, 2) + "\n");
  writeFileEnsuringDir("bench/results/latest.svg", svgChart(rows, meta, CHART));
  const load = loadLine(homeserverLoad);
  const generated = [
    `Measured ${meta.date.slice(0, 10)} with \`${meta.command}\` (${meta.runSeconds} s) at commit ${meta.gitCommit} ` +
      `on ${meta.nproc}× ${meta.cpu}, node ${meta.node}, matrix-js-sdk ${meta.jsSdkVersion}` +
      `${quick ? " — QUICK run, not for quoting" : ""}.`,
    `Every device link adds ${meta.rttNominalMs} ms per round trip (measured RTT ${meta.rttMeasuredMs.toFixed(1)} ms); ` +
      `delay ${meta.delayMs} ms; the observer syncs directly. Medians; "limit" is the physical floor.`,
    meta.synapse ? `${synapseLine(meta)}.` : "",
    "",
    markdownTable(rows),
    "",
    load ? `${load[0].toUpperCase()}${load.slice(1)}.` : "",
    "",
    "![benchmark chart](https://raw.githubusercontent.com/matrixrtc-membership/matrixrtc-membership/main/bench/results/latest.svg)",
  ].join("\n");
  updateBenchmarkDoc(
    "docs/benchmark.md",
    generated,
    `# Benchmark: matrixrtc-membership vs matrix-js-sdk\n\n${START}\n${END}\n`,
  );
  await prettify("bench/results/latest.json");
  await prettify("docs/benchmark.md");
}
