/**
 * Where a manager's memory goes: heap snapshots before and after, grouped by constructor, per manager.
 * Not part of `npm run bench`; run it when the scale figures need explaining:
 *
 *   npx node --expose-gc --import tsx bench/heap-breakdown.ts [ours|js-sdk] [managers] [virtualSeconds]
 *
 * With virtualSeconds > 0 it compares the heap after the joins with the heap that many virtual seconds
 * (heartbeats) later, so what it prints is what accumulates per heartbeat.
 */
import { readFileSync, rmSync } from "node:fs";
import { mock } from "node:test";
import { tmpdir } from "node:os";
import { join } from "node:path";
import v8 from "node:v8";
import { MembershipManager as SdkMembershipManager } from "matrix-js-sdk/lib/matrixrtc/MembershipManager.js";
import type { MembershipBackend } from "../src/backends/types.js";
import { MembershipManager } from "../src/manager/MembershipManager.js";
import { quietMatrixSdkLogs } from "../src/testing/index.js";
import { settle, VirtualTime } from "../test/helpers/virtualTime.js";

interface HeapSnapshotJson {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Bytes and counts per "type:constructor", after gc (finalizers given a chance to run). */
async function census(): Promise<Map<string, { count: number; bytes: number }>> {
  for (let i = 0; i < 4; i++) {
    gc!();
    await new Promise((r) => setImmediate(r));
  }
  const file = v8.writeHeapSnapshot(join(tmpdir(), `heap-breakdown-${process.pid}.heapsnapshot`));
  const snap = JSON.parse(readFileSync(file, "utf8")) as HeapSnapshotJson;
  rmSync(file);
  const width = snap.snapshot.meta.node_fields.length;
  const types = snap.snapshot.meta.node_types[0];
  const out = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i]];
    const named = ["object", "closure", "native", "hidden"].includes(type);
    const key = named ? `${type}:${snap.strings[snap.nodes[i + 1]].slice(0, 50)}` : type;
    const entry = out.get(key) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += snap.nodes[i + 3];
    out.set(key, entry);
  }
  return out;
}

const which = process.argv[2] === "js-sdk" ? "js-sdk" : "ours";
const n = Number(process.argv[3] ?? 1000);
const virtualSeconds = Number(process.argv[4] ?? 0);
quietMatrixSdkLogs();

const noopBackend: MembershipBackend = {
  sendDelayedStateEvent: () => Promise.resolve("d"),
  sendStateEvent: () => Promise.resolve(),
  updateDelayedEvent: () => Promise.resolve(),
};
const noopClient = (i: number) => ({
  getUserId: () => `@u${i}:bench`,
  getDeviceId: () => `D${i}`,
  sendStateEvent: () => Promise.resolve({ event_id: "$e" }),
  _unstable_sendDelayedStateEvent: () => Promise.resolve({ delay_id: "d" }),
  _unstable_updateDelayedEvent: () => Promise.resolve({}),
  _unstable_cancelScheduledDelayedEvent: () => Promise.resolve({}),
  _unstable_restartScheduledDelayedEvent: () => Promise.resolve({}),
  _unstable_sendScheduledDelayedEvent: () => Promise.resolve({}),
});

const time = new VirtualTime();
const scheduler = time.scheduler;
async function advance(ms: number): Promise<void> {
  if (which === "js-sdk") {
    for (let t = 0; t < ms; t += 10) {
      mock.timers.tick(10);
      await settle();
    }
    return;
  }
  await time.advance(ms);
}

if (which === "js-sdk") mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now: Date.now() });
const before = virtualSeconds > 0 ? undefined : await census();
const keep: unknown[] = [];
for (let i = 0; i < n; i++) {
  if (which === "ours") {
    const m = new MembershipManager({
      backend: noopBackend,
      roomId: "!room:bench",
      userId: `@u${i}:bench`,
      deviceId: `D${i}`,
      delayedLeaveDelayMs: 10_000,
      scheduler,
    });
    m.join();
    keep.push(m);
  } else {
    const m = new SdkMembershipManager(
      { delayedLeaveEventDelayMs: 10_000 },
      { roomId: "!room:bench", getVersion: () => "10" } as never,
      noopClient(i) as never,
      { application: "m.call", id: "ROOM" },
    );
    m.join([], { type: "livekit" } as never);
    keep.push(m);
  }
}
await advance(1000);
const joined = await census();
let from = before ?? joined;
let to = joined;
let per = n;
if (virtualSeconds > 0) {
  await advance(virtualSeconds * 1000);
  from = joined;
  to = await census();
  per = n * (virtualSeconds / 5); // heartbeats (one every 5 s)
}
if (which === "js-sdk") mock.timers.reset();
await sleep(0);

const rows = [...to]
  .map(([key, b]) => {
    const a = from.get(key) ?? { count: 0, bytes: 0 };
    return { key, count: (b.count - a.count) / per, bytes: (b.bytes - a.bytes) / per };
  })
  .filter((r) => Math.abs(r.bytes) >= 1)
  .sort((x, y) => y.bytes - x.bytes);
const total = rows.reduce((s, r) => s + r.bytes, 0);
console.log(
  `${which}: ${virtualSeconds > 0 ? "bytes retained per heartbeat" : "bytes per joined manager"} ` +
    `(${n} managers${virtualSeconds > 0 ? `, ${virtualSeconds} virtual s` : ""}): ${total.toFixed(0)}`,
);
for (const r of rows.slice(0, 25))
  console.log(`${r.key.padEnd(56)} ${r.count.toFixed(2).padStart(8)} ${r.bytes.toFixed(0).padStart(8)}`);
keep.length = 0;
process.exit(0);
