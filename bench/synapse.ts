/**
 * The bench's real-Synapse column: the join/leave and ghost/recovery scenarios, ours and js-sdk's, on a
 * real Synapse (startSynapse(), installed with pip on first use) with Element Call's recommended rate
 * limits, the same added RTT per device link and the same directly connected observer as on the test
 * homeserver. Synapse has no request log: request timings come from each device's link (scenarios.ts).
 */
import { startSynapse } from "../src/testing/index.js";
import { benchOn, measureRtt, median } from "./lib.js";
import type { Row } from "./report.js";
import { ghostAndRecovery, joinLeave, type Samples } from "./scenarios.js";

export const SYNAPSE_BENCH_VERSION = "1.163.2";

/** Medians per row id (the ids of index.ts's rows), ours and js-sdk's, on real Synapse. */
export type SynapseColumn = Record<string, { ours: number; theirs: number; reps: number }>;

export interface SynapseRun {
  version: string;
  rttMs: number;
  column: SynapseColumn;
  raw: Record<string, unknown>;
}

const pair = (s: Samples) => ({
  ours: median(s.ours),
  theirs: median(s["js-sdk"]),
  reps: Math.min(s.ours.length, s["js-sdk"].length),
});

export async function runSynapseColumn(opts: {
  rttMs: number;
  joinLeaveReps: number;
  ghostReps: number;
  say: (line: string) => void;
}): Promise<SynapseRun> {
  const { say } = opts;
  say(`real Synapse ${SYNAPSE_BENCH_VERSION}: installing if needed and starting…`);
  const hs = await startSynapse({
    version: SYNAPSE_BENCH_VERSION,
    rateLimits: "element-call",
    onProgress: (line) => say(`  ${line}`),
  });
  const bench = await benchOn(hs, opts.rttMs);
  try {
    const rtt = await measureRtt(bench);
    say(`  Synapse at ${hs.baseUrl}; measured RTT through a link: ${rtt.toFixed(1)} ms`);
    say(`  join/leave latency on Synapse, ${opts.joinLeaveReps} reps each…`);
    const jl = await joinLeave(bench, opts.joinLeaveReps);
    say(`  ghost time and recovery on Synapse, ${opts.ghostReps} reps…`);
    const gh = await ghostAndRecovery(bench, opts.ghostReps);
    return {
      version: hs.version,
      rttMs: rtt,
      column: {
        "join.connected": pair(jl.joinConnected),
        "join.visible": pair(jl.joinVisible),
        "leave.confirmed": pair(jl.leaveConfirmed),
        "leave.server": pair(jl.leaveServer),
        "leave.visible": pair(jl.leaveVisible),
        ghost: pair(gh.ghost),
        recovery: pair(gh.recovery),
        "recovery.firstRequest": pair(gh.recoveryFirstRequest),
        "recovery.afterFirst": pair(gh.recoveryAfterFirstRequest),
        "recovery.requests": pair(gh.recoveryRequests),
      },
      raw: { joinLeave: jl, ghost: gh },
    };
  } finally {
    await bench.close();
  }
}

/** Labels of the column's figures, for a run of the Synapse column alone. */
const LABELS: Record<string, [string, string]> = {
  "join.connected": ["join → connected", "ms"],
  "join.visible": ["join → visible to observer", "ms"],
  "leave.confirmed": ["leave → confirmed", "ms"],
  "leave.server": ["leave → server holds {}", "ms"],
  "leave.visible": ["leave → observer sees it", "ms"],
  ghost: ["ghost: cut → observer sees leave", "ms"],
  recovery: ["recovery: network back → visible", "ms"],
  "recovery.firstRequest": ["  of which: back → first request at server", "ms"],
  "recovery.afterFirst": ["  of which: first request → visible", "ms"],
  "recovery.requests": ["requests to recover", "requests"],
};

/** The column's figures as table rows with only the Synapse numbers (for `BENCH_ONLY=synapse`). */
export function synapseOnlyRows(column: SynapseColumn): Row[] {
  return Object.entries(column).map(([id, synapse]) => ({
    id,
    label: LABELS[id]?.[0] ?? id,
    unit: LABELS[id]?.[1] ?? "",
    ours: NaN,
    theirs: NaN,
    lowerIsBetter: true,
    reps: synapse.reps,
    synapse,
  }));
}
