/**
 * `installSynapse()`: the one step a consumer's CI runs before its real-Synapse tests, so that no test
 * pays for (or times out on) the first pip install. Installs each version into its cached venv and makes
 * its template database (template.ts), exactly what `startSynapse()` would otherwise do on first use.
 * Loads no matrix-js-sdk: safe in a jest `globalSetup` (import it from `matrixrtc-membership/testing/synapse`;
 * `matrixrtc-membership/testing` loads js-sdk, and a second copy of js-sdk in the tests' module registry
 * makes it throw "Multiple matrix-js-sdk entrypoints detected!").
 */
import { ensureSynapse, synapseCacheDir, type InstalledSynapse } from "./install.js";
import { DEFAULT_SYNAPSE_VERSION } from "./options.js";
import { ensureTemplateDb } from "./template.js";

/** Options of `installSynapse()`; all optional. */
export interface InstallSynapseOptions {
  /**
   * The `matrix-synapse` versions to install. Default: `$MATRIXRTC_SYNAPSE_VERSIONS` (comma-separated),
   * else {@link DEFAULT_SYNAPSE_VERSION}.
   */
  versions?: string[];
  /** Progress lines ("synapse 1.163.2: pip install …"). Default: none. */
  onProgress?: (line: string) => void;
  /** How long one version's install may take. Default 15 min. */
  timeoutMs?: number;
}

/** What `installSynapse()` did for one version. */
export interface InstalledVersion extends InstalledSynapse {
  /** False when the venv was in the cache already. */
  installedNow: boolean;
  /** The template database, if one could be made (starts work without it, a third slower). */
  templateDb?: string;
  /** How long this version took, in ms. */
  tookMs: number;
}

/** The versions `installSynapse()` installs when not told: `$MATRIXRTC_SYNAPSE_VERSIONS`, else the default. */
export function defaultSynapseVersions(): string[] {
  const fromEnv = process.env.MATRIXRTC_SYNAPSE_VERSIONS;
  const list = fromEnv ? fromEnv.split(",") : [DEFAULT_SYNAPSE_VERSION];
  return list.map((v) => v.trim()).filter((v, i, all) => v !== "" && all.indexOf(v) === i);
}

/**
 * Installs every requested Synapse version (cached under `synapseCacheDir()`, about 230 MB each) and
 * its template database, one after the other. Resolves when all are ready; rejects with what to install
 * (python3 with venv and pip) or pip's own error. Idempotent and cheap once done (milliseconds).
 */
export async function installSynapse(options: InstallSynapseOptions = {}): Promise<InstalledVersion[]> {
  const versions = options.versions ?? defaultSynapseVersions();
  const done: InstalledVersion[] = [];
  for (const version of versions) {
    const started = Date.now();
    let installedNow = false;
    const installed = await ensureSynapse(version, {
      timeoutMs: options.timeoutMs,
      quiet: true,
      onProgress: (line) => {
        installedNow = true;
        options.onProgress?.(line);
      },
    });
    const templateDb = await ensureTemplateDb(installed, 120_000);
    done.push({ ...installed, installedNow, templateDb, tookMs: Date.now() - started });
  }
  return done;
}

export { synapseCacheDir };
