/**
 * Issue 5, "Invariants under random faults": fast-check generates schedules of joins, leaves, updates and
 * faults; `runSchedule` plays each against the FakeServer on virtual time and checks the invariants after
 * every virtual-time event, against the server's own records (see test/helpers/invariants.ts). The world a
 * schedule plays in may also hold a second live tab of the same device (same state key), Synapse's rules
 * before 1.127, and a delegation service (MSC4195); test/unit/delegation.invariants.test.ts still explores
 * the delegation alone with its production-like long delays.
 *
 * CI: INVARIANT_RUNS (default 1,000, about 3 s) schedules from INVARIANT_SEED (default a fresh seed each
 * run, printed). Long run: scripts/invariants-long.sh (10,000 schedules, fresh seed, strict).
 * Replay a failure: INVARIANT_SEED=<seed> INVARIANT_PATH=<path> [INVARIANT_STRICT=1] \
 *   npm run test:jest -- test/unit/invariants -t "<invariant id>:"   (fast-check prints seed and path).
 *
 * Unhandled rejections fail the running test through jest itself (jest-circus listens on the host process;
 * a listener on the sandboxed `process` never fires), so the first property below, which plays every
 * schedule, is the one that would report them.
 */
import { describe, expect, it } from "@jest/globals";
import fc from "fast-check";
import {
  describeCmd,
  formatFailure,
  runSchedule,
  scheduleArb,
  type Cmd,
  type Eyes,
  type InvariantId,
  type Schedule,
  type Violation,
  type WorldOptions,
} from "../helpers/invariants.js";

const RUNS = Number(process.env.INVARIANT_RUNS ?? 1000);
/** INVARIANT_STRICT=1: also run the properties of known-broken invariants (the long run sets it). */
const STRICT = process.env.INVARIANT_STRICT === "1";
/**
 * CI uses a fixed seed so a landing is never decided by luck (a rare counterexample would make it flaky);
 * local runs and the long script draw a fresh one. Either way it is printed for replay.
 */
const CI_SEED = 20261122;
const SEED =
  process.env.INVARIANT_SEED && process.env.INVARIANT_SEED !== "random"
    ? Number(process.env.INVARIANT_SEED)
    : process.env.CI && !process.env.INVARIANT_SEED
      ? CI_SEED
      : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
const PATH = process.env.INVARIANT_PATH || undefined;
const TIMEOUT_MS = Math.max(60_000, RUNS * 60);

console.log(
  `[invariants] ${RUNS} schedules, seed ${SEED}${PATH ? `, path ${PATH}` : ""}${STRICT ? ", strict" : ""}. ` +
    `Replay: INVARIANT_SEED=${SEED} INVARIANT_RUNS=${RUNS} npm run test:jest -- test/unit/invariants`,
);

/**
 * Invariants with a known counterexample in the current manager (see "known counterexamples" below, which
 * are deterministic `it.failing` tests). Their random properties are skipped in CI (a random search finds
 * some of those counterexamples only once in thousands of schedules, so `it.failing` would be flaky) and
 * run with INVARIANT_STRICT=1 (the long-run script sets it). Once the manager is fixed, take the
 * invariant out of this list.
 */
// None listed. R was, until a write whose cover went while it was on the wire (a physical limit: no client
// can recall a request in flight) became a case of its own in the checker (test/helpers/invariants.ts).
const KNOWN_BROKEN = new Set<InvariantId>([]);

/** Every property plays the same schedules (same seed): play each once (only the violations are kept). */
const cache = new Map<string, Violation[]>();
async function violationsOf(s: Schedule): Promise<Violation[]> {
  const key = JSON.stringify(s);
  let v = cache.get(key);
  if (!v) {
    const { cmds, jitterSeed, ...world } = s;
    v = (await runSchedule(cmds, jitterSeed, world)).violations;
    cache.set(key, v);
  }
  return v;
}

async function explain(s: Schedule, invs: InvariantId[]): Promise<string> {
  const { cmds, jitterSeed, ...world } = s;
  const r = await runSchedule(cmds, jitterSeed, world);
  const text = formatFailure(cmds, r, invs).split("\n");
  // Keep the trace readable: up to a little after the first violation.
  const first = text.findIndex((l) => l.includes("!! VIOLATION"));
  const end = first < 0 ? 150 : Math.min(first + 20, 250);
  return `jitterSeed ${jitterSeed}, world ${JSON.stringify(world)}\n${text.slice(0, end).join("\n")}`;
}

function property(invs: InvariantId[]) {
  return fc.asyncProperty(scheduleArb(), async (s) => {
    const bad = (await violationsOf(s)).filter((v) => invs.includes(v.inv));
    if (bad.length > 0) throw new Error(await explain(s, invs));
  });
}

const PROPERTIES: [InvariantId, string][] = [
  [
    "4",
    "4: no timers left one request timeout after dispose(), nothing but late-id cancels sent after it (and no unhandled rejection, via jest)",
  ],
  ["1", "1: once leave() resolves left, no membership of ours on the server until we join again"],
  ["1b", "1b: once leave() resolves left, no delayed event of ours pending until we join again"],
  ["2", "2: while connected, a delayed leave of ours is pending (one request's window allowed)"],
  ["3", "3: when the server fires our leave while we want to be joined, probablyLeft within one heartbeat"],
  ["R", "R: no resurrection: a membership we (re)create is always covered by a pending delayed leave"],
  ["5", "5: after the network heals, we converge to what the app asked (joined and protected, or left)"],
  ["H", "H: no hot loop: at most HOT_LOOP_LIMIT requests in any second, whatever the server answers"],
  [
    "E",
    "E: while connected, the server holds our membership, but for the time it takes to see another writer's {} and put it back",
  ],
  [
    "O",
    "O: no orphan: a delay id answered after dispose() is cancelled; after leave() and healing nothing of ours is pending",
  ],
  [
    "P",
    "P: no tab cancels the delayed leave another live tab of the device keeps (restarted within one of its heartbeats)",
  ],
  ["S", "S: no tab stuck silent: after healing, a tab that wants to be joined sends something every delay"],
];

