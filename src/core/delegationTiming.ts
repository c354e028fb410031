/**
 * The delegated delayed leave's timing (MSC4195, core/machine/delegation.ts), resolved from the
 * manager's options: undefined when the manager does not delegate.
 */
import { MembershipConfigError } from "../errors.js";
import { MAX_TIMER_MS } from "./limits.js";
import type { DelegationTiming } from "./machine/types.js";

/** MSC4195: a delegated delayed leave's delay is at least 1 h (services refuse shorter ones). */
export const DELEGATED_DELAY_MS = 3_600_000;
/** Element Call's restart interval of a delegated leave: 12 restarts per device-hour. */
export const DELEGATED_HEARTBEAT_INTERVAL_MS = 300_000;
/** Delegate again every third delegated restart (15 min): how we learn the service still answers. */
export const DELEGATION_CHECK_EVERY = 3;

export interface DelegationOptions {
  delegation?: "auto" | "off";
  sfuUrl?: string;
  delegatedDelayMs?: number;
  delegatedHeartbeatIntervalMs?: number;
}

export function delegationTiming(
  options: DelegationOptions,
  backendCan: boolean,
): DelegationTiming | undefined {
  const mode = options.delegation ?? "auto";
  if (mode !== "auto" && mode !== "off")
    throw new MembershipConfigError(`delegation must be "auto" or "off", not ${String(mode)}`);
  if (options.sfuUrl !== undefined && (typeof options.sfuUrl !== "string" || options.sfuUrl === ""))
    throw new MembershipConfigError("sfuUrl must be a non-empty string");
  const delayMs = options.delegatedDelayMs ?? DELEGATED_DELAY_MS;
  const heartbeatIntervalMs = options.delegatedHeartbeatIntervalMs ?? DELEGATED_HEARTBEAT_INTERVAL_MS;
  for (const [name, v] of [
    ["delegatedDelayMs", delayMs],
    ["delegatedHeartbeatIntervalMs", heartbeatIntervalMs],
  ] as const)
    if (!Number.isFinite(v) || v < 100 || v > MAX_TIMER_MS)
      throw new MembershipConfigError(`${name} must be a number of ms from 100 to ${MAX_TIMER_MS}`);
  if (heartbeatIntervalMs * 2 > delayMs)
    throw new MembershipConfigError("delegatedHeartbeatIntervalMs must be at most half of delegatedDelayMs");
  if (mode === "off" || !options.sfuUrl || !backendCan) return undefined;
  return {
    delayMs,
    heartbeatIntervalMs,
    checkEvery: DELEGATION_CHECK_EVERY,
    // After no answer: again in one delegated heartbeat, doubling up to the delay.
    retryMs: heartbeatIntervalMs,
    maxRetryMs: delayMs,
  };
}
