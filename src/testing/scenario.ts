/**
 * Scenario helpers so a call app's network-loss test reads like the story it tells:
 * "Alice loses the network for 15 s; Bob sees her leave within the delay; Alice is back within 2 s".
 * Every device talks to the test homeserver through its own FaultyLink; observers are real synced
 * matrix-js-sdk clients whose MatrixRTCSession says who is in the call.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { ClientEvent, createClient, type MatrixClient } from "matrix-js-sdk";
import { ClientBackend } from "../backends/client.js";
import { CALL_MEMBER_EVENT_TYPE } from "../membership/content.js";
import { MembershipManager, type MembershipManagerOptions } from "../manager/MembershipManager.js";
import { clientTimers, startClient, stopClient as stopNodeClient } from "../node/client.js";
export { quietMatrixSdkLogs } from "../log/quietMatrixSdk.js";
import { startTestHomeserver, type TestHomeserver } from "./homeserver/homeserver.js";
import type { TestHomeserverOptions } from "./homeserver/options.js";
import type { DelayedEventRecord } from "./homeserver/delayed-events.js";
import { startFaultyLink, type FaultyLink } from "./network/index.js";
import type { SynapseOptions } from "./synapse/options.js";
import { startSynapse, type SynapseHomeserver } from "./synapse/synapse.js";
import { CallRecorder, type RecordableServer } from "./timeline/recorder.js";
import { renderTimeline, type TimelineOptions } from "./timeline/render.js";
import type { CallTrace } from "./timeline/types.js";

/** A logged-in device: what a MatrixClient needs (`createUser` / `loginDevice` return one). */
export interface UserCreds {
  /** The user's Matrix id. */
  userId: string;
  /** The device's access token. */
  accessToken: string;
  /** The device the token belongs to. */
  deviceId: string;
}

/** A bare MatrixClient (no startClient): all a MembershipManager needs. */
export function bareClient(baseUrl: string, user: UserCreds): MatrixClient {
  return createClient({
    baseUrl,
    userId: user.userId,
    accessToken: user.accessToken,
    deviceId: user.deviceId,
  });
}

/**
 * A started, synced client whose MatrixRTC session manager runs; stop it with `stopClient`. Started in its
 * own timer scope (`matrixrtc-membership/node`'s `startClient`), so stopping it lets go of every timer
 * matrix-js-sdk leaves armed.
 */
export async function syncedClient(baseUrl: string, user: UserCreds): Promise<MatrixClient> {
  const client = bareClient(baseUrl, user);
  const ready = new Promise<void>((resolve) =>
    client.on(ClientEvent.Sync, (state) => {
      if (state === "PREPARED" || state === "SYNCING") resolve();
    }),
  );
  await startClient(client, { initialSyncLimit: 20 });
  await ready;
  clientTimers(client).run(() => client.matrixRTC.start());
  return client;
}

/**
 * Stop a client, including its MatrixRTC sessions; the timers matrix-js-sdk leaves armed after
 * `stopClient()` (request timeouts of up to 110 s) no longer keep the process running.
 */
export function stopClient(client: MatrixClient): void {
  stopNodeClient(client);
}

/** The devices js-sdk's MatrixRTCSession lists as call members, as "@user:hs|DEVICE". */
export function rtcMembers(client: MatrixClient, roomId: string): string[] {
  const room = client.getRoom(roomId);
  if (!room) return [];
  return client.matrixRTC.getRoomSession(room).memberships.map((m) => `${m.sender}|${m.deviceId}`);
}