describe(`invariants under random faults (${RUNS} schedules, seed ${SEED})`, () => {
  for (const [inv, name] of PROPERTIES) {
    const skipped = KNOWN_BROKEN.has(inv) && !STRICT;
    (skipped ? it.skip : it)(
      skipped ? `${name} [known counterexamples below; INVARIANT_STRICT=1 runs it]` : name,
      async () => {
        await fc.assert(property([inv]), { numRuns: RUNS, seed: SEED, path: PATH });
      },
      TIMEOUT_MS,
    );
  }
});

/** Deterministic schedules for the checker itself: plain fault scenarios that must hold every invariant. */
const CLEAN: [string, Cmd[]][] = [
  ["join, heartbeat, leave", [{ k: "join" }, { k: "advance", ms: 5000 }, { k: "leave" }]],
  [
    "a cut shorter than the delay",
    [{ k: "join" }, { k: "advance", ms: 1500 }, { k: "down" }, { k: "advance", ms: 800 }, { k: "up" }],
  ],
  [
    "a cut longer than the delay, then rejoin",
    [
      { k: "join" },
      { k: "advance", ms: 1500 },
      { k: "down" },
      { k: "advance", ms: 6000 },
      { k: "up" },
      { k: "advance", ms: 3000 },
    ],
  ],
  [
    "the server loses our delayed leave",
    [{ k: "join" }, { k: "advance", ms: 700 }, { k: "losePending" }, { k: "advance", ms: 3000 }],
  ],
  [
    "someone overwrites our key",
    [{ k: "join" }, { k: "advance", ms: 700 }, { k: "foreignWrite" }, { k: "advance", ms: 3000 }],
  ],
  [
    "leave while cut off, with a timeout",
    [
      { k: "join" },
      { k: "advance", ms: 700 },
      { k: "down" },
      { k: "leave", timeoutMs: 500 },
      { k: "advance", ms: 5000 },
      { k: "up" },
      { k: "advance", ms: 3000 },
    ],
  ],
  [
    "rate-limited and 5xx heartbeats",
    [
      { k: "join" },
      { k: "advance", ms: 300 },
      { k: "fault", op: "restart", fault: { kind: "429", retryAfter: { headerS: 0 } }, times: 2 },
      { k: "fault", op: "restart", fault: { kind: "5xx", status: 502 }, times: 2 },
      { k: "advance", ms: 6000 },
      { k: "leave" },
      { k: "advance", ms: 1000 },
    ],
  ],
];

describe("the checker on plain fault scenarios (no violation expected)", () => {
  for (const format of ["state", "sticky"] as const)
    for (const [name, cmds] of CLEAN)
      it(`${format} format: ${name}: ${cmds.map(describeCmd).join("; ")}`, async () => {
        const r = await runSchedule(cmds, 0, { format });
        if (r.violations.length) throw new Error(formatFailure(cmds, r));
        expect(r.violations).toEqual([]);
      });
});

/**
 * The same for the grown world: a second tab of the device, Synapse < 1.127, the delegation service; each
 * with what its trace must show, in order (so that the scenario did what its name says).
 */
const CLEAN_WORLDS: [string, WorldOptions, Cmd[], RegExp[]][] = [
  [
    "two tabs join; tab 1 leaves (its {} wipes the device); tab 2 reads its key and puts it back",
    { tabs: 2 },
    [
      { k: "join" },
      { k: "tab2", act: "join" },
      { k: "advance", ms: 5000 },
      { k: "leave" },
      { k: "advance", ms: 5000 },
    ],
    [/write delayed \{\}/, /\[t1\] leave\(\) .* resolved/, /write client by t2\.1 membership/],
  ],
  [
    "Synapse < 1.127: two tabs cancel each other's delayed leave with every write and re-join in turn; the device stays listed",
    { tabs: 2, rules: "pre-1.127" },
    [{ k: "join" }, { k: "advance", ms: 500 }, { k: "tab2", act: "join" }, { k: "advance", ms: 8000 }],
    [
      /write client by t2\.1 membership/,
      /write client by t1 membership/,
      /write client by t2\.1 membership/,
      /write client by t1 membership/,
    ],
  ],
  [
    "tab 2 (synced view) crashes: its delayed leave fires over the device; tab 1 puts it back; tab 2 reloads and joins",
    { tabs: 2, tab2Eyes: "view" },
    [
      { k: "join" },
      { k: "tab2", act: "join" },
      { k: "advance", ms: 3000 },
      { k: "tab2", act: "crash" },
      { k: "advance", ms: 5000 },
      { k: "tab2", act: "join" },
      { k: "advance", ms: 8000 },
    ],
    [
      /\[t2\.1\] .*the page crashes/,
      /timer fire\) \{\}/,
      /write client by t1 membership/,
      /created by t2\.2/,
    ],
  ],
  [
    "the delegation service: delegated, the SFU loses us (the service sends our leave), back on the normal timing, delegated again, leave",
    { delegation: true },
    [
      { k: "join" },
      { k: "advance", ms: 3000 },
      { k: "sfuDisconnect", tab: 1 },
      { k: "advance", ms: 12_000 },
      { k: "leave" },
    ],
    [
      /delegate syd_\d+ \[ok\]/,
      /sent by the delegation service/,
      /write client membership/,
      /delegate syd_\d+ \[ok\]/,
    ],
  ],
  [
    "the delegation service with two tabs: both delegated; tab 2 crashes (the service sends its leave); tab 1 puts the device back",
    { tabs: 2, delegation: true },
    [
      { k: "join" },
      { k: "tab2", act: "join" },
      { k: "advance", ms: 6000 },
      { k: "tab2", act: "crash" },
      { k: "advance", ms: 8000 },
    ],
    [/\[t2\.1\] delegate syd_\d+ \[ok\]/, /sent by the delegation service/, /write client by t1 membership/],
  ],
];

