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
  device: string;
  op: RequestOp;
  start: number;
  end: number;
  ok: boolean;
  /** Why it failed, in a few words. */
  error?: string;
}

/** A device's status (from its manager) changed. */
export interface StatusChange {
  device: string;
  t: number;
  status: Status;
  /** For `reconnecting` and `disconnected`: why. */
  reason?: string;
}

/** Who a device's (or an observer's) own synced client lists as call members (device names). */
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

/** A client's matrix-js-sdk sync state (SYNCING, ERROR, RECONNECTING, CATCHUP...). */
export interface SyncChange {
  device: string;
  t: number;
  state: string;
}

/** A device's network was cut from `from` to `to` (still cut at the end when absent). */
export interface Outage {
  device: string;
  from: number;
  to?: number;
}

/** One printed line of the run's story. */
export interface Milestone {
  t: number;
  device: string;
  what: string;
}

/** A lane of the picture: a device in the call (a manager) or an observer (a client watching it). */
export interface DeviceInfo {
  name: string;
  /** A few words on how it runs ("standalone: ClientBackend, behind a faulty link"). */
  mode: string;
  userId: string;
  deviceId: string;
  /** Default `device`. Observers get a lane with only what their client lists. */
  kind?: "device" | "observer";
}

/** Everything a recorder kept of one run. */
export interface CallTrace {
  t0: number;
  tEnd: number;
  delayMs: number;
  /** The heartbeat interval in use, when known (default delay / 2). */
  heartbeatMs?: number;
  devices: DeviceInfo[];
  requests: DeviceRequest[];
  statuses: StatusChange[];
  probablyLeft: { device: string; t: number }[];
  views: ViewChange[];
  syncs: SyncChange[];
  /** What the server's own records said; `recorded: false` when the server could not be watched (Synapse). */
  server: {
    recorded?: boolean;
    label?: string;
    requests: ServerRequest[];
    deadlines: Deadline[];
    memberships: MembershipChange[];
  };
  outages: Outage[];
  milestones: Milestone[];
}
