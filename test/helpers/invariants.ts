/**
 * Randomized invariant checking for the MembershipManager (issue 5, "Invariants under random faults").
 *
 * A schedule is a list of commands (join, leave, update, time passing, network cuts, injected faults,
 * server-side loss, foreign writes; a second tab's, and the delegation service's). `runSchedule` plays it against a FakeServer on virtual time and
 * checks the invariants after every virtual-time event, against the server's own records:
 *
 *   1   once leave() resolves `left`, no membership of ours on the server, and it stays so until we join again
 *   1b  ... and no delayed event of ours is pending then (nor appears later, until we join again)
 *   2   while status is "connected", a delayed leave of ours is pending (a window of one request allowed)
 *   3   whenever the server fires our leave while we want to be joined, probablyLeft is (or becomes,
 *       within one heartbeat interval) true
 *   R   no resurrection: after the server fired our leave, our next membership write comes only after a
 *       new delayed leave was scheduled
 *   4   no timers one request timeout after dispose(), and nothing but cancels of late delay ids sent after it
 *   H   no hot loop: at most HOT_LOOP_LIMIT requests in any one second, whatever the server answers
 *   O   no orphan: a delay id whose answer reaches the manager after dispose() is cancelled (never fires),
 *       and after leave() and the settling of in-flight requests, no delayed leave of ours is pending
 *   5   convergence: once the network heals and faults stop, we end where the app asked (joined and
 *       protected, or left)
 *   E   eyes (issue 25): while "connected" (and not saying `membershipWatched: false`), the server holds
 *       our membership, but for the time it takes to see another writer's `{}` and put it back (one check
 *       interval, a read and a write; longer only while reads of our key fail or the network is down)
 *   P   no tab cancels the delayed leave another live tab of the device keeps (restarted less than one of
 *       that tab's heartbeat intervals ago), unless it has a schedule of its own in doubt (see there)
 *   S   no tab stuck silent: after healing, a live tab that wants to be joined sends a request at least
 *       once per delay (the one in force)
 *
 * The world (WorldOptions) besides the first tab's manager, each part drawn at random per schedule:
 *
 * - a second live tab of the same device (`tabs: 2`): another manager with the same user and device id,
 *   so in the state format the same state key, its own delayed leaves and its own eyes; its app joins,
 *   leaves and updates, and its page crashes (nothing it sends or is answered arrives any more, its
 *   delayed leave is left to fire; a join after that is a reload: a new instance, whose first call sweeps
 *   for a dead predecessor's leftovers). Requests and delayed events carry the tab instance that sent or
 *   made them (the FakeServer's `origin`), and each tab writes its own focus, so the content at the key
 *   says whose it is;
 * - Synapse's rules before 1.127 (`rules: "pre-1.127"`): a user's own change of state at a key (a write,
 *   or a delayed event sent there) cancels its pending delayed state there, every tab's;
 * - a delegation service (MSC4195, `delegation: true`) behind the server: the tabs name an SFU and delegate
 *   their delayed leave; the service confirms, refuses, has no delegation or stops answering, and sends a
 *   tab's delegated leave when the SFU loses that tab (or its page crashes).
 *
 * Every invariant holds per tab (its own requests, intents, delayed leaves and state), with "our
 * membership" read as the device's membership at the key (whichever tab wrote it) where the claim is
 * about what others list (2's "connected", 3, E, 5 joined), and as the tab's own content where it is about
 * what the tab put there (1, 5 left). Restated for the grown world, each where it is checked, saying why: a
 * delayed leave of ours removed by another tab, or by a write under the pre-1.127 rules, counts as an
 * external removal (2, R), and R judges what we knew when the write was sent; 2's window lasts until the
 * removed leave's own delay (a delegated one is longer); 3's heartbeat is the delegated one for a
 * delegated leave, and the service sending it counts as a fire; 5 lets two joined tabs before 1.127 take
 * turns (documented), a switch of holder keep two delayed leaves, and a leave() refused by the server end
 * `failed` as a refused join does; H allows a join's switch to the delegated leave; P spares a tab with a
 * schedule of its own in doubt (the listing cannot tell its orphan from another tab's delayed leave). The
 * device as a whole: once no live tab wants to be joined, no membership of any of its tabs (a crashed
 * one's included) stays on the server (5), unless the server removed that crashed tab's delayed leave by
 * its own rules, or its write was still on its way when its page died and landed after its leave fired.
 *
 * (Unhandled rejections are failed by jest itself: jest-circus listens on the host process, which the
 * sandboxed `process` cannot reach. See invariants.test.ts.)
 */
import fc from "fast-check";
import log from "loglevel";
import { MembershipManager } from "../../src/manager/MembershipManager.js";
import { eventsStateSource } from "../../src/membership/observer.js";
import { LATE_WRITE_HORIZON_MS } from "../../src/core/limits.js";
import type { MembershipBackend, RequestOptions } from "../../src/backends/types.js";
import { HTTPError, MatrixError } from "matrix-js-sdk";
import { isLeftContent } from "../../src/membership/content.js";
import {
  FakeServer,
  matrixError,
  stickyMapKey,
  type FakeDelegation,
  type Fault,
  type LogEntry,
  type RemovalCause,
} from "./fakeServer.js";
import { settle, VirtualTime } from "./virtualTime.js";

const quiet = log.getLogger("invariants-quiet");
quiet.setLevel("silent");

export const DELAY_MS = 2000;
const LATENCY_MS = 20;
/**
 * After the schedule: network up, faults cleared, then this long for the manager to converge. Longer
 * than the longest wait it can be in (a 30 s retry step, a 10 s state request timeout) plus a rejoin.
 */
const HEAL_MS = 60_000;

/** "probe" is the FakeServer's op for reads of our key (readStateEvent), "list" for listing our delayed events. */
export type FaultOp = "schedule" | "state" | "restart" | "send" | "cancel" | "probe" | "list";

export type FaultSpec =
  | { kind: "lose-response" }
  | { kind: "hang" }
  | { kind: "slow"; ms: number }
  /** Processed on time, answered `ms` late (an asymmetric link: the request arrives, its answer lingers). */
  | { kind: "slow-answer"; ms: number }
  | {
      kind: "429";
      retryAfter:
        | "none"
        | "null-body"
        | "garbage-header"
        | { headerS: number }
        | { dateS: number }
        | { bodyMs: number };
    }
  | { kind: "5xx"; status: number }
  /**
   * Hostile answers (issue 11): a 404 that is not M_NOT_FOUND (JSON without errcode, a proxy's HTML
   * page), odd statuses (601, 0), a refusal (403, 400), a host's untyped Error, and a success
   * whose body is unusable (processed by the server, then thrown as the backends' MalformedResponseError).
   * (No 409: it means "not pending" in MSC4140, and the FakeServer would be lying if it said so of a
   * pending delayed event.)
   */
  | { kind: "odd"; answer: OddAnswer };

export type OddAnswer =
  "404-no-errcode" | "404-html" | "601" | "status-0" | "403" | "400" | "untyped" | "malformed-200";

export type Cmd =
  | { k: "join" }
  | { k: "leave"; timeoutMs?: number }
  /** leave() and join() at once, as an app switching its call would. */
  | { k: "rejoin" }
  | { k: "update" }
  | { k: "advance"; ms: number }
  | { k: "down" }
  | { k: "up" }
  | { k: "fault"; op: FaultOp; fault: FaultSpec; times: number }
  | { k: "losePending" }
  | { k: "foreignWrite" }
  /** Another tab of this device writes `{}` at our key: nothing of ours is cancelled (Synapse >= 1.127). */
  | { k: "sameDeviceWrite" }
  /**
   * The link's round trip changes (issue 22: the adaptive heartbeat measures it): `ms`, plus up to
   * `jitterMs` drawn for each half of each round trip. Healing sets it back to 20 ms.
   */
  | { k: "latency"; ms: number; jitterMs: number }
  /**
   * The second tab of this device (a two-tab world only): its app joins, leaves or updates, or its page
   * crashes (nothing it sends arrives any more; its delayed leave is left to fire). A join after a crash
   * is a reload: a new manager instance, whose first call sweeps for a dead predecessor's leftovers.
   */
  | { k: "tab2"; act: "join" | "leave" | "update" | "crash" }
  /** The SFU loses one tab (a world with the delegation service): the service sends that tab's delegated leave. */
  | { k: "sfuDisconnect"; tab: 1 | 2 }
  /** The delegation service confirms, refuses (400), has no delegation (404) or stops answering and restarting. */
  | { k: "service"; mode: FakeDelegation["mode"] };

export type InvariantId = "1" | "1b" | "2" | "3" | "R" | "4" | "5" | "H" | "O" | "E" | "P" | "S";

/** The server's rules for a user's own state writes (docs/compatibility.md, "Two tabs of the same device"). */
export type Rules = "1.127" | "pre-1.127";

/** The world a schedule plays in, besides its commands. */
export interface WorldOptions {
  /** How long the network is healed at the end (default HEAL_MS). */
  healMs?: number;
  /** How the (first) tab sees its key. */
  eyes?: Eyes;
  format?: Format;
  /**
   * Synapse ≥ 1.127 (default), or before: a user's own change of state at a key (a write, or a delayed
   * event sent there) cancels its pending delayed state there too.
   */
  rules?: Rules;
  /**
   * 2: a second live tab of the same device (the same user and device id: in the state format the same
   * state key, so both tabs' delayed leaves sit at one key) plays the `tab2` commands.
   */
  tabs?: 1 | 2;
  /** How the second tab sees the key (default: as the first). */
  tab2Eyes?: Eyes;
  /**
   * A delegation service (MSC4195) behind the server, confirming at first: the tabs name an SFU and
   * delegate their delayed leave (DELEGATED_DELAY_MS, restarted by us every DELEGATED_INTERVAL_MS); the
   * `service` and `sfuDisconnect` commands play it.
   */
  delegation?: boolean;
}

/** A schedule: its commands, the link's jitter draws, and its world. */
export interface Schedule extends Omit<WorldOptions, "healMs"> {
  cmds: Cmd[];
  jitterSeed: number;
}

/**
 * The "no hot loop" bound: requests the server may see from one manager in any one second. A join is
 * 3 requests, a recovery about 6; the manager's request budget (src/core/budget.ts) allows 8 at once
 * and 3 a second after that at this delay (3 per heartbeat interval once a server lowered the delay). Before issue 11, a 404 without errcode gave ~135 a second.
 */
