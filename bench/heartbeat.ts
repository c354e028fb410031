/**
 * The heartbeat-cost rows (issue 22 part 2): interval, restart timeout, margin, retries within it and
 * requests per device-hour, ours (the adaptive heartbeat) beside js-sdk's at the same delay, on the
 * bench's link and on a slower one. The margin is `heartbeatMarginMs` from src/core/heartbeatTiming.ts,
 * the same definition for both: delay − interval (send to send) − restart timeout.
 *
 * `BENCH_ONLY=heartbeat npm run bench` runs this scenario alone (a longer window): it prints the rows,
 * writes bench/results/heartbeat.json and the heartbeat block of docs/benchmark.md.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { heartbeatMarginMs, retriesWithinMargin, retryTimeoutMs } from "../src/core/heartbeatTiming.js";
import { EC_DELAY_MS, median, type Impl } from "./lib.js";
import { prettify, type Row } from "./report.js";
import type { HeartbeatSamples, OursTimingSamples } from "./scenarios.js";

/** js-sdk's local restart timeout (its default; Element Call does not set it). */
export const JS_SDK_RESTART_TIMEOUT_MS = 2000;
/** The goal of issue 22: ours at most this share of js-sdk's heartbeat requests, at a margin at least its. */
export const REQUESTS_GOAL = 0.7;

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
/** Per device-hour: the cadence, plus the hourly membership refresh (ours: one PUT; js-sdk: a restart, then the PUT). */
const REFRESH_PER_HOUR: Record<Impl, number> = { ours: 1, "js-sdk": 2 };
const perHour = (impl: Impl, intervalMs: number) => 3600_000 / intervalMs + REFRESH_PER_HOUR[impl];
/** Requests counted in the window, per device-hour, plus the hourly refresh. */
const counted = (hb: HeartbeatSamples, impl: Impl, n: number) =>
  (n * 3600_000) / hb.windowMs + REFRESH_PER_HOUR[impl];

/** What a lost restart gets, for one implementation: its interval, timeout, margin and retries in it. */
interface Heartbeat {
  intervalMs: number;
  timeoutMs: number;
  marginMs: number;
  retries: number;
  perHour: number;
}

function ours(intervals: number[], timing: OursTimingSamples): Heartbeat {
  const intervalMs = mean(intervals);
  const timeoutMs = median(timing.restartTimeoutMs);
  const marginMs = heartbeatMarginMs(EC_DELAY_MS, intervalMs, timeoutMs);
  const retries = retriesWithinMargin(marginMs, (k, left) =>
    retryTimeoutMs(timeoutMs, timing.requestTimeoutMs, k, left),
  );
  return { intervalMs, timeoutMs, marginMs, retries, perHour: perHour("ours", intervalMs) };
}

function jsSdk(intervals: number[]): Heartbeat {
  const intervalMs = mean(intervals);
  const timeoutMs = JS_SDK_RESTART_TIMEOUT_MS;
  const marginMs = heartbeatMarginMs(EC_DELAY_MS, intervalMs, timeoutMs);
  // js-sdk retries a timed-out restart at once, its timeout clamped to its predicted leave.
  const retries = retriesWithinMargin(marginMs, (_k, left) => Math.min(timeoutMs, left));
  return { intervalMs, timeoutMs, marginMs, retries, perHour: perHour("js-sdk", intervalMs) };
}

