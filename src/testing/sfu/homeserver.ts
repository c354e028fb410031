/**
 * The token service's requests to the homeserver: OpenID userinfo (who sent a request), the delay and
 * room of a delayed event (as its owner), and `restart`/`send`. Shapes as lk-jwt-service sends them:
 * `POST …/org.matrix.msc4140/delayed_events/{id}/{restart|send}` with body `{}`, either with no token
 * (≤0.6) or with `Authorization: Bearer <as_token>` and `?user_id=<owner>` (≥0.7); the look-up is
 * `GET …/delayed_events/{id}?user_id=` (Synapse ≥1.161, `delay_ms` + `room_id`), and here, on servers
 * without it (404 M_UNRECOGNIZED / 405), the owner's listing. Every request is logged; none is retried
 * here (the job decides).
 */
import type { ServiceHomeserverRequest } from "./types.js";

const DELAYED = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events";

/** A restart/send answer: the status (0 = no answer) and, on 429, how long the server asked to wait. */
export interface ManageAnswer {
  status: number;
  retryAfterMs?: number;
}

export type LookupAnswer =
  | { kind: "found"; delayMs: number; roomId: string }
  | { kind: "not-found" }
  | { kind: "failed"; status: number };

export interface ServiceHomeserverConfig {
  /** The homeserver's client-server base URL, or undefined while the service has none. */
  baseUrl: () => string | undefined;
  asToken: string;
  timeoutMs: number;
  log: ServiceHomeserverRequest[];
}

type Json = Record<string, unknown>;

export class NoHomeserverError extends Error {
  public constructor() {
    super(
      "test token service: no homeserver to act on (startTestSfuAuth({ homeserverUrl }) or useHomeserver())",
    );
    this.name = "NoHomeserverError";
  }
}

function retryAfterMs(res: Response, body: Json | undefined): number | undefined {
  const header = res.headers.get("retry-after");
  if (header !== null && /^\d+$/.test(header.trim())) return Number(header) * 1000;
  const ms = body?.retry_after_ms;
  return typeof ms === "number" && ms >= 0 ? ms : undefined;
}

export class ServiceHomeserver {
  public constructor(private readonly config: ServiceHomeserverConfig) {}

  private base(): string {
    const url = this.config.baseUrl();
    if (!url) throw new NoHomeserverError();
    return url.replace(/\/+$/, "");
  }

  /** One request, bounded by the local timeout and `signal`; logged whatever happens. */
  private async call(
    entry: Omit<ServiceHomeserverRequest, "at" | "status" | "durationMs">,
    method: "GET" | "POST",
    path: string,
    signal?: AbortSignal,
  ): Promise<{ res?: Response; body?: Json }> {
    const url = `${this.base()}${path}`;
    const at = Date.now();
    const record: ServiceHomeserverRequest = { ...entry, at, status: 0, durationMs: 0 };
    this.config.log.push(record);
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (entry.auth === "appservice") headers.authorization = `Bearer ${this.config.asToken}`;
    const timeout = AbortSignal.timeout(this.config.timeoutMs);
    try {
      const res = await fetch(url, {
        method,
        headers,
        body: method === "POST" ? "{}" : undefined,
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      record.status = res.status;
      let body: Json | undefined;
      try {
        const parsed: unknown = await res.json();
        body = parsed !== null && typeof parsed === "object" ? (parsed as Json) : undefined;
      } catch {
        body = undefined;
      }
      return { res, body };
    } catch {
      return {};
    } finally {
      record.durationMs = Date.now() - at;
    }
  }

  private asUser(userId: string, extra = ""): string {
    return `?user_id=${encodeURIComponent(userId)}${extra}`;
  }

  /** The OpenID token's user (`sub`), or undefined when the homeserver does not vouch for it. */
  public async userInfo(openIdToken: string): Promise<string | undefined> {
    const { res, body } = await this.call(
      { action: "userinfo", auth: "none" },
      "GET",
      `/_matrix/federation/v1/openid/userinfo?access_token=${encodeURIComponent(openIdToken)}`,
    );
    if (res?.status !== 200 || typeof body?.sub !== "string") return undefined;
    const entry = this.config.log.at(-1);
    if (entry) entry.userId = body.sub;
    return body.sub;
  }

  /** The delay and room of `userId`'s pending delayed event `delayId`, asked as that user. */
  public async lookup(userId: string, delayId: string): Promise<LookupAnswer> {
    const entry = { action: "lookup", auth: "appservice", delayId, userId } as const;
    const one = await this.call(
      entry,
      "GET",
      `${DELAYED}/${encodeURIComponent(delayId)}${this.asUser(userId)}`,
    );
    const status = one.res?.status ?? 0;
    if (status === 200 && one.body) return found(one.body);
    const noSuchRoute = status === 405 || (status === 404 && one.body?.errcode === "M_UNRECOGNIZED");
    if (status === 404 && !noSuchRoute) return { kind: "not-found" };
    if (!noSuchRoute) return { kind: "failed", status };
    // Before Synapse 1.161: only the listing of the owner's pending events.
    const list = await this.call(entry, "GET", `${DELAYED}${this.asUser(userId)}`);
    if (list.res?.status !== 200) return { kind: "failed", status: list.res?.status ?? 0 };
    const events = Array.isArray(list.body?.delayed_events) ? (list.body.delayed_events as Json[]) : [];
    const row = events.find((e) => e.delay_id === delayId);
    return row ? found(row) : { kind: "not-found" };
  }

  /** `restart` or `send`, with no token (`asUser` undefined) or as `asUser` through the `as_token`. */
  public async manage(
    delayId: string,
    action: "restart" | "send",
    asUser: string | undefined,
    signal: AbortSignal,
  ): Promise<ManageAnswer> {
    const path = `${DELAYED}/${encodeURIComponent(delayId)}/${action}${asUser ? this.asUser(asUser) : ""}`;
    const { res, body } = await this.call(
      { action, auth: asUser ? "appservice" : "none", delayId, ...(asUser ? { userId: asUser } : {}) },
      "POST",
      path,
      signal,
    );
    if (!res) return { status: 0 };
    return res.status === 429
      ? { status: 429, retryAfterMs: retryAfterMs(res, body) }
      : { status: res.status };
  }
}

function found(row: Json): LookupAnswer {
  // ≥1.161 names it delay_ms; earlier listings delay.
  const delayMs = Number(row.delay_ms ?? row.delay);
  const roomId = typeof row.room_id === "string" ? row.room_id : "";
  return Number.isFinite(delayMs) ? { kind: "found", delayMs, roomId } : { kind: "failed", status: 200 };
}
