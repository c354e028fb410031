import { readFileSync, writeFileSync } from "node:fs";
import { prettify } from "./report.js";

const START = "<!-- bench:delegated:start -->";
const END = "<!-- bench:delegated:end -->";

/** Replace the delegated block of docs/benchmark.md (left alone when its markers are missing). */
export async function writeDelegatedDoc(generated: string): Promise<boolean> {
  const path = "docs/benchmark.md";
  const text = readFileSync(path, "utf8");
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  if (start < 0 || end < start) return false;
  writeFileSync(path, `${text.slice(0, start)}${START}\n${generated.trim()}\n${text.slice(end)}`);
  await prettify(path);
  return true;
}
