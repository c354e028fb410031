/**
 * Issue 11: an exhaustive, bounded exploration of interleavings. Every request the manager sends is
 * held (ScriptedBackend) until the explorer decides its fate; at each step the explorer picks one of:
 * answer one of the two oldest held requests (processed and answered / an error without reaching the
 * server / processed with the answer lost), let virtual time run to the next timer, or call leave().
 * Every sequence of DEPTH choices is played from scratch (depth-first, replayed), then the network
 * heals (every request answered) and the invariants are checked against the server model's records:
 *
 *   - no hot loop: at most HOT_LOOP_LIMIT requests in any one second;
 *   - if leave() was called: it resolves (`left`, or `failed` with the error), no membership of ours
 *     is held and no delayed leave of ours is pending (no orphan);
 *   - otherwise: `connected` with our membership held and exactly one delayed leave of ours pending
 *     (or honest degraded mode: `joined` with delayedLeave false and the membership held).
 *
 * Errors rotate over a 5xx, a 404 without errcode, a bare 429, a real 404 M_NOT_FOUND, a host's untyped
 * Error and a 403, so each position in the tree sees a different fault. INTERLEAVING_DEPTH raises the bound.
 */
import { describe, expect, it } from "@jest/globals";
import log from "loglevel";
import { MatrixError } from "matrix-js-sdk";
import { MembershipManager } from "../../src/manager/MembershipManager.js";
import type { LeaveResult } from "../../src/manager/state.js";
import { FakeServer, matrixError } from "../helpers/fakeServer.js";
import { HOT_LOOP_LIMIT } from "../helpers/invariants.js";
import { scriptedWorld, type Held, type Outcome, type ScriptedBackend } from "../helpers/scriptedBackend.js";
import { settle, VirtualTime } from "../helpers/virtualTime.js";

const quiet = log.getLogger("interleavings-quiet");
quiet.setLevel("silent");

const DEPTH = Number(process.env.INTERLEAVING_DEPTH ?? 5);
const HEAL_MS = 12_000;

const ERRORS: [string, () => unknown][] = [
  ["502", () => matrixError(502, "M_UNKNOWN")],
  ["404 without errcode", () => new MatrixError({ error: "Not found" }, 404)],
  ["bare 429", () => matrixError(429, "M_LIMIT_EXCEEDED")],
  ["404 M_NOT_FOUND", () => matrixError(404, "M_NOT_FOUND")],
  ["untyped", () => new Error("the host said no")],
  ["403", () => matrixError(403, "M_FORBIDDEN")],
];

type Choice =
  { k: "answer"; index: number; outcome: Outcome; error: number } | { k: "tick" } | { k: "leave" };

function describeChoice(c: Choice, held: readonly Held[]): string {
  if (c.k !== "answer") return c.k;
  const h = held[c.index];
  return `${h?.op ?? "?"}#${h?.id ?? "?"} ${c.outcome === "error" ? ERRORS[c.error][0] : c.outcome}`;
}

interface World {
  time: VirtualTime;
  server: FakeServer;
  backend: ScriptedBackend;
  manager: MembershipManager;
  leave?: { result?: LeaveResult; calledAt: number };
  trace: string[];
}

function start(): World {
  const w = scriptedWorld(quiet);
  w.manager.join();
  return { ...w, trace: [] };
}

/** The choices available now (answers for the two oldest held requests, time, leave once). */
function choices(w: World, step: number): Choice[] {
  const out: Choice[] = [];
  for (let index = 0; index < Math.min(2, w.backend.held.length); index++)
    for (const outcome of ["ok", "error", "lose"] as const)
      out.push({ k: "answer", index, outcome, error: (step + w.backend.held[index].id) % ERRORS.length });
  out.push({ k: "tick" });
  if (!w.leave) out.push({ k: "leave" });
  return out;
}

/**
 * Run virtual time to the next pending timer (and let promises settle). Held requests that would be
 * older than one request timeout by then reach the server first (their answers stay held): see
 * ScriptedBackend.process for the network model.
 */
async function tick(w: World): Promise<void> {
  const next = w.time.scheduler.actions.find((a) => !a.closed);
  const target = next ? Math.max(w.time.now(), next.delay) : w.time.now();
  const timeout = w.manager.effectiveTiming.requestTimeoutMs;
  for (const h of w.backend.held) if (h.sentAt + timeout <= target) w.backend.process(h);
  await w.time.advance(target - w.time.now());
}

