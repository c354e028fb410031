/**
 * What a call recorder (recorder.ts) keeps of a run and the timeline picture (render.ts) draws: each
 * device's requests as its manager saw them, its status and its view of the call, and the server's own
 * records (requests as they arrived, each delayed leave's deadline, membership changes in room state).
 * Times are `Date.now()` values (the test homeserver runs on the same clock).
 */
import type { DelayedEventAction } from "../../backends/types.js";
import type { Status } from "../../manager/state.js";

/** What a device's manager asked its backend for. */
export type RequestOp = "schedule" | "state" | "leave-state" | DelayedEventAction | "read" | "list" | "probe";

/** One backend request as the device's manager made it. */
export interface DeviceRequest {
  /** The lane (device name). */
  device: string;
  /** What was asked. */
  op: RequestOp;
  /** When the manager sent it. */
  start: number;
  /** When it settled (answer, error or our local timeout). */
  end: number;
  /** True when it succeeded. */
  ok: boolean;
  /** Why it failed, in a few words. */
  error?: string;
}

/** A device's status (from its manager) changed. */
export interface StatusChange {
  /** The lane (device name). */
  device: string;
  /** When. */
  t: number;
  /** The manager's new status. */
  status: Status;
  /** For `reconnecting` and `disconnected`: why. */
  reason?: string;
}

/** Who a device's (or an observer's) own synced client lists as call members (device names). */
export interface ViewChange {
  /** The lane (device or observer name). */
  device: string;
  /** When. */
  t: number;
  /** The lanes (or raw "@user|DEVICE" ids) its client now lists, sorted. */
  sees: string[];
}

/** One request that reached the server, from the homeserver's own log. */
export interface ServerRequest {
  /** When it arrived. */
  t: number;
  /** Whose it was (by its access token's user). */
  device: string;
  /** The test homeserver's route id ("delayed.restart", "state.put"…). */
  route: string;
  /** The status the server answered. */
  status: number;
}

/** One deadline of a delayed leave, as the server held it: set at `setAt`, due at `sendTs`. */
export interface Deadline {
  /** Whose delayed leave. */
  device: string;
  /** "alice#1": the n-th delayed leave of that device (delay ids are bearer capabilities; not kept). */
  leave: string;
  /** When the server set this deadline (scheduled, or restarted). */
  setAt: number;
  /** When the server would send the leave. */
  sendTs: number;
  /** When the server stopped holding this deadline (a restart replaced it, or the event went out). */
  endAt?: number;
  /** How the deadline ended. */
  end?: "restarted" | "fired" | "sent" | "cancelled";
}

/** A change of a device's membership in room state, from the server's timeline. */
export interface MembershipChange {
  /** Whose membership. */
  device: string;
  /** The event's origin_server_ts. */
  t: number;
  /** True for a membership, false for a leave (`{}`). */
  joined: boolean;
  /** `device`: a state event the device sent; `fired`: the server's timer sent the delayed leave; `sent`: the device asked the server to send it now. */
  cause: "device" | "fired" | "sent";
  /** The delayed leave that sent it ("alice#1"), for `fired` and `sent`. */
  leave?: string;
}

/** A client's matrix-js-sdk sync state (SYNCING, ERROR, RECONNECTING, CATCHUP...). */
export interface SyncChange {
  /** The lane. */
  device: string;
  /** When. */
  t: number;
  /** matrix-js-sdk's new sync state. */
  state: string;
}

/** A device's network was cut from `from` to `to` (still cut at the end when absent). */
export interface Outage {
  /** Whose network. */
  device: string;
  /** When the cut began. */
  from: number;
  /** When the network came back. */
  to?: number;
}

/** One printed line of the run's story. */
export interface Milestone {
  /** When it happened. */
  t: number;
  /** Who it is about ("alice", "server", "network"…). */
  device: string;
  /** The line's text. */
  what: string;
}

/** A manager raised probablyLeft (no heartbeat got through for a whole delay). */
export interface ProbablyLeftMark {
  /** Whose manager. */
  device: string;
  /** When. */
  t: number;
}

/** A lane of the picture: a device in the call (a manager) or an observer (a client watching it). */
export interface DeviceInfo {
  /** The lane's name. */
  name: string;
  /** A few words on how it runs ("standalone: ClientBackend, behind a faulty link"). */
  mode: string;
  /** Its user. */
  userId: string;
  /** Its device. */
  deviceId: string;
  /** Default `device`. Observers get a lane with only what their client lists. */
  kind?: "device" | "observer";
}

/** Everything a recorder kept of one run. */
export interface CallTrace {
  /** When the recording started (the picture's 0 s). */
  t0: number;
  /** When it ended (or the snapshot was taken): where the picture's axis ends. */
  tEnd: number;
  /** The delayed leave's delay. */
  delayMs: number;
  /** The heartbeat interval in use, when known (default delay / 2). */
  heartbeatMs?: number;
  /** The lanes, in order. */
  devices: DeviceInfo[];
  /** Every request each device's manager made. */
  requests: DeviceRequest[];
  /** Every status change. */
  statuses: StatusChange[];
  /** When each device's manager raised probablyLeft. */
  probablyLeft: ProbablyLeftMark[];
  /** What each watching client listed, as it changed. */
  views: ViewChange[];
  /** Each watching client's sync state, as it changed. */
  syncs: SyncChange[];
  /** What the server's own records said; `recorded: false` when the server could not be watched (Synapse). */
  server: {
    /** False when no server records were read. */
    recorded?: boolean;
    /** What the server was ("test homeserver"). */
    label?: string;
    /** Requests as they arrived. */
    requests: ServerRequest[];
    /** Each delayed leave's deadlines. */
    deadlines: Deadline[];
    /** Membership changes in room state. */
    memberships: MembershipChange[];
  };
  /** Network cuts. */
  outages: Outage[];
  /** Every printed line. */
  milestones: Milestone[];
}
