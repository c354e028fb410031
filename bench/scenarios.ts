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
  type Device,
  type Impl,
} from "./lib.js";

export type Samples = Record<Impl, number[]>;
const emptySamples = (): Samples => ({ ours: [], "js-sdk": [] });

const log = (msg: string) => process.stderr.write(`  ${msg}\n`);

/** Membership requests one user made whose server timestamp is in [from, to). */
function membershipRequests(bench: Bench, userId: string, from: number, to = Infinity) {
  return bench.hs.requests.filter(
    (r) => r.userId === userId && MEMBERSHIP_ROUTES.has(r.route) && r.ts >= from && r.ts < to,
  );
}

/** Server time of the `{}` written at the device's key after `since`, from the room timeline. */
function leftAt(bench: Bench, d: Device, since: number): number | undefined {
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
async function joinedDevice(bench: Bench, impl: Impl, tag: string): Promise<Device> {
  const roomId = await newRoom(bench, `${tag}-${impl}`);
  const d = await newDevice(bench, impl, roomId, `${tag}-${impl}`);
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

export async function joinLeave(bench: Bench, reps: number): Promise<JoinLeaveSamples> {
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
        out.requestsJoinLeave[impl].push(membershipRequests(bench, d.userId, t0 - 1).length);
      } finally {
        await d.close();
      }
    }
    log(`join/leave rep ${rep + 1}/${reps}`);
  }
  return out;
}

// -------------------------------------------------------------------------------------------------
// Heartbeat cost: both joined at once (separate rooms), membership requests over a window.
// -------------------------------------------------------------------------------------------------

export interface HeartbeatSamples {
  windowMs: number;
  /** Membership requests in the window, per implementation. */
  requests: Record<Impl, number>;
  /** Server-side intervals between consecutive restarts (ms). */
  intervals: Samples;
}

export async function heartbeat(bench: Bench, windowMs: number): Promise<HeartbeatSamples> {
  const devices = await Promise.all(IMPLS.map((impl) => joinedDevice(bench, impl, "hb")));
  try {
    await sleep(1000);
    const from = Date.now();
    await sleep(windowMs);
    const to = Date.now();
    const requests = { ours: 0, "js-sdk": 0 } as Record<Impl, number>;
    const intervals = emptySamples();
    for (const d of devices) {
      const reqs = membershipRequests(bench, d.userId, from, to);
      requests[d.impl] = reqs.length;
      const restarts = reqs.filter((r) => r.route === "delayed.restart").map((r) => r.ts);
      for (let i = 1; i < restarts.length; i++) intervals[d.impl].push(restarts[i] - restarts[i - 1]);
      if (!d.isActive()) log(`heartbeat: ${d.impl} is no longer active`);
    }
    return { windowMs: to - from, requests, intervals };
  } finally {
    await Promise.all(devices.map((d) => d.close()));
  }
}

// -------------------------------------------------------------------------------------------------
// Ghost time and recovery: cut a joined device's network 100 ms after a heartbeat reached the server,
// time until the observer sees it leave; restore 1 s later, time until it is visible again.
// -------------------------------------------------------------------------------------------------

export interface GhostSamples {
  /** Cut → observer sees the device leave. */
  ghost: Samples;
  /** Last heartbeat at the server → observer sees the leave (the server's timer: delay + delivery). */
  ghostFromBeat: Samples;
  /** Restore → observer sees the device again. */
  recovery: Samples;
  /** Membership requests from restore until visible again. */
  recoveryRequests: Samples;
  cutAfterBeatMs: number;
  restoreAfterGoneMs: number;
}

export const CUT_AFTER_BEAT_MS = 100;
export const RESTORE_AFTER_GONE_MS = 1000;

