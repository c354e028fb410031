/**
 * The first step of `npm run test:synapse`: installs every Synapse version the suites need before jest
 * starts, so parallel test files never race to install, a first install's minutes are not charged to a
 * test's timeout, and a machine that cannot install Synapse fails here, loudly, with what to install.
 * Versions: $MATRIXRTC_SYNAPSE_VERSIONS (comma-separated), else the default version and every version
 * of test/conformance/targets.ts's PRESET_VERSIONS (the differential suite needs them all).
 */
import { DEFAULT_SYNAPSE_VERSION, ensureSynapse, synapseCacheDir } from "../../src/testing/index.js";
import { ensureTemplateDb } from "../../src/testing/synapse/template.js";
import { PRESET_VERSIONS } from "../conformance/targets.js";

// The default version first (most suites), then each release the differential suite judges a preset by.
const versions = (
  process.env.MATRIXRTC_SYNAPSE_VERSIONS ??
  [DEFAULT_SYNAPSE_VERSION, ...PRESET_VERSIONS.map((p) => p.version)].join(",")
)
  .split(",")
  .map((v) => v.trim())
  .filter((v, i, all) => v && all.indexOf(v) === i);

console.log(`synapse cache: ${synapseCacheDir()}`);
try {
  for (const version of versions) {
    const started = Date.now();
    const installed = await ensureSynapse(version, { onProgress: (line) => console.log(line) });
    // Made here, once, so that no test's first start pays for it.
    const template = await ensureTemplateDb(installed, 120_000);
    if (!template) console.log(`synapse ${version}: no template database (each start creates the schema)`);
    console.log(`synapse ${version}: ready in ${installed.venvDir} (${Date.now() - started} ms)`);
  }
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
}
