/**
 * The HTTP side: a node:http server on loopback, per-request pipeline (route → fault → body → handler →
 * JSON response), the request log, and a stop/listen pair that a simulated restart uses. Nothing here
 * knows Matrix semantics beyond turning errors into Matrix error bodies.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import log from "loglevel";
import { peekAppServiceUser } from "./appservices.js";
import type { HomeserverCore } from "./core.js";
import { MatrixHttpError, tooLarge, unrecognized } from "./errors.js";
import type { RequestContext, Router } from "./router.js";
import type { RouteId } from "./routes.js";
import { extractAccessToken } from "./users.js";

/**
 * One HTTP request as the server saw it (no body, no token), so tests can assert on what clients
 * actually sent rather than on what they report.
 */
export interface RequestLogEntry {
  /** Server clock time when the request arrived. */
  ts: number;
  /** HTTP method as received. */
  method: string;
  /** Path without query (so no `access_token`), delay ids replaced by `{delayId}` (they are bearer capabilities). */
  path: string;
  /** The matched route; `options` for a CORS preflight, `unknown` when no route matched. */
  route: RouteId;
  /** HTTP status sent, or 0 when no response was sent (drop / hang / process-then-drop). */
  status: number;
  /** The requester's user id when the request carried a valid access token (or an `as_token`: the asserted user). */
  userId?: string;
  /** Set when an injected fault decided the outcome. */
  fault?: "respond" | "hang" | "drop" | "process-then-drop" | "delay";
}

/**
 * Synapse's `set_cors_headers` (1.116–1.163.2), on every answer: any origin, so an iframe or a web app on
 * another port can call the client API. A browser script therefore cannot read `Retry-After` from Synapse
 * either (it reads `retry_after_ms` from the body).
 */
const CORS_HEADERS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
  "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization, Date",
  "Access-Control-Expose-Headers": "Synapse-Trace-Id, Server",
};

const logger = log.getLogger("matrixrtc-membership:test-homeserver");

const redactPath = (path: string): string => path.replace(/(\/delayed_events\/)[^/]+/, "$1{delayId}");

type BodyResult = { kind: "ok"; body: Buffer } | { kind: "too-large" } | { kind: "aborted" };

/** Buffers the body up to `max` bytes; beyond that it keeps draining (so the 413 can be read) but stores nothing. */
function readBody(req: IncomingMessage, max: number): Promise<BodyResult> {
  return new Promise((resolve) => {
    const declared = Number(req.headers["content-length"] ?? "0");
    if (declared > max) {
      req.resume();
      resolve({ kind: "too-large" });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) tooBig = true;
      else chunks.push(chunk);
    });
    req.on("end", () =>
      resolve(tooBig ? { kind: "too-large" } : { kind: "ok", body: Buffer.concat(chunks) }),
    );
    req.on("error", () => resolve({ kind: "aborted" }));
    req.on("aborted", () => resolve({ kind: "aborted" }));
  });
}

function writeJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  if (status === 204) {
    // A preflight's answer: no body at all (a JSON "{}" would be invalid after 204).
    res.writeHead(204, { "Content-Length": 0, ...CORS_HEADERS, ...headers });
    res.end();
    return;
  }
  const data = JSON.stringify(body);
  res.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(data),
    "Cache-Control": "no-cache, no-store, must-revalidate",
    ...CORS_HEADERS,
    ...headers,
  });
  res.end(data);
}

export class HttpFrontend {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  public readonly requests: RequestLogEntry[] = [];
  public port = 0;

  public constructor(
    private readonly core: HomeserverCore,
    private readonly router: Router<RouteId>,
  ) {}

