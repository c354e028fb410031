/**
 * The first step of `npm run test:synapse`: installs every Synapse version the suites need before jest
 * starts, so parallel test files never race to install, a first install's minutes are not charged to a
 * test's timeout, and a machine that cannot install Synapse fails here, loudly, with what to install.
 * It is the documented consumer pre-install step (installSynapse, as `npx matrixrtc-install-synapse`
 * runs it) with this repository's list of versions: $MATRIXRTC_SYNAPSE_VERSIONS (comma-separated), else
 * the default version and every version of test/conformance/targets.ts's PRESET_VERSIONS (the
 * differential suite needs them all).
 */
import { DEFAULT_SYNAPSE_VERSION, installSynapse, synapseCacheDir } from "../../src/testing/synapse/index.js";
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
  for (const installed of await installSynapse({ versions, onProgress: (line) => console.log(line) })) {
    if (!installed.templateDb)
      console.log(`synapse ${installed.version}: no template database (each start creates the schema)`);
    console.log(`synapse ${installed.version}: ready in ${installed.venvDir} (${installed.tookMs} ms)`);
  }
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
}
