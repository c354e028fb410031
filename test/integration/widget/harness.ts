/**
 * Shared set-up for the widget integration tests: a test homeserver, a host-side
 * DelayedEventWidgetDriver on a real MatrixClient, a widget-side MembershipManager on a WidgetBackend,
 * both widget API ends on one in-process bus, and recorders for what reaches the manager.
 */
import log from "loglevel";
import type { MatrixClient } from "matrix-js-sdk";
import type { Capability } from "matrix-widget-api";
import {
  CALL_MEMBER_EVENT_TYPE,
  MembershipManager,
  WidgetBackend,
  widgetCapabilities,
  type DelayedEventAction,
  type DelegateDelayedLeaveRequest,
  type MembershipBackend,
  type MembershipError,
  type MembershipManagerOptions,
  type MembershipState,
  type RequestOptions,
  type StateEventRequest,
  type Support,
  type SupportHint,
  type WidgetBackendOptions,
} from "../../../src/index.js";
import {
  startTestHomeserver,
  type TestHomeserver,
  type TestHomeserverOptions,
} from "../../../src/testing/index.js";
import {
  DelayedEventWidgetDriver,
  type DelayedEventWidgetDriverOptions,
} from "../../../src/widget-host/index.js";
import { bareClient, type UserCreds } from "../../helpers/matrix.js";
import { connectWidget, type WidgetPair } from "../../helpers/widgetBus.js";

const quiet = log.getLogger("widget-test-quiet");
quiet.setLevel("silent");

export const NO_LIMITS: TestHomeserverOptions = { rateLimits: { message: null, delayedEventMgmt: null } };

/** One failed backend request as the widget saw it. */
export interface FailedRequest {
  op: "schedule" | "state" | DelayedEventAction;
  error: unknown;
}

/** Passes every call through and records the errors, exactly as they reached the manager. */
export class RecordingBackend implements MembershipBackend {
  readonly failures: FailedRequest[] = [];
  constructor(readonly inner: WidgetBackend) {}

  private async record<T>(op: FailedRequest["op"], p: () => Promise<T>): Promise<T> {
    try {
      return await p();
    } catch (error) {
      this.failures.push({ op, error });
      throw error;
    }
  }
  sendDelayedStateEvent(
    req: StateEventRequest & { delayMs: number },
    opts?: RequestOptions,
  ): Promise<string> {
    return this.record("schedule", () => this.inner.sendDelayedStateEvent(req, opts));
  }
  sendStateEvent(req: StateEventRequest, opts?: RequestOptions): Promise<void> {
    return this.record("state", () => this.inner.sendStateEvent(req, opts));
  }
  updateDelayedEvent(delayId: string, action: DelayedEventAction, opts?: RequestOptions): Promise<void> {
    return this.record(action, () => this.inner.updateDelayedEvent(delayId, action, opts));
  }
  probeSupport(): Promise<SupportHint> {
    return this.inner.probeSupport();
  }
  delegateDelayedLeave(req: DelegateDelayedLeaveRequest, opts?: RequestOptions): Promise<void> {
    return this.inner.delegateDelayedLeave(req, opts);
  }
  readState(req: Omit<StateEventRequest, "content">, opts?: RequestOptions) {
    return this.inner.readState(req, opts);
  }
  watchRoom(roomId: string) {
    return this.inner.watchRoom(roomId);
  }
}

export interface WidgetCall {
  manager: MembershipManager;
  backend: RecordingBackend;
  pair: WidgetPair;
  driver: DelayedEventWidgetDriver;
  hostClient: MatrixClient;
  states: MembershipState[];
  errors: MembershipError[];
  support: Support[];
  /** Membership content on the server (undefined: never written). */
  membership(): Record<string, unknown> | undefined;
  /** Our pending delayed events on the server. */
  pending(): ReturnType<TestHomeserver["pendingDelayedEvents"]>;
  joinedOnServer(): boolean;
}

export interface WidgetWorld {
  hs: TestHomeserver;
  alice: UserCreds;
  roomId: string;
  /** Connect a widget for alice and build a manager on it (not joined yet). */
  call(options?: CallOptions): Promise<WidgetCall>;
  /** Disposes managers, closes widget pairs, stops clients, closes the homeserver. */
  close(): Promise<void>;
}

export interface CallOptions {
  manager?: Partial<MembershipManagerOptions>;
  driver?: Partial<DelayedEventWidgetDriverOptions>;
  capabilities?: Capability[];
  transportTimeoutMs?: number;
  plainClientApi?: boolean;
  /** Extra WidgetBackend options (e.g. `sendRoomId`). */
  backend?: Partial<WidgetBackendOptions>;
}

export async function startWidgetWorld(options: TestHomeserverOptions = {}): Promise<WidgetWorld> {
  const hs = await startTestHomeserver({ ...NO_LIMITS, ...options });
  const alice = await hs.createUser("alice");
  const roomId = await hs.createRoom(alice.accessToken);
  const cleanups: (() => void)[] = [];

  async function call(opts: CallOptions = {}): Promise<WidgetCall> {
    const hostClient = bareClient(hs.baseUrl, alice);
    const key = { userId: alice.userId, deviceId: alice.deviceId };
    const capabilities = opts.capabilities ?? widgetCapabilities(key);
    // The host approves exactly what the widget asks for, unless a test sets its own policy.
    const driver = new DelayedEventWidgetDriver(hostClient, {
      roomId,
      validateCapabilities: capabilities,
      ...opts.driver,
    });
    const pair = await connectWidget({
      driver,
      capabilities,
      creatorUserId: alice.userId,
      plainClientApi: opts.plainClientApi,
    });
    const backend = new RecordingBackend(
      new WidgetBackend(pair.widgetApi, {
        membership: key,
        transportTimeoutMs: opts.transportTimeoutMs,
        ...opts.backend,
      }),
    );
    const manager = new MembershipManager({
      backend,
      roomId,
      userId: alice.userId,
      deviceId: alice.deviceId,
      delayedLeaveDelayMs: 1000,
      logger: quiet,
      fociPreferred: [{ type: "livekit", livekit_service_url: "https://lk.example" }],
      ...opts.manager,
    });
    const states: MembershipState[] = [];
    const errors: MembershipError[] = [];
    const support: Support[] = [];
    manager.state$.subscribe((s) => states.push(s));
    manager.errors$.subscribe((e) => errors.push(e));
    manager.support$.subscribe((s) => support.push(s));
    cleanups.push(() => {
      manager.dispose();
      pair.close();
      hostClient.stopClient();
    });
    const membership = () => hs.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, manager.stateKey);
    return {
      manager,
      backend,
      pair,
      driver,
      hostClient,
      states,
      errors,
      support,
      membership,
      pending: () =>
        hs.pendingDelayedEvents().filter((d) => d.roomId === roomId && d.stateKey === manager.stateKey),
      joinedOnServer: () => Object.keys(membership() ?? {}).length > 0,
    };
  }

  return {
    hs,
    alice,
    roomId,
    call,
    async close() {
      for (const c of cleanups.splice(0)) c();
      hs.faults.clear();
      await hs.close();
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
