/**
 * Server-side fault injection (issue 5): make chosen routes answer an error, hang, drop the connection,
 * process the request and then lose the response, or answer late. Matched in the order they were added.
 */
import type { RouteId } from "./routes.js";

/**
 * What a matching request gets: an injected answer; `hang` (no answer until the fault is removed or the
 * server closes, then the connection is destroyed); `drop` (connection destroyed before processing); or
 * `process-then-drop` (processed as usual, then the connection destroyed without an answer); or
 * `{ delayMs }` (processed as usual, answered that much later).
 */
export type FaultResponse =
  | {
      /** HTTP status to answer with. */
      status: number;
      /** Any JSON value: tests of malformed answers send `{delay_id: 5}`, `null`, a string... */
      body?: unknown;
      /** Extra response headers (e.g. `Retry-After`), over the server's defaults. */
      headers?: Record<string, string>;
      /**
       * Process the request as usual (state written, delayed event scheduled...) and then answer with
       * this instead of the real answer: a broken server or proxy whose work is done but whose answer
       * is wrong. Default false: answer without processing.
       */
      process?: boolean;
    }
  | {
      /**
       * Process the request as usual, then hold its answer this long (ms) before sending it: a slow
       * server or proxy on chosen routes (a `/sync` long-poll's answer comes this much after the change it
       * carries). Removing the fault (or `clear()`) sends the held answers at once; closing the server
       * destroys their connections.
       */
      delayMs: number;
    }
  | "hang"
  | "drop"
  | "process-then-drop";

/** A fault to arm with `ServerFaults.add`: which requests it matches and what they get. */
export interface FaultSpec {
  /** A route id, or a pattern tested against the request path (without query). */
  route: RouteId | RegExp;
  /** Only requests with this HTTP method (case-insensitive); any method when omitted. */
  method?: string;
  /** How many matching requests it applies to; unlimited when omitted. */
  times?: number;
  /** Only requests authenticated as this user. */
  userId?: string;
  /** What the matching requests get. */
  respond: FaultResponse;
}

/**
 * Fault injection on a running server (`TestHomeserver.faults`). Each request is decided by the first
 * armed fault that matches it, in the order they were added; requests no fault matches are served normally.
 */
export interface ServerFaults {
  /** Arms a fault; returns its id for `remove`. */
  add(spec: FaultSpec): string;
  /** Disarms a fault and destroys the connections of the requests it left hanging. */
  remove(id: string): void;
  /** Disarms every fault and destroys the connections of all hung requests. */
  clear(): void;
  /** Faults still armed (a fault with `times` is disarmed once used up). */
  list(): (FaultSpec & {
    /** The id `add` returned. */
    id: string;
  })[];
}

interface ArmedFault extends FaultSpec {
  id: string;
  remaining: number;
}

export interface FaultMatchInput {
  route: RouteId;
  method: string;
  path: string;
  userId?: string;
}

/** Holds the armed faults and the requests left hanging, which are released (sockets destroyed) on removal. */
export class FaultRegistry implements ServerFaults {
  private readonly faults: ArmedFault[] = [];
  private readonly hanging = new Map<string, Set<() => void>>();
  private nextId = 1;

  public add(spec: FaultSpec): string {
    const id = `fault-${this.nextId++}`;
    this.faults.push({ ...spec, id, remaining: spec.times ?? Infinity });
    return id;
  }

  public remove(id: string): void {
    const index = this.faults.findIndex((f) => f.id === id);
    if (index !== -1) this.faults.splice(index, 1);
    this.release(id);
  }

  public clear(): void {
    this.faults.length = 0;
    for (const id of [...this.hanging.keys()]) this.release(id);
  }

  public list(): (FaultSpec & { id: string })[] {
    return this.faults.map(({ remaining: _remaining, ...spec }) => spec);
  }

  /** The first armed fault matching the request (consuming one of its `times`), if any. */
  public take(input: FaultMatchInput): ArmedFault | undefined {
    const fault = this.faults.find(
      (f) =>
        (typeof f.route === "string" ? f.route === input.route : f.route.test(input.path)) &&
        (f.method === undefined || f.method.toUpperCase() === input.method) &&
        (f.userId === undefined || f.userId === input.userId),
    );
    if (!fault) return undefined;
    fault.remaining -= 1;
    if (fault.remaining <= 0) this.faults.splice(this.faults.indexOf(fault), 1);
    return fault;
  }

  /**
   * Registers a hung (or held) request; `destroy` runs when the fault is removed/cleared or the server
   * closes.
   */
  public hang(faultId: string, destroy: () => void): () => void {
    let set = this.hanging.get(faultId);
    if (!set) this.hanging.set(faultId, (set = new Set()));
    set.add(destroy);
    return () => set.delete(destroy);
  }

  private release(faultId: string): void {
    const set = this.hanging.get(faultId);
    this.hanging.delete(faultId);
    for (const destroy of set ?? []) destroy();
  }
}
