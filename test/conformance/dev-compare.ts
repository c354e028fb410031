/* Dev tool (not a test): run scenarios against the emulator (preset) and a running server; print diffs. */
import { isDeepStrictEqual } from "node:util";
import { SYNAPSE_PRESETS, startTestHomeserver, type SynapsePreset } from "../../src/testing/index.js";
import { runScenario } from "./runner.js";
import { ALL_SCENARIOS } from "./scenarios.js";
import { emulatorOptions } from "./targets.js";
import type { ConformanceServer } from "./types.js";

const [preset, baseUrl, config = "relaxed", only] = process.argv.slice(2);

function httpServer(base: string): ConformanceServer & { loginDevice(l: string): Promise<never> } {
  const post = async (path: string, body: unknown, token?: string) => {
    const res = await fetch(base + path, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as Record<string, string>;
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  return {
    baseUrl: base,
    async createUser(localpart) {
      const r = await post("/_matrix/client/v3/register", {
        username: localpart,
        password: "pw",
        auth: { type: "m.login.dummy" },
      });
      return { userId: r.user_id, accessToken: r.access_token, deviceId: r.device_id };
    },
    async loginDevice(localpart) {
      const r = await post("/_matrix/client/v3/login", {
        type: "m.login.password",
        identifier: { type: "m.id.user", user: localpart },
        password: "pw",
      });
      return { userId: r.user_id, accessToken: r.access_token, deviceId: r.device_id } as never;
    },
    async createRoom(token) {
      const r = await post(
        "/_matrix/client/v3/createRoom",
        {
          preset: "public_chat",
          power_level_content_override: { events: { "org.matrix.msc3401.call.member": 0 } },
        },
        token,
      );
      return r.room_id;
    },
    async joinRoom(token, roomId) {
      await post(`/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {}, token);
    },
  };
}

const runId = Date.now().toString(36).slice(-5);
const scenarios = ALL_SCENARIOS.filter((s) => s.config === config && (!only || s.name === only));
const remote = httpServer(baseUrl);
await Promise.all(
  scenarios.map(async (scenario) => {
    const hs = await startTestHomeserver({
      ...emulatorOptions(scenario.config),
      ...SYNAPSE_PRESETS[preset as SynapsePreset],
    });
    const emu = await runScenario(hs, scenario, { runId, loginDevice: (l) => hs.loginDevice(l) });
    await hs.close();
    const real = await runScenario(remote, scenario, { runId, loginDevice: (l) => remote.loginDevice(l) });
    for (let i = 0; i < Math.max(emu.length, real.length); i++) {
      if (!isDeepStrictEqual(emu[i], real[i])) {
        console.log(`--- ${scenario.name} / ${real[i]?.label ?? emu[i]?.label}`);
        console.log("  emulator:", JSON.stringify(emu[i]));
        console.log("  synapse: ", JSON.stringify(real[i]));
      }
    }
  }),
);
