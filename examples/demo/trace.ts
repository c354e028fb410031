/**
 * What the demo records while it runs, for its printed lines, its timeline picture and its test: each
 * device's requests as the device saw them, its status and its view of the call, and the server's side
 * (requests as they arrived, each delayed leave's deadline, membership changes in room state).
 * Times are `Date.now()` values; the test homeserver runs on the same clock.
 */
import { ClientEvent, type MatrixClient } from "matrix-js-sdk";
import {
  CALL_MEMBER_EVENT_TYPE,
  httpFacts,
  statusOf,
  type DelayedEventAction,
  type MembershipBackend,
  type MembershipManager,
  type MembershipState,
  type RequestOptions,
  type StateEventRequest,
  type Status,
} from "../../src/index.js";
import { rtcMembers, type TestHomeserver } from "../../src/testing/index.js";

export type RequestOp = "schedule" | "state" | "leave-state" | DelayedEventAction | "read" | "list" | "probe";

/** One backend request as the device's manager made it. */
export interface DeviceRequest {
  device: string;
  op: RequestOp;
  start: number;
  end: number;
  ok: boolean;
  /** Why it failed, in a few words. */
  error?: string;
}

export interface StatusChange {
  device: string;
  t: number;
  status: Status;
  /** For `reconnecting` and `disconnected`: why. */
  reason?: string;
}

/** Who a device's own synced client lists as call members (device names). */
export interface ViewChange {
  device: string;
  t: number;
  sees: string[];
}

/** One request that reached the server, from the homeserver's own log. */
export interface ServerRequest {
  t: number;
  device: string;
  route: string;
  status: number;
}

/** One deadline of a delayed leave, as the server held it: set at `setAt`, due at `sendTs`. */
export interface Deadline {
  device: string;
  /** "alice#1": the n-th delayed leave of that device (delay ids are bearer capabilities; not kept). */
  leave: string;
  setAt: number;
  sendTs: number;
  /** When the server stopped holding this deadline (a restart replaced it, or the event went out). */
  endAt?: number;
  end?: "restarted" | "fired" | "sent" | "cancelled";
}

/** A change of a device's membership in room state, from the server's timeline. */
export interface MembershipChange {
  device: string;
  /** The event's origin_server_ts. */
  t: number;
  joined: boolean;
  /** `device`: a state event the device sent; `fired`: the server's timer sent the delayed leave; `sent`: the device asked the server to send it now. */
  cause: "device" | "fired" | "sent";
  leave?: string;
}

/** A device's matrix-js-sdk sync state (SYNCING, ERROR, RECONNECTING, CATCHUP...). */
export interface SyncChange {
  device: string;
  t: number;
  state: string;
}

export interface Outage {
  device: string;
  from: number;
  to?: number;
}

export interface Milestone {
  t: number;
  device: string;
  what: string;
}

export interface DeviceInfo {
  name: string;
  mode: string;
  userId: string;
  deviceId: string;
}

export interface DemoTrace {
  t0: number;
  tEnd: number;
  delayMs: number;
  devices: DeviceInfo[];
  requests: DeviceRequest[];
  statuses: StatusChange[];
  probablyLeft: { device: string; t: number }[];
  views: ViewChange[];
  syncs: SyncChange[];
  server: { requests: ServerRequest[]; deadlines: Deadline[]; memberships: MembershipChange[] };
  outages: Outage[];
  milestones: Milestone[];
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

/** Records a run and prints one line per event as it happens (within PRINT_HOLD_MS). */
export class DemoRecorder {
  readonly trace: DemoTrace;
  private readonly devices = new Map<string, DeviceInfo & { via: string }>();
  private readonly timers: ReturnType<typeof setInterval>[] = [];
  private readonly leaveIds = new Map<string, string>();
  private readonly counters = new Map<string, number>();

  constructor(
    private readonly print: (line: string) => void,
    delayMs: number,
  ) {
    const t0 = Date.now();
    this.trace = {
      t0,
      tEnd: t0,
      delayMs,
      devices: [],
      requests: [],
      statuses: [],
      probablyLeft: [],
      views: [],
      syncs: [],
      server: { requests: [], deadlines: [], memberships: [] },
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

  addDevice(info: DeviceInfo, via: string): void {
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
  traceBackend(device: string, hs: TestHomeserver | undefined, inner: MembershipBackend): MembershipBackend {
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
    manager.state$.subscribe((s: MembershipState) => {
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
    manager.probablyLeft$.subscribe((p) => {
      if (!p) return;
      const t = Date.now();
      this.trace.probablyLeft.push({ device, t });
      this.say(
        device,
        "probablyLeft: no heartbeat got through for a whole delay; others probably see us gone",
        t,
      );
    });
  }

  /** Polls a device's synced client for the call members it lists; prints each change. */
  watchView(device: string, client: MatrixClient, roomId: string): void {
    let last = "";
    const poll = () => {
      const sees = rtcMembers(client, roomId)
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
    this.timers.push(setInterval(poll, 10));
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

  private readonly unsubscribe: (() => void)[] = [];

  /** Polls the server: its request log, its pending delayed events and the room's call memberships. */
  watchServer(hs: TestHomeserver, roomId: string): void {
    const server = this.trace.server;
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
    this.timers.push(setInterval(poll, 10));
    this.stopServer = poll;
  }

  private stopServer?: () => void;

  outage(device: string, from: number): void {
    this.trace.outages.push({ device, from });
  }

  outageEnds(device: string, to: number): void {
    const o = this.trace.outages.find((x) => x.device === device && x.to === undefined);
    if (o) o.to = to;
  }

  /** Stops polling (after one last look at the server). */
  stop(): void {
    this.stopServer?.();
    for (const t of this.timers.splice(0)) clearInterval(t);
    for (const u of this.unsubscribe.splice(0)) u();
    this.trace.tEnd = Date.now();
    this.stopped = true;
    clearInterval(this.flushTimer);
    this.flush(Infinity);
  }
}
