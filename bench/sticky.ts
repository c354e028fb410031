/**
 * `BENCH_ONLY=sticky npm run bench`: the sticky membership format (MSC4143 `m.rtc.member` as an MSC4354
 * sticky event) side by side: our MembershipManager with `membershipFormat: "sticky"` and matrix-js-sdk
 * 43's sticky manager (`joinRTCSession(..., { ...Element Call's join config, unstableSendStickyEvents:
 * true })` on a started, synced client), on one test homeserver with sticky events on
 * (`startTestHomeserver({ stickyEvents: true })`, Synapse 1.163's names), each device behind its own
 * FaultyLink with the same added round-trip time, an observer (another user's synced js-sdk client,
 * connected directly) whose MatrixRTCSession says who is in the call.
 *
 * - join/leave: join → connected / visible; leave → confirmed / the leave event on the server / the
 *   observer drops it; requests per join + leave (the test homeserver's request log).
 * - ghost after a crash: the device's network is cut 100 ms after a heartbeat reached the server and
 *   nothing more arrives from it (from the server's side a crashed page), until the observer drops it.
 * - recovery after a cut: the link comes back 1–3 s after the observer dropped it; until it lists the
 *   device again, and the requests that took.
 * - the refresh on a real server, shortened: ours with `stickyDurationMs: REFRESH_MS`, js-sdk with
 *   `membershipEventExpiryMs: REFRESH_MS` (it still sends a 1 h stickiness; only its refresh timer
 *   shortens), in the call for a window holding a few refreshes: what a refresh costs in requests, and
 *   whether the observer ever drops the device around one.
 * - requests per device-hour, the hourly refresh included: sticky-hour.ts, two virtual hours with
 *   full-length (1 h) stickiness on node:test mock timers (the schedule each keeps in a quiet call),
 *   cross-checked against the heartbeat cadence measured here on real HTTP.
 *
 * Our manager reaches the server through ClientBackend's own sticky requests.
 */
import { randomUUID } from "node:crypto";
import type { MatrixClient } from "matrix-js-sdk";
import {
  MatrixRTCSessionEvent,
  Status as SdkStatus,
  type Transport as SdkTransport,
} from "matrix-js-sdk/lib/matrixrtc/index.js";
import { ClientBackend } from "../src/backends/client.js";
import { MembershipManager } from "../src/manager/MembershipManager.js";
import {
  bareClient,
  startFaultyLink,
  startTestHomeserver,
  stopClient,
  syncedClient,
  type FaultyLink,
  type TestHomeserver,
  type UserCreds,
} from "../src/testing/index.js";
import {
  benchOn,
  EC_DELAY_MS,
  EC_JOIN_CONFIG,
  IMPLS,
  measureRtt,
  median,
  newRoom,
  sleep,
  until,
  type Bench,
  type Impl,
} from "./lib.js";
import type { Row } from "./report.js";
import { CUT_AFTER_BEAT_MS, cutAndRestore } from "./scenarios.js";
import { stickyDeviceHour, type HourCount } from "./sticky-hour.js";

export const RTC_MEMBER = "org.matrix.msc4143.rtc.member";
const SLOT = "m.call#ROOM";
/** Element Call's matrix_2_0 transport (no livekit_alias: the slot tells the SFU the room). */
const TRANSPORT = { type: "livekit", livekit_service_url: "https://livekit.bench.test" };
/** What a sticky membership costs the server: sends (join, refresh, fallback leave), delayed events, reads. */
export const STICKY_ROUTES = new Set([
  "send",
  "send.delayed",
  "delayed.restart",
  "delayed.send",
  "delayed.cancel",
  "delayed.legacy",
  "delayed.list",
  "delayed.get",
  "event",
  "state.get",
  "state.put",
  "state.put.delayed",
]);

type Samples = Record<Impl, number[]>;
const emptySamples = (): Samples => ({ ours: [], "js-sdk": [] });
const log = (msg: string) => process.stderr.write(`  ${msg}\n`);

