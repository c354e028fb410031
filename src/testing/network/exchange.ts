// One request's trip through the link, as a small state machine. The link's faults are decided at the
// phase boundaries below, which is what makes them exact: a cut holds whatever reaches a boundary,
// latency is a timer between boundaries, and a lost response is decided when the answer is about to be
// delivered, after the target has fully answered.
//
//   receiving -> request-latency -> [held-request] -> upstream -> response-latency -> [held-response] -> done
//
// Once fully received, a request is "on the wire": if the client goes away meanwhile (while it waits out
// latency, or is held by a cut) it still reaches the target, as retransmitted bytes would, and the answer
// is discarded. Only a client that goes away while its request is at the target and the link is up
// propagates that close to the target (the server would see the connection drop).

import http from "node:http";
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";

import { requestHeaders, responseHeaders } from "./headers.js";
import type { RequestFate } from "./types.js";

/** What an exchange needs from its link: the live fault settings and the shared counters. */
export interface ExchangeHost {
  readonly isCut: boolean;
  readonly target: URL;
  readonly agent: http.Agent;
  readonly stats: { forwarded: number; held: number; dropped: number; lostResponses: number };
  /** Consume one armed response loss, if any. */
  takeLoss(): boolean;
  /** The exchange is over; forget it. */
  done(exchange: Exchange): void;
}

/** Mutable twin of the public LinkLogEntry; the exchange keeps it current. */
export interface ExchangeLogEntry {
  readonly ts: number;
  readonly method: string;
  readonly path: string;
  fate: RequestFate;
  wasHeld: boolean;
  upstreamStatus?: number;
}

type Phase =
  | "receiving"
  | "request-latency"
  | "held-request"
  | "upstream"
  | "response-latency"
  | "held-response"
  | "done";

interface Answer {
  status: number;
  statusMessage: string;
  headers: OutgoingHttpHeaders;
  body: Buffer;
}

const ignore = (): void => {};

export class Exchange {
  private phase: Phase = "receiving";
  private timer: NodeJS.Timeout | undefined;
  private readonly requestChunks: Buffer[] = [];
  private upstream: http.ClientRequest | undefined;
  /** The target's answer, or "failed" if the target could not be reached or broke off. */
  private answer: Answer | "failed" | undefined;
  private clientGone = false;

  public constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly entry: ExchangeLogEntry,
    private readonly host: ExchangeHost,
    private readonly delays: { request: number; response: number },
  ) {
    req.on("error", ignore);
    res.on("error", ignore);
    // "close" on the response also fires after a normal finish; onClientClose ignores that case.
    res.on("close", () => this.onClientClose());
    req.on("data", (chunk: Buffer) => this.requestChunks.push(chunk));
    req.on("end", () => this.afterReceived());
  }

  public get isHeld(): boolean {
    return this.phase === "held-request" || this.phase === "held-response";
  }

  /** The cut is over: forward / deliver what was held, or reset the client as after a long outage. */
  public release(mode: "drop" | "deliver"): void {
    if (!this.isHeld) return;
    if (mode === "drop") {
      this.resetClient();
      this.host.stats.dropped++;
      this.finish("dropped");
    } else if (this.phase === "held-request") {
      this.forward();
    } else {
      this.tryDeliver();
    }
  }

  /** End the exchange at once (reset() / close()): abort the target's request, reset the client. */
  public kill(fate: "reset" | "closed"): void {
    if (this.phase === "done") return;
    this.upstream?.destroy();
    this.resetClient();
    this.finish(fate);
  }

  private afterReceived(): void {
    if (this.phase !== "receiving") return;
    this.phase = "request-latency";
    this.after(this.delays.request, () => this.tryForward());
  }

  private tryForward(): void {
    if (this.host.isCut) this.hold("held-request");
    else this.forward();
  }

  private forward(): void {
    this.phase = "upstream";
    this.entry.fate = "pending";
    this.host.stats.forwarded++;
    const body = Buffer.concat(this.requestChunks);
    this.requestChunks.length = 0;
    const { target, agent } = this.host;
    const prefix = target.pathname.replace(/\/+$/, "");
    const upstream = http.request({
      agent,
      hostname: target.hostname,
      port: target.port,
      method: this.req.method,
      path: prefix + (this.req.url ?? "/"),
      headers: requestHeaders(this.req.headers, body.length, target.host),
    });
    this.upstream = upstream;
    upstream.on("error", () => this.upstreamFailed());
    upstream.on("response", (upRes) => {
      const chunks: Buffer[] = [];
      upRes.on("data", (chunk: Buffer) => chunks.push(chunk));
      upRes.on("error", () => this.upstreamFailed());
      upRes.on("close", () => {
        if (!upRes.complete) this.upstreamFailed();
      });
      upRes.on("end", () => {
        const status = upRes.statusCode ?? 502;
        const bodyBytes = Buffer.concat(chunks);
        const bodiless = this.req.method === "HEAD" || status === 204 || status === 304;
        this.gotAnswer({
          status,
          statusMessage: upRes.statusMessage ?? "",
          headers: responseHeaders(upRes.headers, bodyBytes.length, bodiless),
          body: bodyBytes,
        });
      });
    });
    upstream.end(body.length > 0 ? body : undefined);
  }

  private gotAnswer(answer: Answer): void {
    if (this.phase !== "upstream") return;
    this.entry.upstreamStatus = answer.status;
    this.answer = answer;
    this.phase = "response-latency";
    this.after(this.delays.response, () => this.tryDeliver());
  }

  private upstreamFailed(): void {
    if (this.phase !== "upstream") return;
    // The failure reaches the client like an answer would: not during a cut.
    this.answer = "failed";
    this.tryDeliver();
  }

  private tryDeliver(): void {
    const answer = this.answer;
    if (this.clientGone) return this.finish(answer === "failed" ? "error" : "aborted");
    if (this.host.isCut) return this.hold("held-response");
    if (answer === "failed" || answer === undefined) {
      this.resetClient();
      return this.finish("error");
    }
    if (this.host.takeLoss()) {
      this.resetClient();
      this.host.stats.lostResponses++;
      return this.finish("lost-response");
    }
    this.res.writeHead(answer.status, answer.statusMessage, answer.headers);
    this.res.end(answer.body);
    this.finish("ok");
  }

  private onClientClose(): void {
    if (this.phase === "done") return;
    this.clientGone = true;
    if (this.phase === "receiving") {
      this.finish("aborted");
    } else if (this.phase === "upstream" && !this.host.isCut) {
      this.upstream?.destroy();
      this.finish("aborted");
    }
    // Otherwise the request is on the wire: it carries on and its answer is discarded in tryDeliver.
  }

  private hold(phase: "held-request" | "held-response"): void {
    this.phase = phase;
    this.entry.fate = "held";
    if (!this.entry.wasHeld) {
      this.entry.wasHeld = true;
      this.host.stats.held++;
    }
  }

  private after(ms: number, fn: () => void): void {
    if (ms <= 0) return fn();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      fn();
    }, ms);
  }

  /** RST rather than FIN: the client sees ECONNRESET, as when a middlebox gives up on the connection. */
  private resetClient(): void {
    const socket = this.req.socket;
    if (!socket.destroyed) socket.resetAndDestroy();
  }

  private finish(fate: RequestFate): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.phase = "done";
    this.entry.fate = fate;
    this.host.done(this);
  }
}
