/**
 * A stand-in for the LiveKit token service (lk-jwt-service) a MatrixRTC call widget asks for its SFU
 * access before it writes its membership: `POST /sfu/get` (legacy) and `POST /get_token` (Matrix 2.0)
 * answer `{ url, jwt }`. It runs no SFU: `url` points at nothing that answers, the JWT is unsigned, and
 * the test plays the SFU (`connected()` / `disconnected()`). CORS on every route (a widget calls it from
 * its iframe). Every request but CORS preflights is recorded.
 *
 * With `delegation`, it also holds delegated delayed leaves (MSC4195), taken in any of the shapes
 * clients send (see sfu/requests.ts) and kept as sfu/job.ts says; without it, every delegation
 * endpoint answers 404 and clients keep their own delayed leave. With `homeserverUrl`, OpenID tokens
 * are checked at the homeserver. As an application service (`appServiceRegistration()` on the
 * homeserver, whose MSC4512 proxy then forwards `/_matrix/client/…/rtc/livekit/…` here) it acts as
 * the users for their delayed events.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import log from "loglevel";
import type { AppServiceRegistration } from "./homeserver/appservices.js";
import { appServiceRegistrationFor, resolveAppService } from "./sfu/appService.js";
import { DelegationService, resolveDelegationOptions } from "./sfu/delegation.js";
import { route, type Answer, type RouteContext } from "./sfu/handlers.js";
import { ServiceHomeserver } from "./sfu/homeserver.js";
import type {
  DelegationOptions,
  DelegationRecord,
  RefusalAnswer,
  ServiceHomeserverRequest,
  SfuAppServiceOptions,
  SfuParticipant,
} from "./sfu/types.js";

/** One request the service answered (CORS preflights are not recorded). */
export interface SfuAuthRequest {
  /** The HTTP method, e.g. `POST`. */
  method: string;
  /** e.g. `/sfu/get` */
  path: string;
  /** The parsed JSON body (undefined when there was none or it was not JSON). */
  body: unknown;
  /** Date.now() when it arrived. */
  at: number;
  /** The HTTP status answered; 0 while unanswered (and for ever, if it arrived while `stopAnswering()`). */
  status: number;
  /** `X-Matrix-User-Identifier`, on a request the homeserver proxied (MSC4512). */
  userIdentifier?: string;
  /** Which bearer token it carried: the registration's `hs_token`, or another one (never the token). */
  authorization?: "hs_token" | "other";
}

/** A running test token service, from `startTestSfuAuth()`. */
export interface TestSfuAuth {
  /** The `livekit_service_url` to advertise (and the MSC4512 `proxy_url`), e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  /** The LiveKit URL handed out; a homeserver-shape delegation must name it as `url`. */
  readonly livekitUrl: string;
  /** What it was asked, in order. */
  readonly requests: readonly SfuAuthRequest[];
  /** Whether the delegation duty is on (`delegation` option). */
  readonly delegationEnabled: boolean;
  /** The homeserver it checks OpenID tokens at and manages delayed events on, if any. */
  readonly homeserverUrl: string | undefined;
  /** Points the service at a homeserver (e.g. a Synapse started after it, with its registration). */
  useHomeserver(baseUrl: string): void;
  /** Its application service identity (tokens generated at start unless given). */
  readonly appService: Readonly<Required<SfuAppServiceOptions>>;
  /**
   * The registration a homeserver needs for the MSC4512 proxy and identity assertion:
   * `startTestHomeserver({ appServices: [r], msc4512Enabled: true })` or
   * `startSynapse({ appServices: [r], extraConfig: { experimental_features: { msc4512_enabled: true } } })`.
   */
  appServiceRegistration(): AppServiceRegistration;
  /** Plays the SFU: the participant is connected; matching delegations keep their leave alive. */
  connected(participant: SfuParticipant): void;
  /** Plays the SFU: the participant is gone; matching delegations send their leave now. */
  disconnected(participant: SfuParticipant): void;
  /** The delegations held now (with `includeEnded`, the last 1000 ended ones first). */
  delegations(options?: { includeEnded?: boolean }): DelegationRecord[];
  /** Every request the service made to the homeserver (restarts, sends, look-ups, OpenID checks), in order. */
  readonly homeserverRequests: readonly ServiceHomeserverRequest[];
  /**
   * A dying service: requests get no answer (held until `resume()`, which drops their connections) and
   * delegations do nothing (no restart, no send) until `resume()`.
   */
  stopAnswering(): void;
  /** Answers again; delegations carry on (a connected one restarts at once, a 404 then ends it). */
  resume(): void;
  /**
   * Refuses every delegation request, Element Call's probe included, with `answer` (default 400
   * M_INVALID_PARAM; `{ status: 404 }` looks like no delegation at all) until `refuse(false)`.
   */
  refuse(answer?: RefusalAnswer | false): void;
  /** Stops listening, drops open connections and ends every delegation without another request. */
  close(): Promise<void>;
}