interface StickyDevice {
  readonly impl: Impl;
  readonly user: UserCreds;
  readonly roomId: string;
  readonly link: FaultyLink;
  join(): void;
  whenConnected(timeoutMs: number): Promise<number>;
  isConnected(): boolean;
  leave(): Promise<unknown>;
  /** The member id (sticky key) of the current call, once joined. */
  memberId(): string | undefined;
  lastError?: unknown;
  close(): Promise<void>;
}

interface DeviceTuning {
  /** Ours: the stickiness sent; js-sdk: its refresh period (`membershipEventExpiryMs`). */
  refreshMs?: number;
}

async function newStickyDevice(
  bench: Bench,
  impl: Impl,
  roomId: string,
  name: string,
  tuning: DeviceTuning = {},
): Promise<StickyDevice> {
  const user = await bench.hs.createUser(name);
  await bench.hs.joinRoom(user.accessToken, roomId);
  const link = await startFaultyLink({ target: bench.hs.baseUrl });
  link.setLatency(bench.rttMs, 0);
  return impl === "ours" ? oursDevice(link, user, roomId, tuning) : sdkDevice(link, user, roomId, tuning);
}

async function oursDevice(
  link: FaultyLink,
  user: UserCreds,
  roomId: string,
  tuning: DeviceTuning,
): Promise<StickyDevice> {
  const client = bareClient(link.url, user);
  // As in lib.ts: an app's client fetched /versions and /capabilities long before it joins a call.
  await client.doesServerSupportUnstableFeature("org.matrix.msc4354");
  await client.getCapabilities();
  const manager = new MembershipManager({
    backend: new ClientBackend(client),
    roomId,
    userId: user.userId,
    deviceId: user.deviceId,
    delayedLeaveDelayMs: EC_DELAY_MS,
    fociPreferred: [TRANSPORT],
    membershipFormat: "sticky",
    ...(tuning.refreshMs !== undefined ? { stickyDurationMs: tuning.refreshMs } : {}),
  });
  const device: StickyDevice = {
    impl: "ours",
    user,
    roomId,
    link,
    join: () => manager.join(),
    whenConnected: (timeoutMs) =>
      until(() => manager.status === "connected", timeoutMs, "ours connected").catch((e: Error) => {
        throw new Error(`${e.message} (last error: ${String(device.lastError)})`);
      }),
    isConnected: () => manager.status === "connected",
    leave: () => manager.leave({ timeoutMs: 30_000 }),
    memberId: () => manager.memberId,
    async close() {
      manager.dispose();
      stopClient(client);
      await link.close();
    },
  };
  manager.errors$.subscribe((e) => (device.lastError = e));
  return device;
}

async function sdkDevice(
  link: FaultyLink,
  user: UserCreds,
  roomId: string,
  tuning: DeviceTuning,
): Promise<StickyDevice> {
  const client: MatrixClient = await syncedClient(link.url, user);
  await until(() => !!client.getRoom(roomId), 10_000, "js-sdk device to see its room", 5);
  const session = client.matrixRTC.getRoomSession(client.getRoom(roomId)!);
  let memberId: string | undefined;
  const device: StickyDevice = {
    impl: "js-sdk",
    user,
    roomId,
    link,
    join() {
      memberId = randomUUID();
      // As Element Call's LocalMember.enterRTCSession in matrix_2_0 mode.
      session.joinRTCSession(
        { userId: user.userId, deviceId: user.deviceId, memberId },
        [],
        TRANSPORT as SdkTransport,
        {
          ...EC_JOIN_CONFIG,
          unstableSendStickyEvents: true,
          ...(tuning.refreshMs !== undefined ? { membershipEventExpiryMs: tuning.refreshMs } : {}),
        },
      );
    },
    whenConnected: (timeoutMs) =>
      until(() => session.membershipStatus === SdkStatus.Connected, timeoutMs, "js-sdk connected"),
    isConnected: () => session.membershipStatus === SdkStatus.Connected,
    leave: () => session.leaveRoomSession(30_000),
    memberId: () => memberId,
    async close() {
      try {
        await Promise.race([session.leaveRoomSession(0), sleep(50)]);
      } catch {
        // already stopped
      }
      stopClient(client);
      await link.close();
    },
  };
  session.on(MatrixRTCSessionEvent.MembershipManagerError, (e) => (device.lastError = e));
  return device;
}

