/**
 * The MSC4140 conformance scenarios on the test homeserver alone, without Python: each preset's records
 * must equal what its real Synapse version answered when last recorded (test/conformance/recorded/,
 * written by `MATRIXRTC_RECORD_SYNAPSE=1 npm run test:synapse`). The live comparison is
 * test/synapse/differential-*.test.ts.
 */
import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "@jest/globals";
import { mapLimited, runOnEmulator, type Recording } from "../../conformance/emulator.js";
import { scenariosFor } from "../../conformance/scenarios.js";
import { PRESET_VERSIONS } from "../../conformance/targets.js";

const recordingOf = (version: string): Recording | undefined => {
  const file = new URL(`../../conformance/recorded/${version}.json`, import.meta.url);
  return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as Recording) : undefined;
};

describe.each(PRESET_VERSIONS.map((p) => [p.preset, p.version] as const))(
  "preset %s against recorded Synapse %s",
  (preset, version) => {
    it.concurrent(
      "every scenario gives the recorded answers",
      async () => {
        const recording = recordingOf(version);
        expect(recording).toBeDefined();
        const runId = Date.now().toString(36).slice(-5);
        const scenarios = scenariosFor(preset);
        const records = await mapLimited(scenarios, scenarios.length, (s) => runOnEmulator(preset, s, runId));
        const actual = Object.fromEntries(scenarios.map((s, i) => [s.name, records[i]]));
        expect(actual).toEqual(recording?.scenarios);
      },
      // Generous: the six presets replay at once; under npm test on a loaded 2-core machine the file took 36 s.
      60_000,
    );
  },
);
