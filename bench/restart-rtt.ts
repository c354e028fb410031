/**
 * Restart round trips on a real Synapse on 127.0.0.1 (issue 22 part 2: what floor the adaptive restart
 * timeout needs). `npx tsx bench/restart-rtt.ts` (about 2.5 minutes; `RESTART_RTT_SECONDS` scales it)
 * writes bench/results/restart-rtt.json.
 *
 * Each device is a user with one delayed leave at its membership key, restarted through our
 * ClientBackend on a bare matrix-js-sdk client (the manager's own path: js-sdk's HTTP layer, the
 * unstable `POST …/delayed_events/{id}/restart`). No link in between: this is the server and the loopback
 * alone, the floor's whole subject. Two paces:
 * - "heartbeat": 10 devices, each restarting every 5–7 s (the adaptive interval at a 10 s delay), so
 *   each request may find its keep-alive connection closed, as the manager's do;
 * - "busy": 5 devices restarting every 50–250 ms each, Synapse busy with ~30 restarts a second.
 * The machine's load average is recorded with the figures: a shared machine's other work shows in the tail.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ClientBackend } from "../src/backends/client.js";
import { CALL_MEMBER_EVENT_TYPE } from "../src/membership/content.js";
import { bareClient, quietMatrixSdkLogs, startSynapse, stopClient } from "../src/testing/index.js";

const VERSION = "1.163.2";
const SECONDS = Number(process.env.RESTART_RTT_SECONDS ?? 60);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentiles(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    n: s.length,
    p50: r(at(50)),
    p90: r(at(90)),
    p99: r(at(99)),
    p999: r(at(99.9)),
    max: r(s[s.length - 1]),
    over100ms: s.filter((x) => x > 100).length,
    over250ms: s.filter((x) => x > 250).length,
  };
}

async function main() {
  const say = (line: string) => process.stderr.write(`${line}\n`);
  quietMatrixSdkLogs();
  say(`real Synapse ${VERSION}: installing if needed and starting…`);
  const hs = await startSynapse({ version: VERSION, onProgress: (l) => say(`  ${l}`) });
  const clients: ReturnType<typeof bareClient>[] = [];
  try {
    const owner = await hs.createUser("rttowner");
    const roomId = await hs.createRoom(owner.accessToken);
    async function device(name: string) {
      const user = await hs.createUser(`rtt${name}`);
      await hs.joinRoom(user.accessToken, roomId);
      const client = bareClient(hs.baseUrl, user);
      clients.push(client);
      const backend = new ClientBackend(client);
      const stateKey = `_${user.userId}_${user.deviceId}_m.call`;
      const delayId = await backend.sendDelayedStateEvent({
        roomId,
        eventType: CALL_MEMBER_EVENT_TYPE,
        stateKey,
        content: {},
        delayMs: 60_000,
      });
      return { backend, delayId };
    }
    async function pace(name: string, devices: number, gapMs: [number, number], seconds: number) {
      const all = await Promise.all(Array.from({ length: devices }, (_, i) => device(`${name}${i}`)));
      const samples: number[] = [];
      const load = [loadavg()[0]];
      const until = Date.now() + seconds * 1000;
      await Promise.all(
        all.map(async ({ backend, delayId }) => {
          // Spread the first restarts over one gap, as devices that joined at different times.
          await sleep(Math.random() * gapMs[1]);
          while (Date.now() < until) {
            const t0 = performance.now();
            await backend.updateDelayedEvent(delayId, "restart");
            samples.push(performance.now() - t0);
            await sleep(gapMs[0] + Math.random() * (gapMs[1] - gapMs[0]));
          }
        }),
      );
      load.push(loadavg()[0]);
      const result = { devices, gapMs, seconds, loadavg1m: load, rttMs: percentiles(samples) };
      say(`  ${name}: ${JSON.stringify(result)}`);
      return result;
    }
    say(`Synapse ${hs.version} at ${hs.baseUrl}`);
    const heartbeat = await pace("heartbeat", 10, [5000, 7000], SECONDS * 1.5);
    const busy = await pace("busy", 5, [50, 250], SECONDS);
    const out = {
      date: new Date().toISOString(),
      version: hs.version,
      note: "restart round trips through ClientBackend (matrix-js-sdk 43) to Synapse on 127.0.0.1, no link",
      heartbeat,
      busy,
    };
    const file = join(dirname(fileURLToPath(import.meta.url)), "results", "restart-rtt.json");
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
    say(`wrote ${file}`);
  } finally {
    for (const c of clients) stopClient(c);
    await hs.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