/** The device's sticky membership requests (the test homeserver's log) with server time in [from, to). */
function requestsOf(bench: Bench, d: StickyDevice, from: number, to = Infinity) {
  return bench.hs.requests.filter(
    (r) => r.userId === d.user.userId && STICKY_ROUTES.has(r.route) && r.ts >= from && r.ts < to,
  );
}

/** The device's sticky rtc.member events since `since`, oldest first. */
function stickyEventsOf(bench: Bench, d: StickyDevice, since: number) {
  return bench.hs
    .timeline(d.roomId)
    .filter((e) => e.type === RTC_MEMBER && e.sender === d.user.userId && e.origin_server_ts >= since);
}

/** Server time of the device's sticky leave (an rtc.member without `application`) after `since`. */
function leftAt(bench: Bench, d: StickyDevice, since: number): number | undefined {
  return stickyEventsOf(bench, d, since).find((e) => e.content.application === undefined)?.origin_server_ts;
}

const sees = (bench: Bench, d: StickyDevice) => () =>
  bench.observer.sees(d.roomId, d.user.userId, d.user.deviceId);

/** A joined device: connected, visible to the observer, past the restart that follows a join. */
async function joinedDevice(bench: Bench, impl: Impl, tag: string, tuning?: DeviceTuning) {
  const roomId = await newRoom(bench, `${tag}-${impl}`);
  const d = await newStickyDevice(bench, impl, roomId, `${tag}-${impl}`, tuning);
  await sleep(200);
  const seen = bench.observer.when(roomId, sees(bench, d), 10_000, `${impl} visible`);
  d.join();
  await d.whenConnected(10_000);
  await seen;
  await sleep(500);
  return d;
}

/** The join's events on the server are what a reader takes for a sticky membership (checked each rep). */
function checkJoinOnServer(bench: Bench, d: StickyDevice, since: number): void {
  const join = stickyEventsOf(bench, d, since).find((e) => e.content.application !== undefined);
  const key = d.memberId();
  if (
    !join ||
    join.msc4354_sticky === undefined ||
    join.content.slot_id !== SLOT ||
    join.content.msc4354_sticky_key !== key ||
    (join.content.member as { id?: string } | undefined)?.id !== key
  )
    throw new Error(`${d.impl}: no sticky membership for member ${key} on the server`);
  const pending = bench.hs
    .pendingDelayedEvents()
    .filter((p) => p.userId === d.user.userId && p.type === RTC_MEMBER);
  if (pending.length !== 1 || pending[0].stickyDurationMs === undefined)
    throw new Error(`${d.impl}: ${pending.length} sticky delayed leaves pending, expected 1`);
}

export interface StickyJoinLeave {
  joinConnected: Samples;
  joinVisible: Samples;
  leaveConfirmed: Samples;
  leaveServer: Samples;
  leaveVisible: Samples;
  requestsJoinLeave: Samples;
}

