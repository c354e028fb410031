/**
 * A call recorder: what the testing kit (startTestCall's `timeline` option) and the demo keep of a run,
 * for the timeline picture (render.ts) and for one timestamped line per event. It wraps each device's
 * backend (every request as the manager made it), follows each manager's state and each client's view
 * of the call, and polls the test homeserver's own records (request log, pending delayed events, room
 * timeline). Times are `Date.now()` values; the test homeserver runs on the same clock.
 */
import { ClientEvent, type MatrixClient } from "matrix-js-sdk";
import { httpFacts } from "../../errors.js";
import type {
  DelayedEventAction,
  MembershipBackend,
  RequestOptions,
  StateEventRequest,
} from "../../backends/types.js";
import type { MembershipManager } from "../../manager/MembershipManager.js";
import { statusOf, type MembershipState } from "../../manager/state.js";
import { CALL_MEMBER_EVENT_TYPE } from "../../membership/content.js";
import type { TestHomeserver } from "../homeserver/homeserver.js";
import type { CallTrace, Deadline, DeviceInfo, MembershipChange, RequestOp } from "./types.js";

/** What `watchServer` reads: the test homeserver has all of it (real Synapse has no request log). */
export type RecordableServer = Pick<TestHomeserver, "requests" | "pendingDelayedEvents" | "timeline">;

/** Options of a `CallRecorder`. */
export interface CallRecorderOptions {
  /** The delay of the devices' delayed leaves (drawn as the sawtooth's height). */
  delayMs: number;
  /** The heartbeat interval, when known (default delay / 2). */
  heartbeatMs?: number;
  /** Receives one timestamped line per event ("  4.288s  network alice's network is cut…"). */
  print?: (line: string) => void;
  /** How often the server and the views are polled. Default 10 ms. */
  pollMs?: number;
}

const DELAY_ID_KEY = "org.matrix.msc4140.delay_id";

const OP_WORDS: Record<RequestOp, string> = {
  schedule: "schedule the delayed leave",
  state: "send the membership",
  "leave-state": "write the leave",
  restart: "heartbeat (restart)",
  send: "leave (send the delayed leave now)",
  cancel: "cancel the delayed leave",
  read: "read our membership",
  list: "list delayed events",
  probe: "probe server support",
};

/** How long a printed line is held so that lines learnt late still come out in time order. */
const PRINT_HOLD_MS = 100;

/** Records a run (and prints one line per event as it happens, within PRINT_HOLD_MS, when asked to). */
export class CallRecorder {
  /** What has been recorded so far (live; see `snapshot()`). */
  readonly trace: CallTrace;
  private readonly devices = new Map<string, DeviceInfo & { via: string }>();
  private readonly timers: ReturnType<typeof setInterval>[] = [];
  private readonly leaveIds = new Map<string, string>();
  private readonly counters = new Map<string, number>();
  private readonly print: (line: string) => void;
  private readonly pollMs: number;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(options: CallRecorderOptions) {
    this.print = options.print ?? (() => undefined);
    this.pollMs = options.pollMs ?? 10;
    const t0 = Date.now();
    this.trace = {
      t0,
      tEnd: t0,
      delayMs: options.delayMs,
      heartbeatMs: options.heartbeatMs,
      devices: [],
      requests: [],
      statuses: [],
      probablyLeft: [],
      views: [],
      syncs: [],
      server: { recorded: false, requests: [], deadlines: [], memberships: [] },
      outages: [],
      milestones: [],
    };
  }

  /** Seconds since the start, as printed: "  1.234s". */
  at(t: number): string {
    return `${((t - this.trace.t0) / 1000).toFixed(3).padStart(7)}s`;
  }

  /** One printed line, kept as a milestone too. */
  say(device: string, what: string, t = Date.now()): void {
    this.trace.milestones.push({ t, device, what });
    this.held.push({ t, line: `${this.at(t)}  ${device.padEnd(7)} ${what}` });
    if (this.stopped) this.flush(Infinity);
    else this.flushTimer ??= setInterval(() => this.flush(Date.now() - PRINT_HOLD_MS), PRINT_HOLD_MS / 2);
  }

