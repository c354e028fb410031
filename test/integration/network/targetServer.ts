// A tiny node:http target for the FaultyLink tests, so they do not depend on the test homeserver.
// It records what it saw (never the token) and can answer slowly or in chunks.

import http from "node:http";

export interface Seen {
  method: string;
  path: string;
  ts: number;
}

export interface TargetServer {
  url: string;
  /** Requests whose handling completed (the target "processed" them), in order. */
  seen: Seen[];
  /** Requests that arrived (a slow request arrives before it is processed). */
  arrived: Seen[];
  close(): Promise<void>;
}

/** What the tests ask for. Anything else is a stranger (see below) and is neither answered nor recorded. */
const ROUTES = new Set(["/echo", "/empty", "/count", "/slow", "/chunked"]);

export async function startTargetServer(): Promise<TargetServer> {
  const seen: Seen[] = [];
  const arrived: Seen[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://target");
    // A port the OS hands out may have served a homeserver of an earlier test file a moment ago, and a
    // client of that file may still be talking to it (matrix-js-sdk retries a MatrixRTC leave for
    // seconds): its requests must not count as this test's.
    if (!ROUTES.has(url.pathname)) return void res.writeHead(404).end();
    const record: Seen = { method: req.method ?? "", path: url.pathname, ts: Date.now() };
    arrived.push(record);
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString();
      const json = (value: unknown): void => {
        seen.push(record);
        res.writeHead(200, { "content-type": "application/json", "x-target": "yes" });
        res.end(JSON.stringify(value));
      };
      switch (url.pathname) {
        case "/echo":
          return json({ method: req.method, url: req.url, headers: req.headers, body });
        case "/empty":
          seen.push(record);
          return void res.writeHead(204).end();
        case "/count":
          return json({ count: seen.length + 1 });
        case "/slow": {
          const ms = Number(url.searchParams.get("ms") ?? "100");
          return later(ms, () => json({ waited: ms }));
        }
        case "/chunked": {
          seen.push(record);
          res.writeHead(200, { "content-type": "text/plain" }); // no length: chunked
          res.write("one,");
          later(20, () => {
            res.write("two,");
            later(20, () => res.end("three"));
          });
          return;
        }
        default:
          res.writeHead(404).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    seen,
    arrived,
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
