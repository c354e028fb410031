/**
 * Re-render bench/results/latest.svg and the results block of docs/benchmark.md from
 * bench/results/latest.json, without measuring again (after a change to the table or chart code):
 *
 *   npx tsx bench/render.ts
 */
import { readFileSync } from "node:fs";
import { textReport, writeOutputs, type BenchResults } from "./report.js";

const results = JSON.parse(readFileSync("bench/results/latest.json", "utf8")) as BenchResults;
results.quick ??= false;
// JSON has no NaN: "no value" came back as null.
for (const r of results.rows) {
  r.ours = r.ours ?? NaN;
  r.theirs = r.theirs ?? NaN;
}
console.log(textReport(results));
await writeOutputs(results);
