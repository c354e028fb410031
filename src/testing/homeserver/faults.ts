/**
 * Server-side fault injection (issue 5): make chosen routes answer an error, hang, drop the connection,
 * or process the request and then lose the response. Matched in the order they were added.
 */
import type { RouteId } from "./routes.js";

export type FaultResponse =
  | {
      status: number;
      /** Any JSON value: tests of malformed answers send `{delay_id: 5}`, `null`, a string... */
      body?: unknown;
      headers?: Record<string, string>;
      /**
       * Process the request as usual (state written, delayed event scheduled...) and then answer with
       * this instead of the real answer: a broken server or proxy whose work is done but whose answer
       * is wrong. Default false: answer without processing.
       */
      process?: boolean;
    }
  | "hang"
  | "drop"
  | "process-then-drop";

export interface FaultSpec {
  /** A route id, or a pattern tested against the request path (without query). */
  route: RouteId | RegExp;
  method?: string;
  /** How many matching requests it applies to; unlimited when omitted. */
  times?: number;
  /** Only requests authenticated as this user. */
  userId?: string;
  respond: FaultResponse;
}

export interface ServerFaults {
  add(spec: FaultSpec): string;
  remove(id: string): void;
  clear(): void;
  /** Faults still armed. */
  list(): (FaultSpec & { id: string })[];
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

  /** Registers a hung request; `destroy` runs when the fault is removed/cleared or the server closes. */
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
