/**
 * The differential conformance suite: every MSC4140 scenario (and, for 1.163, the MSC4354 sticky-event
 * ones) on real Synapse version V and on the test homeserver with the preset that claims V's behaviour;
 * the normalised records must be identical.
 * With MATRIXRTC_RECORD_SYNAPSE=1 the Synapse records are written to test/conformance/recorded/, which
 * `npm test` replays against the emulator without Python.
 */
import { writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { startSynapse, type SynapseHomeserver, type SynapsePreset } from "../../src/testing/index.js";
import { mapLimited, runOnEmulator, type Recording } from "../conformance/emulator.js";
import { runScenario } from "../conformance/runner.js";
import { scenariosFor } from "../conformance/scenarios.js";
import { synapseOptions } from "../conformance/targets.js";
import type { Scenario, ServerConfig, StepRecord } from "../conformance/types.js";

/** Scenarios at once on one Synapse: more and a loaded machine answers too late for the timed steps. */
const CONCURRENCY = 4;
/** Synapse starts (about 2–5 s each), scenarios (the longest ~7 s), several configurations. */
const SUITE_TIMEOUT_MS = 8 * 60_000;

export function differentialSuite(preset: SynapsePreset, version: string): void {
  // The scenarios this preset's version judges (the MSC4354 ones only on 1.163).
  const scenarios = scenariosFor(preset);
  describe(`Synapse ${version} vs preset ${preset}`, () => {
    const synapseRecords = new Map<string, StepRecord[]>();
    const emulatorRecords = new Map<string, StepRecord[]>();
    const servers: SynapseHomeserver[] = [];
    const runId = Date.now().toString(36).slice(-5);

    const start = async (config: ServerConfig): Promise<SynapseHomeserver> => {
      const hs = await startSynapse({ version, ...synapseOptions(config) });
      servers.push(hs);
      return hs;
    };
    const onSynapse = async (hs: SynapseHomeserver, scenario: Scenario): Promise<void> => {
      synapseRecords.set(
        scenario.name,
        await runScenario(hs, scenario, { runId, loginDevice: (localpart) => hs.loginDevice(localpart) }),
      );
    };

    beforeAll(async () => {
      // Shared servers per configuration; scenarios with IP-keyed buckets get one of their own.
      const shared = new Map<ServerConfig, Promise<SynapseHomeserver>>();
      const own = scenarios.filter((s) => s.ownServer);
      const pooled = scenarios.filter((s) => !s.ownServer);
      for (const s of pooled) if (!shared.has(s.config)) shared.set(s.config, start(s.config));
      const ownServers = new Map(own.map((s) => [s.name, start(s.config)]));
      await mapLimited(pooled, CONCURRENCY, async (s) => onSynapse(await shared.get(s.config)!, s));
      // After the pooled ones: a rate-limit answer must not wait behind other scenarios' requests.
      for (const s of own) await onSynapse(await ownServers.get(s.name)!, s);
      // The emulator afterwards, not meanwhile: it shares this thread with the Synapse handle, whose
      // reads block it, and with Synapse's start-up load; its timed steps would run late.
      await mapLimited(scenarios, scenarios.length, async (s) =>
        emulatorRecords.set(s.name, await runOnEmulator(preset, s, runId)),
      );
      if (process.env.MATRIXRTC_RECORD_SYNAPSE) {
        const recording: Recording = {
          version,
          preset,
          recordedAt: new Date().toISOString().slice(0, 10),
          scenarios: Object.fromEntries(scenarios.map((s) => [s.name, synapseRecords.get(s.name)!])),
        };
        const file = new URL(`../conformance/recorded/${version}.json`, import.meta.url);
        await writeFile(file, `${JSON.stringify(recording, null, 2)}\n`);
      }
    }, SUITE_TIMEOUT_MS);

    afterAll(async () => {
      await Promise.all(servers.map((hs) => hs.close()));
    });

    it.each(scenarios.map((s) => [s.name, s] as const))("%s", (_name, scenario) => {
      expect(emulatorRecords.get(scenario.name)).toEqual(synapseRecords.get(scenario.name));
    });
  });
}