async function apply(w: World, c: Choice): Promise<void> {
  w.trace.push(`${w.time.now()}: ${describeChoice(c, w.backend.held)}`);
  if (c.k === "answer") {
    const h = w.backend.held[c.index];
    await w.backend.settleOne(h, c.outcome, ERRORS[c.error][1]);
    await w.time.advance(0);
  } else if (c.k === "tick") await tick(w);
  else {
    const leave: { result?: LeaveResult; calledAt: number } = { calledAt: w.time.now() };
    w.leave = leave;
    void w.manager.leave().then((r) => (leave.result = r));
    await settle();
  }
}

/** The network heals: every held request is answered as it comes, time runs on. */
async function heal(w: World): Promise<void> {
  const end = w.time.now() + HEAL_MS;
  while (w.time.now() < end) {
    while (w.backend.held.length > 0) {
      await w.backend.settleOne(w.backend.held[0], "ok", () => undefined);
      await w.time.advance(0);
    }
    const next = w.time.scheduler.actions.find((a) => !a.closed);
    if (!next || next.delay > end) break;
    await w.time.advance(Math.max(1, next.delay - w.time.now()));
  }
  await w.time.advance(Math.max(0, end - w.time.now()));
}

function peakPerSecond(at: number[]): number {
  let peak = 0;
  for (let i = 0, j = 0; i < at.length; i++) {
    while (at[i] - at[j] >= 1000) j++;
    peak = Math.max(peak, i - j + 1);
  }
  return peak;
}

function violations(w: World): string[] {
  const out: string[] = [];
  const key = w.manager.stateKey;
  const held = w.server.state.get(key);
  const holds = !!held && Object.keys(held).length > 0;
  // The leave's guard against a membership write in doubt (a delayed {} created after leave() was called,
  // pending until such a write can no longer land: core/machine/lateWrites.ts) is not an orphan.
  const calledAt = w.leave?.calledAt ?? Infinity;
  const pending = w.server.pendingFor(key).filter((id) => {
    const d = w.server.delayed.get(id)!;
    return !(Object.keys(d.content).length === 0 && d.sendTs - d.delayMs >= calledAt);
  }).length;
  const peak = peakPerSecond(w.backend.sent.map((s) => s.at));
  // The manager's own bound, plus what the app asked for (the join, and leave() if chosen) on its own
  // bucket: up to two first attempts each (issue 20 item 13).
  const appIntents = 1 + (w.leave ? 1 : 0);
  const limit =
    Math.max(HOT_LOOP_LIMIT, Math.ceil(9 + 3000 / w.manager.effectiveTiming.heartbeatIntervalMs)) +
    2 * appIntents;
  if (peak > limit) out.push(`hot loop: ${peak} requests in one second (limit ${limit})`);
  if (w.leave) {
    const r = w.leave.result;
    if (!r) out.push("leave() never resolved after healing");
    else if (r.status === "left") {
      if (holds) out.push(`leave() resolved left but the server holds our membership`);
      if (pending > 0) out.push(`orphan: ${pending} delayed leave(s) pending after leave() resolved left`);
    } else if (r.status !== "failed") out.push(`leave() resolved ${JSON.stringify(r)}`);
  } else {
    const s = w.manager.state;
    const degraded = s.kind === "joined" && !s.delayedLeave;
    const refused = s.kind === "failed" && ["forbidden", "rejected"].includes(s.error.code);
    if (!refused) {
      if (w.manager.status !== "connected") out.push(`not connected after healing: ${JSON.stringify(s)}`);
      if (!holds) out.push("the server holds no membership of ours after healing");
      if (!degraded && pending !== 1) out.push(`${pending} delayed leaves pending after healing (want 1)`);
    }
  }
  return out;
}

/** Play `path` (choice indices) from scratch; returns the world and the choices available next. */
async function play(path: number[]): Promise<{ w: World; next: Choice[] }> {
  const w = start();
  await settle();
  for (let step = 0; step < path.length; step++) await apply(w, choices(w, step)[path[step]]);
  return { w, next: choices(w, path.length) };
}

describe(`interleavings (every choice sequence to depth ${DEPTH})`, () => {
  it("join and leave under every order of answers, a fault at every step: no hot loop, no orphan, converges", async () => {
    let explored = 0;
    const failures: string[] = [];
    const walk = async (path: number[]): Promise<void> => {
      if (failures.length >= 3) return;
      const { w, next } = await play(path);
      if (path.length === DEPTH) {
        explored++;
        await heal(w);
        const v = violations(w);
        if (v.length > 0) failures.push(`${v.join("; ")}\n    path: ${w.trace.join(" | ")}`);
        w.manager.dispose();
        return;
      }
      w.manager.dispose();
      for (let i = 0; i < next.length; i++) await walk([...path, i]);
    };
    await walk([]);
    console.log(`[interleavings] depth ${DEPTH}: ${explored} sequences explored`);
    expect(failures).toEqual([]);
    expect(explored).toBeGreaterThan(100);
  }, 300_000);
});