async function joinLeave(bench: Bench, reps: number): Promise<StickyJoinLeave> {
  const out: StickyJoinLeave = {
    joinConnected: emptySamples(),
    joinVisible: emptySamples(),
    leaveConfirmed: emptySamples(),
    leaveServer: emptySamples(),
    leaveVisible: emptySamples(),
    requestsJoinLeave: emptySamples(),
  };
  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 === 0 ? IMPLS : [...IMPLS].reverse();
    for (const impl of order) {
      const roomId = await newRoom(bench, `sjl${rep}-${impl}`);
      const d = await newStickyDevice(bench, impl, roomId, `sjl${rep}-${impl}`);
      try {
        await sleep(300); // js-sdk's client: let its first sync settle
        const visible = sees(bench, d);
        const seen = bench.observer.when(roomId, visible, 10_000, `${impl} visible`);
        const t0 = Date.now();
        d.join();
        const connectedAt = await d.whenConnected(10_000);
        const seenAt = await seen;
        checkJoinOnServer(bench, d, t0 - 1);
        // Past the restart both send right after the join, and far from the next heartbeat (5 s).
        await sleep(1000);
        const gone = bench.observer.when(roomId, () => !visible(), 10_000, `${impl} gone`);
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
        out.requestsJoinLeave[impl].push(requestsOf(bench, d, t0 - 1).length);
      } finally {
        await d.close();
      }
    }
    log(`sticky join/leave rep ${rep + 1}/${reps}`);
  }
  return out;
}

export interface StickyGhost {
  ghost: Samples;
  ghostFromBeat: Samples;
  recovery: Samples;
  recoveryFirstRequest: Samples;
  recoveryRequests: Samples;
  /** 1 when the device came back with a fresh sticky membership (a new join event after the cut). */
  recoveryRejoined: Samples;
  restoreAfterGoneMs: number[];
}

async function ghostOnce(
  bench: Bench,
  impl: Impl,
  tag: string,
  restoreAfterGoneMs: number,
  out: StickyGhost,
): Promise<void> {
  const d = await joinedDevice(bench, impl, tag);
  try {
    const run = await cutAndRestore(bench, impl, d, restoreAfterGoneMs, sees(bench, d), (from, to) =>
      requestsOf(bench, d, from, to),
    );
    const restoredAt = run.restoredAt;
    out.ghost[impl].push(run.goneAt - run.cutAt);
    out.ghostFromBeat[impl].push(run.goneAt - run.beatTs);
    out.recovery[impl].push(run.backAt - restoredAt);
    out.recoveryRequests[impl].push(run.reqs.length);
    out.recoveryFirstRequest[impl].push((run.reqs[0]?.ts ?? NaN) - restoredAt);
    out.recoveryRejoined[impl].push(
      stickyEventsOf(bench, d, restoredAt).some((e) => e.content.application !== undefined) ? 1 : 0,
    );
  } finally {
    await d.close();
  }
}

async function ghostAndRecovery(bench: Bench, reps: number): Promise<StickyGhost> {
  const out: StickyGhost = {
    ghost: emptySamples(),
    ghostFromBeat: emptySamples(),
    recovery: emptySamples(),
    recoveryFirstRequest: emptySamples(),
    recoveryRequests: emptySamples(),
    recoveryRejoined: emptySamples(),
    restoreAfterGoneMs: [],
  };
  const tasks: Promise<void>[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const restoreAfterGoneMs = Math.round(1000 + (2000 * (rep + 0.5)) / reps);
    out.restoreAfterGoneMs.push(restoreAfterGoneMs);
    for (const impl of IMPLS)
      tasks.push(sleep(rep * 1500).then(() => ghostOnce(bench, impl, `sgh${rep}`, restoreAfterGoneMs, out)));
  }
  await Promise.all(tasks);
  log(`sticky ghost/recovery: ${reps} reps`);
  return out;
}

export interface StickyRefresh {
  refreshMs: number;
  windowMs: number;
  /** Membership sends after the join (the refreshes) in the window. */
  refreshes: Record<Impl, number>;
  /** Mean interval between refreshes (server time). */
  refreshIntervalMs: Record<Impl, number>;
  /** Requests in the window, by route. */
  byRoute: Record<Impl, Record<string, number>>;
  /** Server-side median interval between restarts (the heartbeat cadence on real HTTP). */
  heartbeatIntervalMs: Record<Impl, number>;
  /** Restarts sooner than 0.8 of that median after the previous one (restarts for a refresh). */
  offCadenceRestarts: Record<Impl, number>;
  /** Times the observer dropped the device in the window (a refresh that came too late). */
  observerDrops: Record<Impl, number>;
  /** The sticky duration each refresh carried on the wire. */
  stickyDurationsMs: Record<Impl, number[]>;
}

