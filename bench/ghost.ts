/**
 * The bench's "ghost on tab close" and "ghost on widget removal" rows (issue 22 part 1): how long others
 * keep listing a device after its tab is closed or its widget's iframe removed, ours beside matrix-js-sdk's
 * in the same run, in Debian's Chromium (the world of test/browser/ghost.browser.test.ts: the test
 * homeserver behind a link adding the bench's RTT, pages cross-origin to it, an observer connected
 * directly). Ours fires its delayed leave from `pagehide` (client mode: a keepalive request; widget mode:
 * through the widget API, the host doing nothing of its own); js-sdk's waits for the server to fire it.
 *
 * Each rep joins one device of each, waits a phase that moves over one js-sdk heartbeat cycle (5 s) from
 * rep to rep, then closes both at the same moment. `BENCH_ONLY=ghost npm run bench` runs these rows alone.
 */
import { existsSync } from "node:fs";
import { startGhostWorld, type GhostDevice, type Mode } from "../test/browser/ghost/world.js";
import { EC_DELAY_MS, median } from "./lib.js";
import type { Row } from "./report.js";
import type { Samples } from "./scenarios.js";

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
/** js-sdk's restart interval with Element Call's settings: the close's phase moves over it. */
const SDK_HEARTBEAT_MS = 5000;

export interface GhostSamples {
  /** Close → the observer no longer lists the device. */
  visible: Samples;
  /** Close → the server's timestamp of the `{}` at the device's key. */
  server: Samples;
}

export interface GhostRun {
  rttMs: number;
  rows: Row[];
  raw: Record<Mode, GhostSamples>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function oneRep(
  make: (impl: "ours" | "js-sdk") => Promise<GhostDevice>,
  phaseMs: number,
  out: GhostSamples,
): Promise<void> {
  const devices = await Promise.all([make("ours"), make("js-sdk")]);
  try {
    await Promise.all(devices.map((d) => d.join()));
    await sleep(1000 + phaseMs);
    const closedAt = await Promise.all(devices.map((d) => d.goAway()));
    const goneAt = await Promise.all(devices.map((d) => d.whenGone(EC_DELAY_MS + 5000)));
    devices.forEach((d, i) => {
      const impl = d.impl;
      out.visible[impl].push(goneAt[i] - closedAt[i]);
      const serverAt = d.leftAtServer(closedAt[i] - 1000);
      out.server[impl].push(serverAt === undefined ? NaN : serverAt - closedAt[i]);
    });
  } finally {
    await Promise.all(devices.map((d) => d.close()));
  }
}

export async function runGhostRows(opts: {
  rttMs: number;
  reps: number;
  say: (line: string) => void;
}): Promise<GhostRun | undefined> {
  if (!existsSync(CHROMIUM_PATH)) {
    opts.say(`  skipped: no Chromium at ${CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH)`);
    return undefined;
  }
  const world = await startGhostWorld({
    rttMs: opts.rttMs,
    delayMs: EC_DELAY_MS,
    chromiumPath: CHROMIUM_PATH,
  });
  const empty = (): GhostSamples => ({
    visible: { ours: [], "js-sdk": [] },
    server: { ours: [], "js-sdk": [] },
  });
  const raw: Record<Mode, GhostSamples> = { client: empty(), widget: empty() };
  try {
    opts.say(
      `  Chromium ${world.browser.version()}, measured RTT through the link ${world.rttMs.toFixed(1)} ms`,
    );
    let n = 0;
    for (const mode of ["client", "widget"] as const) {
      for (let rep = 0; rep < opts.reps; rep++) {
        const phase = Math.round((SDK_HEARTBEAT_MS * (rep + 0.5)) / opts.reps);
        await oneRep((impl) => world.device(mode, impl, `g${n++}-${mode}-${impl}`), phase, raw[mode]);
        opts.say(
          `  ${mode === "client" ? "tab close" : "widget removal"} rep ${rep + 1}/${opts.reps}: ` +
            `ours ${raw[mode].visible.ours.at(-1)} ms, js-sdk ${raw[mode].visible["js-sdk"].at(-1)} ms`,
        );
      }
    }
    return { rttMs: world.rttMs, rows: ghostRows(raw, world.rttMs), raw };
  } finally {
    await world.close();
  }
}

function pair(s: Samples): { ours: number; theirs: number; reps: number } {
  return {
    ours: median(s.ours),
    theirs: median(s["js-sdk"]),
    reps: Math.min(s.ours.length, s["js-sdk"].length),
  };
}

/** The rows, in the order the table shows them. */
export function ghostRows(raw: Record<Mode, GhostSamples>, rtt: number): Row[] {
  const goal = { max: rtt + 100, text: "≤ 1 RTT + 100 ms" };
  const half = 0.5 * rtt;
  return [
    {
      id: "ghost.tabClose",
      label: "ghost on tab close → observer sees leave",
      unit: "ms",
      ...pair(raw.client.visible),
      lowerIsBetter: true,
      limit: half,
      limitNote: "the keepalive send reaches the server half a round trip after pagehide",
      goal,
      note: "Chromium page closed with page.close({ runBeforeUnload: true }); js-sdk's waits for the server to fire",
    },
    {
      id: "ghost.tabClose.server",
      label: "  of which: close → server holds {}",
      unit: "ms",
      ...pair(raw.client.server),
      lowerIsBetter: true,
      limit: half,
    },
    {
      id: "ghost.widgetRemoval",
      label: "ghost on widget removal → observer sees leave",
      unit: "ms",
      ...pair(raw.widget.visible),
      lowerIsBetter: true,
      limit: half,
      limitNote: "the widget's message to its host, then the host's request half a round trip to the server",
      goal,
      note: "the host removes the iframe and does nothing itself; ours: the widget's own pagehide",
    },
    {
      id: "ghost.widgetRemoval.server",
      label: "  of which: removal → server holds {}",
      unit: "ms",
      ...pair(raw.widget.server),
      lowerIsBetter: true,
      limit: half,
    },
  ];
}