export const HOT_LOOP_LIMIT = 12;
/** First attempts one app intent may send on the app's bucket: a join's schedule and write, a leave's send and `{}`. */
const APP_REQUESTS_PER_INTENT = 2;

/** The bound when the server made us lower the delay (a shorter delay needs more heartbeats). */
function hotLoopLimit(heartbeatIntervalMs: number): number {
  return Math.max(HOT_LOOP_LIMIT, Math.ceil(9 + 3000 / heartbeatIntervalMs));
}

export interface Violation {
  inv: InvariantId;
  at: number;
  msg: string;
}

export interface RunResult {
  violations: Violation[];
  /** Human-readable trace of commands, server requests and state changes, for diagnosis. */
  trace: string[];
}

// ---------------------------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------------------------

const faultOpArb = fc.constantFrom<FaultOp>(
  "schedule",
  "state",
  "restart",
  "send",
  "cancel",
  "probe",
  "list",
);

const faultSpecArb: fc.Arbitrary<FaultSpec> = fc.oneof(
  fc.constant<FaultSpec>({ kind: "lose-response" }),
  fc.constant<FaultSpec>({ kind: "hang" }),
  fc.integer({ min: 50, max: 3000 }).map<FaultSpec>((ms) => ({ kind: "slow", ms })),
  // Processed after its local timeout (held in the network), before or after a leave (issue 20).
  fc.integer({ min: 10_500, max: 14_000 }).map<FaultSpec>((ms) => ({ kind: "slow", ms })),
  // Processed at once, answered after our timeout: a schedule whose delayed leave a listing sees first.
  fc.integer({ min: 300, max: 3000 }).map<FaultSpec>((ms) => ({ kind: "slow-answer", ms })),
  fc
    .oneof(
      fc.constant<"none">("none"),
      fc.constant<"null-body">("null-body"),
      fc.constant<"garbage-header">("garbage-header"),
      fc.integer({ min: 0, max: 4 }).map((headerS) => ({ headerS })),
      // Hostile hints: negative, an hour, past 2^31 ms.
      fc.constantFrom(-5, 3600, 3e6).map((headerS) => ({ headerS })),
      fc.integer({ min: 0, max: 4 }).map((dateS) => ({ dateS })),
      fc.integer({ min: 0, max: 4000 }).map((bodyMs) => ({ bodyMs })),
      fc.constantFrom(1e12, 2 ** 31).map((bodyMs) => ({ bodyMs })),
    )
    .map<FaultSpec>((retryAfter) => ({ kind: "429", retryAfter })),
  fc.constantFrom(500, 502, 503, 504).map<FaultSpec>((status) => ({ kind: "5xx", status })),
  fc
    .constantFrom<OddAnswer>(
      "404-no-errcode",
      "404-html",
      "601",
      "status-0",
      "403",
      "400",
      "untyped",
      "malformed-200",
    )
    .map<FaultSpec>((answer) => ({ kind: "odd", answer })),
);

const advanceArb = fc
  .oneof(
    { arbitrary: fc.integer({ min: 0, max: 50 }), weight: 3 },
    { arbitrary: fc.integer({ min: 50, max: 600 }), weight: 4 },
    { arbitrary: fc.integer({ min: 600, max: DELAY_MS + 500 }), weight: 3 },
    { arbitrary: fc.integer({ min: DELAY_MS + 500, max: 3 * DELAY_MS + 1000 }), weight: 1 },
  )
  .map<Cmd>((ms) => ({ k: "advance", ms }));

/** Which command kinds (and fault kinds) a schedule may contain; all by default. */
export interface ScheduleOptions {
  exclude?: (Cmd["k"] | FaultSpec["kind"])[];
  maxLength?: number;
}

export function cmdArb(opts: ScheduleOptions = {}): fc.Arbitrary<Cmd> {
  const ex = new Set<string>(opts.exclude ?? []);
  const specArb = faultSpecArb.filter((f) => !ex.has(f.kind));
  const all: { k: Cmd["k"]; arbitrary: fc.Arbitrary<Cmd>; weight: number }[] = [
    { k: "join", arbitrary: fc.constant<Cmd>({ k: "join" }), weight: 5 },
    {
      k: "leave",
      arbitrary: fc
        .option(fc.integer({ min: 50, max: 5000 }), { nil: undefined })
        .map<Cmd>((timeoutMs) => (timeoutMs === undefined ? { k: "leave" } : { k: "leave", timeoutMs })),
      weight: 3,
    },
    { k: "rejoin", arbitrary: fc.constant<Cmd>({ k: "rejoin" }), weight: 1 },
    { k: "update", arbitrary: fc.constant<Cmd>({ k: "update" }), weight: 1 },
    { k: "advance", arbitrary: advanceArb, weight: 10 },
    { k: "down", arbitrary: fc.constant<Cmd>({ k: "down" }), weight: 2 },
    { k: "up", arbitrary: fc.constant<Cmd>({ k: "up" }), weight: 2 },
    {
      k: "fault",
      arbitrary: fc
        .record({ op: faultOpArb, fault: specArb, times: fc.integer({ min: 1, max: 4 }) })
        .map<Cmd>(({ op, fault, times }) => ({
          k: "fault",
          op,
          fault,
          times: fault.kind === "429" || fault.kind === "5xx" || fault.kind === "odd" ? times : 1,
        })),
      weight: 4,
    },
    { k: "losePending", arbitrary: fc.constant<Cmd>({ k: "losePending" }), weight: 1 },
    { k: "foreignWrite", arbitrary: fc.constant<Cmd>({ k: "foreignWrite" }), weight: 1 },
    { k: "sameDeviceWrite", arbitrary: fc.constant<Cmd>({ k: "sameDeviceWrite" }), weight: 1 },
    {
      k: "latency",
      arbitrary: fc
        .record({
          ms: fc.constantFrom(0, 20, 150, 400, 900, 1600),
          jitterMs: fc.constantFrom(0, 0, 100, 600),
        })
        .map<Cmd>(({ ms, jitterMs }) => ({ k: "latency", ms, jitterMs })),
      weight: 2,
    },
    // The second tab and the delegation service: dropped from worlds without them (scheduleArb).
    {
      k: "tab2",
      arbitrary: fc
        .constantFrom<Extract<Cmd, { k: "tab2" }>["act"]>(
          "join",
          "join",
          "join",
          "leave",
          "leave",
          "crash",
          "update",
        )
        .map<Cmd>((act) => ({ k: "tab2", act })),
      weight: 5,
    },
    {
      k: "sfuDisconnect",
      arbitrary: fc.constantFrom<1 | 2>(1, 2).map<Cmd>((tab) => ({ k: "sfuDisconnect", tab })),
      weight: 1,
    },
    {
      k: "service",
      arbitrary: fc
        .constantFrom<FakeDelegation["mode"]>("confirm", "confirm", "refuse", "unsupported", "dead")
        .map<Cmd>((mode) => ({ k: "service", mode })),
      weight: 2,
    },
  ];
  return fc.oneof(...all.filter((a) => !ex.has(a.k)).map(({ arbitrary, weight }) => ({ arbitrary, weight })));
}

/**
 * Schedules of two shapes: free-form (any command in any order), and "join under fire" (a few faults
 * armed, a join, then a short burst of faults, updates and quick time steps around the first delays),
 * where the races between the first schedule, the membership write and the heartbeat live.
 */
export function scheduleArb(opts: ScheduleOptions = {}) {
  const ex = new Set<string>(opts.exclude ?? []);
  const any = cmdArb(opts);
  const fault = any.filter((c) => c.k === "fault");
  const near = cmdArb({
    ...opts,
    exclude: [...(opts.exclude ?? []), "losePending", "foreignWrite", "sameDeviceWrite", "join"],
  }).map((c) => (c.k === "advance" ? { ...c, ms: c.ms % 700 } : c));
  const focused = fc
    .tuple(fc.array(fault, { minLength: 1, maxLength: 4 }), fc.array(near, { minLength: 1, maxLength: 14 }))
    .map(([before, after]) => [...before, { k: "join" } as Cmd, ...after]);
  const free = fc.array(any, { minLength: 1, maxLength: opts.maxLength ?? 40 });
  const eyesArb = fc.constantFrom<Eyes>("read", "read", "view", "blind");
  return fc
    .record({
      cmds:
        ex.has("fault") || ex.has("join")
          ? free
          : fc.oneof({ arbitrary: free, weight: 2 }, { arbitrary: focused, weight: 1 }),
      jitterSeed: fc.integer({ min: 0, max: 0x7fffffff }),
      // How the manager can see its own key (issue 25): reads of it (a bare client), a synced room view,
      // or nothing at all (a widget host that refused reading).
      eyes: eyesArb,
      // The membership format (issue 21): the same invariants over state events and sticky events.
      format: fc.constantFrom<Format>("state", "sticky"),
      // Synapse's two rule sets for a user's own writes (docs/compatibility.md).
      rules: fc.constantFrom<Rules>("1.127", "1.127", "1.127", "pre-1.127"),
      // A second live tab of the same device, seeing its key its own way.
      tabs: fc.constantFrom<1 | 2>(1, 1, 1, 2, 2),
      tab2Eyes: eyesArb,
      // The delegation service (MSC4195) as an actor of the world.
      delegation: fc.constantFrom(false, false, false, true),
    })
    .map((s): Schedule => ({
      ...s,
      // The second tab's and the service's commands only where they are (shrinking keeps working: it
      // shrinks the record, then maps it again).
      cmds: s.cmds.filter(
        (c) =>
          (c.k !== "tab2" || s.tabs === 2) &&
          ((c.k !== "service" && c.k !== "sfuDisconnect") || s.delegation),
      ),
    }));
}

/** The membership format a schedule runs in (the manager's `membershipFormat`). */
export type Format = "state" | "sticky";

/** How the manager sees its own key: reads, a synced room view (and reads), or nothing. */
export type Eyes = "read" | "view" | "blind";

