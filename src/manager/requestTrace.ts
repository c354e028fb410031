/**
 * The manager's opt-in request trace (`trace` option): one line when a request goes out, one when its
 * answer (or our local timeout) comes back, for an app or a test that wants to see what happened without
 * debug logging. Every line is redacted: access tokens never appear, and delay ids (bearer capabilities
 * under MSC4140: whoever knows one can send or cancel our leave) are replaced by a stable name, "leave#2",
 * so a reader can still follow one delayed leave from its schedule to its send.
 */
import type { Request } from "../core/machine/types.js";
import { httpFacts, LocalTimeoutError } from "../errors.js";
import { redactText } from "../log/redact.js";
import { isLeftContent } from "../membership/content.js";

/** Receives one trace line per request sent and per answer (see `MembershipManagerOptions.trace`). */
export type RequestTraceSink = (line: string) => void;

/** Delay ids named so far; the oldest names are forgotten past this many (a long call has one a rejoin). */
const MAX_NAMES = 64;

interface Open {
  what: string;
  sentAt: number;
}

export class RequestTrace {
  private readonly open = new Map<number, Open>();
  private readonly names = new Map<string, string>();
  private counter = 0;

  constructor(
    private readonly sink: RequestTraceSink,
    private readonly now: () => number,
  ) {}

  /** A request goes out, with the local timeout it gets. */
  sent(reqId: number, request: Request, timeoutMs: number): void {
    const what = this.describe(request);
    this.open.set(reqId, { what, sentAt: this.now() });
    const detail = request.kind === "schedule" ? `delay ${request.delayMs} ms, ` : "";
    this.emit(`→ #${reqId} ${what} (${detail}timeout ${timeoutMs} ms)`);
  }

  /** Our local timeout fired first. `waitsOn`: the answer still counts when it comes (a schedule). */
  timedOut(reqId: number, timeoutMs: number, waitsOn: boolean): void {
    const entry = this.open.get(reqId);
    if (!entry) return;
    if (!waitsOn) this.open.delete(reqId);
    const still = waitsOn ? "; still listening for its answer" : "";
    this.emit(`← #${reqId} ${entry.what} failed: no answer within ${timeoutMs} ms (local timeout)${still}`);
  }

  /** We gave up on a request (a leave overtook it, dispose). */
  aborted(reqId: number): void {
    const entry = this.open.get(reqId);
    if (!entry) return;
    this.open.delete(reqId);
    this.emit(`← #${reqId} ${entry.what} aborted after ${this.now() - entry.sentAt} ms`);
  }

  /** The backend answered: a value, or an error. `late`: after our local timeout. */
  answered(reqId: number, ok: boolean, valueOrError: unknown, late: boolean): void {
    const entry = this.open.get(reqId);
    if (!entry) return;
    this.open.delete(reqId);
    const took = `${this.now() - entry.sentAt} ms`;
    const when = late ? ", after we stopped waiting" : "";
    if (ok) {
      const delayId = entry.what.startsWith("schedule") ? this.delayIdOf(valueOrError) : undefined;
      const named = delayId ? `: ${this.nameOf(delayId)}` : "";
      this.emit(`← #${reqId} ${entry.what} ok in ${took}${when}${named}`);
    } else {
      this.emit(`← #${reqId} ${entry.what} failed in ${took}${when}: ${this.errorText(valueOrError)}`);
    }
  }

  private describe(request: Request): string {
    switch (request.kind) {
      case "schedule":
        return request.sticky ? "schedule the delayed leave (sticky)" : "schedule the delayed leave";
      case "delayed":
        return `${request.action} ${this.nameOf(request.delayId)}`;
      case "write":
        if (request.sticky)
          return isLeftContent(request.content)
            ? "write the leave (sticky)"
            : "write the membership (sticky)";
        return Object.keys(request.content).length === 0 ? "write the leave ({})" : "write the membership";
      case "list":
        return "list our delayed events";
      case "lookup":
        return `look up ${this.nameOf(request.delayId)}`;
      case "read":
        return request.eventId ? "read our membership event" : "read our membership";
      case "read-room-membership":
        return "read our room membership";
      case "probe":
        return "probe the server's support";
      case "delegate":
        return `delegate ${this.nameOf(request.delayId)} (MSC4195)`;
    }
  }

  private errorText(error: unknown): string {
    if (error instanceof LocalTimeoutError) return "no answer in time (local timeout)";
    const facts = httpFacts(error);
    const text = facts.status
      ? `${facts.status} ${facts.errcode ?? ""}`.trim()
      : facts.message.replace(/^(.+): \1$/, "$1").slice(0, 200);
    return text;
  }

  private delayIdOf(value: unknown): string | undefined {
    if (typeof value === "string") return value;
    if (typeof value === "object" && value !== null) {
      const id = (value as Record<string, unknown>).delay_id ?? (value as Record<string, unknown>).delayId;
      if (typeof id === "string") return id;
    }
    return undefined;
  }

  /** "leave#N": the same delay id always gets the same name (while remembered). */
  private nameOf(delayId: string): string {
    let name = this.names.get(delayId);
    if (!name) {
      name = `leave#${++this.counter}`;
      this.names.set(delayId, name);
      if (this.names.size > MAX_NAMES) this.names.delete(this.names.keys().next().value!);
    }
    return name;
  }

  private emit(line: string): void {
    // Delay ids are named above; this catches one inside an error message, and every access token.
    try {
      this.sink(redactText(line));
    } catch {
      // The app's sink failing must not take the manager down.
    }
  }
}
