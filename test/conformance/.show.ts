import { SYNAPSE_PRESETS, startTestHomeserver } from "/work/wt-h12b/src/testing/index.js";
import { runScenario } from "/work/wt-h12b/test/conformance/runner.js";
import { ALL_SCENARIOS } from "/work/wt-h12b/test/conformance/scenarios.js";
import { emulatorOptions } from "/work/wt-h12b/test/conformance/targets.js";
const [preset, name] = process.argv.slice(2);
const sc = ALL_SCENARIOS.find((s) => s.name === name)!;
const hs = process.argv[4]
  ? remote(process.argv[4])
  : await startTestHomeserver({ ...emulatorOptions(sc.config), ...(SYNAPSE_PRESETS as any)[preset] });
for (const r of await runScenario(hs, sc, {
  runId: Date.now().toString(36).slice(-4),
  loginDevice: (l) => hs.loginDevice(l),
}))
  console.log(JSON.stringify(r));
await hs.close();
function remote(base: string): any {
  const post = async (path: string, body: unknown, token?: string) => {
    const res = await fetch(base + path, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    return (await res.json()) as any;
  };
  return {
    baseUrl: base,
    async createUser(l: string) {
      const r = await post("/_matrix/client/v3/register", {
        username: l,
        password: "pw",
        auth: { type: "m.login.dummy" },
      });
      return { userId: r.user_id, accessToken: r.access_token, deviceId: r.device_id };
    },
    async loginDevice(l: string) {
      const r = await post("/_matrix/client/v3/login", {
        type: "m.login.password",
        identifier: { type: "m.id.user", user: l },
        password: "pw",
      });
      return { userId: r.user_id, accessToken: r.access_token, deviceId: r.device_id };
    },
    async createRoom(t: string) {
      return (
        await post(
          "/_matrix/client/v3/createRoom",
          {
            preset: "public_chat",
            power_level_content_override: { events: { "org.matrix.msc3401.call.member": 0 } },
          },
          t,
        )
      ).room_id;
    },
    async joinRoom(t: string, r: string) {
      await post(`/_matrix/client/v3/join/${encodeURIComponent(r)}`, {}, t);
    },
    close() {},
  };
}