export function describeCmd(c: Cmd): string {
  switch (c.k) {
    case "leave":
      return c.timeoutMs === undefined ? "leave()" : `leave({timeoutMs:${c.timeoutMs}})`;
    case "advance":
      return `advance(${c.ms})`;
    case "latency":
      return `latency(${c.ms}${c.jitterMs ? ` + up to ${c.jitterMs}` : ""})`;
    case "fault":
      return `inject(${c.op}, ${JSON.stringify(c.fault)}, ${c.times})`;
    case "tab2":
      return `tab2.${c.act === "crash" ? "crash" : `${c.act}()`}`;
    case "sfuDisconnect":
      return `sfuDisconnect(tab ${c.tab})`;
    case "service":
      return `service(${c.mode})`;
    default:
      return c.k;
  }
}

// ---------------------------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------------------------

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** How long a late write of ours may stand after it was sent: the leave's guard horizon, plus a request. */
const LATE_GHOST_MS = LATE_WRITE_HORIZON_MS + 3000;

/** A membership (not absent, not left: `{}`, or a sticky event with only its slot and sticky key). */
function isMembership(c: Record<string, unknown> | undefined): boolean {
  return !!c && !isLeftContent(c);
}

const FOREIGN_MARK = "org.example.foreign";

function isForeign(c: Record<string, unknown> | undefined): boolean {
  return !!c && c[FOREIGN_MARK] === true;
}

/** FakeServer internals we observe (private in TypeScript, but plain methods at run time). */
interface ServerInternals {
  fire(id: string): void;
  arm(id: string, d: unknown): void;
  writeState(stateKey: string, content: Record<string, unknown>, by: "client" | "delayed"): void;
}

/** The error a backend would throw for one hostile answer (matrix-js-sdk's shapes where there is one). */
function oddError(answer: OddAnswer): () => unknown {
  switch (answer) {
    case "404-no-errcode":
      return () => new MatrixError({ error: "Not found" }, 404);
    case "404-html":
      return () => new HTTPError("<html><body><h1>404 Not Found</h1></body></html>", 404);
    case "601":
      return () => matrixError(601, "M_UNKNOWN");
    case "status-0":
      return () => new HTTPError("", 0);
    case "403":
      return () => matrixError(403, "M_FORBIDDEN");
    case "400":
      return () => matrixError(400, "M_BAD_JSON");
    case "untyped":
      return () => new Error("the host said no");
    case "malformed-200":
      // What the backends throw for a 200 whose delay_id is missing or not a string (issue 11 item 1).
      return () =>
        Object.assign(new Error("malformed answer to schedule-leave: delay_id is not a string"), {
          name: "MalformedResponseError",
          request: "schedule-leave",
          status: 200,
        });
  }
}

function faultOf(spec: FaultSpec, server: FakeServer): Fault {
  switch (spec.kind) {
    case "odd":
      // A malformed success was processed by the server; the other answers were not.
      return spec.answer === "malformed-200"
        ? { kind: "process-then-error", error: oddError(spec.answer) }
        : { kind: "error", error: oddError(spec.answer) };
    case "lose-response":
    case "hang":
      return { kind: spec.kind };
    case "slow":
    case "slow-answer":
      return { kind: spec.kind, ms: spec.ms };
    case "5xx":
      return {
        kind: "error",
        error: () => matrixError(spec.status, "M_UNKNOWN", { error: "Internal error" }),
      };
    case "429":
      return {
        kind: "error",
        error: () => {
          const ra = spec.retryAfter;
          if (ra === "none") return matrixError(429, "M_LIMIT_EXCEEDED");
          if (ra === "null-body") return matrixError(429, "M_LIMIT_EXCEEDED", { retry_after_ms: null });
          if (ra === "garbage-header")
            return matrixError(429, "M_LIMIT_EXCEEDED", {}, { "Retry-After": "soon, maybe" });
          if ("headerS" in ra)
            return matrixError(429, "M_LIMIT_EXCEEDED", {}, { "Retry-After": String(ra.headerS) });
          if ("dateS" in ra)
            // An HTTP date on the virtual clock (the manager compares it with its scheduler's now()).
            return matrixError(
              429,
              "M_LIMIT_EXCEEDED",
              {},
              { "Retry-After": new Date(server.now() + ra.dateS * 1000).toUTCString() },
            );
          return matrixError(429, "M_LIMIT_EXCEEDED", { retry_after_ms: ra.bodyMs });
        },
      };
  }
}

/** One tab of the device: a manager, the backend it sends through, and what the checker keeps on it. */
interface Tab {
  /** 1 or 2: the tab; a tab 2 that crashed comes back as a new instance (a reload) at its next join. */
  readonly slot: 1 | 2;
  /** Tags its requests and the delayed events they create ("t1", "t2.1", "t2.2", ...). */
  readonly origin: string;
  /** Prefix of its violations and trace lines ("" in a one-tab world). */
  readonly label: string;
  readonly manager: MembershipManager;
  /** Its requests, in order (the server's log entries it sent). */
  readonly entries: LogEntry[];
  readonly intent: () => "joined" | "left";
  /** Crashed (the page died: nothing it sends or is answered arrives any more) or disposed. */
  readonly disposed: () => boolean;
  readonly crashed: () => boolean;
  /** The delay id its manager holds now (delayId$). */
  readonly currentId: () => string | undefined;
  /** At some time in [from, to], a schedule of its own whose outcome it did not know, and what it made may not have fired. */
  readonly scheduleInDoubt: (from: number, to: number) => boolean;
  /** When its last listing of delayed events answered, at or before `at`. */
  readonly lastListAnsweredBy: (at: number) => number | undefined;
  /** Its membership's key now, and whether a key is one of its own. */
  readonly key: () => string;
  readonly usesKey: (k: string) => boolean;
  join(): void;
  /** `index`: the schedule's command index (trace; update() alternates its call intent by it). */
  leave(cmd: Extract<Cmd, { k: "leave" | "rejoin" }>, index: number): void;
  update(index: number): void;
  crash(): void;
  check(): void;
  /** A delayed event of its own stopped being pending, not by firing. */
  onRemoved(id: string, delayMs: number, cause: RemovalCause, by: LogEntry | undefined): void;
  /** A write at a key (before it lands): `writer` the tab whose request it is, `sent` the delayed event sent. */
  onWrite(
    stateKey: string,
    content: Record<string, unknown>,
    writer: Tab | undefined,
    sent: { id: string; owner: Tab | undefined; byService: boolean; delayMs: number } | undefined,
  ): void;
  /** Forget an unresolved fire (someone else owns the content at our key now). */
  foreignOwnsKey(): void;
  /** After healing: where it converged. */
  healChecks(othersJoined: boolean): void;
  /** It ended `failed` on a refusal (403, 400): an honest end the app must act on. */
  refused(): boolean;
  /** Is this content its own (its focus)? */
  wrote(content: Record<string, unknown> | undefined): boolean;
  /** The server removed a delayed leave of its own by its own rules: lost it, or a write cancelled it. */
  serverLostOne(): boolean;
  /** A membership write of its own, on its way when its page crashed, landed after its delayed leave fired. */
  landedAfterItsLeaveFired(): boolean;
  /** No tab stuck silent (S), over the last part of healing. */
  silenceCheck(from: number, to: number): void;
  /** Dispose (a live tab at the end of the schedule), then the checks after it. */
  dispose(): void;
  afterDispose(sinceEntry: number): void;
  /** The settling of its leave() promises (after dispose). */
  settled(): Promise<void>;
}

/** The delegated leave's delay and our restarts of it in the world with a delegation service (scaled from 1 h and 5 min). */
const DELEGATED_DELAY_MS = 10_000;
const DELEGATED_INTERVAL_MS = 4000;
/**
 * A join with a delegation service may switch its holder right after its membership write: a long
 * schedule, the delegation, the cancel of the normal leave (as test/unit/delegation.invariants.test.ts).
 */
const DELEGATION_SWITCH_REQUESTS = 3;
/** S: how long before the end of healing the tabs that want to be joined are watched for silence. */
const SILENCE_WINDOW_MS = 20_000;