  /**
   * Lines are stamped with when things happened, but learnt at different moments (the server is
   * polled every 10 ms, a request is printed when it settles): each line is held briefly and printed
   * in time order.
   */
  private flush(upTo: number): void {
    const due = this.held.filter((h) => h.t <= upTo).sort((a, b) => a.t - b.t);
    if (due.length === 0) return;
    this.held = this.held.filter((h) => h.t > upTo);
    for (const h of due) this.print(h.line);
  }

  private held: { t: number; line: string }[] = [];
  private flushTimer: ReturnType<typeof setInterval> | undefined;
  private stopped = false;

  /** A lane for a device (or an observer); `via` is added to its request lines (" via the widget host"). */
  addDevice(info: DeviceInfo, via = ""): void {
    this.devices.set(info.name, { ...info, via });
    this.trace.devices.push(info);
  }

  private deviceOfUser(userId: string | undefined): string | undefined {
    for (const d of this.devices.values()) if (d.userId === userId) return d.name;
    return undefined;
  }

  private deviceOfStateKey(stateKey: string): string | undefined {
    for (const d of this.devices.values()) if (stateKey.includes(`${d.userId}_${d.deviceId}`)) return d.name;
    return undefined;
  }

  private leaveName(device: string, delayId: string): string {
    let name = this.leaveIds.get(delayId);
    if (!name) {
      const n = (this.counters.get(device) ?? 0) + 1;
      this.counters.set(device, n);
      name = `${device}#${n}`;
      this.leaveIds.set(delayId, name);
    }
    return name;
  }

  /**
   * Wraps a device's backend: every request is recorded and printed when it settles. With the test
   * homeserver at hand, heartbeats also print the deadline the server now holds.
   */
  traceBackend(
    device: string,
    hs: Pick<TestHomeserver, "pendingDelayedEvents"> | undefined,
    inner: MembershipBackend,
  ): MembershipBackend {
    const via = this.devices.get(device)?.via ?? "";
    const run = async <T>(
      op: RequestOp,
      opts: RequestOptions | undefined,
      call: () => Promise<T>,
      detail?: (value: T) => string,
    ): Promise<T> => {
      const start = Date.now();
      try {
        const value = await call();
        const end = Date.now();
        this.trace.requests.push({ device, op, start, end, ok: true });
        if (op !== "probe" && op !== "list")
          this.say(device, `${OP_WORDS[op]}${via} ok, ${end - start} ms${detail ? detail(value) : ""}`, end);
        return value;
      } catch (e) {
        const end = Date.now();
        const facts = httpFacts(e);
        const error = opts?.signal?.aborted
          ? `no answer in time (${end - start} ms)`
          : facts.status
            ? `${facts.status} ${facts.errcode ?? ""}`.trim()
            : facts.message.replace(/^(.+): \1$/, "$1").slice(0, 60);
        const hint =
          facts.status === 404 && (op === "restart" || op === "send" || op === "cancel")
            ? " (the server no longer holds this delayed leave)"
            : "";
        this.trace.requests.push({ device, op, start, end, ok: false, error });
        this.say(device, `✗ ${OP_WORDS[op]}${via} failed: ${error}${hint}`, end);
        throw e;
      }
    };
    const deadline = (delayId: string) => () => {
      const row = hs?.pendingDelayedEvents().find((d) => d.delayId === delayId);
      return row ? `; the server now fires this leave at ${this.at(row.sendTs).trim()}` : "";
    };
    const backend: MembershipBackend = {
      sendDelayedStateEvent: (req: StateEventRequest & { delayMs: number }, opts?: RequestOptions) =>
        run(
          "schedule",
          opts,
          () => inner.sendDelayedStateEvent(req, opts),
          (delayId) => {
            const row = hs?.pendingDelayedEvents().find((d) => d.delayId === delayId);
            return row
              ? ` (${row.delayMs} ms); the server fires it at ${this.at(row.sendTs).trim()} unless restarted`
              : "";
          },
        ),
      sendStateEvent: (req: StateEventRequest, opts?: RequestOptions) =>
        run(Object.keys(req.content).length ? "state" : "leave-state", opts, () =>
          inner.sendStateEvent(req, opts),
        ),
      updateDelayedEvent: (delayId: string, action: DelayedEventAction, opts?: RequestOptions) =>
        run(
          action,
          opts,
          () => inner.updateDelayedEvent(delayId, action, opts),
          action === "restart" ? deadline(delayId) : undefined,
        ),
    };
    if (inner.readStateEvent) {
      const read = inner.readStateEvent.bind(inner);
      backend.readStateEvent = (req, opts) =>
        run(
          "read",
          opts,
          () => read(req, opts),
          (content) =>
            content === undefined
              ? ": none"
              : Object.keys(content).length === 0
                ? ": empty, so our leave was sent"
                : ": still there",
        );
    }
    if (inner.listDelayedEvents) {
      const list = inner.listDelayedEvents.bind(inner);
      backend.listDelayedEvents = (opts) => run("list", opts, () => list(opts));
    }
    if (inner.probeSupport) {
      const probe = inner.probeSupport.bind(inner);
      backend.probeSupport = (opts) => run("probe", opts, () => probe(opts));
    }
    return backend;
  }

