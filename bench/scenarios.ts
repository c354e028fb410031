/**
 * The network scenarios, each run for both implementations on the same homeserver with the same added
 * round-trip time. Every function returns raw samples per implementation; index.ts takes medians.
 */
import { CALL_MEMBER_EVENT_TYPE } from "../src/membership/content.js";
import type { FaultSpec } from "../src/testing/index.js";
import {
  EC_DELAY_MS,
  IMPLS,
  MEMBERSHIP_ROUTES,
  newDevice,
  newRoom,
  serverHoldsMembership,
  sleep,
  until,
  type Bench,
  type BenchServer,
  type Device,
  type Impl,
  type OursTuning,
} from "./lib.js";

export type Samples = Record<Impl, number[]>;
const emptySamples = (): Samples => ({ ours: [], "js-sdk": [] });

const log = (msg: string) => process.stderr.write(`  ${msg}\n`);

export interface MembershipRequest {
  route: string;
  /** When the server got it. */
  ts: number;
  status?: number;
}

/** The route a request through a link took, from its method and path (the link logs no query string). */
function routeOf(method: string, path: string): string | undefined {
  if (!path.includes("/rooms/") && !path.includes("/delayed_events")) return undefined;
  if (method === "PUT" && /\/rooms\/[^/]+\/state\//.test(path)) return "state.put";
  if (method === "GET" && /\/rooms\/[^/]+\/state\//.test(path)) return "state.get";
  if (method === "GET" && /\/delayed_events(\?|$)/.test(path)) return "delayed.list";
  const action = /\/delayed_events\/[^/]+\/(restart|send|cancel)$/.exec(path)?.[1];
  if (method === "POST" && action) return `delayed.${action}`;
  if (method === "POST" && /\/delayed_events\/[^/]+$/.test(path)) return "delayed.legacy";
  return undefined;
}

/**
 * Membership requests one device made whose server timestamp is in [from, to): from the test
 * homeserver's request log, or on a server without one (real Synapse) from the device's link log, the
 * arrival at the link plus the half round trip the link adds on the way in.
 */
function membershipRequests(
  bench: Bench<BenchServer>,
  d: Device,
  from: number,
  to = Infinity,
  routes: ReadonlySet<string> = MEMBERSHIP_ROUTES,
): MembershipRequest[] {
  const inRange = (r: MembershipRequest) => routes.has(r.route) && r.ts >= from && r.ts < to;
  if (bench.hs.requests) return bench.hs.requests.filter((r) => r.userId === d.userId && inRange(r));
  return d.link.log
    .map((e) => ({
      route: routeOf(e.method, e.path) ?? "",
      ts: e.ts + bench.rttMs / 2,
      status: e.upstreamStatus,
    }))
    .filter(inRange);
}

/** Server time of the `{}` written at the device's key after `since`, from the room timeline. */
function leftAt(bench: Bench<BenchServer>, d: Device, since: number): number | undefined {
  const ev = bench.hs
    .timeline(d.roomId)
    .find(
      (e) =>
        e.type === CALL_MEMBER_EVENT_TYPE &&
        e.state_key === d.stateKey &&
        e.origin_server_ts >= since &&
        Object.keys(e.content ?? {}).length === 0,
    );
  return ev?.origin_server_ts;
}

/** A joined device: joined, connected, visible to the observer, and past the restart that follows a join. */
async function joinedDevice(
  bench: Bench<BenchServer>,
  impl: Impl,
  tag: string,
  tuning?: OursTuning,
  linkRttMs?: number,
): Promise<Device> {
  const roomId = await newRoom(bench, `${tag}-${impl}`);
  const d = await newDevice(bench, impl, roomId, `${tag}-${impl}`, tuning, linkRttMs);
  await sleep(200);
  const seen = bench.observer.when(
    roomId,
    () => bench.observer.sees(roomId, d.userId, d.deviceId),
    10_000,
    `${impl} visible`,
  );
  d.join();
  await d.whenConnected(10_000);
  await seen;
  await sleep(500);
  return d;
}

// -------------------------------------------------------------------------------------------------
// Join and leave latency (sequential: one device at a time, alternating implementations).
// -------------------------------------------------------------------------------------------------

export interface JoinLeaveSamples {
  joinConnected: Samples;
  joinVisible: Samples;
  leaveServer: Samples;
  leaveConfirmed: Samples;
  leaveVisible: Samples;
  requestsJoinLeave: Samples;
}

export async function joinLeave(bench: Bench<BenchServer>, reps: number): Promise<JoinLeaveSamples> {
  const out: JoinLeaveSamples = {
    joinConnected: emptySamples(),
    joinVisible: emptySamples(),
    leaveServer: emptySamples(),
    leaveConfirmed: emptySamples(),
    leaveVisible: emptySamples(),
    requestsJoinLeave: emptySamples(),
  };
  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 === 0 ? IMPLS : [...IMPLS].reverse();
    for (const impl of order) {
      const roomId = await newRoom(bench, `jl${rep}-${impl}`);
      const d = await newDevice(bench, impl, roomId, `jl${rep}-${impl}`);
      try {
        await sleep(300); // js-sdk's client: let its first sync settle
        const sees = () => bench.observer.sees(roomId, d.userId, d.deviceId);
        const seen = bench.observer.when(roomId, sees, 10_000, `${impl} visible`);
        const t0 = Date.now();
        d.join();
        const connectedAt = await d.whenConnected(10_000);
        const seenAt = await seen;
        // Past the restart both send right after the join, and far from the next heartbeat (5 s).
        await sleep(1000);
        const gone = bench.observer.when(roomId, () => !sees(), 10_000, `${impl} gone`);
        const t1 = Date.now();
        await d.leave();
        const confirmedAt = Date.now();
        const goneAt = await gone;
        const serverAt = leftAt(bench, d, t1);
        out.joinConnected[impl].push(connectedAt - t0);
        out.joinVisible[impl].push(seenAt - t0);
        out.leaveConfirmed[impl].push(confirmedAt - t1);
        out.leaveVisible[impl].push(goneAt - t1);
        out.leaveServer[impl].push(serverAt === undefined ? NaN : serverAt - t1);
        out.requestsJoinLeave[impl].push(membershipRequests(bench, d, t0 - 1).length);
      } finally {
        await d.close();
      }
    }
    log(`join/leave rep ${rep + 1}/${reps}`);
  }
  return out;
}

// -------------------------------------------------------------------------------------------------
// Heartbeat cost: all joined at once (separate rooms and links), membership requests over a window.
// Ours (the adaptive heartbeat) and js-sdk's on the bench's link, ours again with the interval fixed at
// delay/2 (the default before issue 22), and both again on a slower link.
// -------------------------------------------------------------------------------------------------

/** Ours' heartbeat timing in force, sampled every second of the window (effectiveTiming). */
export interface OursTimingSamples {
  intervalMs: number[];
  restartTimeoutMs: number[];
  marginMs: number[];
  /** The configured request timeout: what a retry after silence waits at most (before the predicted leave). */
  requestTimeoutMs: number;
}

/**
 * Reads a device makes to watch its own membership (our state key, a listing or lookup of our delayed
 * events): where the client does not sync, our manager's eyes (issue 25). js-sdk reads the synced room.
 */
const WATCH_ROUTES: ReadonlySet<string> = new Set(["state.get", "delayed.list", "delayed.get"]);

export interface HeartbeatSamples {
  windowMs: number;
  /** Membership requests in the window, per implementation (the bench's link). */
  requests: Record<Impl, number>;
  /** Reads in the window to watch the membership (WATCH_ROUTES), per implementation (the bench's link). */
  reads: Record<Impl, number>;
  /** Ours on a syncing client (its eyes are the synced room): membership requests and reads. */
  synced: { requests: number; reads: number };
  /** Server-side intervals between consecutive restarts (ms), on the bench's link. */
  intervals: Samples;
  oursTiming: OursTimingSamples;
  /** Ours with `heartbeatIntervalMs: delay / 2` (fixed: the default before issue 22). */
  fixed: { intervalMs: number; intervals: number[] };
  /** Ours with a thinner `heartbeatMarginMs` (what fewer requests cost in margin). */
  thin: { marginMs: number; intervals: number[]; oursTiming: OursTimingSamples };
  /** Both on a link adding `rttMs` per round trip instead of the bench's. */
  slow: { rttMs: number; intervals: Samples; oursTiming: OursTimingSamples };
}

function restartIntervals(bench: Bench, d: Device, from: number, to: number): number[] {
  const restarts = membershipRequests(bench, d, from, to)
    .filter((r) => r.route === "delayed.restart")
    .map((r) => r.ts);
  return restarts.slice(1).map((ts, i) => ts - restarts[i]);
}

function emptyTiming(d: Device): OursTimingSamples {
  return {
    intervalMs: [],
    restartTimeoutMs: [],
    marginMs: [],
    requestTimeoutMs: d.timing?.().requestTimeoutMs ?? NaN,
  };
}

function sampleTiming(d: Device, into: OursTimingSamples): void {
  const t = d.timing?.();
  if (!t) return;
  into.intervalMs.push(t.heartbeatIntervalMs);
  into.restartTimeoutMs.push(t.restartTimeoutMs);
  into.marginMs.push(t.heartbeatMarginMs);
}

export async function heartbeat(
  bench: Bench,
  windowMs: number,
  slowRttMs = 500,
  thinMarginMs = 2500,
): Promise<HeartbeatSamples> {
  const fixedInterval = EC_DELAY_MS / 2;
  const [ours, sdk, fixed, thin, slowOurs, slowSdk, syncedOurs] = await Promise.all([
    joinedDevice(bench, "ours", "hb"),
    joinedDevice(bench, "js-sdk", "hb"),
    joinedDevice(bench, "ours", "hb-fixed", { heartbeatIntervalMs: fixedInterval }),
    joinedDevice(bench, "ours", "hb-thin", { heartbeatMarginMs: thinMarginMs }),
    joinedDevice(bench, "ours", "hb-slow", undefined, slowRttMs),
    joinedDevice(bench, "js-sdk", "hb-slow", undefined, slowRttMs),
    joinedDevice(bench, "ours", "hb-synced", { synced: true }),
  ]);
  const all = [ours, sdk, fixed, thin, slowOurs, slowSdk, syncedOurs];
  try {
    // Let the first answers be measured (the adaptive heartbeat starts at delay/2 until they are).
    await sleep(15_000);
    const oursTiming = emptyTiming(ours);
    const thinTiming = emptyTiming(thin);
    const slowTiming = emptyTiming(slowOurs);
    const from = Date.now();
    while (Date.now() - from < windowMs) {
      await sleep(1000);
      sampleTiming(ours, oursTiming);
      sampleTiming(thin, thinTiming);
      sampleTiming(slowOurs, slowTiming);
    }
    const to = Date.now();
    for (const d of all) if (!d.isActive()) log(`heartbeat: ${d.impl} (${d.roomId}) is no longer active`);
    return {
      windowMs: to - from,
      requests: {
        ours: membershipRequests(bench, ours, from, to).length,
        "js-sdk": membershipRequests(bench, sdk, from, to).length,
      },
      reads: {
        ours: membershipRequests(bench, ours, from, to, WATCH_ROUTES).length,
        "js-sdk": membershipRequests(bench, sdk, from, to, WATCH_ROUTES).length,
      },
      synced: {
        requests: membershipRequests(bench, syncedOurs, from, to).length,
        reads: membershipRequests(bench, syncedOurs, from, to, WATCH_ROUTES).length,
      },
      intervals: {
        ours: restartIntervals(bench, ours, from, to),
        "js-sdk": restartIntervals(bench, sdk, from, to),
      },
      oursTiming,
      fixed: { intervalMs: fixedInterval, intervals: restartIntervals(bench, fixed, from, to) },
      thin: {
        marginMs: thinMarginMs,
        intervals: restartIntervals(bench, thin, from, to),
        oursTiming: thinTiming,
      },
      slow: {
        rttMs: slowRttMs,
        intervals: {
          ours: restartIntervals(bench, slowOurs, from, to),
          "js-sdk": restartIntervals(bench, slowSdk, from, to),
        },
        oursTiming: slowTiming,
      },
    };
  } finally {
    await Promise.all(all.map((d) => d.close()));
  }
}

// -------------------------------------------------------------------------------------------------
// Ghost time and recovery: cut a joined device's network 100 ms after a heartbeat reached the server,
// time until the observer sees it leave; restore 1–3 s later (phases spread evenly over the reps, the
// same for both implementations), time until it is visible again. Held requests are dropped on restore
// (their connections reset), as after a long outage.
// -------------------------------------------------------------------------------------------------

export interface GhostSamples {
  /** Cut → observer sees the device leave. */
  ghost: Samples;
  /** Last heartbeat at the server → observer sees the leave (the server's timer: delay + delivery). */
  ghostFromBeat: Samples;
  /** Restore → observer sees the device again. */
  recovery: Samples;
  /** Restore → the first membership request reaches the server (retry wait + half a round trip). */
  recoveryFirstRequest: Samples;
  /** First membership request at the server → observer sees the device again. */
  recoveryAfterFirstRequest: Samples;
  /** Membership requests from restore until visible again. */
  recoveryRequests: Samples;
  /** Restore times after the leave was seen, one per rep. */
  restoreAfterGoneMs: number[];
  cutAfterBeatMs: number;
}

export const CUT_AFTER_BEAT_MS = 100;

/** One cut of a joined device's link and its restore, timed on the server's log and the observer. */
export interface CutAndRestore {
  /** Server time of the heartbeat the cut follows (by CUT_AFTER_BEAT_MS). */
  beatTs: number;
  cutAt: number;
  /** When the observer stopped seeing the device. */
  goneAt: number;
  restoredAt: number;
  /** When the observer saw it again (NaN if not within 60 s). */
  backAt: number;
  /** The device's requests from the restore until it was back. */
  reqs: MembershipRequest[];
}

/**
 * Wait for a fresh heartbeat to reach the server, cut the link at the same phase for every device,
 * wait until the observer drops it, restore the link `restoreAfterGoneMs` later and wait until it is
 * seen again. `requests(from, to)` are the device's requests the server got in [from, to).
 */
export async function cutAndRestore(
  bench: Bench<BenchServer>,
  impl: Impl,
  d: { roomId: string; link: { cut(): void; restore(): void } },
  restoreAfterGoneMs: number,
  sees: () => boolean,
  requests: (from: number, to?: number) => MembershipRequest[],
): Promise<CutAndRestore> {
  const since = Date.now();
  const beat = () => requests(since).find((r) => r.route === "delayed.restart" && r.status === 200);
  await until(() => !!beat(), EC_DELAY_MS, `${impl} heartbeat`, 2);
  const beatTs = beat()!.ts;
  await sleep(Math.max(0, beatTs + CUT_AFTER_BEAT_MS - Date.now()));
  d.link.cut();
  const cutAt = Date.now();
  const goneAt = await bench.observer.when(d.roomId, () => !sees(), EC_DELAY_MS * 3, `${impl} gone`);
  await sleep(Math.max(0, goneAt + restoreAfterGoneMs - Date.now()));
  const seen = bench.observer.when(d.roomId, sees, 60_000, `${impl} back`);
  d.link.restore();
  const restoredAt = Date.now();
  const backAt = await seen.catch(() => NaN);
  return { beatTs, cutAt, goneAt, restoredAt, backAt, reqs: requests(restoredAt, backAt + 1) };
}

async function ghostOnce(
  bench: Bench<BenchServer>,
  impl: Impl,
  tag: string,
  restoreAfterGoneMs: number,
  out: GhostSamples,
): Promise<void> {
  const d = await joinedDevice(bench, impl, tag);
  try {
    const sees = () => bench.observer.sees(d.roomId, d.userId, d.deviceId);
    const run = await cutAndRestore(bench, impl, d, restoreAfterGoneMs, sees, (from, to) =>
      membershipRequests(bench, d, from, to),
    );
    out.ghost[impl].push(run.goneAt - run.cutAt);
    out.ghostFromBeat[impl].push(run.goneAt - run.beatTs);
    out.recovery[impl].push(run.backAt - run.restoredAt);
    out.recoveryRequests[impl].push(run.reqs.length);
    const first = run.reqs[0]?.ts ?? NaN;
    out.recoveryFirstRequest[impl].push(first - run.restoredAt);
    out.recoveryAfterFirstRequest[impl].push(run.backAt - first);
  } finally {
    await d.close();
  }
}

/** All reps at once (each device in its own room behind its own link), starts staggered by 1.5 s. */
export async function ghostAndRecovery(bench: Bench<BenchServer>, reps: number): Promise<GhostSamples> {
  const out: GhostSamples = {
    ghost: emptySamples(),
    ghostFromBeat: emptySamples(),
    recovery: emptySamples(),
    recoveryFirstRequest: emptySamples(),
    recoveryAfterFirstRequest: emptySamples(),
    recoveryRequests: emptySamples(),
    restoreAfterGoneMs: [],
    cutAfterBeatMs: CUT_AFTER_BEAT_MS,
  };
  const tasks: Promise<void>[] = [];
  for (let rep = 0; rep < reps; rep++) {
    // Spread the restore over one 2 s retry cycle (both retry a silent request every 2 s).
    const restoreAfterGoneMs = Math.round(1000 + (2000 * (rep + 0.5)) / reps);
    out.restoreAfterGoneMs.push(restoreAfterGoneMs);
    for (const impl of IMPLS)
      tasks.push(sleep(rep * 1500).then(() => ghostOnce(bench, impl, `gh${rep}`, restoreAfterGoneMs, out)));
  }
  await Promise.all(tasks);
  log(`ghost/recovery: ${reps} reps`);
  return out;
}

// -------------------------------------------------------------------------------------------------
// Rate-limit storm: every membership request from the device answers 429 (retry_after_ms 1000) for
// `stormMs`; count what each manager spends, and whether it is in the call afterwards.
// -------------------------------------------------------------------------------------------------

export interface StormSamples {
  stormMs: number;
  afterMs: number;
  /** Membership requests during the storm. */
  requestsDuringStorm: Samples;
  /** Membership requests from the storm's end until visible again (or the deadline). */
  requestsAfterStorm: Samples;
  /** 1 if joined `afterMs` after the storm (server holds it, observer sees it, manager connected). */
  joinedAfter: Samples;
  /** Storm end → visible again (NaN if never). */
  backAfterStorm: Samples;
  /** 1 if the observer saw the device leave during the storm. */
  sawLeave: Samples;
}

const STORM_ROUTES = [
  "delayed.restart",
  "delayed.send",
  "delayed.cancel",
  "state.put",
  "state.put.delayed",
] as const;
const TOO_MANY = {
  status: 429,
  body: { errcode: "M_LIMIT_EXCEEDED", error: "Too Many Requests", retry_after_ms: 1000 },
};

async function stormOnce(bench: Bench, impl: Impl, tag: string, out: StormSamples): Promise<void> {
  const { stormMs, afterMs } = out;
  const d = await joinedDevice(bench, impl, tag);
  try {
    const sees = () => bench.observer.sees(d.roomId, d.userId, d.deviceId);
    let sawLeave = 0;
    const left = bench.observer
      .when(d.roomId, () => !sees(), stormMs, "leave")
      .then(
        () => (sawLeave = 1),
        () => undefined,
      );
    const from = Date.now();
    const ids = STORM_ROUTES.map((route) =>
      bench.hs.faults.add({ route, userId: d.userId, respond: TOO_MANY } satisfies FaultSpec),
    );
    await sleep(stormMs);
    for (const id of ids) bench.hs.faults.remove(id);
    const end = Date.now();
    await left;
    const back = await until(sees, afterMs, `${impl} back after storm`, 5).catch(() => NaN);
    out.requestsDuringStorm[impl].push(membershipRequests(bench, d, from, end).length);
    // Never back: "requests until visible" has no value (a manager that stopped sends nothing).
    out.requestsAfterStorm[impl].push(
      Number.isNaN(back) ? NaN : membershipRequests(bench, d, end, back + 1).length,
    );
    out.backAfterStorm[impl].push(back - end);
    out.sawLeave[impl].push(sawLeave);
    await sleep(Math.max(0, end + afterMs - Date.now()));
    out.joinedAfter[impl].push(
      d.isActive() && d.isConnected() && serverHoldsMembership(bench.hs, d) && sees() ? 1 : 0,
    );
  } finally {
    await d.close();
  }
}

/** Every storm and rep at once (separate users, rooms and links), starts staggered by 0.7 s. */
export async function storms(
  bench: Bench,
  specs: { stormMs: number; reps: number }[],
  afterMs: number,
): Promise<Record<number, StormSamples>> {
  const results: Record<number, StormSamples> = {};
  const tasks: Promise<void>[] = [];
  let k = 0;
  for (const { stormMs, reps } of specs) {
    const out: StormSamples = {
      stormMs,
      afterMs,
      requestsDuringStorm: emptySamples(),
      requestsAfterStorm: emptySamples(),
      joinedAfter: emptySamples(),
      backAfterStorm: emptySamples(),
      sawLeave: emptySamples(),
    };
    results[stormMs] = out;
    for (let rep = 0; rep < reps; rep++)
      for (const impl of IMPLS)
        tasks.push(sleep(700 * k++).then(() => stormOnce(bench, impl, `st${stormMs / 1000}s${rep}`, out)));
  }
  await Promise.all(tasks);
  log(`storms done`);
  return results;
}
