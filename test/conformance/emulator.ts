/** Runs conformance scenarios on the test homeserver: one fresh server per scenario (cheap, isolated). */
import { SYNAPSE_PRESETS, startTestHomeserver, type SynapsePreset } from "../../src/testing/index.js";
import { runScenario } from "./runner.js";
import { emulatorOptions } from "./targets.js";
import type { Scenario, StepRecord } from "./types.js";

export async function runOnEmulator(
  preset: SynapsePreset,
  scenario: Scenario,
  runId: string,
): Promise<StepRecord[]> {
  const hs = await startTestHomeserver({
    // The preset is the version's behaviour; the scenario's configuration (limits, on/off) goes over it.
    ...SYNAPSE_PRESETS[preset],
    ...emulatorOptions(scenario.config),
  });
  try {
    return await runScenario(hs, scenario, { runId, loginDevice: (localpart) => hs.loginDevice(localpart) });
  } finally {
    await hs.close();
  }
}

/** Runs `fn` over `items` with at most `limit` in flight (keeps a real Synapse's answers timely). */
export async function mapLimited<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** What a recording of a real Synapse run holds (test/conformance/recorded/<version>.json). */
export interface Recording {
  version: string;
  preset: SynapsePreset;
  recordedAt: string;
  scenarios: Record<string, StepRecord[]>;
}
