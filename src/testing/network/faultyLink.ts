// startFaultyLink: an HTTP-aware reverse proxy on 127.0.0.1 between one client and a homeserver, whose
// network can be broken at run time. HTTP-aware (rather than a byte pipe) so that "the server processed
// it but the answer was lost" and per-request latency are exact; the client still talks to a real TCP
// socket, so its real fetch sees real hangs and ECONNRESETs. Each request's trip is an Exchange; this
// file owns the listener, the connections and the fault settings the exchanges consult.

import http from "node:http";
import type { Socket } from "node:net";

import { Exchange, type ExchangeHost, type ExchangeLogEntry } from "./exchange.js";
import type { FaultyLink, FaultyLinkOptions, RestoreOptions } from "./types.js";

/** Enough history to debug a scenario without growing forever in a long randomized run. */
const LOG_LIMIT = 1000;

const ignore = (): void => {};

/** The path without query string or fragment: access tokens may travel in the query. */
function pathOnly(url: string | undefined): string {
  return (url ?? "/").split(/[?#]/, 1)[0];
}

function checkDelay(name: string, value: number): void {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a finite number >= 0`);
}

/** Starts a faulty link to `options.target`; point the client's `baseUrl` at its `url`. */
export async function startFaultyLink(options: FaultyLinkOptions): Promise<FaultyLink> {
  const target = new URL(options.target);
  if (target.protocol !== "http:")
    throw new Error(`FaultyLink forwards to http:// targets only, got ${target.protocol}`);
  const random = options.random ?? Math.random;

  const agent = new http.Agent({ keepAlive: true });
  const sockets = new Set<Socket>();
  const exchanges = new Set<Exchange>();
  const log: ExchangeLogEntry[] = [];
  const stats = { forwarded: 0, held: 0, dropped: 0, lostResponses: 0, resets: 0 };
  let isCut = false;
  let latencyMs = 0;
  let jitterMs = 0;
  let losses: number | "all" = 0;
  let closing: Promise<void> | undefined;

  const host: ExchangeHost = {
    get isCut() {
      return isCut;
    },
    target,
    agent,
    stats,
    takeLoss() {
      if (losses === "all") return true;
      if (losses <= 0) return false;
      losses--;
      return true;
    },
    done(exchange) {
      exchanges.delete(exchange);
    },
  };

  const server = http.createServer((req, res) => {
    const entry: ExchangeLogEntry = {
      ts: Date.now(),
      method: req.method ?? "GET",
      path: pathOnly(req.url),
      fate: "pending",
      wasHeld: false,
    };
    log.push(entry);
    if (log.length > LOG_LIMIT) log.shift();
    // Sampled once per request so the jitter is uniform over the round trip, then split in two halves.
    const total = latencyMs + random() * jitterMs;
    exchanges.add(new Exchange(req, res, entry, host, { request: total / 2, response: total / 2 }));
  });
  server.on("connection", (socket: Socket) => {
    socket.on("error", ignore);
    if (closing) return void socket.destroy();
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  // Malformed requests or a client vanishing mid-headers: just drop the connection, never throw.
  server.on("clientError", (_err, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", ignore);
  const address = server.address();
  if (address === null || typeof address === "string")
    throw new Error("FaultyLink: unexpected listen address");

  const destroyClients = (): number => {
    let destroyed = 0;
    for (const socket of sockets) {
      if (socket.destroyed) continue;
      socket.resetAndDestroy();
      destroyed++;
    }
    return destroyed;
  };

  return {
    url: `http://127.0.0.1:${address.port}`,
    get isCut() {
      return isCut;
    },
    get heldNow() {
      let held = 0;
      for (const exchange of exchanges) if (exchange.isHeld) held++;
      return held;
    },
    get stats() {
      return { ...stats };
    },
    get log() {
      return log;
    },
    cut() {
      if (closing) return;
      isCut = true;
    },
    restore(opts?: RestoreOptions) {
      if (closing) return;
      isCut = false;
      const mode = opts?.held ?? "drop";
      for (const exchange of [...exchanges]) exchange.release(mode);
    },
    reset() {
      if (closing) return;
      stats.resets += destroyClients();
      for (const exchange of [...exchanges]) exchange.kill("reset");
    },
    setLatency(ms: number, jitter = 0) {
      checkDelay("latency", ms);
      checkDelay("jitter", jitter);
      latencyMs = ms;
      jitterMs = jitter;
    },
    loseResponses(count: number | "all" = 1) {
      if (count === "all" || losses === "all") losses = "all";
      else {
        if (!Number.isInteger(count) || count < 0)
          throw new RangeError('count must be an integer >= 0 or "all"');
        losses += count;
      }
    },
    deliverResponses() {
      losses = 0;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        isCut = false;
        for (const exchange of [...exchanges]) exchange.kill("closed");
        destroyClients();
        agent.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
