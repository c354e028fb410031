/**
 * One step's context: the state being stepped, the manager's fixed environment, the time, the source of
 * jitter, and the commands produced so far. Every module of the machine takes it; none reads a clock or
 * does I/O.
 */
import { MembershipError, type ErrorClass, type MembershipErrorCode, type Operation } from "../../errors.js";
import type { MembershipContent } from "../../membership/content.js";
import { delayedLaneCapMs } from "../policy.js";
import { sameState, type MembershipState, type Support } from "../../manager/state.js";
import type { CallState, Command, MachineEnv, MachineState, Outcome, Task } from "./types.js";

export interface Ctx {
  readonly s: MachineState;
  readonly env: MachineEnv;
  /** Elapsed time: every deadline of the machine is on this clock (it never steps). */
  readonly now: number;
  /**
   * The device's wall clock now: only ever compared with the server's clock (to say when they disagree),
   * never written into an event or used for a deadline.
   */
  readonly wallNow: number;
  readonly random: () => number;
  readonly out: Command[];
  /** Tasks that ended in this step, for step.ts to hand to their owners. */
  readonly done: { task: Task; outcome: Outcome }[];
}

export function setState(c: Ctx, state: MembershipState): void {
  if (c.s.disposed || sameState(c.s.out.state, state)) return;
  c.s.out.state = state;
  c.out.push({ type: "state", state });
}

export function setProbablyLeft(c: Ctx, value: boolean): void {
  if (c.s.disposed || c.s.out.probablyLeft === value) return;
  c.s.out.probablyLeft = value;
  c.out.push({ type: "probably-left", value });
}

export function setDelayId(c: Ctx, value: string | undefined): void {
  if (c.s.disposed) return;
  c.out.push({ type: "delay-id", value });
}

export function setOwnMembership(c: Ctx, value: MembershipContent | undefined): void {
  if (c.s.disposed) return;
  c.out.push({ type: "own-membership", value });
}

export function updateSupport(c: Ctx, patch: Partial<Support>): void {
  if (c.s.disposed) return;
  const value = { ...c.s.out.support, ...patch };
  c.s.out.support = value;
  c.out.push({ type: "support", value });
}

export function emitError(c: Ctx, error: MembershipError): void {
  if (!c.s.disposed) c.out.push({ type: "error", error });
}

export function log(
  c: Ctx,
  level: "debug" | "info" | "warn" | "error",
  message: string,
  detail?: unknown,
): void {
  c.out.push(
    detail === undefined ? { type: "log", level, message } : { type: "log", level, message, detail },
  );
}

/** The typed error for a classified failure of `op`. */
export function toError(cls: ErrorClass, cause: unknown, op: Operation): MembershipError {
  const code: MembershipErrorCode =
    cls.kind === "gone"
      ? "delayed-leave-lost"
      : cls.kind === "max-delay"
        ? "max-delay-lowered"
        : cls.kind === "unsupported"
          ? "delayed-events-unsupported"
          : cls.kind === "sticky-unsupported"
            ? "sticky-events-unsupported"
            : cls.kind === "unencryptable"
              ? "encryption-unavailable"
              : cls.kind;
  const message = cause instanceof Error ? cause.message : String(cause);
  return new MembershipError(`${op}: ${message}`, code, op, cls, { cause });
}

/** The call a task or a request belongs to, if it is still one the machine tracks. */
export function callById(c: Ctx, id: number | undefined): CallState | undefined {
  if (id === undefined) return undefined;
  if (c.s.call?.id === id) return c.s.call;
  if (c.s.leaveCall?.id === id) return c.s.leaveCall;
  return undefined;
}

/** The local timeout of one delayed-event request: adapted to the link's round trip (linkTiming). */
export function delayedTimeoutMs(s: MachineState): number {
  return s.link?.timeoutMs ?? s.timing.requestTimeoutMs;
}

/** The backoff ceiling of the delayed-leave lane (core/policy.ts). */
export function rejoinRetryCapMs(s: MachineState): number {
  return delayedLaneCapMs(s.timing);
}

export function nextId(s: MachineState): number {
  return s.nextId++;
}

/** The server's clock now, when learned (from a timestamp the server gave us). */
export function serverNow(c: Ctx): number | undefined {
  return c.s.serverOffsetMs === undefined ? undefined : c.now + c.s.serverOffsetMs;
}
