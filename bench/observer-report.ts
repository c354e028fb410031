/**
 * The observer section's table: our `callMembers$` beside js-sdk's `MatrixRTCSession` at each N, as
 * text (printed), markdown (the `bench:observer` block of docs/benchmark.md) and JSON
 * (bench/results/observer.json).
 */
import { existsSync, readFileSync } from "node:fs";
import { median, percentile, type ObserverSizeResult, type ObserverVariantResult } from "./observer.js";
import { prettify, writeFileEnsuringDir } from "./report.js";

export interface ObserverRow {
  figure: string;
  n: number;
  unit: string;
  ours: number;
  theirs: number;
  note?: string;
}

const fmt = (x: number): string =>
  !Number.isFinite(x)
    ? "n/a"
    : Math.abs(x) >= 100
      ? x.toFixed(0)
      : Math.abs(x) >= 10
        ? x.toFixed(1)
        : Math.abs(x) >= 1
          ? x.toFixed(2)
          : x.toFixed(3);

/** An observer's cost: its run's figure minus the client-only run's, never below 0 (noise). */
const over = (x: number, baseline: number): number => Math.max(0, x - baseline);

export function observerRows(sizes: ObserverSizeResult[]): ObserverRow[] {
  const rows: ObserverRow[] = [];
  for (const r of sizes) {
    const { none, ours, "js-sdk": sdk } = r.variants;
    const n = r.n;
    const perChange = (v: ObserverVariantResult) => over(median(v.changeCpuUs), median(none.changeCpuUs));
    const chat = (v: ObserverVariantResult) => over(median(v.chatCpuUs), median(none.chatCpuUs));
    rows.push(
      {
        figure: "first full list (CPU)",
        n,
        unit: "ms",
        ours: ours.firstListCpuMs,
        theirs: sdk.firstListCpuMs,
      },
      {
        figure: "CPU per membership change",
        n,
        unit: "µs",
        ours: perChange(ours),
        theirs: perChange(sdk),
        note: ours.own
          ? `inside our observer, bracketed: ${fmt(median(ours.own.changeUs))} µs; client alone ${fmt(median(none.changeCpuUs))} µs`
          : undefined,
      },
      {
        figure: "write → list updated, p50",
        n,
        unit: "ms",
        ours: median(ours.changeLatencyMs),
        theirs: median(sdk.changeLatencyMs),
        note: `client alone ${fmt(median(none.changeLatencyMs))} ms`,
      },
      {
        figure: "write → list updated, p99",
        n,
        unit: "ms",
        ours: percentile(ours.changeLatencyMs, 99),
        theirs: percentile(sdk.changeLatencyMs, 99),
        note: `client alone ${fmt(percentile(none.changeLatencyMs, 99))} ms`,
      },
      {
        figure: "burst of 50 in one sync: CPU",
        n,
        unit: "ms",
        ours: over(ours.burst.cpuMs, none.burst.cpuMs),
        theirs: over(sdk.burst.cpuMs, none.burst.cpuMs),
        note: ours.own ? `inside our observer: ${fmt(ours.own.burstMs)} ms` : undefined,
      },
      {
        figure: "burst of 50 in one sync: lists emitted",
        n,
        unit: "lists",
        ours: ours.burst.emissions,
        theirs: sdk.burst.emissions,
      },
      {
        figure: `catch-up of all N in one sync: CPU`,
        n,
        unit: "ms",
        ours: over(ours.catchUp.cpuMs, none.catchUp.cpuMs),
        theirs: over(sdk.catchUp.cpuMs, none.catchUp.cpuMs),
        note: ours.own
          ? `inside our observer: ${fmt(ours.own.catchUpMs)} ms = ${fmt((ours.own.catchUpMs * 1000) / n)} µs per member`
          : undefined,
      },
      {
        figure: "catch-up of all N: lists emitted",
        n,
        unit: "lists",
        ours: ours.catchUp.emissions,
        theirs: sdk.catchUp.emissions,
      },
      {
        figure: "sync with only a chat message: CPU",
        n,
        unit: "µs",
        ours: chat(ours),
        theirs: chat(sdk),
        note: ours.own ? `inside our observer: ${fmt(median(ours.own.chatUs))} µs` : undefined,
      },
      {
        figure: "sync with only a chat message: evaluations",
        n,
        unit: "per 10 syncs",
        ours: ours.chatEvaluations,
        theirs: sdk.chatEvaluations,
      },
      {
        figure: "memory per observer",
        n,
        unit: "KB",
        ours: ours.memoryBytes / 1024,
        theirs: sdk.memoryBytes / 1024,
      },
      {
        figure: "same list as js-sdk (both on one client)",
        n,
        unit: "checks",
        ours: r.agreement.equal,
        theirs: r.agreement.checks,
        note: r.agreement.firstDifference
          ? `first difference: ${r.agreement.firstDifference}`
          : "every check equal",
      },
    );
  }
  return rows;
}

const ratio = (row: ObserverRow): string =>
  row.unit === "checks" ? "" : row.theirs > 0 ? fmt(row.ours / row.theirs) : row.ours === 0 ? "—" : "n/a";

export function observerTable(rows: ObserverRow[], markdown: boolean): string {
  const header = ["figure", "N", "unit", "ours", "js-sdk 43", "ours/js-sdk", "note"];
  const body = rows.map((r) => [
    r.figure,
    r.n.toLocaleString("en-US"),
    r.unit,
    r.unit === "checks" ? `${r.ours} of ${r.theirs}` : fmt(r.ours),
    r.unit === "checks" ? "" : fmt(r.theirs),
    ratio(r),
    r.note ?? "",
  ]);
  if (markdown)
    return [header, header.map(() => "---"), ...body].map((cells) => `| ${cells.join(" | ")} |`).join("\n");
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((c) => c[i].length)));
  return [header, ...body].map((cells) => cells.map((c, i) => c.padEnd(widths[i])).join("  ")).join("\n");
}

const START = "<!-- bench:observer:start -->";
const END = "<!-- bench:observer:end -->";

/** bench/results/observer.json and the observer block of docs/benchmark.md. */
export async function writeObserverOutputs(
  sizes: ObserverSizeResult[],
  meta: {
    date: string;
    node: string;
    cpu: string;
    nproc: number;
    gitCommit: string;
    jsSdkVersion: string;
    quick: boolean;
  },
): Promise<void> {
  const rows = observerRows(sizes);
  writeFileEnsuringDir(
    "bench/results/observer.json",
    JSON.stringify({ ...meta, rows, sizes }, null, 2) + "\n",
  );
  const generated = [
    `Measured ${meta.date.slice(0, 10)} with \`BENCH_ONLY=observer npm run bench\` at commit ${meta.gitCommit} on ` +
      `${meta.nproc}× ${meta.cpu}, node ${meta.node}, matrix-js-sdk ${meta.jsSdkVersion}` +
      `${meta.quick ? " — QUICK run, not for quoting" : ""}. CPU figures are the observer's: its run minus the ` +
      `client-only run (0 when below it).`,
    "",
    observerTable(rows, true),
  ].join("\n");
  const path = "docs/benchmark.md";
  let text = existsSync(path) ? readFileSync(path, "utf8") : "";
  const block = `${START}\n${generated}\n${END}`;
  if (text.includes(START) && text.includes(END))
    text = `${text.slice(0, text.indexOf(START))}${block}${text.slice(text.indexOf(END) + END.length)}`;
  else text = `${text.trimEnd()}\n\n${block}\n`;
  writeFileEnsuringDir(path, text);
  await prettify("bench/results/observer.json");
  await prettify(path);
}