export function heartbeatRows(hb: HeartbeatSamples): Row[] {
  const o = ours(hb.intervals.ours, hb.oursTiming);
  const j = jsSdk(hb.intervals["js-sdk"]);
  const fixedInterval = mean(hb.fixed.intervals);
  const thin = ours(hb.thin.intervals, hb.thin.oursTiming);
  const so = ours(hb.slow.intervals.ours, hb.slow.oursTiming);
  const sj = jsSdk(hb.slow.intervals["js-sdk"]);
  const reps = Math.min(hb.intervals.ours.length, hb.intervals["js-sdk"].length);
  const slowReps = Math.min(hb.slow.intervals.ours.length, hb.slow.intervals["js-sdk"].length);
  const slow = `on a +${hb.slow.rttMs} ms link`;
  return [
    {
      id: "heartbeat.perHour",
      label: "heartbeat requests / device-hour",
      unit: "requests",
      ours: o.perHour,
      theirs: j.perHour,
      lowerIsBetter: true,
      goal: { max: REQUESTS_GOAL * j.perHour, text: `≤ ${REQUESTS_GOAL} × js-sdk's` },
      reps,
      note:
        `3 600 000 / mean restart interval over ${Math.round(hb.windowMs / 1000)} s, plus the hourly refresh ` +
        `(ours 1 PUT, js-sdk restart + PUT); counted in the window: ours ${hb.requests.ours}, js-sdk ${hb.requests["js-sdk"]}. ` +
        `At a margin at least js-sdk's no interval beats delay − js-sdk's margin (${Math.round(EC_DELAY_MS - j.marginMs)} ms, ` +
        `even with no timeout): ${(perHour("ours", EC_DELAY_MS - j.marginMs) / j.perHour).toFixed(3)} × js-sdk's at best`,
    },
    {
      id: "heartbeat.interval",
      label: "heartbeat interval (server-side mean)",
      unit: "ms",
      ours: o.intervalMs,
      theirs: j.intervalMs,
      lowerIsBetter: false,
      reps,
      note: "ours from the send of the last success (adaptive), js-sdk 5 s after the previous answer",
    },
    {
      id: "heartbeat.timeout",
      label: "restart local timeout",
      unit: "ms",
      ours: o.timeoutMs,
      theirs: j.timeoutMs,
      lowerIsBetter: true,
      reps: hb.oursTiming.restartTimeoutMs.length,
      note: "ours: the restarts' smoothed round trip + 4 deviations, at least 1.5 RTT and 250 ms (effectiveTiming, median of 1 s samples); js-sdk: 2 s",
    },
    {
      id: "heartbeat.margin",
      label: "margin: delay − interval − restart timeout",
      unit: "ms",
      ours: o.marginMs,
      theirs: j.marginMs,
      lowerIsBetter: false,
      goal: { min: j.marginMs, text: "≥ js-sdk's" },
      reps: 1,
      note: "heartbeatMarginMs (src/core/heartbeatTiming.ts): the time a lost restart leaves for its retries before the server fires the leave",
    },
    {
      id: "heartbeat.retries",
      label: "  retries of a lost restart within it",
      unit: "retries",
      ours: o.retries,
      theirs: j.retries,
      lowerIsBetter: false,
      reps: 1,
      note: "retriesWithinMargin: back to back; ours each waits half the time left (≥ its timeout, ≤ 2 s), js-sdk 2 s clamped to its predicted leave",
    },
    {
      id: "heartbeat.answeredWindow",
      label: "  time to retry a failed answer: delay − interval",
      unit: "ms",
      ours: EC_DELAY_MS - o.intervalMs,
      theirs: EC_DELAY_MS - j.intervalMs,
      lowerIsBetter: false,
      reps: 1,
      note:
        "a 5xx, a 429 or a reset is known a round trip after the send, not a timeout later: what the longer " +
        "interval gives up (retries of such answers back off, and a 429's hint is honoured up to delay/4)",
    },
    {
      id: "heartbeat.perHourFixed",
      label: "… ours with a fixed delay/2 interval (before)",
      unit: "requests",
      ours: perHour("ours", fixedInterval),
      theirs: j.perHour,
      lowerIsBetter: true,
      reps: Math.min(hb.fixed.intervals.length, hb.intervals["js-sdk"].length),
      incomparable: "for reference: the default before issue 22",
      note:
        `a third device of ours with heartbeatIntervalMs ${hb.fixed.intervalMs} (mean ${fixedInterval.toFixed(0)} ms); ` +
        `margin ${heartbeatMarginMs(EC_DELAY_MS, fixedInterval, 2000).toFixed(0)} ms`,
    },
    {
      id: "heartbeat.perHourThin",
      label: `… ours with heartbeatMarginMs ${hb.thin.marginMs}`,
      unit: "requests",
      ours: thin.perHour,
      theirs: j.perHour,
      lowerIsBetter: true,
      reps: Math.min(hb.thin.intervals.length, hb.intervals["js-sdk"].length),
      incomparable: `at a thinner margin: ${thin.marginMs.toFixed(0)} ms against js-sdk's ${j.marginMs.toFixed(0)} ms`,
      note:
        `a fourth device of ours with heartbeatMarginMs ${hb.thin.marginMs}: interval ${thin.intervalMs.toFixed(0)} ms, ` +
        `restart timeout ${thin.timeoutMs} ms, retries within the margin ${thin.retries} (js-sdk ${j.retries})`,
    },
    {
      id: "heartbeat.allPerHour",
      label: "all requests / device-hour, watch reads included (bare client)",
      unit: "requests",
      ours: counted(hb, "ours", hb.requests.ours + hb.reads.ours),
      theirs: counted(hb, "js-sdk", hb.requests["js-sdk"] + hb.reads["js-sdk"]),
      lowerIsBetter: true,
      incomparable:
        "js-sdk cannot run without a syncing client; ours reads its key where nothing syncs (issue 25)",
      reps: 1,
      note:
        `every membership request and every read of our key or of our delayed events in ` +
        `${Math.round(hb.windowMs / 1000)} s (ours ${hb.requests.ours} + ${hb.reads.ours} reads, js-sdk ` +
        `${hb.requests["js-sdk"]} + ${hb.reads["js-sdk"]}), per hour, plus the hourly refresh`,
    },
    {
      id: "heartbeat.allPerHourSynced",
      label: "… ours on a syncing client (eyes: the synced room)",
      unit: "requests",
      ours: counted(hb, "ours", hb.synced.requests + hb.synced.reads),
      theirs: counted(hb, "js-sdk", hb.requests["js-sdk"] + hb.reads["js-sdk"]),
      lowerIsBetter: true,
      reps: 1,
      note:
        `like for like with js-sdk (both watch the synced room): a fifth device of ours, ` +
        `${hb.synced.requests} requests + ${hb.synced.reads} reads in the window`,
    },
    {
      id: "heartbeat.slow.interval",
      label: `${slow}: heartbeat interval`,
      unit: "ms",
      ours: so.intervalMs,
      theirs: sj.intervalMs,
      lowerIsBetter: false,
      reps: slowReps,
      note: `ours' restart timeout ${so.timeoutMs} ms there (js-sdk 2 s)`,
    },
    {
      id: "heartbeat.slow.margin",
      label: `${slow}: margin`,
      unit: "ms",
      ours: so.marginMs,
      theirs: sj.marginMs,
      lowerIsBetter: false,
      goal: { min: sj.marginMs, text: "≥ js-sdk's" },
      reps: 1,
      note: `retries within it: ours ${so.retries}, js-sdk ${sj.retries}`,
    },
    {
      id: "heartbeat.slow.perHour",
      label: `${slow}: requests / device-hour`,
      unit: "requests",
      ours: so.perHour,
      theirs: sj.perHour,
      lowerIsBetter: true,
      reps: slowReps,
    },
  ];
}

const START = "<!-- bench:heartbeat:start -->";
const END = "<!-- bench:heartbeat:end -->";

/** Replace the heartbeat block of docs/benchmark.md (left alone when its markers are missing). */
export async function writeHeartbeatDoc(generated: string): Promise<boolean> {
  const path = "docs/benchmark.md";
  const text = readFileSync(path, "utf8");
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  if (start < 0 || end < start) return false;
  writeFileSync(path, `${text.slice(0, start)}${START}\n${generated.trim()}\n${text.slice(end)}`);
  await prettify(path);
  return true;
}