async function refresh(bench: Bench, refreshMs: number, windowMs: number): Promise<StickyRefresh> {
  const devices = await Promise.all(IMPLS.map((impl) => joinedDevice(bench, impl, "srf", { refreshMs })));
  const drops = { ours: 0, "js-sdk": 0 } as Record<Impl, number>;
  const watchers = devices.map((d) => {
    let was = true;
    const session = bench.observer.client.matrixRTC.getRoomSession(bench.observer.client.getRoom(d.roomId)!);
    const onChange = () => {
      const now = sees(bench, d)();
      if (was && !now) drops[d.impl]++;
      was = now;
    };
    session.on(MatrixRTCSessionEvent.MembershipsChanged, onChange);
    return () => session.off(MatrixRTCSessionEvent.MembershipsChanged, onChange);
  });
  try {
    const from = Date.now();
    await sleep(windowMs);
    const to = Date.now();
    const out: StickyRefresh = {
      refreshMs,
      windowMs: to - from,
      refreshes: { ours: 0, "js-sdk": 0 },
      refreshIntervalMs: { ours: NaN, "js-sdk": NaN },
      byRoute: { ours: {}, "js-sdk": {} },
      heartbeatIntervalMs: { ours: NaN, "js-sdk": NaN },
      offCadenceRestarts: { ours: 0, "js-sdk": 0 },
      observerDrops: drops,
      stickyDurationsMs: { ours: [], "js-sdk": [] },
    };
    for (const d of devices) {
      const reqs = requestsOf(bench, d, from, to);
      for (const r of reqs) out.byRoute[d.impl][r.route] = (out.byRoute[d.impl][r.route] ?? 0) + 1;
      const sends = reqs.filter((r) => r.route === "send").map((r) => r.ts);
      out.refreshes[d.impl] = sends.length;
      if (sends.length > 1) out.refreshIntervalMs[d.impl] = (sends.at(-1)! - sends[0]) / (sends.length - 1);
      const restarts = reqs.filter((r) => r.route === "delayed.restart").map((r) => r.ts);
      const intervals = restarts.slice(1).map((ts, i) => ts - restarts[i]);
      out.heartbeatIntervalMs[d.impl] = median(intervals);
      out.offCadenceRestarts[d.impl] = intervals.filter((x) => x < 0.8 * median(intervals)).length;
      out.stickyDurationsMs[d.impl] = stickyEventsOf(bench, d, from)
        .filter((e) => e.content.application !== undefined)
        .map((e) => e.msc4354_sticky?.duration_ms ?? NaN);
      if (!d.isConnected()) log(`refresh: ${d.impl} is not connected at the end (${String(d.lastError)})`);
    }
    return out;
  } finally {
    for (const stop of watchers) stop();
    await Promise.all(devices.map((d) => d.close()));
  }
}

export interface StickyRun {
  rttMs: number;
  delayMs: number;
  joinLeave: StickyJoinLeave;
  ghost: StickyGhost;
  refresh: StickyRefresh;
  hour: Record<Impl, HourCount>;
  rows: Row[];
}

const pair = (s: Samples) => ({
  ours: median(s.ours),
  theirs: median(s["js-sdk"]),
  reps: Math.min(s.ours.length, s["js-sdk"].length),
});