export async function runSchedule(
  cmds: Cmd[],
  jitterSeed: number,
  opts: WorldOptions = {},
): Promise<RunResult> {
  const eyes = opts.eyes ?? "read";
  const format = opts.format ?? "state";
  const rules = opts.rules ?? "1.127";
  const twoTabs = opts.tabs === 2;
  const delegation = opts.delegation === true;
  const time = new VirtualTime();
  const server = new FakeServer(time.scheduler);
  server.ownWritesCancel = rules === "pre-1.127";
  if (delegation) server.startDelegation("confirm", DELEGATED_DELAY_MS);
  // The link's round trip (a `latency` command changes it): fixed, or drawn for each half of each trip.
  const linkRandom = mulberry32(jitterSeed ^ 0x5bd1e995);
  let latency = { ms: LATENCY_MS, jitterMs: 0 };
  Object.defineProperty(server, "latencyMs", {
    get: () => latency.ms + (latency.jitterMs ? linkRandom() * latency.jitterMs : 0),
    set: (ms: number) => (latency = { ms, jitterMs: 0 }),
  });
  const trace: { at: number; seq: number; text: string }[] = [];
  const push = (at: number, text: string) => trace.push({ at, seq: trace.length, text });
  const violations: Violation[] = [];
  const t = () => time.now();
  const note = (s: string) => push(t(), s);
  const violate = (inv: InvariantId, msg: string) => {
    if (violations.some((v) => v.inv === inv)) return; // the first of each kind is the interesting one
    violations.push({ inv, at: t(), msg });
    note(`!! VIOLATION ${inv}: ${msg}`);
  };
  // One request: its round trip (the slowest the link has had) and its local timeout (the tabs' options
  // are the same).
  let slowestRtt = LATENCY_MS;
  /** The link's round trip in force now (its longest draw): what a request sent now travels on. */
  const linkRtt = () => latency.ms + latency.jitterMs;
  /** Since when reads of our key may have failed (a fault on them, 429s, a cut): the eyes' excuse. */
  let lastBlindAt = -Infinity;

  // --- Server observation (shared by the tabs) -----------------------------------------------
  const internals = server as unknown as ServerInternals;
  for (const m of ["fire", "arm", "writeState"] as const)
    if (typeof internals[m] !== "function") throw new Error(`FakeServer has no ${m}(); update invariants.ts`);
  const origFire = internals.fire.bind(server);
  const origArm = internals.arm.bind(server);
  const origWrite = internals.writeState.bind(server);
  let inFire = false;
  let firing = "";
  let inForeign = false;
  /** A delayed leave the delegation service is sending (the SFU lost its tab), and the one firing: their delays. */
  let serviceSending: { id: string; delayMs: number } | undefined;
  let firingDelayMs = DELAY_MS;
  const createdAt = new Map<string, number>();
  /** Which tab's request created each delay id (the FakeServer's `origin`). */
  const originOf = new Map<string, string>();
  /** When the server last (re)started each delay id's delay: its creation or its last restart. */
  const lastArmedAt = new Map<string, number>();
  const firedIds = new Set<string>();
  /** Every tab instance, in order of creation (a crashed tab 2 stays here). */
  const tabs: Tab[] = [];
  const tabOf = (origin: string | undefined) =>
    origin === undefined ? undefined : tabs.find((x) => x.origin === origin);
  const liveTab2 = () => tabs.findLast((x) => x.slot === 2 && !x.crashed());

  internals.arm = (id, d) => {
    if (!createdAt.has(id)) {
      createdAt.set(id, t());
      const origin = (d as { origin?: string }).origin ?? server.processing?.origin;
      if (origin !== undefined) originOf.set(id, origin);
      note(`   server: delayed ${id} created${twoTabs && origin ? ` by ${origin}` : ""}`);
    }
    lastArmedAt.set(id, t());
    origArm(id, d);
  };
  internals.fire = (id) => {
    if (server.delayed.has(id)) firedIds.add(id);
    firingDelayMs = server.delayed.get(id)?.delayMs ?? DELAY_MS;
    firing = id;
    inFire = true;
    try {
      origFire(id);
    } finally {
      inFire = false;
    }
  };
  server.onRemoved = (id, d, cause, by) => {
    if (cause === "service-send") serviceSending = { id, delayMs: d.delayMs };
    const owner = tabOf(originOf.get(id));
    owner?.onRemoved(id, d.delayMs, cause, by);
    // P: a tab cancels the delayed leave another live tab keeps: it restarted it less than one of its
    // heartbeat intervals ago (a predecessor sweep's listings too close together took it for a dead
    // page's: da4837b, found only on real Synapse).
    const canceller = tabOf(by?.origin);
    if (cause !== "cancel" || !owner || !canceller || canceller === owner) return;
    if (owner.disposed() || owner.intent() !== "joined" || owner.currentId() !== id) return;
    // Restated for the shared key: a tab with a schedule of its own in doubt (its answer lost or late, or
    // an error the server may have come after) may have made a delayed leave at the key that it never
    // learned, and will fire `{}` over the device's membership; the listing cannot tell it from another
    // tab's (no owner, no content in it), so its sweep cancels both, and the other tab's next heartbeat
    // finds out (2 and R count that as an external removal).
    // (Judged when the listing its sweep acts on came back, which may be a while before the cancel goes
    // out: the request budget can hold it back.)
    const judgedAt = canceller.lastListAnsweredBy(by!.at) ?? by!.at;
    if (canceller.scheduleInDoubt(judgedAt, judgedAt)) return;
    const age = t() - (lastArmedAt.get(id) ?? -Infinity);
    const interval = owner.manager.effectiveTiming.heartbeatIntervalMs;
    if (age < interval)
      violate(
        "P",
        `${canceller.label || "a tab: "}cancelled ${id}, the delayed leave ${owner.label || "another tab "}keeps ` +
          `(restarted ${Math.round(age)} ms ago; it restarts every ${interval} ms)`,
      );
  };
  internals.writeState = (stateKey, content, by) => {
    const writer = by === "client" && !inForeign ? tabOf(server.processing?.origin) : undefined;
    const sending = inFire
      ? { id: firing, delayMs: firingDelayMs }
      : by === "delayed"
        ? serviceSending
        : undefined;
    const sent = sending && { ...sending, owner: tabOf(originOf.get(sending.id)), byService: !inFire };
    serviceSending = undefined;
    if (tabs.some((x) => x.usesKey(stateKey)))
      note(
        `   server: write ${by}${writer && twoTabs ? ` by ${writer.origin}` : ""}${inFire ? " (timer fire)" : ""}` +
          `${sent?.byService ? " (sent by the delegation service)" : ""}${inForeign ? " (foreign)" : ""} ${
            isMembership(content) ? (isForeign(content) ? "foreign content" : "membership") : "{}"
          }${format === "sticky" ? ` at ${stateKey.slice(0, 15)}` : ""}; pending=${server.pendingFor(stateKey).join(",") || "none"}`,
      );
    for (const tab of tabs) tab.onWrite(stateKey, content, writer, sent);
    origWrite(stateKey, content, by);
  };

  const openTab = (slot: 1 | 2, tabEyes: Eyes): Tab => {
    const instance = tabs.filter((x) => x.slot === slot).length + 1;
    const origin = slot === 1 ? "t1" : `t2.${instance}`;
    const label = twoTabs ? `tab ${slot === 1 ? "1" : `2 (instance ${instance})`}: ` : "";
    // Each tab writes its own focus: the content at the shared key says whose it is.
    const url = slot === 1 ? "https://lk.example" : `https://tab-two-${instance}.example`;
    const tnote = (s: string) => note(label ? s.replace(/^(\s*)/, `$1[${origin}] `) : s);
    let dead = false;
    let crashed = false;
    const entries: LogEntry[] = [];
    let hStart = 0;
    /**
     * Sends through the server, tagging the request with this tab. A crashed tab's requests never
     * arrive, and answers to it are never seen (its page is gone): they wait until aborted.
     */
    const send = <R>(f: () => Promise<R>, signal: AbortSignal | undefined): Promise<R> => {
      const hang = () =>
        new Promise<R>((_, reject) => signal?.addEventListener("abort", () => reject(signal.reason)));
      if (dead) return hang();
      const before = server.log.length;
      const p = f();
      for (const e of server.log.slice(before)) {
        e.origin = origin;
        entries.push(e);
      }
      if (slot === 1) return p; // tab 1 never crashes
      return new Promise<R>((resolve, reject) => {
        p.then(
          (v) => void (dead ? undefined : resolve(v)),
          (e: unknown) => void (dead ? undefined : reject(e)),
        );
        signal?.addEventListener("abort", () => void (dead ? reject(signal.reason) : undefined));
      });
    };

    // Responses as the manager sees them: when a 404 ("gone") reached it.
    const goneDeliveredAt: number[] = [];
    /** ... and for which delay id (a restart's 404 names the one it restarted). */
    const goneDeliveredFor: { at: number; id: unknown }[] = [];
    const via =
      <A extends unknown[], R>(name: string | undefined, f: (...a: A) => Promise<R>) =>
      (...a: A): Promise<R> => {
        const signal = a.map((x) => (x as { signal?: AbortSignal } | undefined)?.signal).find(Boolean);
        const p = send(() => f(...a), signal);
        if (name === undefined) return p;
        return p.then(
          (v) => v,
          (e: unknown) => {
            const status = (e as { httpStatus?: number } | undefined)?.httpStatus;
            const errcode = (e as { errcode?: string } | undefined)?.errcode;
            // A request the manager had already given up on (its local timeout aborted it) delivers
            // nothing: over HTTP an aborted fetch never sees its answer; the fake server answers anyway.
            const seen = !signal?.aborted;
            // Only a real "gone" tells the manager anything (issue 11): a 404 without M_NOT_FOUND does not.
            if (seen && ((status === 404 && errcode === "M_NOT_FOUND") || status === 409)) {
              goneDeliveredAt.push(t());
              goneDeliveredFor.push({ at: t(), id: a[0] });
            }
            tnote(`   <- ${name} rejected: ${status ?? (e as Error)?.name ?? String(e)}`);
            throw e;
          },
        );
      };
    /**
     * Membership writes of ours not processed yet, each with when (server time) the last of our pending
     * delayed leaves would fire as it left: R's in-flight case (see there).
     */
    const writesSent: {
      content: string;
      sentAt: number;
      coveredUntil: number;
      spare: number;
      /** The delay id the manager held (delayId$) when the write was sent: the cover it relied on. */
      heldId: string | undefined;
    }[] = [];
    /** Records a membership write as it leaves, with when our last pending delayed leave at `key` fires. */
    const noteCover = (key: string, content: Record<string, unknown>): void => {
      const fires = [...server.delayed.values()]
        .filter((d) => d.stateKey === key && d.origin === origin)
        .map((d) => d.sendTs);
      const coveredUntil = Math.max(-Infinity, ...fires);
      // The cover left beyond one request's time on the link as it is now (its round trip in force when the
      // write is sent, not the slowest the run has had): a link that slows down while the write is on its
      // way takes the cover in flight (found with the latency steps, seed 1993636896), and a slower link
      // before the write (here or at any earlier time) did not carry it (T9: a 1.6 s step that lasted 0 ms,
      // before any request, made one request 2 s, the whole delay, so that no write could ever be covered).
      writesSent.push({
        content: JSON.stringify(content),
        sentAt: t(),
        coveredUntil,
        spare: coveredUntil - t() - (linkRtt() + timing.requestTimeoutMs),
        heldId: currentId,
      });
    };
    /**
     * Schedules of this tab: when sent, its local timeout, and when an id reached the manager. One with no
     * id by its timeout (none yet, an error, or a late answer) is in doubt from then until the id comes
     * (late answers too: the manager keeps listening), or until what it made surely fired: it may have made
     * a delayed leave whose id the tab did not know (P's exception).
     */
    const schedules: {
      sentAt: number;
      delayMs: number;
      timeoutMs: number;
      answeredAt?: number;
      erroredAt?: number;
    }[] = [];
    /** When its listings answered. */
    const listAnswers: number[] = [];
    const inDoubt = (
      p: Promise<string>,
      req: { delayMs: number },
      o: RequestOptions | undefined,
    ): Promise<string> => {
      const entry: (typeof schedules)[number] = {
        sentAt: t(),
        delayMs: req.delayMs,
        timeoutMs: manager.effectiveTiming.requestTimeoutMs,
      };
      schedules.push(entry);
      // Known once an id reached the manager (late answers too: it keeps listening); an error leaves it
      // in doubt (the server may have acted before it).
      return p.then(
        (id) => {
          if (!o?.signal?.aborted) entry.answeredAt = t();
          return id;
        },
        (e: unknown) => {
          entry.erroredAt ??= t();
          throw e;
        },
      );
    };
    /** Delay ids whose answer reached the manager after dispose() (O: they must be cancelled). */
    const lateIds = new Set<string>();
    let disposed = false;
    const noteLate = (id: string) => {
      if (disposed && !crashed) {
        lateIds.add(id);
        tnote(`   <- schedule answered ${id} after dispose()`);
      }
      return id;
    };
    /** The keys this tab's requests went to (state: the device's; sticky: each call's member id). */
    const keysUsed = new Set<string>();
    const backend: MembershipBackend = {
      sendDelayedStateEvent: (req, o) =>
        inDoubt(via("schedule", server.sendDelayedStateEvent.bind(server))(req, o), req, o).then(noteLate),
      sendStateEvent: (req, o) => {
        if (!dead) noteCover(req.stateKey, req.content);
        return via("state", server.sendStateEvent.bind(server))(req, o);
      },
      sendDelayedStickyEvent: (req, o) => {
        keysUsed.add(stickyMapKey(req.stickyKey));
        return inDoubt(via("schedule", server.sendDelayedStickyEvent.bind(server))(req, o), req, o).then(
          noteLate,
        );
      },
      // (The sticky format's write lands at the member id's key: its cover is the delayed leave there.)
      sendStickyEvent: (req, o) => {
        keysUsed.add(stickyMapKey(req.stickyKey));
        if (!dead) noteCover(stickyMapKey(req.stickyKey), req.content);
        return via("state", server.sendStickyEvent.bind(server))(req, o);
      },
      // Only a restart's 404 tells the manager its tracked delayed leave is gone (a cancel's is an orphan's).
      updateDelayedEvent: (id, action, o) =>
        action === "restart"
          ? via("delayed-action", server.updateDelayedEvent.bind(server))(id, action, o)
          : via(undefined, server.updateDelayedEvent.bind(server))(id, action, o).catch((e: unknown) => {
              tnote(`   <- ${action} rejected: ${(e as { httpStatus?: number })?.httpStatus ?? String(e)}`);
              throw e;
            }),
      ...(tabEyes === "blind"
        ? {}
        : {
            readStateEvent: via("read", server.readStateEvent.bind(server)),
            readState: via("read", server.readState.bind(server)),
            readEvent: via("read", server.readEvent.bind(server)),
          }),
      listDelayedEvents: (o) =>
        via(
          "list",
          server.listDelayedEvents.bind(server),
        )(o).then((list) => {
          listAnswers.push(t());
          return list;
        }),
      probeSupport: server.probeSupport.bind(server),
      // (Not a "gone": the service's 404 says it has no delegation.)
      ...(delegation
        ? { delegateDelayedLeave: via(undefined, server.delegateDelayedLeave.bind(server)) }
        : {}),
    };

    const manager = new MembershipManager({
      backend,
      roomId: "!room:localhost",
      userId: "@alice:localhost",
      deviceId: "DEV",
      delayedLeaveDelayMs: DELAY_MS,
      scheduler: time.scheduler,
      logger: quiet,
      random: mulberry32(slot === 1 ? jitterSeed : jitterSeed ^ Math.imul(0x9e3779b9, instance)),
      fociPreferred: [{ type: "livekit", livekit_service_url: url }],
      ...(tabEyes === "view"
        ? { roomState: eventsStateSource(server.roomStateView("@alice:localhost")) }
        : {}),
      ...(format === "sticky" ? { membershipFormat: "sticky" as const } : {}),
      ...(delegation
        ? {
            sfuUrl: "wss://sfu.example",
            delegatedDelayMs: DELEGATED_DELAY_MS,
            delegatedHeartbeatIntervalMs: DELEGATED_INTERVAL_MS,
          }
        : {}),
    });
    // Our membership's key: the state key (the device's, shared by its tabs), or in the sticky format the
    // current call's sticky key (the member id is fresh per join, so earlier calls' keys are ours too).
    const stateKeyOfOurs = manager.stateKey;
    if (format === "state") keysUsed.add(stateKeyOfOurs);
    let lastMemberId: string | undefined;
    const key = (): string => {
      if (format === "state") return stateKeyOfOurs;
      lastMemberId = manager.memberId ?? lastMemberId;
      return lastMemberId === undefined ? "sticky:" : stickyMapKey(lastMemberId);
    };
    const isOurKey = (k: string) => keysUsed.has(k);
    const ourKeys = (): string[] => [...keysUsed];
    /** Our own delayed events at `k` (another tab's at the shared key are not ours). */
    const ownPendingAt = (k: string) => server.pendingFor(k).filter((id) => originOf.get(id) === origin);
    const pendingOurs = (): string[] => ourKeys().flatMap(ownPendingAt);
    const lastOwnCreated = () =>
      Math.max(
        -Infinity,
        ...[...createdAt].filter(([id]) => originOf.get(id) === origin).map(([, at]) => at),
      );
    /** The device's membership at `k` (whichever tab wrote it; another user's content is not). */
    const holdsAt = (k: string): boolean => {
      const c = server.contentAt(k);
      return isMembership(c) && !isForeign(c);
    };
    /** This tab's own membership (its focus) at `k`. */
    const holdsOwnAt = (k: string): boolean =>
      holdsAt(k) && JSON.stringify(server.contentAt(k)).includes(url);
    const timing = manager.effectiveTiming;
    const oneRequest = () => slowestRtt + timing.requestTimeoutMs;

    // --- App intent -------------------------------------------------------------------------
    let intent = "left" as "joined" | "left";
    let seq = 0; // orders join() and leave() calls
    let lastJoinSeq = -1;
    let lastLeaveAt = -Infinity; // virtual time of the last leave() call

    /** The manager says the server has no delayed events (degraded mode). */
    let degradedNow = false;
    /** Every delay id the manager ever learned (delayId$); others at our key are orphans it never knew. */
    const trackedIds = new Set<string>();
    let currentId: string | undefined;
    const kindOf = (id: string) => (trackedIds.has(id) ? "tracked" : "orphan");
    /** Open checks for invariant 3: a fire of our delayed leave at our key while the app wanted to be joined. */
    const fires: { at: number; id: string; satisfied: boolean; exempt: boolean; withinMs: number }[] = [];
    /** The last timer fire of our key not yet followed by a membership write of ours (for R). */
    let unresolvedFireAt: number | undefined;
    /** When a delayed leave of ours was last removed by someone else (and its delay: a delegated one is longer). */
    let lastExternalRemoval = { at: -Infinity, delayMs: DELAY_MS };
    let lostByServer = false;
    /** How its last delayed leave ended: fired (or sent by the service), or removed otherwise. */
    let lastLeaveFired = false;
    let landedAfterFire = false;
    /** Each delayed leave of ours someone else removed: when, and its delay. */
    const removedExternally = new Map<string, { at: number; delayMs: number }>();
    /** Invariant 1 window: from leave() resolving "left" until the next join(). */
    let leftWindow: { at: number; open: boolean } | undefined;
    /** A late write of ours (sent before the leave, processed after) may stand until then (the guard). */
    let lateGhostUntil = -Infinity;
    /** Delayed {} scheduled by a leave (after its call) against such late writes: not an orphan. */
    const guardIds = new Set<string>();
    /** Someone else wrote `{}` at our key (another tab's leave, a fired leave not ours, a redaction). */
    let othersWroteLeft = false;
    /**
     * A change of holder is under way (core/machine/delegation.ts): it schedules the other kind of delayed
     * leave beside the old one, which it cancels only once the new one is taken (one is always pending),
     * so two of ours are pending, one with the delegated delay and one with the normal one (restated 5:
     * with a service that never answers, a switch is tried again and again).
     */
    const switching = () => {
      const delays = pendingOurs().map((id) => server.delayed.get(id)?.delayMs);
      // (The normal one's delay may have been lowered by the server.)
      return delegation && delays.length === 2 && delays.filter((d) => d === DELEGATED_DELAY_MS).length === 1;
    };

    /** The unprocessed write of ours with this content that had the least time left when sent (strict). */
    function takeSentWrite(content: Record<string, unknown>): (typeof writesSent)[number] | undefined {
      const json = JSON.stringify(content);
      let best = -1;
      for (let i = 0; i < writesSent.length; i++) {
        const w = writesSent[i];
        if (w.content !== json) continue;
        if (best < 0 || w.spare < writesSent[best].spare) best = i;
      }
      return best < 0 ? undefined : writesSent.splice(best, 1)[0];
    }

    // --- Manager observation -----------------------------------------------------------------
    manager.support$.subscribe((sup) => (degradedNow = sup.delayedEvents === false));
    manager.delayId$.subscribe((id) => {
      currentId = id;
      if (id) trackedIds.add(id);
    });
    let prevStatus = manager.status;
    manager.status$.subscribe((s) => {
      if (s !== prevStatus) tnote(`   status ${prevStatus} -> ${s} (${manager.state.kind})`);
      prevStatus = s;
    });
    /** When the state last became `failed`. */
    let failedAt = -Infinity;
    let prevKind = manager.state.kind;
    manager.state$.subscribe((st) => {
      if (st.kind === "failed" && prevKind !== "failed") failedAt = t();
      prevKind = st.kind;
    });
    manager.probablyLeft$.subscribe((p) => {
      tnote(`   probablyLeft = ${p}`);
      if (p) for (const f of fires) if (!f.satisfied && t() <= f.at + f.withinMs) f.satisfied = true;
    });

    const serverHoldsOurMembership = () => holdsAt(key());
    /** Any membership of this tab's (in the sticky format: at any of its member ids). */
    const serverHoldsAnyOfOurs = () => ourKeys().some(holdsOwnAt);

    const checkLeft = (when: string) => {
      if (!leftWindow?.open) return;
      if (serverHoldsAnyOfOurs() && t() > lateGhostUntil)
        violate(
          "1",
          `${label}${when}: server holds our membership after leave() resolved left at ${leftWindow.at}`,
        );
      // A delayed {} that a request sent before the leave created only now (processed after its timeout,
      // its id never learnt): nothing of ours can stop it; it fires {} over our {} (harmless while left).
      const lateLanded = (id: string) =>
        (createdAt.get(id) ?? -Infinity) > leftWindow!.at && !trackedIds.has(id);
      const pending = pendingOurs().filter((id) => !guardIds.has(id) && !lateLanded(id));
      if (pending.length > 0)
        violate(
          "1b",
          `${label}${when}: delayed event(s) ${pending.map((id) => `${id} (${kindOf(id)})`).join(",")} of ours pending after leave() resolved left at ${leftWindow.at}`,
        );
    };

    /**
     * When the app called join(), leave() or update(), and when what it asked for was done (the H bound
     * counts what they may send). An intent's requests go out on the app's bucket whenever the intent gets
     * to them, not only in the second it was made: a join's first membership write waits for its schedule,
     * which may take retries (seed 1107936452: the join's write 983 ms after join(), in a second with 10
     * requests of the manager's own). So an intent counts for every second until it is done: a join until
     * we are connected (or it failed, or a leave() came after it), a leave() or update() until it settles.
     * A join() or leave() while one of the same kind is still not done asks for nothing new (the manager
     * takes it as the same intent) and is done at once.
     */
    const appIntents: { at: number; kind: "join" | "leave" | "update"; seq: number; doneAt?: number }[] = [];
    const addIntent = (kind: "join" | "leave" | "update") => {
      // A leave() ends the joins before it at once (as check() would at its next run): a rejoin's join()
      // is an intent of its own, not the same as the one its leave() ended.
      if (kind === "leave") for (const j of appIntents) if (j.kind === "join") j.doneAt ??= t();
      const i: (typeof appIntents)[number] = { at: t(), kind, seq };
      if (kind !== "update" && appIntents.some((x) => x.kind === kind && x.doneAt === undefined))
        i.doneAt = i.at;
      appIntents.push(i);
      return i;
    };
    /** The normal delay in force (the server may have lowered it), for H's bound. */
    let normalDelayMs = DELAY_MS;
    // Invariant 2 bookkeeping.
    let gap: { start: number; external: boolean } | undefined;
    // Invariant E bookkeeping: since when "connected" while the server holds no membership of ours, and
    // whether reads of our key could fail meanwhile (a fault on them, or the network down).
    let eyesGap: { start: number; blinded: boolean } | undefined;

    const check = () => {
      if (disposed) return;
      const now = t();
      checkLeft("check");
      // H: whatever the server answers, a bounded number of requests per second (per tab: each has its
      // own budget; the second tab's answers are not a licence to flood).
      while (hStart < entries.length && entries[hStart].at <= now - 1000) hStart++;
      const recent = entries.length - hStart;
      // What the app asked for in that second goes out on its own bucket (issue 20 item 13): each join,
      // leave or update may send up to APP_REQUESTS_PER_INTENT first attempts besides the manager's own.
      for (const i of appIntents)
        if (
          i.kind === "join" &&
          i.doneAt === undefined &&
          (manager.status === "connected" ||
            // (A join() while the last call's failure still stands starts a new call: a later failure.)
            (manager.state.kind === "failed" && failedAt >= i.at) ||
            appIntents.some((l) => l.kind === "leave" && l.seq > i.seq))
        )
          i.doneAt = now;
      const open = appIntents.filter((i) => i.doneAt === undefined || i.doneAt > now - 1000);
      // (The budget's rate follows the resolved interval of the normal delay in force, half of it, not the
      // adaptive one, which may be longer, nor a delegated leave's: with a lowered delay it allows more.)
      const eff = manager.effectiveTiming;
      if (eff.delayMs !== DELEGATED_DELAY_MS) normalDelayMs = eff.delayMs;
      const limit =
        hotLoopLimit(Math.min(eff.heartbeatIntervalMs, Math.round(normalDelayMs / 2))) +
        APP_REQUESTS_PER_INTENT * open.length +
        (delegation ? DELEGATION_SWITCH_REQUESTS * open.filter((i) => i.kind === "join").length : 0);
      if (recent > limit)
        violate("H", `${label}${recent} requests in the second before ${now} (limit ${limit})`);
      // 2 (degraded mode says so: `joined` with delayedLeave false is honest without a delayed leave)
      const degraded = manager.state.kind === "joined" && !manager.state.delayedLeave;
      const connected = manager.status === "connected" && !degraded;
      const pending = ownPendingAt(key()).length > 0;
      if (connected && !pending) {
        // External: the last delayed leave of ours was removed by the server or someone else (another
        // tab's sweep, a write that cancels it before Synapse 1.127), not by us. Restated with the
        // delegation service: or the one the manager holds was (a switch of holder's new delayed leave,
        // made after it and cancelled by us, is not the one whose heartbeat can tell).
        const held = currentId === undefined ? undefined : removedExternally.get(currentId);
        gap ??= { start: now, external: lastExternalRemoval.at >= lastOwnCreated() || held !== undefined };
        let deadline = gap.start + oneRequest();
        if (gap.external) {
          const removal = held ?? lastExternalRemoval;
          // (Learned: a "gone" for that delayed leave; on a link without latency, one for an earlier one
          // can arrive in the same millisecond as its removal.)
          const learned =
            held === undefined
              ? goneDeliveredAt.find((x) => x >= removal.at)
              : goneDeliveredFor.find((x) => x.at >= removal.at && x.id === currentId)?.at;
          // Until it would have fired anyway (restated with the delegation service: by the removed one's
          // own delay; a delegated leave's is longer, and so are our restarts of it) or we learned of it.
          deadline = Math.min(removal.at + removal.delayMs, learned ?? Infinity) + oneRequest();
        }
        if (now > deadline)
          violate(
            "2",
            `${label}status "connected" with no delayed leave of ours pending since ${gap.start} ` +
              `(${gap.external ? "after an external removal" : "no external cause"}), now ${now}`,
          );
      } else gap = undefined;
      // E (per tab: the device's membership, whichever tab wrote it, is what others list)
      const watched = !(manager.state.kind === "joined" && manager.state.membershipWatched === false);
      if (manager.status === "connected" && watched && !serverHoldsOurMembership()) {
        eyesGap ??= { start: now, blinded: false };
        if (server.down || lastBlindAt >= eyesGap.start - timing.heartbeatIntervalMs) eyesGap.blinded = true;
        const bound = timing.membershipCheckIntervalMs + timing.delayMs + 2 * oneRequest();
        if (!eyesGap.blinded && now - eyesGap.start > bound)
          violate(
            "E",
            `${label}status "connected" while the server has held no membership of ours since ${eyesGap.start} (now ${now})`,
          );
      } else eyesGap = undefined;
      // 3
      for (const f of fires) {
        if (f.exempt || f.satisfied) continue;
        if (lastLeaveAt >= f.at) {
          f.exempt = true; // the app asked to leave within the window: probablyLeft is moot
          continue;
        }
        if (now > f.at + f.withinMs) {
          violate(
            "3",
            `${label}the server fired our leave (${f.id}, ${kindOf(f.id)}) at ${f.at} while we wanted to be joined; probablyLeft never turned ` +
              `true within one heartbeat (${f.withinMs} ms)`,
          );
          f.exempt = true;
        }
      }
    };

    const track = <T>(what: string, p: Promise<T>): Promise<T> => {
      unsettled.add(what);
      const done = () => unsettled.delete(what);
      p.then(done, done);
      return p;
    };
    const leaveResults: Promise<unknown>[] = [];
    /** leave() and update() promises not settled yet (dispose() promises they all settle). */
    const unsettled = new Set<string>();

    const tab: Tab = {
      slot,
      origin,
      label,
      manager,
      entries,
      intent: () => intent,
      disposed: () => disposed,
      crashed: () => crashed,
      currentId: () => currentId,
      // Until answered, or until what it made surely fired: its abort (a delay after its send), a delay,
      // and a request.
      // In doubt over [its timeout, its id's arrival, or the end of what it made]: does that meet [from, to]?
      scheduleInDoubt: (from, to) =>
        schedules.some((x) => {
          const start = Math.min(x.sentAt + x.timeoutMs, x.erroredAt ?? Infinity);
          const end = Math.min(x.answeredAt ?? Infinity, x.sentAt + 2 * x.delayMs + 2 * oneRequest());
          return start <= end && start <= to && end >= from;
        }),
      lastListAnsweredBy: (at) => listAnswers.findLast((x) => x <= at),
      key,
      usesKey: isOurKey,
      join() {
        intent = "joined";
        lastJoinSeq = ++seq;
        addIntent("join");
        if (leftWindow) leftWindow.open = false;
        manager.join();
      },
      leave(cmd, index) {
        intent = "left";
        lastLeaveAt = t();
        const calledAt = t();
        const leaveSeq = ++seq;
        const leaveIntent = addIntent("leave");
        const p = track(
          `${label}leave() of command ${index}`,
          manager.leave(cmd.k === "leave" && cmd.timeoutMs !== undefined ? { timeoutMs: cmd.timeoutMs } : {}),
        );
        const leaveDone = () => void (leaveIntent.doneAt ??= t());
        p.then(leaveDone, leaveDone);
        leaveResults.push(
          p.then((r) => {
            tnote(`   leave() from command ${index} resolved ${JSON.stringify(r)}`);
            if (r.status !== "left" || disposed) return;
            // The leave's guard against a late write: a delayed {} created after the leave was called.
            for (const id of pendingOurs()) {
              const content = server.delayed.get(id)?.content;
              if ((createdAt.get(id) ?? -Infinity) >= calledAt && content && isLeftContent(content))
                guardIds.add(id);
            }
            // "unless we join again": a join() issued after this leave() closes the window at once.
            const window = { at: t(), open: lastJoinSeq < leaveSeq };
            if (window.open) leftWindow = window;
            // The at-resolution check applies even if a join() followed (the leave completes first).
            if (serverHoldsAnyOfOurs())
              violate(
                "1",
                `${label}leave() resolved ${JSON.stringify(r)} but the server holds our membership`,
              );
            const pending = pendingOurs().filter((id) => !guardIds.has(id));
            if (pending.length > 0)
              violate(
                "1b",
                `${label}leave() resolved ${JSON.stringify(r)} with delayed event(s) ${pending.map((id) => `${id} (${kindOf(id)})`).join(",")} still pending`,
              );
          }),
        );
        if (cmd.k === "rejoin") tab.join();
      },
      update(index) {
        const updateIntent = addIntent("update");
        const updateDone = () => void (updateIntent.doneAt ??= t());
        track(
          `${label}update() of command ${index}`,
          manager.update({ callIntent: index % 2 ? "audio" : "video" }),
        ).then(updateDone, updateDone);
      },
      crash() {
        tnote("   the page crashes: nothing it sends arrives any more");
        dead = true;
        crashed = true;
        // Its SFU connection goes with it: the service sends what it held for this tab.
        if (delegation) server.sfuDisconnect((_, o) => o === origin);
        manager.dispose();
        disposed = true;
      },
      check,
      onRemoved(id, delayMs, cause, by) {
        // Removed by us: our cancel, our send. Anything else is external: the server lost it, a write
        // cancelled it (another user's; before 1.127 any of the device's, ours included), another tab
        // cancelled it, the delegation service sent it.
        lastLeaveFired = false;
        if ((cause === "cancel" || cause === "send") && by?.origin === origin) return;
        // (By the server's own rules: it lost it, or a write at the key cancelled it: another user's, or
        // before Synapse 1.127 any of the device's, its own included.)
        if (cause === "lost" || cause === "write-cancelled") lostByServer = true;
        // (Several at once, as a write cancelling every one at the key: the longest delay, a delegated
        // leave's, is the one whose heartbeat finds out.)
        const at = t();
        const prev = lastExternalRemoval;
        lastExternalRemoval = { at, delayMs: prev.at === at ? Math.max(prev.delayMs, delayMs) : delayMs };
        removedExternally.set(id, { at, delayMs });
      },
      onWrite(stateKey, content, writer, sent) {
        if (!isOurKey(stateKey)) return;
        if (writer !== tab && sent?.owner !== tab && !isMembership(content)) othersWroteLeft = true;
        if (sent && sent.owner === tab) {
          // Our delayed leave sent at our key: by its timer, or by the delegation service (the SFU lost us).
          // Exempt: the app did not want to be joined, or a leave() it asked for is still being carried out,
          // or the key held no membership of ours (a fire over nothing: nobody saw us leave).
          const before = server.contentAt(stateKey);
          const exempt =
            intent !== "joined" ||
            disposed ||
            // The manager ended the call and said so (a typed failure): a fire is what it announced.
            manager.state.kind === "failed" ||
            manager.state.kind === "leaving" ||
            // Sticky format: a fire at an earlier call's key (a leave's guard against a late write of that
            // call) cannot take the current call's membership, which has a fresh key.
            (format === "sticky" && stateKey !== key()) ||
            !(before && isMembership(before) && !isForeign(before)) ||
            // Restated for the shared key: the membership it took down was another tab's, and this tab had
            // not said it was in the call: it owes no retraction (it is joining; its own write follows), and
            // the tab whose membership it was sees the `{}` with its eyes (E) or its heartbeat (found: a
            // joining tab's orphan, its listings refused, fired over a second tab's membership).
            (manager.status !== "connected" && !JSON.stringify(before).includes(url));
          // Within one heartbeat (restated with the delegation service: a delegated leave is restarted by us
          // every DELEGATED_INTERVAL_MS, and the service may send it at any moment in between: the next
          // restart's answer, one delegated heartbeat and a request away, tells; no time predicts it).
          const withinMs =
            sent.delayMs === DELEGATED_DELAY_MS
              ? DELEGATED_INTERVAL_MS + oneRequest()
              : timing.heartbeatIntervalMs;
          fires.push({
            at: t(),
            id: sent.id,
            satisfied: manager.disposed ? false : manager.probablyLeft,
            exempt,
            withinMs,
          });
          unresolvedFireAt = t();
          lastLeaveFired = true;
          if (sent.byService) tnote(`   the delegation service sends our leave ${sent.id}`);
        } else if (writer === tab && isMembership(content)) {
          if (crashed && lastLeaveFired && ownPendingAt(stateKey).length === 0) landedAfterFire = true;
          // R: a membership write of ours that (re)creates the device's membership (after a fired leave, a
          // leave, or before anything) must be protected by a pending delayed leave of ours: another tab's
          // may be cancelled or sent whenever that tab leaves, crashes or judges ours dead.
          const before = server.contentAt(stateKey);
          // A write sent while a delayed leave of ours was pending, with at least a request's time (on the link
          // in force when it was sent) before it was due, whose cover went while it was on the wire (the server lost it, or it fired because the
          // heartbeats failed while this write took longer than the delay): no client can recall a request in
          // flight. Not R; the next heartbeat's 404 (or the eyes) must repair it, which invariants 3 and 5
          // judge. A write sent with its cover about to fire is still R (counterexamples D, D2).
          const sentWrite = takeSentWrite(content);
          // Removed behind our back: and not known to us when the write was sent (a "gone" that reached us
          // while it was on its way could not recall it; found with the rules before Synapse 1.127, where
          // another writer's `{}` cancels our delayed leave).
          const sentAt = sentWrite?.sentAt ?? t();
          const unseenSince = (at: number) => !goneDeliveredAt.some((x) => x >= at && x <= sentAt);
          // Restated with the delegation service (as 2 is): or the delayed leave the manager held when the
          // write was sent was removed so, although one of ours was created after that removal (a switch of
          // holder's new one, which the service refused and we cancelled ourselves: D11); that one was never
          // the write's cover, the held one was, and only its restart's 404 (or the eyes) can tell.
          const heldRemoval =
            sentWrite?.heldId === undefined ? undefined : removedExternally.get(sentWrite.heldId);
          const removedBehindOurBack =
            (lastExternalRemoval.at >= lastOwnCreated() && unseenSince(lastExternalRemoval.at)) ||
            (heldRemoval !== undefined && unseenSince(heldRemoval.at));
          const coveredWhenSent = sentWrite !== undefined && sentWrite.spare >= 0;
          // Degraded mode (the manager says it has no delayed events) writes without one, by design.
          if (
            !isMembership(before) &&
            ownPendingAt(stateKey).length === 0 &&
            !removedBehindOurBack &&
            !coveredWhenSent &&
            !degradedNow
          )
            violate(
              "R",
              label +
                (unresolvedFireAt !== undefined
                  ? `membership written at ${t()} after the server fired our leave at ${unresolvedFireAt}, ` +
                    `with no delayed leave of ours pending (none scheduled since: ${
                      lastOwnCreated() >= unresolvedFireAt ? "no" : "yes"
                    })`
                  : `membership (re)created at ${t()} with no delayed leave of ours pending`) +
                ` [manager: ${manager.state.kind}, probablyLeft ${manager.probablyLeft}]`,
            );
          unresolvedFireAt = undefined;
          if (leftWindow?.open) {
            // A write of ours sent before the leave resolved, processed only now (held in the network):
            // allowed while the leave's guard (a delayed {}) may not have taken it down yet.
            const sentEntry = entries.findLast(
              (e) =>
                e.op === "state" &&
                e.at <= leftWindow!.at &&
                JSON.stringify(e.content) === JSON.stringify(content),
            );
            if (sentEntry && t() - sentEntry.at > timing.stateRequestTimeoutMs)
              lateGhostUntil = sentEntry.at + LATE_GHOST_MS;
            else
              violate(
                "1",
                `${label}membership written by us at ${t()} after leave() resolved left at ${leftWindow.at}`,
              );
          }
        }
      },
      wrote: (content) => !!content && JSON.stringify(content).includes(url),
      serverLostOne: () => lostByServer,
      landedAfterItsLeaveFired: () => landedAfterFire,
      refused: () =>
        manager.state.kind === "failed" && ["forbidden", "rejected"].includes(manager.state.error.code),
      foreignOwnsKey() {
        unresolvedFireAt = undefined;
      },
      healChecks(othersJoined) {
        if (disposed) return;
        // A typed failure on a refusal (403, 400: retrying the same request cannot help) is an honest end
        // the app must act on (issue 11: "degraded mode or a typed failed, never silence").
        const refused =
          manager.state.kind === "failed" && ["forbidden", "rejected"].includes(manager.state.error.code);
        // Degraded mode (the server refused our delay or said it has no delayed events) is honest when it
        // says so: `joined` with delayedLeave false, the membership held, support$ says why.
        const degraded = manager.state.kind === "joined" && !manager.state.delayedLeave;
        // Nothing watches our key (no read, no view): another writer's `{}` is invisible, and joined says so.
        const blindOk =
          tabEyes === "blind" &&
          othersWroteLeft &&
          manager.state.kind === "joined" &&
          manager.state.membershipWatched === false &&
          !isMembership(server.contentAt(key()));
        // Restated for two tabs before Synapse 1.127 (docs/compatibility.md, "Two tabs of the same device"):
        // each one's write cancels every delayed leave at the shared key, the other's and its own, so while
        // both want to be joined they re-join in turn on every heartbeat and never settle. At any moment a
        // tab may be reconnecting, or connected until its next restart learns that the other's write took
        // its delayed leave (invariant 2 allows that window); what must hold is that the key holds the
        // device's membership, and that neither tab falls silent (S).
        const st = manager.state;
        const turnTaking =
          othersJoined &&
          rules === "pre-1.127" &&
          format === "state" &&
          (st.kind === "joined" || st.kind === "reconnecting");
        if (intent === "joined" && refused) tnote("   (ends failed on a refusal: exempt from 5)");
        else if (intent === "joined" && blindOk)
          tnote("   (another writer's {} nothing could see, said so: exempt from 5)");
        else if (intent === "joined") {
          const c = server.contentAt(key());
          if (
            (manager.status !== "connected" && !turnTaking) ||
            !isMembership(c) ||
            isForeign(c) ||
            (ownPendingAt(key()).length === 0 && !degraded && !turnTaking)
          )
            violate(
              "5",
              `${label}after healing, the app wants to be joined but status=${manager.status} (${manager.state.kind}), ` +
                `server content=${JSON.stringify(c)}, pending=${ownPendingAt(key()).length}` +
                (fires.some((f) => kindOf(f.id) === "orphan")
                  ? `; orphan fires: ${fires.filter((f) => kindOf(f.id) === "orphan").map((f) => `${f.id}@${f.at}`)}`
                  : ""),
            );
          else if (pendingOurs().length > 1 && !switching())
            violate("5", `${label}after healing, ${pendingOurs().length} delayed leaves of ours are pending`);
        } else {
          if (pendingOurs().length > 0)
            violate(
              "O",
              `${label}after leave() and healing, delayed leave(s) ${pendingOurs()
                .map((id) => `${id} (${kindOf(id)})`)
                .join(",")} of ours still pending`,
            );
          // Restated: a leave() that ended `failed` on a refusal of our `{}` (403, 400) is the same honest
          // end as a refused join: the app was told, and no retry of the same request can help. Before Synapse
          // 1.127 the delayed leave our `{}` falls back on is often gone already (our own membership write
          // cancelled it), so that refusal leaves the membership standing.
          if (refused) tnote("   (its leave ended failed on a refusal: exempt from 5)");
          else if (serverHoldsAnyOfOurs() || pendingOurs().length > 0 || manager.status !== "disconnected")
            violate(
              "5",
              `${label}after healing, the app wants to be out but status=${manager.status} (${manager.state.kind}), ` +
                `server content=${JSON.stringify(server.contentAt(key()))}, pending=${pendingOurs().length}`,
            );
        }
      },
      silenceCheck(from, to) {
        if (disposed || intent !== "joined") return;
        const st = manager.state;
        // Honest ends that send nothing for long: a refusal said so (failed), degraded mode's refreshes.
        if (st.kind === "failed" || (st.kind === "joined" && !st.delayedLeave) || degradedNow) return;
        // Never a whole delay (the one in force) without a request: a tab that wants to be joined keeps
        // its delayed leave alive, or is finding out what became of it.
        const within = manager.effectiveTiming.delayMs;
        const sends = [from, ...entries.filter((e) => e.at >= from && e.at <= to).map((e) => e.at)];
        const silentFrom = sends.find((at, i) => (sends[i + 1] ?? to) - at > within);
        if (silentFrom !== undefined)
          violate(
            "S",
            `${label}wants to be joined (${manager.status}, ${st.kind}) but sent nothing for more than ${within} ms after ${silentFrom}`,
          );
      },
      dispose() {
        tnote("   dispose()");
        if (delegation) server.sfuDisconnect((_, o) => o === origin);
        manager.dispose();
        disposed = true;
      },
      afterDispose(sinceEntry) {
        if (manager.pendingTimers !== 0)
          violate("4", `${label}${manager.pendingTimers} timers pending 30 s after dispose()`);
        if (unsettled.size > 0)
          violate("4", `${label}never settled after dispose(): ${[...unsettled].join(", ")}`);
        if (crashed) return; // it sent nothing since it crashed; late ids it could not cancel
        for (const id of lateIds)
          if (firedIds.has(id))
            violate("O", `${label}${id}, answered after dispose(), was never cancelled and fired`);
        const afterDispose = entries.slice(sinceEntry).filter((e) => e.op !== "cancel");
        if (afterDispose.length > 0)
          violate(
            "4",
            `${label}${afterDispose.length} request(s) other than cancels of late delay ids sent after dispose(): ${afterDispose
              .map((e) => e.op)
              .join(", ")}`,
          );
      },
      async settled() {
        if (unsettled.size === 0) await Promise.all(leaveResults);
      },
    };
    tabs.push(tab);
    return tab;
  };

  const tab1 = openTab(1, eyes);
  const checkAll = () => {
    for (const tab of tabs) tab.check();
  };

  /** Advance virtual time, checking after every due timer. */
  const advance = async (ms: number) => {
    const s = time.scheduler;
    const target = s.frame + ms;
    await settle();
    checkAll();
    for (;;) {
      const next = s.actions.find((a) => !a.closed);
      if (!next || next.delay > target) break;
      s.maxFrames = next.delay;
      s.flush();
      await settle();
      checkAll();
    }
    s.frame = Math.max(s.frame, target);
    await settle();
    checkAll();
  };

  const prevLogLen = { n: 0 };
  const traceLog = () => {
    for (const e of server.log.slice(prevLogLen.n))
      push(
        e.at,
        `   -> ${twoTabs && e.origin ? `[${e.origin}] ` : ""}${e.op}${e.delayId ? ` ${e.delayId}` : ""}${
          e.op === "state" ? (isMembership(e.content) ? " membership" : " {}") : ""
        } [${e.outcome}]`,
      );
    prevLogLen.n = server.log.length;
  };

  // --- Play the schedule -----------------------------------------------------------------------
  let cmdIndex = -1;
  for (const cmd of cmds) {
    cmdIndex++;
    traceLog();
    note(`# ${describeCmd(cmd)}`);
    switch (cmd.k) {
      case "join":
        tab1.join();
        break;
      case "rejoin":
      case "leave":
        tab1.leave(cmd, cmdIndex);
        break;
      case "update":
        tab1.update(cmdIndex);
        break;
      case "tab2": {
        if (!twoTabs) break;
        let tab2 = liveTab2();
        if (cmd.act === "join") (tab2 ??= openTab(2, opts.tab2Eyes ?? eyes)).join();
        else if (!tab2) break;
        else if (cmd.act === "leave") tab2.leave({ k: "leave" }, cmdIndex);
        else if (cmd.act === "update") tab2.update(cmdIndex);
        else tab2.crash();
        break;
      }
      case "sfuDisconnect":
        if (delegation) server.sfuDisconnect((_, o) => tabOf(o)?.slot === cmd.tab);
        break;
      case "service":
        if (delegation) server.setDelegationMode(cmd.mode);
        break;
      case "advance":
        await advance(cmd.ms);
        break;
      case "down":
        server.down = true;
        lastBlindAt = Infinity;
        break;
      case "up":
        server.down = false;
        lastBlindAt = t();
        break;
      case "fault":
        server.inject(cmd.op, faultOf(cmd.fault, server), cmd.times);
        // Faults on reads (and 429s anywhere, which hold the budget) keep us from seeing our key for a while.
        if (cmd.op === "probe" || cmd.fault.kind === "429" || cmd.fault.kind === "hang")
          lastBlindAt = Infinity;
        break;
      case "losePending":
        // The server loses its delayed events (every tab's).
        for (const id of [...server.delayed.keys()]) server.lose(id);
        break;
      case "foreignWrite":
        // Nobody else can write our sticky key: the sticky format's "someone else" is a moderator's
        // redaction of our membership event, which cancels nothing (as another tab's `{}` at a state key).
        if (format === "sticky") {
          server.redactCurrentSticky(tab1.key());
          break;
        }
        inForeign = true;
        try {
          server.foreignWrite(tab1.manager.stateKey, {
            [FOREIGN_MARK]: true,
            application: "m.call",
            device_id: "OTHER",
          });
        } finally {
          inForeign = false;
        }
        // Someone else now owns the content at our key; that is not a resurrection of ours.
        for (const tab of tabs) tab.foreignOwnsKey();
        break;
      case "sameDeviceWrite":
        // (Sticky format: another tab has a member id of its own; a redaction empties ours.)
        if (format === "sticky") server.redactCurrentSticky(tab1.key());
        else server.sameDeviceWrite(tab1.key(), {});
        break;
      case "latency":
        latency = { ms: cmd.ms, jitterMs: cmd.jitterMs };
        slowestRtt = Math.max(slowestRtt, cmd.ms + cmd.jitterMs);
        break;
    }
    await settle();
    checkAll();
  }

  // --- Heal: network up, no more faults; the tabs must converge to what their apps asked. -----
  traceLog();
  note("# heal (network up, faults cleared)");
  server.down = false;
  server.clearFaults();
  latency = { ms: LATENCY_MS, jitterMs: 0 };
  lastBlindAt = t();
  const healMs = opts.healMs ?? HEAL_MS;
  const healFrom = t();
  await advance(healMs);
  traceLog();
  const live = tabs.filter((x) => !x.disposed());
  for (const tab of live)
    tab.healChecks(
      live.some((o) => o !== tab && o.intent() === "joined" && o.manager.state.kind !== "failed"),
    );
  for (const tab of live) tab.silenceCheck(Math.max(healFrom, t() - SILENCE_WINDOW_MS), t());
  // The device as a whole: once no live tab wants to be joined, no membership of any of its tabs (a
  // crashed one's included: its delayed leave removes it) stays on the server.
  if (format === "state" && !live.some((x) => x.intent() === "joined" || x.refused())) {
    const c = server.contentAt(tab1.manager.stateKey);
    const writer = tabs.find((x) => x.wrote(c));
    // Restated: a crashed tab whose delayed leave the server removed by its own rules (lost it, or a write
    // cancelled it: another user's, or before Synapse 1.127 one of the device's, the tab's own included,
    // which a live tab repairs at its next heartbeat) left a membership nothing of ours can take down: its
    // page is gone, and no live tab of ours cancelled its protection (which is what this check is for: T4).
    // So did a crashed tab's write that was on its way when its page died and landed after its own delayed
    // leave had fired: no client can recall a request in flight (R's in-flight case, with nobody left to
    // repair it).
    if (writer?.crashed() && (writer.serverLostOne() || writer.landedAfterItsLeaveFired()))
      note(`   (${writer.label}crashed and its membership outlived its delayed leave: exempt)`);
    else if (isMembership(c) && !isForeign(c))
      violate("5", `after healing, no tab wants to be joined but the server holds ${JSON.stringify(c)}`);
  }

  // --- Dispose: no timers, nothing sent afterwards. -------------------------------------------
  note("# dispose");
  const since = new Map(tabs.map((x) => [x, x.entries.length]));
  for (const tab of live) tab.dispose();
  // Issue 11 item 4/5: a schedule still open at dispose() may answer with an id, which is cancelled;
  // it is aborted one request timeout later, so the process can exit. Nothing else is left.
  await advance(tab1.manager.effectiveTiming.requestTimeoutMs + 1);
  for (const tab of live)
    if (tab.manager.pendingTimers !== 0)
      violate(
        "4",
        `${tab.label}${tab.manager.pendingTimers} timers pending one request timeout after dispose()`,
      );
  await advance(30_000);
  for (const tab of tabs) await tab.settled();
  for (const tab of tabs) tab.afterDispose(since.get(tab)!);
  traceLog();
  return {
    violations,
    trace: trace
      .sort((a, b) => a.at - b.at || a.seq - b.seq)
      .map((e) => `${String(e.at).padStart(7)}  ${e.text}`),
  };
}

export function formatFailure(cmds: Cmd[], result: RunResult, only?: InvariantId[]): string {
  const vs = result.violations.filter((v) => !only || only.includes(v.inv));
  return [
    ...vs.map((v) => `invariant ${v.inv} violated at ${v.at}: ${v.msg}`),
    `schedule: ${cmds.map(describeCmd).join("; ")}`,
    "trace:",
    ...result.trace,
  ].join("\n");
}
