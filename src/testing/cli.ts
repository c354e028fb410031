#!/usr/bin/env node
/**
 * `npm run homeserver [-- --port 8008] [--preset 1.127|merged] [--shape unstable|merged|both] [--no-rate-limits]
 * [--sticky-events]`:
 * the test homeserver on a fixed
 * port with alice, bob and carol in one room, for pointing a client at by hand. Ctrl-C stops it.
 */
import { parseArgs } from "node:util";
import { startTestHomeserver } from "./homeserver/homeserver.js";
import { DEFAULT_SYNAPSE_VERSION } from "./synapse/options.js";
import {
  SYNAPSE_PRESETS,
  type DelayedEventsShape,
  type SynapsePreset,
  type TestHomeserverOptions,
} from "./homeserver/options.js";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "8008" },
    host: { type: "string", default: "127.0.0.1" },
    preset: { type: "string" },
    // MSC4140 HTTP shape; `--preset merged --shape both` is a server offering both.
    shape: { type: "string" },
    "no-rate-limits": { type: "boolean", default: false },
    // MSC4354 on (Synapse's msc4354_enabled), e.g. for Element Call's matrix_2_0 mode.
    "sticky-events": { type: "boolean", default: false },
  },
});

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid --port ${values.port}`);
  process.exit(2);
}
const preset = values.preset as SynapsePreset | undefined;
if (preset !== undefined && !(preset in SYNAPSE_PRESETS)) {
  console.error(`unknown --preset ${preset}; one of ${Object.keys(SYNAPSE_PRESETS).join(", ")}`);
  process.exit(2);
}

const shape = values.shape as DelayedEventsShape | undefined;
if (shape !== undefined && !["unstable", "merged", "both"].includes(shape)) {
  console.error(`unknown --shape ${shape}; one of unstable, merged, both`);
  process.exit(2);
}

const options: TestHomeserverOptions = {
  port,
  host: values.host,
  ...(preset ? SYNAPSE_PRESETS[preset] : {}),
  ...(shape ? { delayedEventsShape: shape } : {}),
  ...(values["no-rate-limits"] ? { rateLimits: { message: null, delayedEventMgmt: null } } : {}),
  ...(values["sticky-events"] ? { stickyEvents: true } : {}),
};

const hs = await startTestHomeserver(options);
const users = [await hs.createUser("alice"), await hs.createUser("bob"), await hs.createUser("carol")];
const roomId = await hs.createRoom(users[0].accessToken, { name: "Test call room" });
for (const user of users.slice(1)) await hs.joinRoom(user.accessToken, roomId);

// Which Synapse it imitates. Its defaults are 1.157-1.160's (the error dialect, the capability); real
// Synapse from startSynapse() / matrixrtc-install-synapse defaults to the newest tested release.
console.log(
  `MSC4140 test homeserver, behaving like ${
    preset
      ? `Synapse ${preset} (--preset ${preset})`
      : "Synapse 1.157-1.160 (its defaults; --preset 1.163 for the newest)"
  }. Real Synapse: startSynapse(), default ${DEFAULT_SYNAPSE_VERSION}.`,
);
console.log(`baseUrl:     ${hs.baseUrl}`);
console.log(`server name: ${hs.serverName}`);
console.log(`room id:     ${roomId}`);
for (const user of users) {
  console.log(`user:        ${user.userId}  device ${user.deviceId}  access token ${user.accessToken}`);
}
console.log("Password login works for these users with any password. Ctrl-C to stop.");

const stop = (): void => {
  void hs.close().then(() => process.exit(0));
};
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
