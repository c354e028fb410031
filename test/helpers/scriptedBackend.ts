/**
 * A backend whose requests wait until the test decides what becomes of each: processed and answered,
 * answered with an error without reaching the server, or processed with the answer lost. Behind it is
 * the FakeServer (latency 0) as the model of the server's records. The interleaving explorer uses it to
 * play every order of in-flight answers.
 */
import type {
  DelayedEventAction,
  MembershipBackend,
  RequestOptions,
  StateEventRequest,
} from "../../src/backends/types.js";
import type { Logger } from "loglevel";
import { MembershipManager } from "../../src/manager/MembershipManager.js";
import { FakeServer } from "./fakeServer.js";
import { VirtualTime } from "./virtualTime.js";

export type Outcome = "ok" | "error" | "lose";

export interface Held {
  readonly id: number;
  readonly op: "schedule" | "state" | DelayedEventAction | "read" | "list";
  readonly sentAt: number;
  /** Run the request against the server model (once); resolves with its answer. */
  run(): Promise<unknown>;
  /** Set once the server processed it (its answer may still be held). */
  processed?: Promise<unknown>;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

export class ScriptedBackend implements MembershipBackend {
  readonly held: Held[] = [];
  /** Requests sent, in order (for the hot-loop bound). */
  readonly sent: { at: number; op: Held["op"] }[] = [];
  private nextId = 1;

  constructor(
    private readonly server: FakeServer,
    private readonly now: () => number,
  ) {}

  private hold<T>(op: Held["op"], run: () => Promise<T>, _opts?: RequestOptions): Promise<T> {
    this.sent.push({ at: this.now(), op });
    return new Promise<T>((resolve, reject) => {
      this.held.push({
        id: this.nextId++,
        op,
        sentAt: this.now(),
        run,
        resolve: resolve as (v: unknown) => void,
        reject,
      });
    });
  }

  /**
   * The server processes a held request now; its answer stays held. The network model: a request
   * reaches the server within one request timeout or never (a request delayed for longer and then
   * processed is the physical limit no client can defend against: it cannot recall a request).
   */
  process(h: Held): void {
    if (h.processed) return;
    h.processed = h.run();
    h.processed.catch(() => undefined);
  }

  /** Decide the fate of one held request. `error` is what the manager gets for "error". */
  async settleOne(h: Held, outcome: Outcome, error: () => unknown): Promise<void> {
    this.held.splice(this.held.indexOf(h), 1);
    if (outcome === "error") {
      // Not processed (a proxy refused it), or processed with an unusable answer.
      h.reject(error());
      return;
    }
    const answer = h.processed ?? h.run();
    if (outcome === "lose") {
      answer.catch(() => undefined);
      return;
    }
    answer.then(h.resolve, h.reject);
  }

  sendDelayedStateEvent(req: StateEventRequest & { delayMs: number }, opts?: RequestOptions) {
    return this.hold("schedule", () => this.server.sendDelayedStateEvent(req), opts);
  }
  sendStateEvent(req: StateEventRequest, opts?: RequestOptions) {
    return this.hold("state", () => this.server.sendStateEvent(req), opts);
  }
  updateDelayedEvent(delayId: string, action: DelayedEventAction, opts?: RequestOptions) {
    return this.hold(action, () => this.server.updateDelayedEvent(delayId, action), opts);
  }
  readStateEvent(req: Omit<StateEventRequest, "content">, opts?: RequestOptions) {
    return this.hold("read", () => this.server.readStateEvent(req), opts);
  }
  listDelayedEvents(opts?: RequestOptions) {
    return this.hold("list", () => this.server.listDelayedEvents(), opts);
  }
}

/**
 * A manager (2 s delay, jitter fixed) on virtual time whose every request a ScriptedBackend holds, in
 * front of a FakeServer (latency 0) as the model of the server's records. Not joined yet.
 */
export function scriptedWorld(logger: Logger) {
  const time = new VirtualTime();
  const server = new FakeServer(time.scheduler);
  server.latencyMs = 0;
  const backend = new ScriptedBackend(server, () => time.now());
  const manager = new MembershipManager({
    backend,
    roomId: "!room:localhost",
    userId: "@alice:localhost",
    deviceId: "DEV",
    delayedLeaveDelayMs: 2000,
    scheduler: time.scheduler,
    logger,
    random: () => 0.5,
  });
  return { time, server, backend, manager };
}
