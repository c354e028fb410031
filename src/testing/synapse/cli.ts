#!/usr/bin/env node
/**
 * `npx matrixrtc-install-synapse [VERSION...]`: installs real Synapse for `startSynapse()` before any test
 * runs (CI's pre-install step): each version into its cached venv (about 230 MB each), plus its template
 * database. Versions: the arguments, else `$MATRIXRTC_SYNAPSE_VERSIONS`, else the default version.
 * Exits 0 when all are ready, 1 with what to install (python3 with venv and pip) otherwise.
 */
import { parseArgs } from "node:util";
import { DEFAULT_SYNAPSE_VERSION } from "./options.js";
import { defaultSynapseVersions, installSynapse, synapseCacheDir } from "./preinstall.js";

const USAGE = `usage: matrixrtc-install-synapse [VERSION...]
  Installs matrix-synapse VERSION (default ${DEFAULT_SYNAPSE_VERSION}, or $MATRIXRTC_SYNAPSE_VERSIONS) into
  ${synapseCacheDir()}
  ($MATRIXRTC_SYNAPSE_CACHE_DIR to change it), about 230 MB per version. Needs python3 >= 3.10 with venv and pip.`;

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ allowPositionals: true, options: { help: { type: "boolean", short: "h" } } });
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (parsed.values.help) {
    console.log(USAGE);
    return 0;
  }
  const versions = parsed.positionals.length > 0 ? parsed.positionals : defaultSynapseVersions();
  console.log(`synapse cache: ${synapseCacheDir()}`);
  try {
    const done = await installSynapse({ versions, onProgress: (line) => console.log(line) });
    for (const v of done)
      console.log(
        `synapse ${v.version}: ready in ${v.venvDir} (${v.installedNow ? "installed now" : "cached"}, ${v.tookMs} ms)`,
      );
    return 0;
  } catch (e) {
    console.error(e instanceof Error ? e.message : e);
    return 1;
  }
}

main().then((code) => {
  process.exitCode = code;
});
