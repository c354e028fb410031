/**
 * Requests per device-hour in the sticky membership format, on virtual time: our MembershipManager
 * (`membershipFormat: "sticky"`, 1 h stickiness) and matrix-js-sdk 43's `StickyEventMembershipManager`
 * (what `joinRTCSession(..., { unstableSendStickyEvents: true })` runs), each joined once and left in the
 * call for two virtual hours under node:test mock timers (setTimeout, setInterval, Date; 10 ms ticks),
 * against a fake server that answers every request `rttMs` later (also on virtual time). Every request
 * is counted by kind. The count starts a minute after the join (the join's own requests are the
 * join/leave rows) and runs two full hours, so it holds both refreshes of the stickiness (js-sdk:
 * 1 h − 5 s after the join; ours: 1 h less a heartbeat interval and two request timeouts), halved.
 *
 * Nothing fails here and the network never errs: this is the schedule each manager keeps in a quiet
 * call, with full-length durations, not a measurement of latency.
 */
import { mock } from "node:test";
import { StickyEventMembershipManager } from "matrix-js-sdk/lib/matrixrtc/MembershipManager.js";
import type { MembershipBackend, StateEventSnapshot, StickyEventRequest } from "../src/backends/types.js";
import { MembershipManager } from "../src/manager/MembershipManager.js";
import { settle } from "../test/helpers/virtualTime.js";
import { quietMatrixSdkLogs } from "../src/testing/index.js";
import type { Impl } from "./lib.js";

const TICK_MS = 10;
const HOUR_MS = 3_600_000;
const WARMUP_MS = 60_000;

export interface HourCount {
  /** Requests per hour of the call, by kind (schedule, send, restart, …). */
  byKind: Record<string, number>;
  /** All of them. */
  total: number;
  /** When the membership was sent again (ms after the join). */
  refreshesAtMs: number[];
}

async function advance(ms: number): Promise<void> {
  await settle();
  for (let t = 0; t < ms; t += TICK_MS) {
    mock.timers.tick(TICK_MS);
    await settle(2);
  }
}

type Log = { kind: string; at: number }[];

function answerLater<T>(rttMs: number, value: T): Promise<T> {
  return new Promise((resolve) => setTimeout(() => resolve(value), rttMs));
}

/** Our backend interface, answering every request `rttMs` later; logs each request. */
function oursBackend(rttMs: number, log: Log): MembershipBackend {
  let n = 0;
  const note = (kind: string) => log.push({ kind, at: Date.now() });
  // The events sent, so that a read of one answers what the server would (its content, untouched).
  const events = new Map<string, StateEventSnapshot>();
  return {
    sendDelayedStateEvent: () => (note("schedule.state"), answerLater(rttMs, `d${++n}`)),
    sendStateEvent: () => (note("state"), answerLater(rttMs, undefined)),
    updateDelayedEvent: (_id, action) => (note(action), answerLater(rttMs, undefined)),
    sendDelayedStickyEvent: () => (note("schedule"), answerLater(rttMs, `d${++n}`)),
    sendStickyEvent: (req: StickyEventRequest) => {
      note("send");
      const eventId = `$e${++n}`;
      events.set(eventId, { content: req.content, eventId, originServerTs: Date.now() + rttMs / 2 });
      return answerLater(rttMs, eventId);
    },
    readEvent: (_roomId: string, eventId: string) => (note("read"), answerLater(rttMs, events.get(eventId))),
    // ClientBackend has it: without a room view, every 4th check also reads our m.room.member.
    readRoomMembership: () => (note("read.member"), answerLater(rttMs, "join")),
  };
}

/** The client methods js-sdk 43's sticky manager calls, answering `rttMs` later; logs each request. */
function sdkClient(userId: string, deviceId: string, rttMs: number, log: Log) {
  let n = 0;
  const note = (kind: string) => log.push({ kind, at: Date.now() });
  return {
    getUserId: () => userId,
    getDeviceId: () => deviceId,
    _unstable_sendStickyDelayedEvent: () => (note("schedule"), answerLater(rttMs, { delay_id: `d${++n}` })),
    _unstable_sendStickyEvent: () => (note("send"), answerLater(rttMs, { event_id: `$e${++n}` })),
    _unstable_restartScheduledDelayedEvent: () => (note("restart"), answerLater(rttMs, {})),
    _unstable_sendScheduledDelayedEvent: () => (note("send-delayed"), answerLater(rttMs, {})),
    _unstable_cancelScheduledDelayedEvent: () => (note("cancel"), answerLater(rttMs, {})),
    _unstable_updateDelayedEvent: () => (note("update-legacy"), answerLater(rttMs, {})),
  };
}

function count(log: Log, joinedAt: number, hours: number): HourCount {
  const from = joinedAt + WARMUP_MS;
  const to = from + hours * HOUR_MS;
  const inWindow = log.filter((r) => r.at >= from && r.at < to);
  const byKind: Record<string, number> = {};
  for (const r of inWindow) byKind[r.kind] = (byKind[r.kind] ?? 0) + 1 / hours;
  return {
    byKind,
    total: inWindow.length / hours,
    refreshesAtMs: log.filter((r) => r.kind === "send" && r.at >= from).map((r) => r.at - joinedAt),
  };
}

/** Two virtual hours of one call for each implementation; per-hour request counts. */
export async function stickyDeviceHour(opts: {
  rttMs: number;
  delayMs: number;
  /** js-sdk's join config (Element Call's, with unstableSendStickyEvents). */
  sdkJoinConfig: Record<string, unknown>;
}): Promise<Record<Impl, HourCount>> {
  quietMatrixSdkLogs();
  const hours = 2;
  const out = {} as Record<Impl, HourCount>;
  const transport = { type: "livekit", livekit_service_url: "https://livekit.bench.test" };

  mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now: Date.now() });
  try {
    const log: Log = [];
    const manager = new MembershipManager({
      backend: oursBackend(opts.rttMs, log),
      roomId: "!room:bench",
      userId: "@ours:bench",
      deviceId: "OURS",
      delayedLeaveDelayMs: opts.delayMs,
      fociPreferred: [transport],
      membershipFormat: "sticky",
    });
    const joinedAt = Date.now();
    manager.join();
    await advance(WARMUP_MS + hours * HOUR_MS + 1000);
    if (manager.status !== "connected") throw new Error(`ours is ${manager.status} after ${hours} h`);
    out.ours = count(log, joinedAt, hours);
    manager.dispose();
  } finally {
    mock.timers.reset();
  }

  mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now: Date.now() });
  try {
    const log: Log = [];
    const room = { roomId: "!room:bench", getVersion: () => "10" };
    const manager = new StickyEventMembershipManager(
      opts.sdkJoinConfig as never,
      room as never,
      sdkClient("@sdk:bench", "SDK", opts.rttMs, log) as never,
      { application: "m.call", id: "ROOM" },
      "member-id-of-the-bench",
    );
    const joinedAt = Date.now();
    manager.join([], transport as never);
    await advance(WARMUP_MS + hours * HOUR_MS + 1000);
    if (manager.status !== "Connected") throw new Error(`js-sdk is ${manager.status} after ${hours} h`);
    out["js-sdk"] = count(log, joinedAt, hours);
    void manager.leave(0).catch(() => undefined);
    await advance(1000);
  } finally {
    mock.timers.reset();
  }
  return out;
}
