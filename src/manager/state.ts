import type { MembershipError } from "../errors.js";

/** Why we are not (or no longer) cleanly joined. */
export type ReconnectReason =
  /** Heartbeats are failing; `probablyLeft` says whether the server has likely fired our leave. */
  | "heartbeat-failing"
  /** The server no longer holds our delayed leave (404/409 on restart) though it should not have fired yet. */
  | "delayed-leave-lost"
  /** The server fired our delayed leave; we are joining again (autoRejoin). */
  | "delayed-leave-fired"
  /** Our membership was removed or overwritten by someone else; we are joining again (autoRejoin). */
  | "membership-removed"
  /** No membership write got through before our membership's `expires`: others no longer list us. */
  | "membership-expired"
  /**
   * The link's round trip does not fit the delay, even with the local timeout at the most the delay
   * allows: requests keep timing out. Use a longer `delayedLeaveDelayMs` on such links.
   */
  | "link-too-slow"
  /**
   * The page went away (pagehide, freeze) and we fired our delayed leave: others see us gone. We join
   * again when the page is shown (a back/forward cache restore, a resume).
   */
  | "page-hidden";

/**
 * Why the manager is `left`: "user" when the app called `leave()`; "delayed-leave-fired",
 * "membership-removed" and "page-hidden" when that happened with `autoRejoin: false`, so the manager
 * stays out; "removed-from-room" when we were kicked, banned or left the room (the call ends, whatever
 * autoRejoin).
 */
export type LeftReason =
  | "user"
  | "delayed-leave-fired"
  | "membership-removed"
  /** We are no longer in the room: a kick, our own leave of the room (from elsewhere), or a ban. */
  | "removed-from-room"
  /** The page went away (pagehide, freeze) with `autoRejoin: false`: we fired our delayed leave. */
  | "page-hidden";

/** The manager's whole state as a tagged union; `state$` replays the current one. */
export type MembershipState =
  | {
      /** Constructed, `join()` not called yet. */
      kind: "idle";
    }
  | {
      /** `join()` is under way; others do not list us yet. */
      kind: "joining";
      /** What is being sent: the delayed leave first, then the membership itself. */
      step: "delayed-leave" | "membership";
    }
  | {
      /** Our membership is on the server and kept alive. */
      kind: "joined";
      /** false in degraded mode (no delayed events): only `expires` protects against a crash. */
      delayedLeave: boolean;
      /**
       * Present (false) only when nothing watches our membership: no room view shows our key and the
       * backend cannot read it back (a widget host that refused every read capability). Then another
       * writer (another tab of this device, a moderator) could remove it unseen: the manager vouches
       * for its delayed leave and its own writes, not for what others list.
       */
      membershipWatched?: false;
    }
  | {
      /** Still trying to be in the call, but something went wrong; retries go on. */
      kind: "reconnecting";
      /** What went wrong. */
      reason: ReconnectReason;
      /** True when the server has probably removed us, so others no longer list us (see `probablyLeft$`). */
      probablyLeft: boolean;
    }
  | {
      /** `leave()` is under way. */
      kind: "leaving";
    }
  | {
      /** Out of the call, with no requests pending; `join()` may be called again. */
      kind: "left";
      /** Why we left. */
      reason: LeftReason;
    }
  | {
      /** Gave up (a refusal we do not retry, or failing for `giveUpAfterMs`); the app decides what next. */
      kind: "failed";
      /** Why; it was also emitted on `errors$`. */
      error: MembershipError;
    };

/** Same kind and same fields (compared by identity: states are flat). */
export function sameState(a: MembershipState, b: MembershipState): boolean {
  if (a === b) return true;
  if (a.kind !== b.kind) return false;
  const x = a as unknown as Record<string, unknown>;
  const y = b as unknown as Record<string, unknown>;
  const keys = Object.keys(x);
  return keys.length === Object.keys(y).length && keys.every((k) => x[k] === y[k]);
}

/**
 * The coarse view of MembershipState for a call UI: idle, left and failed are "disconnected", joining is
 * "connecting", joined "connected", leaving "disconnecting". `status$` emits it.
 */
export type Status = "disconnected" | "connecting" | "connected" | "reconnecting" | "disconnecting";

/** The Status of a state (pure); what `status` and `status$` report. */
export function statusOf(state: MembershipState): Status {
  switch (state.kind) {
    case "idle":
    case "left":
    case "failed":
      return "disconnected";
    case "joining":
      return "connecting";
    case "joined":
      return "connected";
    case "reconnecting":
      return "reconnecting";
    case "leaving":
      return "disconnecting";
  }
}

/** How `leave()` went out. */
export type LeaveResult =
  | {
      /** The server confirmed we are out. */
      status: "left";
      /**
       * delayed-event-sent: the server fired our delayed leave on request (one request);
       * state-written: the delayed leave was gone, so `{}` was written directly;
       * delayed-event-cancelled: no membership had been sent yet, the delayed leave was cancelled;
       * nothing-to-leave: nothing had reached the server.
       */
      via: "delayed-event-sent" | "state-written" | "delayed-event-cancelled" | "nothing-to-leave";
    }
  /** Not confirmed within `timeoutMs`; retries go on until the server confirms or `dispose()`. */
  | {
      /** Not confirmed within `timeoutMs`. */
      status: "timed-out";
    }
  /** `dispose()` was called before the leave was confirmed. */
  | {
      /** Disposed before confirmation. */
      status: "disposed";
    }
  /**
   * The server refused the leave (e.g. 403: we are no longer in the room, so we cannot write `{}`).
   * `error` says why; it was also on `errors$`, and the state is `failed`.
   */
  | {
      /** Refused by the server. */
      status: "failed";
      /** The refusal. */
      error: MembershipError;
    };

/** What we know of the server's support for delayed events; `support$` replays it. */
export interface Support {
  /** undefined until the first answer. */
  delayedEvents: boolean | undefined;
  /** The delay in use (lowered when the server's maximum is smaller than the configured one). */
  delayMs: number;
  /** The server's maximum delay, when known. */
  maxDelayMs?: number;
  /** Why delayed events are off, when they are. */
  reason?: string;
  /** The membership format in use ("sticky" falls back to "state" only where the app allowed it). */
  membershipFormat?: "state" | "sticky";
  /**
   * With delegation on (MSC4195, the `delegation` option): who holds the delayed leave. "self": this
   * device's restarts keep it alive (the normal delay); "delegated": the SFU's token service restarts
   * it while the SFU has us and sends it when the SFU loses us, and we restart it every 5 min with the
   * long delay. Absent with delegation off.
   */
  delayedLeaveHolder?: "self" | "delegated";
  /**
   * With delegation on: what the last delegation request came to. "unknown": none answered yet;
   * "confirmed": the service took it; "refused": a 400 (this call does not delegate again);
   * "unsupported": a 404 (this manager does not delegate again); "unanswered": no answer, an error or a
   * 5xx (tried again later, with a growing wait).
   */
  delegation?: "unknown" | "confirmed" | "refused" | "unsupported" | "unanswered";
}