  /** Prints and records the manager's status changes and its probablyLeft. */
  watchManager(device: string, manager: MembershipManager): void {
    let last = "";
    this.trace.heartbeatMs ??= manager.effectiveTiming.heartbeatIntervalMs;
    const state = manager.state$.subscribe((s: MembershipState) => {
      const status = statusOf(s);
      const reason =
        s.kind === "reconnecting" || s.kind === "left"
          ? s.reason
          : s.kind === "failed"
            ? s.error.code
            : undefined;
      if (`${status} ${reason}` === last) return;
      last = `${status} ${reason}`;
      const t = Date.now();
      this.trace.statuses.push({ device, t, status, reason });
      if (s.kind !== "idle") this.say(device, `status ${status}${reason ? ` (${reason})` : ""}`, t);
    });
    const probablyLeft = manager.probablyLeft$.subscribe((p) => {
      if (!p) return;
      const t = Date.now();
      this.trace.probablyLeft.push({ device, t });
      this.say(
        device,
        "probablyLeft: no heartbeat got through for a whole delay; others probably see us gone",
        t,
      );
    });
    this.unsubscribe.push(
      () => state.unsubscribe(),
      () => probablyLeft.unsubscribe(),
    );
  }

  /**
   * Polls what a device's (or observer's) own synced client lists as call members ("@user:hs|DEVICE", as
   * the testing kit's `rtcMembers` gives them); prints each change.
   */
  watchView(device: string, members: () => string[]): void {
    let last = "";
    const poll = () => {
      const sees = members()
        .map((id) => {
          const [userId, deviceId] = id.split("|");
          return (
            [...this.devices.values()].find((d) => d.userId === userId && d.deviceId === deviceId)?.name ?? id
          );
        })
        .sort();
      const key = sees.join(",");
      if (key === last) return;
      last = key;
      const t = Date.now();
      this.trace.views.push({ device, t, sees });
      this.say(device, `sees in the call: ${sees.join(", ") || "nobody"}`, t);
    };
    poll();
    this.timers.push(setInterval(poll, this.pollMs));
  }

  /** Prints and records changes of a synced client's sync state (when its view of the call is stale). */
  watchSync(device: string, client: MatrixClient): void {
    const onSync = (state: string, prev: string | null) => {
      if (state === prev) return;
      const t = Date.now();
      this.trace.syncs.push({ device, t, state });
      const why =
        state === "ERROR" || state === "RECONNECTING"
          ? ": it lost the server; matrix-js-sdk tries again in 2-7 s, its view of the call is stale meanwhile"
          : state === "SYNCING" || state === "CATCHUP"
            ? ": up to date again"
            : "";
      this.say(device, `client sync ${state}${why}`, t);
    };
    client.on(ClientEvent.Sync, onSync);
    this.unsubscribe.push(() => client.off(ClientEvent.Sync, onSync));
  }