describe("the checker on plain scenarios of the grown world (no violation expected)", () => {
  for (const [name, world, cmds, mustSee] of CLEAN_WORLDS)
    it(`${name}: ${cmds.map(describeCmd).join("; ")}`, async () => {
      const r = await runSchedule(cmds, 0, world);
      if (r.violations.length) throw new Error(formatFailure(cmds, r));
      expect(r.violations).toEqual([]);
      let from = 0;
      for (const re of mustSee) {
        const at = r.trace.findIndex((line, i) => i >= from && re.test(line));
        if (at < 0)
          throw new Error(`the trace never shows ${re} (after line ${from})\n${r.trace.join("\n")}`);
        from = at + 1;
      }
    });
});

/**
 * Minimal counterexamples found by the properties above (shrunk by fast-check, then cleaned up by hand).
 * Each is `it.failing` until the manager is fixed; see the report in issue 5 for the diagnosis.
 */
const KNOWN: {
  name: string;
  invs: InvariantId[];
  cmds: Cmd[];
  fixed?: boolean;
  /** The link's jitter draws (latency steps with jitter); 0 unless given. */
  jitterSeed?: number;
  eyes?: Eyes;
  /** The rest of its world (a second tab, the rules, the delegation service); a plain one-tab world if unset. */
  world?: Omit<WorldOptions, "eyes">;
}[] = [
  {
    fixed: true,
    name:
      "A1: a schedule whose response is lost leaves an orphan delayed leave; it fires during the call, " +
      "the membership is gone ~800 ms while status stays connected and probablyLeft false",
    invs: ["3"],
    cmds: [
      { k: "fault", op: "schedule", fault: { kind: "lose-response" }, times: 1 },
      { k: "join" },
      { k: "advance", ms: 3000 },
    ],
  },
  {
    fixed: true,
    name: "A1 (network variant): the cut comes just after the first schedule reached the server",
    invs: ["3"],
    cmds: [
      { k: "join" },
      { k: "advance", ms: 10 },
      { k: "down" },
      { k: "advance", ms: 1500 },
      { k: "up" },
      { k: "advance", ms: 3000 },
    ],
  },
  {
    fixed: true,
    name:
      "A2: the orphan of a call we left fires into the next call: status connected, server holds {}, " +
      "nobody re-asserts (until the hourly refresh)",
    invs: ["3", "5"],
    cmds: [
      { k: "fault", op: "schedule", fault: { kind: "lose-response" }, times: 1 },
      { k: "join" },
      { k: "advance", ms: 500 },
      { k: "rejoin" },
      { k: "advance", ms: 5000 },
    ],
  },
  {
    name: "A3: leave() resolves left (nothing-to-leave) while a schedule of unknown outcome left an orphan",
    fixed: true,
    invs: ["1b"],
    cmds: [
      { k: "fault", op: "schedule", fault: { kind: "lose-response" }, times: 1 },
      { k: "join" },
      { k: "leave" },
      { k: "advance", ms: 5000 },
    ],
  },
  {
    fixed: true,
    name:
      "B: leave() during a slow membership write stops the heartbeat; the delayed leave fires first and " +
      "the late write lands with nothing pending (a ghost if the network drops then)",
    invs: ["R"],
    cmds: [
      { k: "fault", op: "state", fault: { kind: "slow", ms: 2500 }, times: 1 },
      { k: "join" },
      { k: "advance", ms: 50 },
      { k: "leave" },
      { k: "advance", ms: 2485 },
      { k: "down" },
      { k: "advance", ms: 20_000 },
    ],
  },
  {
    fixed: true,
    name:
      "C: the first membership write keeps retrying past the delayed leave's expiry and lands unprotected; " +
      "then status says connected with nothing pending",
    invs: ["R", "2"],
    cmds: [
      { k: "fault", op: "state", fault: { kind: "5xx", status: 500 }, times: 4 },
      { k: "fault", op: "restart", fault: { kind: "429", retryAfter: { dateS: 2 } }, times: 1 },
      { k: "join" },
      { k: "advance", ms: 1100 },
    ],
  },
  {
    fixed: true,
    name:
      "D: a membership write that lands just after the predicted leave clears probablyLeft and says " +
      "connected; the server fires 10 ms later and nobody notices for a second",
    invs: ["2", "3"],
    cmds: [
      { k: "join" },
      { k: "fault", op: "state", fault: { kind: "slow", ms: 1940 }, times: 1 },
      { k: "advance", ms: 50 },
      { k: "fault", op: "restart", fault: { kind: "429", retryAfter: { headerS: 2 } }, times: 1 },
      { k: "update" },
      { k: "advance", ms: 1500 },
    ],
  },
  {
    fixed: true,
    name:
      "D2: no state fault at all: joined after a cut, one rate-limited heartbeat; the re-assert timer of the " +
      "failed schedules writes at the predicted leave, lands after the fire, and clears probablyLeft",
    invs: ["R", "2"],
    cmds: [
      { k: "down" },
      { k: "join" },
      { k: "advance", ms: 500 },
      { k: "fault", op: "restart", fault: { kind: "429", retryAfter: { bodyMs: 2400 } }, times: 1 },
      { k: "up" },
      { k: "advance", ms: 3000 },
    ],
  },
  {
    fixed: true,
    name:
      "L1 (issue 22's latency steps): a slowed link lets a later schedule overtake one that timed out; the " +
      "orphan sweep, waiting for open schedules, cancelled the new delay id before it was learned " +
      "(orphans.ts onScheduleSettled), and the membership went out with nothing pending",
    invs: ["R"],
    cmds: [
      { k: "fault", op: "schedule", fault: { kind: "odd", answer: "404-no-errcode" }, times: 1 },
      { k: "join" },
      { k: "latency", ms: 900, jitterMs: 0 },
      { k: "advance", ms: 400 },
      { k: "latency", ms: 150, jitterMs: 100 },
      { k: "advance", ms: 493 },
    ],
  },
  {
    name:
      "L2 (found by the adaptive-heartbeat branch's latency steps; here with an answer held on the way back): a " +
      "sweep lists the delayed leave of our own schedule while its answer lingers and cancels it as foreign; the " +
      "late answer was adopted and the membership went out with nothing pending",
    invs: ["R"],
    fixed: true,
    cmds: [
      { k: "join" },
      { k: "advance", ms: 300 },
      // Four hung restarts (main had three): the adaptive heartbeat's short restart timeouts fit more retries
      // in the margin, and a fourth one that is answered keeps the call without a new schedule.
      { k: "fault", op: "restart", fault: { kind: "hang" }, times: 4 },
      { k: "fault", op: "schedule", fault: { kind: "slow-answer", ms: 900 }, times: 1 },
      { k: "advance", ms: 20_000 },
    ],
  },
  {
    name:
      "L3 (issue 22's latency steps; L2 on the adaptive branch): the join's sweep of our key lists the delayed " +
      "leave of the join's own schedule while its answer is still on the slowed link, and cancels it; the late " +
      "answer was adopted and the membership went out with nothing pending (fixed by L2's rule: a swept id is " +
      "never adopted)",
    invs: ["R"],
    fixed: true,
    cmds: [
      { k: "fault", op: "restart", fault: { kind: "slow", ms: 10_500 }, times: 1 },
      { k: "join" },
      { k: "latency", ms: 1600, jitterMs: 600 },
      { k: "advance", ms: 50 },
    ],
  },
  {
    name:
      "L4 (issue 22's latency steps): a membership write sent while a restart was on its way, after the server " +
      "lost our delayed leave: the restart's 404 arrived 6 ms after the write landed with nothing pending " +
      "(calls.ts writeIsProtected now holds writes while a restart, or the lookup after its 404, is in flight)",
    invs: ["R"],
    fixed: true,
    jitterSeed: 1357719863,
    cmds: [
      { k: "latency", ms: 400, jitterMs: 0 },
      { k: "rejoin" },
      { k: "advance", ms: 250 },
      { k: "latency", ms: 0, jitterMs: 600 },
      { k: "losePending" },
      { k: "advance", ms: 200 },
    ],
  },
  {
    name:
      "L5 (issue 22's latency steps): the join's schedule timed out on a 400 ms link and its late answer was " +
      "adopted, but the blind re-assert its timeout had asked for still went out, while a restart was about to " +
      "say our (lost) delayed leave was gone, and landed with nothing pending (fixed twice over: a late " +
      "answer drops the re-asserts of its schedule, orphans.ts; writes wait for a restart in flight, as in L4)",
    invs: ["R"],
    fixed: true,
    cmds: [
      { k: "latency", ms: 400, jitterMs: 0 },
      { k: "join" },
      { k: "advance", ms: 2500 },
      { k: "losePending" },
      { k: "sameDeviceWrite" },
      { k: "advance", ms: 420 },
      { k: "join" },
    ],
  },
  {
    name:
      "L6: a schedule answered with an unusable body (malformed 200) and listings refused: leave() said " +
      "left (nothing-to-leave) while the delayed leave that schedule created was still pending (leave.ts now " +
      "waits out the orphan window in an 'orphans' step before saying left)",
    invs: ["1b"],
    fixed: true,
    cmds: [
      { k: "fault", op: "schedule", fault: { kind: "odd", answer: "malformed-200" }, times: 1 },
      { k: "fault", op: "list", fault: { kind: "odd", answer: "400" }, times: 2 },
      { k: "join" },
      { k: "advance", ms: 40 },
      { k: "leave" },
    ],
  },
  {
    name:
      "L7 (issue 22's latency steps): on a 1.6 s round trip a rejoin's schedule reached the server after the " +
      "sweep that followed its local timeout had listed, and its answer was lost: the delayed leave it created " +
      "fired {} over our membership 360 ms after we said joined, and probablyLeft never said so (orphans.ts " +
      "now lists once more when the unanswered schedule is aborted, and cancels it)",
    invs: ["3"],
    fixed: true,
    cmds: [
      { k: "latency", ms: 1600, jitterMs: 0 },
      { k: "fault", op: "schedule", fault: { kind: "lose-response" }, times: 1 },
      { k: "rejoin" },
    ],
  },
  {
    name:
      "R3 (found by scripts/invariants-long.sh, seed 1430611392, with invariant R refined): an update queued " +
      "behind another writer's {} goes out after the heartbeat's restart was answered 404 (the delayed leave " +
      "lost by the server), while its lookup still runs: the membership landed with nothing pending (fixed on the adaptive branch by " +
      "L4's rule: writes wait while a restart, or the lookup after its 404, is on its way)",
    invs: ["R"],
    fixed: true,
    cmds: [
      { k: "join" },
      { k: "advance", ms: 30 },
      { k: "sameDeviceWrite" },
      { k: "update" },
      { k: "losePending" },
    ],
  },
  {
    name:
      "H1 (scripts/invariants-long.sh 5000, seed 1107936452): a join whose schedules keep failing with 500s " +
      "(a listing after each, on the manager's own bucket) sends its first membership write 983 ms after " +
      "join(), on the app's bucket: 13 requests in that second (10 of the manager's own, within its 8 + 3 a " +
      "second), which the checker took for a hot loop because it counted join()'s allowance only in the " +
      "second join() was called. Fixed in the checker: an intent counts until it is done",
    invs: ["H"],
    fixed: true,
    jitterSeed: 639317024,
    cmds: [
      { k: "join" },
      { k: "rejoin" },
      { k: "fault", op: "schedule", fault: { kind: "5xx", status: 500 }, times: 4 },
      { k: "advance", ms: 674 },
      { k: "advance", ms: 31 },
      { k: "down" },
    ],
  },
  {
    name:
      "R4 (scripts/invariants-long.sh 10000, seed 1993636896): the first membership write, sent with 1.7 s of " +
      "cover, is slow while the link slows from 600 to 1500 ms: our leave fires 0.4 ms before it lands. The " +
      "cover went in flight (R's exemption), judged against one request as the link was when it was sent, " +
      "not as it is when it lands; the next heartbeat's 404 puts it right",
    invs: ["R"],
    fixed: true,
    jitterSeed: 1325084859,
    cmds: [
      { k: "fault", op: "state", fault: { kind: "slow", ms: 1552 }, times: 1 },
      { k: "fault", op: "state", fault: { kind: "lose-response" }, times: 1 },
      { k: "join" },
      { k: "latency", ms: 0, jitterMs: 600 },
      { k: "advance", ms: 50 },
      { k: "advance", ms: 419 },
      { k: "down" },
      { k: "advance", ms: 654 },
      { k: "latency", ms: 900, jitterMs: 600 },
      { k: "advance", ms: 606 },
      { k: "advance", ms: 33 },
    ],
  },
  // --- The world with a second live tab of the device, both Synapse rule sets, the delegation service ---
  {
    name:
      "T1 (da4837b, found before only on real Synapse): tab 2's first call sweeps for a dead predecessor's " +
      "leftovers with its listings half a delay apart, less than tab 1's adaptive heartbeat (1150 ms at a 2 s " +
      "delay): tab 1's live delayed leave, not restarted between them, was cancelled as a dead page's " +
      "(fails with relistAfterMs reverted to delay / 2)",
    invs: ["P"],
    fixed: true,
    world: { tabs: 2 },
    cmds: [
      { k: "fault", op: "list", fault: { kind: "hang" }, times: 1 },
      { k: "join" },
      { k: "tab2", act: "join" },
      { k: "latency", ms: 0, jitterMs: 0 },
      { k: "advance", ms: 50 },
      { k: "up" },
    ],
  },
  {
    name:
      "T2: two tabs join at once on a 1.6 s link; each one's schedule outlives its timeout, and its orphan " +
      "sweep, listing after the late answer had named its own delayed leave, cancelled the other tab's as an " +
      "orphan: both wrote their membership with nothing pending (orphans.ts: an unknown id is ours only " +
      "while a schedule of unknown outcome is open)",
    invs: ["P"],
    fixed: true,
    world: { tabs: 2 },
    cmds: [
      { k: "latency", ms: 1600, jitterMs: 0 },
      { k: "rejoin" },
      { k: "tab2", act: "join" },
      { k: "advance", ms: 600 },
    ],
  },
  {
    name:
      "T3 (the delegation service): tab 1 joins while tab 2's delayed leave is delegated (10 s, restarted " +
      "by tab 2 every 4 s): tab 1's predecessor listings, spaced by the normal heartbeat, took it for a dead " +
      "page's and cancelled it (orphans.ts: the listings are spaced past the delegated heartbeat too)",
    invs: ["P"],
    fixed: true,
    world: { tabs: 2, delegation: true },
    cmds: [{ k: "tab2", act: "join" }, { k: "advance", ms: 600 }, { k: "join" }],
  },
  {
    name:
      "D1 (the delegation service): a service that never answers; the manager waited a state request's " +
      "timeout (10 s) for its answer, as long as the switch's new delayed leave's delay (10 s), which nothing " +
      "restarts meanwhile: it fired `{}` over our membership 10 ms before the cancel, probablyLeft never said " +
      "so, and each retry left a second delayed leave (delegation.ts: the wait ends while the cancel can land)",
    invs: ["3", "5"],
    fixed: true,
    world: { delegation: true },
    cmds: [{ k: "join" }, { k: "service", mode: "dead" }, { k: "losePending" }],
  },
  {
    name:
      "D2 (the delegation service, sticky format): the normal delayed leave a delegation replaced fired over " +
      "our membership while its cancel waited out a 429; the membership went back with probablyLeft never " +
      "raised (recovery.ts: a replaced leave that could not be cancelled in time is a probable leave)",
    invs: ["3"],
    fixed: true,
    world: { delegation: true, format: "sticky" },
    cmds: [
      { k: "fault", op: "cancel", fault: { kind: "429", retryAfter: { bodyMs: 1e12 } }, times: 1 },
      { k: "join" },
      { k: "advance", ms: 100 },
    ],
  },
  {
    name:
      "D3 (the delegation service): leave() during a delegation said left while the switch's new delayed " +
      "leave was still pending, its cancel waiting out a 429 (orphans.ts lateCancelsRunning: the leave waits " +
      "for a switch's cancels, within bounds)",
    invs: ["1b"],
    fixed: true,
    world: { delegation: true },
    cmds: [
      { k: "fault", op: "cancel", fault: { kind: "429", retryAfter: "garbage-header" }, times: 1 },
      { k: "fault", op: "schedule", fault: { kind: "slow", ms: 50 }, times: 1 },
      { k: "join" },
      { k: "advance", ms: 130 },
      { k: "leave" },
    ],
  },
  {
    name:
      "D4 (the delegation service, no eyes, Synapse < 1.127): the SFU lost us and the service sent our " +
      "leave; the next delegated restart's 404 was judged 'lost' by time (a 10 s delay, 4 s into it) and the " +
      "membership went back with probablyLeft never raised (recovery.ts: a delegated leave gone has fired)",
    invs: ["3"],
    fixed: true,
    eyes: "blind",
    world: { delegation: true, rules: "pre-1.127" },
    cmds: [{ k: "join" }, { k: "advance", ms: 110 }, { k: "sfuDisconnect", tab: 1 }, { k: "advance", ms: 0 }],
  },
  {
    name:
      "D5 (the delegation service, Synapse < 1.127): a switch of holder's schedule took no token of the " +
      "request budget: re-arming after refused schedules, 13 requests in a second (delegation.ts: it waits " +
      "for a token like every request)",
    invs: ["H"],
    fixed: true,
    world: { delegation: true, rules: "pre-1.127" },
    cmds: [
      { k: "fault", op: "schedule", fault: { kind: "odd", answer: "404-no-errcode" }, times: 3 },
      { k: "join" },
      { k: "advance", ms: 600 },
      { k: "advance", ms: 0 },
    ],
  },
  {
    name:
      "G1 (Synapse < 1.127): a membership write held 10.5 s landed after leave() said left; on these servers " +
      "our own write cancels our pending delayed state at the key, so it cancelled the very guard that was " +
      "to take it down, and stood for its whole expiry (lateWrites.ts: after the horizon, read our key and " +
      "take a late write of ours down)",
    invs: ["1", "5"],
    fixed: true,
    world: { rules: "pre-1.127" },
    cmds: [
      { k: "fault", op: "state", fault: { kind: "slow", ms: 10_500 }, times: 1 },
      { k: "fault", op: "schedule", fault: { kind: "slow-answer", ms: 300 }, times: 1 },
      { k: "join" },
      { k: "advance", ms: 600 },
      { k: "leave" },
      { k: "up" },
    ],
  },
  {
    name: "G2: G1 where nothing can read our key (the guard is sent at the horizon; gone, `{}` is written)",
    invs: ["1", "5"],
    fixed: true,
    eyes: "blind",
    world: { rules: "pre-1.127" },
    cmds: [
      { k: "fault", op: "state", fault: { kind: "slow", ms: 10_500 }, times: 1 },
      { k: "fault", op: "schedule", fault: { kind: "slow-answer", ms: 300 }, times: 1 },
      { k: "join" },
      { k: "advance", ms: 320 },
      { k: "leave" },
      { k: "down" },
    ],
  },
  {
    name:
      "T4 (scripts/invariants-long.sh 10000, seed 1046981400): tab 2 crashed just after its membership write; " +
      "tab 1, leaving with a schedule of unknown outcome and nothing written, took tab 2's delayed leave for " +
      "its own orphan and cancelled it: the crashed tab's membership stood with nothing to remove it (orphans.ts: " +
      "leaving with nothing written, a sweep spares what it cannot name; the leave waits out the orphan window)",
    invs: ["5"],
    fixed: true,
    world: { tabs: 2 },
    cmds: [
      { k: "fault", op: "schedule", fault: { kind: "hang" }, times: 1 },
      { k: "fault", op: "schedule", fault: { kind: "slow-answer", ms: 300 }, times: 1 },
      { k: "join" },
      { k: "tab2", act: "join" },
      { k: "advance", ms: 320 },
      { k: "tab2", act: "crash" },
      { k: "leave" },
    ],
  },
  {
    name:
      "D6 (scripts/invariants-long.sh 10000, seed 1046981400; the delegation service, no eyes): D2 with an " +
      "hour's Retry-After on the cancel: the task waited for that retry before giving up, and the replaced " +
      "leave's probable fire was said 1.1 s after it (tasks.ts: a backoff ends at the task's `until`)",
    invs: ["3"],
    fixed: true,
    eyes: "blind",
    world: { delegation: true },
    cmds: [
      { k: "fault", op: "cancel", fault: { kind: "429", retryAfter: { headerS: 3_000_000 } }, times: 1 },
      { k: "join" },
      { k: "latency", ms: 0, jitterMs: 600 },
      { k: "advance", ms: 2500 },
    ],
  },
  {
    name:
      "T5 (scripts/invariants-long.sh 10000, seed 1614567636, against a first fix of T4 that read the key before " +
      "cancelling): while that read was on its way, the join's late schedule answer named its delayed leave and " +
      "it was adopted; the sweep then cancelled it from the list it had made before, and the membership went " +
      "out with nothing pending",
    invs: ["R"],
    fixed: true,
    cmds: [{ k: "fault", op: "schedule", fault: { kind: "slow-answer", ms: 800 }, times: 1 }, { k: "join" }],
  },
  {
    name:
      "T6 (scripts/invariants-long.sh 10000, seeds 1707498015 and 2127613225): T4 where the leaving tab cannot " +
      "read its key, or where it read it empty while the crashed tab's write was still on its way: it " +
      "cancelled the crashed tab's delayed leave (a read of the key, tried first, was no answer)",
    invs: ["5"],
    fixed: true,
    eyes: "blind",
    world: { tabs: 2 },
    cmds: [
      { k: "fault", op: "schedule", fault: { kind: "slow", ms: 800 }, times: 1 },
      { k: "fault", op: "state", fault: { kind: "lose-response" }, times: 1 },
      { k: "join" },
      { k: "tab2", act: "join" },
      { k: "leave" },
      { k: "advance", ms: 400 },
      { k: "tab2", act: "crash" },
    ],
  },
  {
    name:
      "T7 (scripts/invariants-long.sh 10000, seed 2127613225): T6's second case: the crashed tab's membership " +
      "write was held 10.5 s, so the leaving tab read its key empty and cancelled the crashed tab's delayed leave",
    invs: ["5"],
    fixed: true,
    world: { tabs: 2 },
    cmds: [
      { k: "fault", op: "state", fault: { kind: "slow", ms: 10_500 }, times: 1 },
      { k: "fault", op: "schedule", fault: { kind: "5xx", status: 500 }, times: 1 },
      { k: "join" },
      { k: "tab2", act: "join" },
      { k: "leave" },
      { k: "advance", ms: 50 },
      { k: "tab2", act: "crash" },
    ],
  },
  {
    name:
      "S1 (scripts/invariants-long.sh 10000, seed 2127613225; sticky format): a leave whose `{}` was refused " +
      "(403) kept its delayed leave pending, and the rejoin cancelled it, although in the sticky format it is " +
      "at the failed call's own key: that call's membership stood for its whole stickiness (schedule.ts: sent, " +
      "not cancelled)",
    invs: ["1"],
    fixed: true,
    world: { format: "sticky" },
    cmds: [
      { k: "fault", op: "send", fault: { kind: "odd", answer: "404-no-errcode" }, times: 1 },
      { k: "join" },
      { k: "advance", ms: 20 },
      { k: "rejoin" },
      { k: "fault", op: "state", fault: { kind: "odd", answer: "403" }, times: 1 },
      { k: "advance", ms: 600 },
      { k: "rejoin" },
    ],
  },
  {
    name:
      "D7 (scripts/invariants-long.sh 10000, seed 1692063868; the delegation service): another user's write at " +
      "our key cancelled our normal delayed leave just as a delegated one took over, whose restarts kept " +
      "succeeding; our eyes read that user's content and took it for another tab's of this device, and we said " +
      "connected while not listed (join.ts: content naming another device is not ours)",
    invs: ["5"],
    fixed: true,
    world: { delegation: true },
    cmds: [{ k: "join" }, { k: "advance", ms: 50 }, { k: "foreignWrite" }],
  },
  {
    name:
      "D8 (scripts/invariants-long.sh 10000, seed 754770463; the delegation service, sticky format): a switch " +
      "of holder's schedule answered with an unusable body had made a delegated delayed leave we never learned; " +
      "it fired over our membership 10 s later, and the re-assert put it back saying nothing (delegation.ts: a " +
      "probable fire, said, then a rejoin)",
    invs: ["3"],
    fixed: true,
    world: { delegation: true, format: "sticky" },
    cmds: [
      { k: "fault", op: "schedule", fault: { kind: "slow-answer", ms: 300 }, times: 1 },
      { k: "join" },
      { k: "fault", op: "schedule", fault: { kind: "odd", answer: "malformed-200" }, times: 1 },
      { k: "advance", ms: 360 },
    ],
  },
  {
    name:
      "S2 (scripts/invariants-long.sh 10000, seed 576566898; one tab, sticky format, on main too): the join's " +
      "schedule outlived its timeout on a 900 ms link that healed meanwhile; the sweep's listing came back " +
      "before the schedule reached the server, and its late answer, an unusable body, closed the orphan window: " +
      "the delayed leave it had made fired over our membership (orphans.ts: a late error lists once more)",
    invs: ["3"],
    fixed: true,
    world: { format: "sticky" },
    cmds: [
      { k: "fault", op: "schedule", fault: { kind: "odd", answer: "malformed-200" }, times: 1 },
      { k: "latency", ms: 900, jitterMs: 0 },
      { k: "join" },
      { k: "advance", ms: 50 },
    ],
  },
  {
    name:
      "L8 (npm test, seed 495490799; Synapse < 1.127, on main too): our own write cancelled the join's delayed " +
      "leave, its replacements were refused down to the smallest delay and the call went on without one " +
      "(degraded, said so); then one listing timed out and 'the link is too slow for a 500 ms delay' made it " +
      "`reconnecting` for good, with no delayed leave whose heartbeat could ever say `joined` again " +
      "(resources.ts: degraded, a slow link changes nothing)",
    invs: ["5"],
    fixed: true,
    world: { rules: "pre-1.127" },
    cmds: [
      { k: "fault", op: "schedule", fault: { kind: "slow", ms: 50 }, times: 1 },
      { k: "fault", op: "schedule", fault: { kind: "odd", answer: "403" }, times: 3 },
      { k: "fault", op: "list", fault: { kind: "slow", ms: 10_500 }, times: 1 },
      { k: "join" },
      { k: "advance", ms: 400 },
    ],
  },
  {
    name:
      "T8 (scripts/invariants-long.sh 10000, seed 1473860053, against T4's fix): a leave with nothing written " +
      "spared a delayed leave it could not name (its own orphan) and waited out the orphan window; the app " +
      "joined again, which ended the wait at once: 'left' with the orphan still pending (leave.ts: joining " +
      "again, list once more and cancel before saying left)",
    invs: ["1b"],
    fixed: true,
    cmds: [
      { k: "fault", op: "schedule", fault: { kind: "odd", answer: "malformed-200" }, times: 1 },
      { k: "fault", op: "schedule", fault: { kind: "lose-response" }, times: 1 },
      { k: "join" },
      { k: "leave", timeoutMs: 50 },
      { k: "advance", ms: 60 },
      { k: "rejoin" },
    ],
  },
  {
    name:
      "D9 (scripts/invariants-long.sh 20000, seed 1677213111; the delegation service): a switch of holder's " +
      "schedule answered with an unusable body had made a delegated delayed leave; the leave's sweep never ran " +
      "(no orphan window: a switch opens none), and leave() said left with it pending for 10 s (orphans.ts: a " +
      "schedule of unknown outcome, a switch's too, is enough for a sweep)",
    invs: ["1b"],
    fixed: true,
    world: { delegation: true },
    cmds: [
      { k: "rejoin" },
      { k: "fault", op: "schedule", fault: { kind: "odd", answer: "malformed-200" }, times: 1 },
      { k: "advance", ms: 600 },
      { k: "leave" },
    ],
  },
  {
    name:
      "G3 (scripts/invariants-long.sh 20000, seed 964036560; Synapse < 1.127, no eyes, on main too): our own " +
      "membership write cancelled the join's delayed leave; the recovery's schedule reached the server just " +
      "before the network went down, its answer never came and no listing got through; the delayed leave it " +
      "made fired over our membership while we said reconnecting with probablyLeft false, and the membership " +
      "went back saying nothing (doubt.ts: from a delay after such a schedule's send, probably left, and no " +
      "write until a listing found what it made or it surely fired)",
    invs: ["3"],
    fixed: true,
    world: { rules: "pre-1.127" },
    eyes: "blind",
    cmds: [{ k: "join" }, { k: "advance", ms: 70 }, { k: "down" }, { k: "advance", ms: 2500 }],
  },
  {
    name:
      "D10 (scripts/invariants-long.sh 10000, seed 659253343; the delegation service, sticky format, on main too): " +
      "a restart timed out locally and reached the server 441 ms after (held in the network), moving the normal " +
      "delayed leave's fire 441 ms past the machine's armedAt + delay; the delegation replaced that leave, whose " +
      "cancel waited out a 429 until its give-up (2840 ms): the probable fire was said then and the membership " +
      "written back at once, 41 ms before the replaced leave really fired over it (2881 ms); joined with " +
      "probablyLeft false, and the sticky format's eyes (our event read by id) cannot see the new `{}` " +
      "(replacedLeaves.ts: the probable fire is still said then, but the fresh write waits for the cancel, " +
      "retried until the replaced leave surely fired, counting every restart of unknown outcome as processed " +
      "up to 30 s after its send: lateRestarts.ts; here the retry's 404 at 3040 lets it go)",
    invs: ["3", "5", "E"],
    fixed: true,
    world: { delegation: true, format: "sticky" },
    cmds: [
      { k: "fault", op: "restart", fault: { kind: "slow", ms: 831 }, times: 1 },
      { k: "join" },
      { k: "advance", ms: 482 },
      { k: "fault", op: "cancel", fault: { kind: "429", retryAfter: { bodyMs: 1e12 } }, times: 1 },
      { k: "advance", ms: 18 },
      { k: "down" },
    ],
  },
  {
    name:
      "D11 (scripts/invariants-long.sh 10000, seed 522215346; the delegation service, on main too): the server " +
      "lost our delayed leave (syd_1) unseen; a switch of holder then scheduled syd_2, the service refused it " +
      "and we cancelled it, keeping syd_1, the leave our last restart had confirmed; our eyes read the device's " +
      "`{}` (another tab's) and wrote the membership back at once (1070), covered in the manager's account by " +
      "syd_1, until the next restart's 404 (1100) and a new delayed leave (1364). Not a resurrection: the checker " +
      "(R's removed-behind-our-back case) took the switch's refused leave for the write's cover because it was " +
      "created after the removal; R now also exempts a write whose held delay id (delayId$ when it was sent) " +
      "was removed by someone else with no 'gone' reaching us before the send, as invariant 2 already did",
    invs: ["R"],
    fixed: true,
    world: { delegation: true },
    eyes: "read",
    cmds: [
      { k: "rejoin" },
      { k: "advance", ms: 50 },
      { k: "sameDeviceWrite" },
      { k: "losePending" },
      { k: "service", mode: "refuse" },
    ],
  },
  {
    name:
      "T9 (scripts/invariants-long.sh 10000, seed 2146079256, on main too): tab 2's first membership write, " +
      "sent on a 20 ms link 10 ms after its delayed leave (2 s) was created, was held 10.5 s in the network; its " +
      "page crashed meanwhile (the write aborted, nothing can recall it) and it landed at 10530, after that leave " +
      "fired at 2010 (5 exempts the crashed tab). Not a resurrection: the checker judged the write's spare " +
      "against the run's slowest link (1.6 s, a latency step that lasted 0 ms, before any request), so one " +
      "request (2 s) was the whole delay; R's in-flight case now judges it on the link in force when the write " +
      "was sent",
    invs: ["R"],
    fixed: true,
    world: { tabs: 2 },
    eyes: "read",
    cmds: [
      { k: "fault", op: "schedule", fault: { kind: "lose-response" }, times: 1 },
      { k: "join" },
      { k: "latency", ms: 1600, jitterMs: 0 },
      { k: "latency", ms: 20, jitterMs: 0 },
      { k: "tab2", act: "join" },
      { k: "fault", op: "state", fault: { kind: "slow", ms: 10_500 }, times: 1 },
      { k: "leave" },
      { k: "advance", ms: 600 },
      { k: "tab2", act: "crash" },
    ],
  },
  {
    name:
      "OPEN D12 (found by npm test's fresh seed 1215883816, path 523:0:0:3:1:4:9:10:11:11; the delegation service, " +
      "Synapse 1.127 rules, no eyes): a rejoin() while the delegation service had just sent our leave: the leave's " +
      "send answered 404, so the leave wrote {} itself, and that write was held 10.5 s in the network; its retry " +
      "landed and the re-join wrote the membership at 10500, then the first {} landed over it at about 10950. " +
      "Connected with {} on the server, and nothing (blind) ever notices: a re-join after a leave must not write " +
      "while a {} of ours of unknown outcome can still land (or must re-assert once it surely cannot)",
    invs: ["5"],
    world: { delegation: true, rules: "1.127", tabs: 1, tab2Eyes: "read", format: "state" },
    eyes: "blind",
    cmds: [
      { k: "fault", op: "schedule", fault: { kind: "5xx", status: 500 }, times: 1 },
      { k: "join" },
      { k: "advance", ms: 400 },
      { k: "rejoin" },
      { k: "sfuDisconnect", tab: 1 },
      { k: "fault", op: "state", fault: { kind: "slow", ms: 10500 }, times: 1 },
      { k: "advance", ms: 50 },
      { k: "service", mode: "confirm" },
    ],
  },
];

describe("counterexamples: regression tests once fixed, it.failing while still open", () => {
  for (const k of KNOWN)
    (k.fixed ? it : it.failing)(
      `${k.name} [${k.invs.join(", ")}]: ${k.cmds.map(describeCmd).join("; ")}`,
      async () => {
        const r = await runSchedule(k.cmds, k.jitterSeed ?? 0, { eyes: k.eyes, ...k.world });
        const bad = r.violations.filter((v) => k.invs.includes(v.inv));
        if (bad.length) throw new Error(formatFailure(k.cmds, r, k.invs));
      },
    );
});