export async function runStickyBench(opts: {
  rttMs: number;
  joinLeaveReps: number;
  ghostReps: number;
  refreshMs: number;
  refreshWindowMs: number;
  say: (line: string) => void;
}): Promise<StickyRun> {
  const { say } = opts;
  say(`requests per device-hour: two virtual hours each, 1 h stickiness, virtual RTT ${opts.rttMs} ms…`);
  const hour = await stickyDeviceHour({
    rttMs: opts.rttMs,
    delayMs: EC_DELAY_MS,
    sdkJoinConfig: { ...EC_JOIN_CONFIG, unstableSendStickyEvents: true },
  });
  const hs: TestHomeserver = await startTestHomeserver({ requestLogLimit: 200_000, stickyEvents: true });
  const bench = await benchOn(hs, opts.rttMs);
  try {
    const rtt = await measureRtt(bench);
    say(`test homeserver (sticky events on); measured RTT through a link: ${rtt.toFixed(1)} ms`);
    say(`sticky join/leave, ${opts.joinLeaveReps} reps each…`);
    const jl = await joinLeave(bench, opts.joinLeaveReps);
    say(`sticky ghost after a crash and recovery after a cut, ${opts.ghostReps} reps…`);
    const gh = await ghostAndRecovery(bench, opts.ghostReps);
    say(`sticky refresh, shortened to ${opts.refreshMs / 1000} s, over ${opts.refreshWindowMs / 1000} s…`);
    const rf = await refresh(bench, opts.refreshMs, opts.refreshWindowMs);
    const rows = stickyRows(rtt, jl, gh, rf, hour);
    return { rttMs: rtt, delayMs: EC_DELAY_MS, joinLeave: jl, ghost: gh, refresh: rf, hour, rows };
  } finally {
    await bench.close();
  }
}