  /** Polls the server: its request log, its pending delayed events and the room's call memberships. */
  watchServer(hs: RecordableServer, roomId: string, label?: string): void {
    const server = this.trace.server;
    server.recorded = true;
    server.label = label;
    const open = new Map<string, Deadline>();
    let logged = hs.requests.length;
    let seenEvents = hs.timeline(roomId).length;
    const poll = () => {
      for (; logged < hs.requests.length; logged++) {
        const r = hs.requests[logged];
        const device = this.deviceOfUser(r.userId);
        if (device && r.route !== "sync" && r.route !== "versions")
          server.requests.push({ t: r.ts, device, route: r.route, status: r.status });
      }
      // Deadlines: a new delay id, or a new send_ts for a known one, is a new deadline.
      const pending = new Map(hs.pendingDelayedEvents().map((d) => [d.delayId, d]));
      const now = Date.now();
      for (const [delayId, row] of pending) {
        if (row.roomId !== roomId) continue;
        const device = this.deviceOfUser(row.userId);
        if (!device) continue;
        const current = open.get(delayId);
        if (current && current.sendTs === row.sendTs) continue;
        const setAt = row.sendTs - row.delayMs;
        if (current) {
          current.endAt = setAt;
          current.end = "restarted";
        }
        const d: Deadline = { device, leave: this.leaveName(device, delayId), setAt, sendTs: row.sendTs };
        server.deadlines.push(d);
        open.set(delayId, d);
      }
      // Memberships from the timeline (a fired leave carries the deadline as its origin_server_ts).
      const events = hs.timeline(roomId);
      for (; seenEvents < events.length; seenEvents++) {
        const e = events[seenEvents];
        if (e.type !== CALL_MEMBER_EVENT_TYPE || e.state_key === undefined) continue;
        const device = this.deviceOfStateKey(e.state_key);
        if (!device) continue;
        const joined = Object.keys(e.content).length > 0;
        const delayId = e.unsigned[DELAY_ID_KEY] as string | undefined;
        const d = delayId ? open.get(delayId) : undefined;
        let cause: MembershipChange["cause"] = "device";
        if (delayId) cause = d && d.sendTs === e.origin_server_ts ? "fired" : "sent";
        if (d) {
          d.endAt = e.origin_server_ts;
          d.end = cause === "fired" ? "fired" : "sent";
          open.delete(delayId!);
        }
        const leave = delayId ? this.leaveName(device, delayId) : undefined;
        server.memberships.push({ device, t: e.origin_server_ts, joined, cause, leave });
        const what = joined
          ? `${device}'s membership is in room state: ${device} is in the call`
          : cause === "fired"
            ? `FIRED ${device}'s delayed leave: no heartbeat came for ${this.trace.delayMs} ms, so ${device} is out of the call`
            : cause === "sent"
              ? `sent ${device}'s delayed leave on ${device}'s request: ${device} left the call`
              : `${device}'s membership was emptied: ${device} left the call`;
        this.say("server", what, e.origin_server_ts);
      }
      // Delay ids gone without an event: cancelled (or withdrawn).
      for (const [delayId, d] of open) {
        if (pending.has(delayId)) continue;
        d.endAt = now;
        d.end = "cancelled";
        open.delete(delayId);
      }
    };
    poll();
    this.timers.push(setInterval(poll, this.pollMs));
    this.stopServer = poll;
  }

  private stopServer?: () => void;

  /** `device`'s network was cut at `from`. */
  outage(device: string, from: number): void {
    this.trace.outages.push({ device, from });
  }

  /** `device`'s network came back at `to`. */
  outageEnds(device: string, to: number): void {
    const o = this.trace.outages.find((x) => x.device === device && x.to === undefined);
    if (o) o.to = to;
  }

  /** Stops polling (after one last look at the server). */
  stop(): void {
    if (this.stopped) return;
    this.stopServer?.();
    for (const t of this.timers.splice(0)) clearInterval(t);
    for (const u of this.unsubscribe.splice(0)) u();
    this.trace.tEnd = Date.now();
    this.stopped = true;
    clearInterval(this.flushTimer);
    this.flush(Infinity);
  }

  /** The trace so far (up to now, after one more look at the server), without stopping. */
  snapshot(): CallTrace {
    if (this.stopped) return this.trace;
    this.stopServer?.();
    return { ...this.trace, tEnd: Date.now() };
  }
}