  public listen(host: string, port: number): Promise<number> {
    const server = createServer((req, res) => {
      // A bug in the pipeline must cost one request, never the process (or the test run).
      this.handle(req, res).catch((error: unknown) => {
        logger.debug("test homeserver: request pipeline failed: %s", String(error));
        res.destroy();
      });
    });
    server.keepAliveTimeout = 30_000;
    server.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        this.port = (server.address() as AddressInfo).port;
        resolve(this.port);
      });
    });
  }

  /** Stops listening and drops every connection, mid-request ones included (what a crash looks like). */
  public stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return Promise.resolve();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    this.core.notifier.releaseAll();
    return closed;
  }

  private record(entry: RequestLogEntry): void {
    this.requests.push(entry);
    const limit = this.core.options.requestLogLimit;
    // Trim in batches so a full log does not cost an O(n) shift per request.
    if (this.requests.length > limit + 1000) this.requests.splice(0, this.requests.length - limit);
  }

  /**
   * Wait `delayMs` before an answer (a `delayMs` fault): true when the connection was destroyed meanwhile
   * (the server closed), false when the answer may go (the time passed, or the fault was removed).
   */
  private holdAnswer(faultId: string, delayMs: number, req: IncomingMessage): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let done = false;
      const finish = (closed: boolean) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        unregister();
        req.socket.off("close", onClose);
        resolve(closed);
      };
      const onClose = () => finish(true);
      const timer = setTimeout(() => finish(false), Math.min(Math.max(0, delayMs), 2 ** 31 - 1));
      // Released by remove()/clear(): answer now. The server's close() destroys the socket first.
      const unregister = this.core.faults.hang(faultId, () => finish(req.socket.destroyed));
      req.socket.once("close", onClose);
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.on("error", () => undefined);
    const method = req.method ?? "GET";
    // Origin-form only ("/path?query"); "//host/x" must stay a path and absolute-form must not parse as a host.
    const target = req.url ?? "/";
    const url = new URL(
      target.startsWith("/") ? `http://localhost${target}` : "http://localhost/invalid-request-target",
    );
    const path = url.pathname;
    const query = url.searchParams;
    const accessToken = extractAccessToken(req.headers.authorization, query);
    const userId =
      this.core.users.peek(accessToken)?.userId ?? peekAppServiceUser(this.core, accessToken, query);
    const match = method === "OPTIONS" ? undefined : this.router.match(method, path, query);
    const route: RouteId = method === "OPTIONS" ? "options" : match?.kind === "route" ? match.id : "unknown";
    const entry: RequestLogEntry = { ts: this.core.now(), method, path: redactPath(path), route, status: 0 };
    if (userId !== undefined) entry.userId = userId;
    this.record(entry);

    const fault = this.core.faults.take({ route, method, path, userId });
    if (fault?.respond === "drop") {
      entry.fault = "drop";
      req.socket.destroy();
      return;
    }
    if (fault?.respond === "hang") {
      entry.fault = "hang";
      const unregister = this.core.faults.hang(fault.id, () => req.socket.destroy());
      req.socket.once("close", unregister);
      req.resume();
      return;
    }

    const body = await readBody(req, this.core.options.maxBodyBytes);
    if (body.kind === "aborted") return;
    const send = (status: number, payload: unknown, headers?: Record<string, string>): void => {
      entry.status = status;
      writeJson(res, status, payload, headers);
    };
    // An injected answer (`status`), or a late one (`delayMs`, after processing).
    const injected =
      fault && typeof fault.respond === "object" && "status" in fault.respond ? fault.respond : undefined;
    const delayMs =
      fault && typeof fault.respond === "object" && "delayMs" in fault.respond
        ? fault.respond.delayMs
        : undefined;
    if (injected && !injected.process) {
      entry.fault = "respond";
      const payload =
        injected.body !== undefined ? injected.body : { errcode: "M_UNKNOWN", error: "Injected fault" };
      send(injected.status, payload, injected.headers);
      return;
    }
    if (body.kind === "too-large") {
      const error = tooLarge();
      send(error.status, error.body(), { Connection: "close" });
      return;
    }

    let status: number;
    let payload: unknown;
    let headers: Record<string, string> | undefined;
    if (method === "OPTIONS") {
      // CORS preflight for browser clients (the demo, a widget iframe): Synapse answers any path with an
      // empty 204 and the CORS headers.
      [status, payload] = [204, undefined];
    } else {
      try {
        if (!match || match.kind !== "route") throw unrecognized(match?.kind === "bad-method" ? 405 : 404);
        const abort = new AbortController();
        res.on("close", () => abort.abort());
        const ctx: RequestContext = {
          method,
          params: match.params,
          path,
          query,
          headers: req.headers,
          ip: req.socket.remoteAddress ?? "unknown",
          accessToken,
          rawBody: body.body,
          signal: abort.signal,
        };
        const result = await match.def.handler(ctx, match.id);
        [status, payload, headers] = [result.status ?? 200, result.body, result.headers];
      } catch (error) {
        if (error instanceof MatrixHttpError) {
          [status, payload, headers] = [error.status, error.body(), error.headers];
        } else {
          // A bug in this server, not a client error: keep serving, leave a trace for whoever debugs.
          logger.debug("test homeserver: handler failed on %s %s: %s", method, route, String(error));
          [status, payload] = [500, { errcode: "M_UNKNOWN", error: "Internal server error" }];
        }
      }
    }
    if (fault?.respond === "process-then-drop") {
      // The work is done (state changed, timer restarted...) but the client never hears about it.
      entry.fault = "process-then-drop";
      req.socket.destroy();
      return;
    }
    if (injected) {
      // process: true: the work is done, the answer is the injected one.
      entry.fault = "respond";
      send(injected.status, injected.body !== undefined ? injected.body : payload, injected.headers);
      return;
    }
    if (fault && delayMs !== undefined) {
      // The work is done; the answer waits (bounded by the fault: removing it sends the answer now).
      entry.fault = "delay";
      const closed = await this.holdAnswer(fault.id, delayMs, req);
      if (closed) return;
    }
    send(status, payload, headers);
  }
}
