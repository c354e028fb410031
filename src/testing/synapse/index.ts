// A real Synapse for tests: installed once per version with pip, started on 127.0.0.1 with SQLite.
export { startSynapse } from "./synapse.js";
export type { SynapseHomeserver } from "./synapse.js";
export { DEFAULT_SYNAPSE_VERSION, resolveRateLimits } from "./options.js";
export type { SynapseOptions, SynapseRateLimitPreset } from "./options.js";
export { ensureSynapse, synapseCacheDir, constraintsFile } from "./install.js";
export type { InstalledSynapse } from "./install.js";