async function ghostOnce(bench: Bench, impl: Impl, tag: string, out: GhostSamples): Promise<void> {
  const d = await joinedDevice(bench, impl, tag);
  try {
    const sees = () => bench.observer.sees(d.roomId, d.userId, d.deviceId);
    // Wait for a fresh heartbeat to reach the server, then cut at the same phase for both.
    const since = Date.now();
    const beat = () =>
      membershipRequests(bench, d.userId, since).find(
        (r) => r.route === "delayed.restart" && r.status === 200,
      );
    await until(() => !!beat(), EC_DELAY_MS, `${impl} heartbeat`, 2);
    const beatTs = beat()!.ts;
    await sleep(Math.max(0, beatTs + CUT_AFTER_BEAT_MS - Date.now()));
    d.link.cut();
    const cutAt = Date.now();
    const goneAt = await bench.observer.when(d.roomId, () => !sees(), EC_DELAY_MS * 3, `${impl} gone`);
    out.ghost[impl].push(goneAt - cutAt);
    out.ghostFromBeat[impl].push(goneAt - beatTs);
    await sleep(Math.max(0, goneAt + RESTORE_AFTER_GONE_MS - Date.now()));
    const seen = bench.observer.when(d.roomId, sees, 60_000, `${impl} back`);
    d.link.restore();
    const restoredAt = Date.now();
    const backAt = await seen.catch(() => NaN);
    out.recovery[impl].push(backAt - restoredAt);
    out.recoveryRequests[impl].push(membershipRequests(bench, d.userId, restoredAt, backAt + 1).length);
  } finally {
    await d.close();
  }
}

export async function ghostAndRecovery(bench: Bench, reps: number): Promise<GhostSamples> {
  const out: GhostSamples = {
    ghost: emptySamples(),
    ghostFromBeat: emptySamples(),
    recovery: emptySamples(),
    recoveryRequests: emptySamples(),
    cutAfterBeatMs: CUT_AFTER_BEAT_MS,
    restoreAfterGoneMs: RESTORE_AFTER_GONE_MS,
  };
  for (let rep = 0; rep < reps; rep++) {
    // Both at once, in separate rooms, each behind its own link: their timers do not interact.
    await Promise.all(IMPLS.map((impl) => ghostOnce(bench, impl, `gh${rep}`, out)));
    log(`ghost/recovery rep ${rep + 1}/${reps}`);
  }
  return out;
}

// -------------------------------------------------------------------------------------------------
// Rate-limit storm: every membership request from the device answers 429 (retry_after_ms 1000) for
// `stormMs`; count what each manager spends, and whether it is in the call afterwards.
// -------------------------------------------------------------------------------------------------

export interface StormSamples {
  stormMs: number;
  /** Membership requests during the storm. */
  requestsDuringStorm: Samples;
  /** Membership requests from the storm's end until visible and connected again (or the deadline). */
  requestsAfterStorm: Samples;
  /** 1 if joined afterwards (server holds the membership, manager connected), else 0. */
  joinedAfter: Samples;
  /** Storm end → visible again (NaN if never). */
  backAfterStorm: Samples;
  /** 1 if the observer saw the device leave during the storm. */
  sawLeave: Samples;
  afterMs: number;
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

async function stormOnce(
  bench: Bench,
  impl: Impl,
  tag: string,
  stormMs: number,
  afterMs: number,
  out: StormSamples,
): Promise<void> {
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
    const back = await until(
      () => sees() && d.isConnected() && serverHoldsMembership(bench.hs, d),
      afterMs,
      `${impl} back after storm`,
      5,
    ).catch(() => NaN);
    const settledAt = Number.isNaN(back) ? Date.now() : back;
    out.requestsDuringStorm[impl].push(membershipRequests(bench, d.userId, from, end).length);
    out.requestsAfterStorm[impl].push(membershipRequests(bench, d.userId, end, settledAt + 1).length);
    out.backAfterStorm[impl].push(back - end);
    out.sawLeave[impl].push(sawLeave);
    out.joinedAfter[impl].push(
      d.isActive() && d.isConnected() && serverHoldsMembership(bench.hs, d) && sees() ? 1 : 0,
    );
  } finally {
    await d.close();
  }
}

export async function storm(
  bench: Bench,
  reps: number,
  stormMs: number,
  afterMs: number,
): Promise<StormSamples> {
  const out: StormSamples = {
    stormMs,
    afterMs,
    requestsDuringStorm: emptySamples(),
    requestsAfterStorm: emptySamples(),
    joinedAfter: emptySamples(),
    backAfterStorm: emptySamples(),
    sawLeave: emptySamples(),
  };
  for (let rep = 0; rep < reps; rep++) {
    await Promise.all(
      IMPLS.map((impl) => stormOnce(bench, impl, `st${stormMs}-${rep}`, stormMs, afterMs, out)),
    );
    log(`storm ${stormMs} ms rep ${rep + 1}/${reps}`);
  }
  return out;
}