/** Options of `startTestSfuAuth()`; all optional. */
export interface TestSfuAuthOptions {
  /** The LiveKit URL handed out. Default: this server's own `ws://` address (no SFU answers there). */
  livekitUrl?: string;
  /** Listen address. Default 127.0.0.1, port 0 (any free port). */
  host?: string;
  /** Listen port. Default 0 (any free port; read the chosen one from `url`). */
  port?: number;
  /**
   * The homeserver's client-server base URL: OpenID tokens are checked at its federation userinfo
   * endpoint and delegated delayed leaves managed there. Can also be set later (`useHomeserver`).
   */
  homeserverUrl?: string;
  /** Turns the delegation duty on (MSC4195) with these settings; left out or false: every delegation endpoint is 404. */
  delegation?: DelegationOptions | false;
  /** Its application service identity. */
  appService?: SfuAppServiceOptions;
}

const CORS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
  "Access-Control-Allow-Headers": "*",
};

const logger = log.getLogger("matrixrtc-membership:test-sfu-auth");

/** Start the test token service on 127.0.0.1. */
export async function startTestSfuAuth(options: TestSfuAuthOptions = {}): Promise<TestSfuAuth> {
  const requests: SfuAuthRequest[] = [];
  const homeserverRequests: ServiceHomeserverRequest[] = [];
  const appService = resolveAppService(options.appService);
  let homeserverUrl = options.homeserverUrl;
  let livekitUrl = options.livekitUrl ?? "";
  let refusal: RefusalAnswer | undefined;
  let answering = true;
  const held = new Set<ServerResponse>();

  const delegationOptions = options.delegation ? resolveDelegationOptions(options.delegation) : undefined;
  const homeserver = new ServiceHomeserver({
    baseUrl: () => homeserverUrl,
    asToken: appService.asToken,
    timeoutMs: delegationOptions?.requestTimeoutMs ?? 5000,
    log: homeserverRequests,
  });
  const delegation = delegationOptions ? new DelegationService(delegationOptions, homeserver) : undefined;

  const context: RouteContext = {
    get livekitUrl() {
      return livekitUrl;
    },
    delegation,
    refusal: () => refusal,
    homeserver,
    hasHomeserver: () => homeserverUrl !== undefined,
    hsToken: appService.hsToken,
  };

  const send = (res: ServerResponse, entry: SfuAuthRequest, answer: Answer): void => {
    entry.status = answer.status;
    if (res.destroyed) return;
    res
      .writeHead(answer.status, { ...CORS, "content-type": "application/json" })
      .end(JSON.stringify(answer.body));
  };

  const handle = (req: IncomingMessage, res: ServerResponse, raw: string): void => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const method = req.method ?? "GET";
    if (method === "OPTIONS") {
      res.writeHead(204, CORS).end();
      return;
    }
    let body: unknown;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      body = undefined;
    }
    const entry: SfuAuthRequest = { method, path, body, at: Date.now(), status: 0 };
    const userIdentifier = req.headers["x-matrix-user-identifier"];
    if (typeof userIdentifier === "string") entry.userIdentifier = userIdentifier;
    if (req.headers.authorization) {
      entry.authorization =
        req.headers.authorization === `Bearer ${appService.hsToken}` ? "hs_token" : "other";
    }
    requests.push(entry);
    if (!answering) {
      held.add(res);
      res.on("close", () => held.delete(res));
      return;
    }
    route(context, method, path, req.headers, raw)
      .then((answer) => send(res, entry, answer))
      .catch((error: unknown) => {
        logger.debug("test token service: request failed: %s", String(error));
        send(res, entry, { status: 500, body: { errcode: "M_UNKNOWN", error: "Internal server error" } });
      });
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handle(req, res, Buffer.concat(chunks).toString("utf8")));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  const url = `http://${address}:${port}`;
  if (!livekitUrl) livekitUrl = `ws://${address}:${port}/livekit`;
  let closed = false;

  return {
    url,
    get livekitUrl() {
      return livekitUrl;
    },
    requests,
    delegationEnabled: delegation !== undefined,
    get homeserverUrl() {
      return homeserverUrl;
    },
    useHomeserver(baseUrl) {
      homeserverUrl = baseUrl;
    },
    appService,
    appServiceRegistration: () => appServiceRegistrationFor(appService, url),
    connected(participant) {
      delegation?.connected(participant);
    },
    disconnected(participant) {
      delegation?.disconnected(participant);
    },
    delegations: (opts = {}) => delegation?.records(opts.includeEnded ?? false) ?? [],
    homeserverRequests,
    stopAnswering() {
      answering = false;
      delegation?.pause();
    },
    resume() {
      if (answering) return;
      answering = true;
      // What a restarted service does to connections it never answered.
      for (const res of held) res.socket?.destroy();
      held.clear();
      delegation?.resume();
    },
    refuse(answer = {}) {
      refusal = answer === false ? undefined : answer;
    },
    close: () => {
      if (!closed) {
        closed = true;
        delegation?.close();
      }
      return new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
}