function stickyRows(
  rtt: number,
  jl: StickyJoinLeave,
  gh: StickyGhost,
  rf: StickyRefresh,
  hour: Record<Impl, HourCount>,
): Row[] {
  const reads = (h: HourCount) => (h.byKind.read ?? 0) + (h.byKind["read.member"] ?? 0);
  const writes = (h: HourCount) => h.total - reads(h);
  // What a quiet call sends besides its heartbeats and reads: the refreshes, and any restart off the
  // heartbeat cadence (one that comes sooner than 0.8 of the median interval: a restart for a refresh).
  const perRefresh = (impl: Impl) => {
    const other = Object.entries(rf.byRoute[impl])
      .filter(([route]) => !["delayed.restart", "event", "state.get"].includes(route))
      .reduce((sum, [, n]) => sum + n, 0);
    return rf.refreshes[impl] > 0 ? (other + rf.offCadenceRestarts[impl]) / rf.refreshes[impl] : NaN;
  };
  return [
    {
      id: "sticky.join.connected",
      label: "join → connected",
      unit: "ms",
      ...pair(jl.joinConnected),
      lowerIsBetter: true,
      limit: 2 * rtt,
      limitNote: "two round trips: the sticky delayed leave, then the sticky membership",
    },
    {
      id: "sticky.join.visible",
      label: "join → visible to observer",
      unit: "ms",
      ...pair(jl.joinVisible),
      lowerIsBetter: true,
      limit: 1.5 * rtt,
    },
    {
      id: "sticky.leave.confirmed",
      label: "leave → confirmed",
      unit: "ms",
      ...pair(jl.leaveConfirmed),
      lowerIsBetter: true,
      limit: rtt,
      limitNote: "one round trip (send the delayed leave)",
    },
    {
      id: "sticky.leave.server",
      label: "leave → server holds the leave",
      unit: "ms",
      ...pair(jl.leaveServer),
      lowerIsBetter: true,
      limit: 0.5 * rtt,
    },
    {
      id: "sticky.leave.visible",
      label: "leave → observer drops it",
      unit: "ms",
      ...pair(jl.leaveVisible),
      lowerIsBetter: true,
      limit: 0.5 * rtt,
    },
    {
      id: "sticky.joinleave.requests",
      label: "requests per join + leave",
      unit: "requests",
      ...pair(jl.requestsJoinLeave),
      lowerIsBetter: true,
      limit: 3,
      limitNote: "delayed leave, membership, send the delayed leave",
    },
    {
      id: "sticky.ghost",
      label: "ghost after a crash: cut → observer drops it",
      unit: "ms",
      ...pair(gh.ghost),
      lowerIsBetter: true,
      limit: EC_DELAY_MS - CUT_AFTER_BEAT_MS,
      limitNote: `the server sends the delayed leave a delay after the last heartbeat, cut ${CUT_AFTER_BEAT_MS} ms after one`,
    },
    {
      id: "sticky.recovery",
      label: "recovery after a cut: back → visible",
      unit: "ms",
      ...pair(gh.recovery),
      lowerIsBetter: true,
      limit: 1.5 * rtt,
      note: `restored ${gh.restoreAfterGoneMs.join(", ")} ms after the observer dropped it`,
    },
    {
      id: "sticky.recovery.firstRequest",
      label: "  of which: back → first request at server",
      unit: "ms",
      ...pair(gh.recoveryFirstRequest),
      lowerIsBetter: true,
      limit: 0.5 * rtt,
    },
    {
      id: "sticky.recovery.requests",
      label: "requests to recover",
      unit: "requests",
      ...pair(gh.recoveryRequests),
      lowerIsBetter: true,
      limit: 2,
    },
    {
      id: "sticky.perHour",
      label: "requests / device-hour (hourly refresh included)",
      unit: "requests",
      ours: hour.ours.total,
      theirs: hour["js-sdk"].total,
      lowerIsBetter: true,
      reps: 1,
      note:
        `two virtual hours, 1 h stickiness, virtual RTT; ours ${JSON.stringify(roundAll(hour.ours.byKind))}, ` +
        `js-sdk ${JSON.stringify(roundAll(hour["js-sdk"].byKind))}`,
      incomparable:
        reads(hour.ours) > 0
          ? "ours (a client that does not sync) reads its own event back each heartbeat"
          : undefined,
    },
    {
      id: "sticky.perHour.writes",
      label: "  without reads: sends and delayed-event requests",
      unit: "requests",
      ours: writes(hour.ours),
      theirs: writes(hour["js-sdk"]),
      lowerIsBetter: true,
      reps: 1,
      incomparable:
        "ours counts its 5 s heartbeat interval from the send, js-sdk from the answer: ours at 1 RTT more margin",
    },
    {
      id: "sticky.refresh.first",
      label: "first refresh after the join, 1 h stickiness",
      unit: "s",
      ours: (hour.ours.refreshesAtMs[0] ?? NaN) / 1000,
      theirs: (hour["js-sdk"].refreshesAtMs[0] ?? NaN) / 1000,
      lowerIsBetter: false,
      reps: 1,
      incomparable: "a margin, not a cost: ours leaves a heartbeat and two request timeouts, js-sdk 5 s",
      note:
        `virtual time; the next ones ${Math.round(refreshPeriod(hour.ours) / 1000)} s (ours) and ` +
        `${Math.round(refreshPeriod(hour["js-sdk"]) / 1000)} s (js-sdk) later; the stickiness lasts 3600 s`,
    },
    {
      id: "sticky.refresh.requests",
      label: `requests per refresh (real HTTP, shortened to ${rf.refreshMs / 1000} s)`,
      unit: "requests",
      ours: perRefresh("ours"),
      theirs: perRefresh("js-sdk"),
      lowerIsBetter: true,
      reps: Math.min(rf.refreshes.ours, rf.refreshes["js-sdk"]),
      note:
        `sends and off-cadence restarts per refresh, over ${Math.round(rf.windowMs / 1000)} s ` +
        `(ours refreshes at half a short stickiness, js-sdk 5 s before its period); ` +
        `observer drops: ours ${rf.observerDrops.ours}, js-sdk ${rf.observerDrops["js-sdk"]}`,
    },
  ];
}

function refreshPeriod(h: HourCount): number {
  const at = h.refreshesAtMs;
  return at.length > 1 ? at[1] - at[0] : NaN;
}

function roundAll(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v * 10) / 10]));
}
