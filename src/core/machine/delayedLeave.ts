/**
 * The delayed-leave lane of a call, as a whole: its states are in types.ts (`DelayedLane`); scheduling is
 * in schedule.ts, the heartbeat in heartbeat.ts, recovery in recovery.ts. This module says when the lane
 * wants to be woken and what its wake does. See README "How it works".
 */
import type { Ctx } from "./context.js";
import type { CallState } from "./types.js";
import { rearm, onScheduleWake } from "./schedule.js";
import { enterBeat, beat } from "./heartbeat.js";
import { afterRecoverPause } from "./recovery.js";

/** When the lane wants to be woken (undefined: it waits for an answer, or nothing). */
export function laneWakeAt(call: CallState): number | undefined {
  const lane = call.lane;
  switch (lane.k) {
    case "schedule":
    case "beat":
    case "refused":
    case "pending-pause":
    case "recover-pause":
      return lane.wakeAt;
    case "degraded":
      return lane.rearmAt;
    default:
      return undefined;
  }
}

/** The lane's time has come. */
export function onLaneWake(c: Ctx, call: CallState): void {
  const lane = call.lane;
  switch (lane.k) {
    case "schedule":
      return onScheduleWake(c, call);
    case "beat":
      return beat(c, call);
    case "refused":
    case "pending-pause":
      return enterBeat(c, call, lane.k === "refused" ? lane.refusals : 0);
    case "recover-pause":
      if (call.ended) {
        call.lane = { k: "stopped" };
        return;
      }
      return afterRecoverPause(c, call, lane.replaced, lane.fired);
    case "degraded":
      call.lane = { k: "degraded" };
      return rearm(c, call);
    default:
      return;
  }
}