/** Poll on real time until `pred` holds; resolves to how long it took, rejects after `timeoutMs`. */
export async function waitFor(
  pred: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = "condition",
): Promise<number> {
  const start = Date.now();
  while (!(await pred())) {
    if (Date.now() - start > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - start;
}

/** One device in the call: its manager, its own network link, and what the server holds for it. */
export interface TestDevice {
  /** The name given to `device()` (also the user's localpart). */
  readonly name: string;
  /** The device's user (a fresh user per device, joined to the room). */
  readonly userId: string;
  /** The device id, part of its membership's state key. */
  readonly deviceId: string;
  /** The device's manager (a ClientBackend over `network`); call `join()` on it to enter the call. */
  readonly manager: MembershipManager;
  /** Cut, restore, slow down or break this device's network. */
  readonly network: FaultyLink;
  /** The membership content the server holds for this device (`{}` or undefined when out). */
  membershipOnServer(): Record<string, unknown> | undefined;
  /** True when the server holds a non-empty membership for this device. */
  isJoinedOnServer(): boolean;
  /** The delayed events the server holds at this device's membership key: normally one delayed leave. */
  pendingDelayedLeaves(): DelayedEventRecord[];
  /** Resolves when the manager reports `connected`; rejects if not within `withinMs`. */
  waitUntilConnected(opts?: { withinMs?: number }): Promise<number>;
}

/** Another user's synced client: sees the call as Element Web / Element Call would. */
export interface CallObserver {
  /** The observer's started, synced client (stopped by `TestCall.close()`). */
  readonly client: MatrixClient;
  /** Who its MatrixRTCSession lists in the call now, as "@user:hs|DEVICE" (see `rtcMembers`). */
  members(): string[];
  /** True when it lists `device` in the call now. */
  sees(device: TestDevice): boolean;
  /** Resolves to how long it took; rejects if not within `withinMs`. */
  waitUntilSees(device: TestDevice, opts?: { withinMs?: number }): Promise<number>;
  /** Resolves to how long it took until `device` is no longer listed; rejects if not within `withinMs`. */
  waitUntilGone(device: TestDevice, opts?: { withinMs?: number }): Promise<number>;
}

/** What the scenario helpers need of a server: both the test homeserver and a real Synapse have it. */
export type CallHomeserver = Pick<
  TestHomeserver,
  | "baseUrl"
  | "serverName"
  | "createUser"
  | "loginDevice"
  | "createRoom"
  | "joinRoom"
  | "roomState"
  | "stateContent"
  | "timeline"
  | "pendingDelayedEvents"
  | "close"
>;

/** A running call scenario from `startTestCall()`: one server, one room; `close()` it when done. */
export interface TestCall<H extends CallHomeserver = TestHomeserver> {
  /**
   * The server: the test homeserver, or real Synapse (`server: "synapse"`); typed TestHomeserver but
   * running on Synapse (via `$MATRIXRTC_TEST_SERVER`), emulator-only members throw when touched.
   */
  readonly homeserver: H;
  /** The call's room (public, created by a separate owner user; call members have power level 0). */
  readonly roomId: string;
  /** A new user joined to the room, with a MembershipManager behind its own FaultyLink (not joined yet). */
  device(name: string, options?: Partial<MembershipManagerOptions>): Promise<TestDevice>;
  /** A new user joined to the room with a synced matrix-js-sdk client that watches the call. */
  observer(name: string): Promise<CallObserver>;
  /**
   * The timeline picture of the call so far (an SVG document; see `renderTimeline`): every device's
   * requests, status and view, every observer's view, the server's records (test homeserver only) and
   * every network cut. Needs `startTestCall({ timeline: true })`; works after `close()` too.
   */
  timelineSvg(options?: TimelineOptions): string;
  /** Writes `timelineSvg()` to `path` (directories made as needed); resolves to the path. */
  writeTimeline(path: string, options?: TimelineOptions): Promise<string>;
  /** What was recorded so far (`timeline: true`), for your own rendering or assertions. */
  recorded(): CallTrace;
  /** Disposes every manager, stops every client, closes links and the homeserver. */
  close(): Promise<void>;
}

/** Options of `startTestCall()`; all optional. */
export interface TestCallOptions {
  /** Delay of every device's delayed leave. Default 10 000 (Element Call's). */
  delayMs?: number;
  /**
   * `emulator`: the in-process test homeserver. `synapse`: a real Synapse from `startSynapse()`
   * (installed with pip on first use). Default `$MATRIXRTC_TEST_SERVER`, else `emulator`.
   */
  server?: "emulator" | "synapse";
  /** Options of the test homeserver (ignored on Synapse). */
  homeserver?: TestHomeserverOptions;
  /** Options of the real Synapse (ignored on the emulator). */
  synapse?: SynapseOptions;
  /**
   * Record the call for its timeline picture (`call.writeTimeline(path)`, e.g. when a test fails). On
   * the test homeserver the server's own records are polled every 10 ms; on Synapse only the devices
   * and observers are recorded. `{ print }` also gets one timestamped line per event. Default off.
   */
  timeline?:
    | boolean
    | {
        /** Receives one timestamped line per event. */
        print?: (line: string) => void;
      };
  /**
   * Each device's request trace (the manager's `trace` option), one line per request and answer,
   * prefixed with the device's name. Default none.
   */
  trace?: (line: string) => void;
}

/** Members of the test homeserver a real Synapse cannot offer: using one says so instead of failing oddly. */
const EMULATOR_ONLY = ["options", "configure", "faults", "loseDelayedEvent", "requests"] as const;

/**
 * A Synapse handle standing in where a `TestHomeserver` is typed (a test that picked no server, run with
 * MATRIXRTC_TEST_SERVER=synapse): emulator-only members throw a clear error when touched.
 */
function synapseAsTestHomeserver(synapse: SynapseHomeserver): TestHomeserver {
  const proxy = Object.create(synapse) as Record<string, unknown>;
  for (const key of EMULATOR_ONLY) {
    Object.defineProperty(proxy, key, {
      get() {
        throw new Error(`homeserver.${key} is only available on the test homeserver, not on real Synapse`);
      },
    });
  }
  return proxy as unknown as TestHomeserver;
}

/** `link`, with its cuts and restores recorded as outages of `device`. */
function recordedLink(link: FaultyLink, device: string, recorder: CallRecorder): FaultyLink {
  const recorded = Object.create(link) as FaultyLink;
  recorded.cut = () => {
    if (!link.isCut) recorder.outage(device, Date.now());
    link.cut();
  };
  recorded.restore = (opts) => {
    if (link.isCut) recorder.outageEnds(device, Date.now());
    link.restore(opts);
  };
  return recorded;
}

/** A homeserver, a room and helpers to put devices and observers in it. */
export function startTestCall(
  options: TestCallOptions & { server: "synapse" },
): Promise<TestCall<SynapseHomeserver>>;
export function startTestCall(options?: TestCallOptions): Promise<TestCall>;
export async function startTestCall(options: TestCallOptions = {}): Promise<TestCall<CallHomeserver>> {
  const server = options.server ?? (process.env.MATRIXRTC_TEST_SERVER === "synapse" ? "synapse" : "emulator");
  let homeserver: CallHomeserver;
  if (server === "synapse") {
    const synapse = await startSynapse(options.synapse);
    homeserver = options.server === "synapse" ? synapse : synapseAsTestHomeserver(synapse);
  } else {
    homeserver = await startTestHomeserver(options.homeserver);
  }
  const owner = await homeserver.createUser("call-owner");
  const roomId = await homeserver.createRoom(owner.accessToken, { name: "test call" });
  const disposers: (() => unknown)[] = [];
  const delayMs = options.delayMs ?? 10_000;
  const recorder = options.timeline
    ? new CallRecorder({ delayMs, print: options.timeline === true ? undefined : options.timeline.print })
    : undefined;
  // Only the test homeserver has a request log to read; Synapse's devices and observers are recorded.
  const emulator = server === "emulator" ? (homeserver as unknown as RecordableServer) : undefined;
  if (recorder && emulator) recorder.watchServer(emulator, roomId, "test homeserver");
  const needRecorder = (): CallRecorder => {
    if (!recorder)
      throw new Error("the call was not recorded: start it with startTestCall({ timeline: true })");
    return recorder;
  };

  const joinedUser = async (name: string) => {
    const user = await homeserver.createUser(name);
    await homeserver.joinRoom(user.accessToken, roomId);
    return user;
  };
  const memberId = (d: TestDevice) => `${d.userId}|${d.deviceId}`;

  return {
    homeserver,
    roomId,
    async device(name, managerOptions = {}) {
      const user = await joinedUser(name);
      const link = await startFaultyLink({ target: homeserver.baseUrl });
      const network = recorder ? recordedLink(link, name, recorder) : link;
      const client = bareClient(link.url, user);
      const backend = new ClientBackend(client);
      recorder?.addDevice({ name, mode: "standalone: ClientBackend, behind a faulty link", ...user });
      const trace = options.trace;
      const manager = new MembershipManager({
        backend: recorder ? recorder.traceBackend(name, emulator, backend) : backend,
        roomId,
        userId: user.userId,
        deviceId: user.deviceId,
        delayedLeaveDelayMs: delayMs,
        fociPreferred: [{ type: "livekit", livekit_service_url: "https://livekit.test" }],
        ...(trace ? { trace: (line: string) => trace(`${name} ${line}`) } : {}),
        ...managerOptions,
      });
      recorder?.watchManager(name, manager);
      disposers.push(
        () => manager.dispose(),
        () => stopClient(client),
        () => link.close(),
      );
      const membershipOnServer = () =>
        homeserver.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, manager.stateKey);
      return {
        name,
        userId: user.userId,
        deviceId: user.deviceId,
        manager,
        network,
        membershipOnServer,
        isJoinedOnServer: () => Object.keys(membershipOnServer() ?? {}).length > 0,
        waitUntilConnected: (o = {}) =>
          waitFor(() => manager.status === "connected", o.withinMs ?? 5000, `${name} to be connected`),
        pendingDelayedLeaves: () =>
          homeserver
            .pendingDelayedEvents()
            .filter((e) => e.roomId === roomId && e.stateKey === manager.stateKey),
      };
    },
    async observer(name) {
      const user = await joinedUser(name);
      const client = await syncedClient(homeserver.baseUrl, user);
      disposers.push(() => stopClient(client));
      const members = () => rtcMembers(client, roomId);
      if (recorder) {
        recorder.addDevice({
          name,
          mode: "observer: a synced matrix-js-sdk client",
          kind: "observer",
          ...user,
        });
        recorder.watchView(name, members);
        recorder.watchSync(name, client);
      }
      return {
        client,
        members,
        sees: (d) => members().includes(memberId(d)),
        waitUntilSees: (d, o = {}) =>
          waitFor(
            () => members().includes(memberId(d)),
            o.withinMs ?? 5000,
            `${name} to see ${d.name} in the call`,
          ),
        waitUntilGone: (d, o = {}) =>
          waitFor(
            () => !members().includes(memberId(d)),
            o.withinMs ?? 5000,
            `${name} to see ${d.name} leave`,
          ),
      };
    },
    timelineSvg(timelineOptions) {
      return renderTimeline(needRecorder().snapshot(), timelineOptions);
    },
    async writeTimeline(path, timelineOptions) {
      const svg = renderTimeline(needRecorder().snapshot(), timelineOptions);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, svg);
      return path;
    },
    recorded() {
      return needRecorder().snapshot();
    },
    async close() {
      // The picture ends where the test's story ends, before the teardown.
      recorder?.stop();
      for (const dispose of disposers.splice(0).reverse()) await dispose();
      await homeserver.close();
    },
  };
}
