#!/usr/bin/env node
// The registry mirror on our build machines lacks some platform-specific optional packages (the
// @unrs/resolver-binding-* family that jest 30 pulls in), so `npm install` there drops their entries
// from package-lock.json, and `npm ci` then refuses the lock. This restores those entries from the
// parent's optionalDependencies with their os/cpu/libc, as a lock made on the public registry has them;
// npm skips them on other platforms without fetching. Idempotent. Run after `npm install`.
import { readFileSync, writeFileSync } from "node:fs";

const path = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(path, "utf8"));
const packages = lock.packages;
let added = 0;
for (const [parentKey, parent] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(parent.optionalDependencies ?? {})) {
    const m = /^@unrs\/resolver-binding-([a-z0-9]+)-([a-z0-9]+)(?:-(\w+))?$/.exec(name);
    const key = `node_modules/${name}`;
    if (!m || packages[key] || !parentKey.endsWith("unrs-resolver")) continue;
    const [, os, cpu, abi] = m;
    packages[key] = { version, cpu: [cpu], dev: true, license: "MIT", optional: true, os: [os] };
    if (os === "linux") packages[key].libc = [abi?.startsWith("musl") ? "musl" : "glibc"];
    added++;
  }
}
const sorted = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : 1)),
);
lock.packages = sorted;
writeFileSync(path, JSON.stringify(lock, null, 2) + "\n");
console.log(`lock-optional-bindings: ${added} entries added`);
