// A real Synapse for tests: installed once per version with pip, started on 127.0.0.1 with SQLite.
// Also the `matrixrtc-membership/testing/synapse` entry: it loads no matrix-js-sdk, so a jest
// `globalSetup` can pre-install Synapse (installSynapse) before the test files run.
export { startSynapse } from "./synapse.js";
export type { SynapseHomeserver } from "./synapse.js";
export { DEFAULT_SYNAPSE_VERSION, resolveRateLimits } from "./options.js";
export type { SynapseOptions, SynapseRateLimitPreset } from "./options.js";
export { ensureSynapse, synapseCacheDir, constraintsFile } from "./install.js";
export type { InstalledSynapse } from "./install.js";
export { installSynapse, defaultSynapseVersions } from "./preinstall.js";
export type { InstallSynapseOptions, InstalledVersion } from "./preinstall.js";
