/**
 * Load check for the test homeserver (issue 2): N clients, each with one pending delayed event, each
 * restarting it once a second over its own keep-alive connection on loopback, rate limits off.
 * Reports requests/s, p50/p99 latency and errors. Target: p99 < 20 ms, no errors.
 *
 *   npx tsx bench/homeserver-load.ts [clients] [seconds]
 */
import { Agent, request } from "node:http";
import { pathToFileURL } from "node:url";
import { startTestHomeserver } from "../src/testing/index.js";

export interface HomeserverLoadResult {
  clients: number;
  seconds: number;
  requests: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  /** Restarts the server recorded (cross-check that requests really reached the handler). */
  serverRestarts: number;
}

interface Reply {
  status: number;
  body: string;
}

function post(
  agent: Agent,
  url: URL,
  path: string,
  token: string,
  body?: string,
  method = "POST",
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path,
        method,
        headers: {
          Authorization: `Bearer ${token}`,
          ...(body !== undefined
            ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) }
            : {}),
        },
      },
      (res) => {
        let data = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (data += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: data }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const percentile = (sorted: number[], p: number): number =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

export async function runHomeserverLoad({ clients = 1000, seconds = 5 } = {}): Promise<HomeserverLoadResult> {
  const hs = await startTestHomeserver({
    rateLimits: { message: null, delayedEventMgmt: null },
    requestLogLimit: 200_000,
  });
  const url = new URL(hs.baseUrl);
  try {
    const owner = await hs.createUser("owner");
    const roomId = await hs.createRoom(owner.accessToken);
    const setup = await Promise.all(
      Array.from({ length: clients }, async (_, i) => {
        const user = await hs.createUser(`load${i}`);
        await hs.joinRoom(user.accessToken, roomId);
        // One connection per client, reused for every request (keep-alive), like a browser tab.
        const agent = new Agent({ keepAlive: true, maxSockets: 1 });
        const key = `_${user.userId}_${user.deviceId}_m.call`;
        const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/org.matrix.msc3401.call.member/${encodeURIComponent(key)}?org.matrix.msc4140.delay=60000`;
        const res = await post(agent, url, path, user.accessToken, "{}", "PUT");
        if (res.status !== 200) throw new Error(`setup failed: ${res.status} ${res.body}`);
        return { user, agent, delayId: (JSON.parse(res.body) as { delay_id: string }).delay_id };
      }),
    );

    const latencies: number[] = [];
    let errors = 0;
    const startRestarts = hs.requests.filter((r) => r.route === "delayed.restart").length;
    const started = performance.now();
    const endAt = started + seconds * 1000;
    await Promise.all(
      setup.map(async ({ user, agent, delayId }) => {
        // Spread the clients over the first second so the load is steady rather than one burst per second.
        let next = started + Math.random() * 1000;
        const path = `/_matrix/client/unstable/org.matrix.msc4140/delayed_events/${encodeURIComponent(delayId)}/restart`;
        while (next < endAt) {
          const wait = next - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          const t0 = performance.now();
          try {
            const res = await post(agent, url, path, user.accessToken);
            if (res.status !== 200) errors += 1;
          } catch {
            errors += 1;
          }
          latencies.push(performance.now() - t0);
          next += 1000;
        }
        agent.destroy();
      }),
    );
    const elapsedS = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    const serverRestarts = hs.requests.filter((r) => r.route === "delayed.restart").length - startRestarts;
    return {
      clients,
      seconds,
      requests: latencies.length,
      requestsPerSecond: Math.round(latencies.length / elapsedS),
      p50Ms: Number(percentile(latencies, 50).toFixed(2)),
      p99Ms: Number(percentile(latencies, 99).toFixed(2)),
      maxMs: Number((latencies[latencies.length - 1] ?? NaN).toFixed(2)),
      errors,
      serverRestarts,
    };
  } finally {
    await hs.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const clients = Number(process.argv[2] ?? 1000);
  const seconds = Number(process.argv[3] ?? 5);
  const result = await runHomeserverLoad({ clients, seconds });
  console.log("test homeserver load (restart every second per client, keep-alive, loopback, no rate limits)");
  console.table(result);
  const pass = result.p99Ms < 20 && result.errors === 0;
  console.log(pass ? "PASS: p99 < 20 ms, no errors" : "FAIL: target is p99 < 20 ms and no errors");
  process.exitCode = pass ? 0 : 1;
}
