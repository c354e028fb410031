/**
 * Shared plumbing for the side-by-side benchmark: one test homeserver, one direct observer, and devices
 * of two kinds behind their own FaultyLink with the same added round-trip time:
 * - "ours": our MembershipManager on a bare MatrixClient (ClientBackend);
 * - "js-sdk": matrix-js-sdk 43's MembershipManager, reached the way Element Call reaches it: a started,
 *   synced MatrixClient, `client.matrixRTC.getRoomSession(room).joinRTCSession(...)` with Element Call's
 *   join config.
 */
import { randomUUID } from "node:crypto";
import { ClientEvent, type MatrixClient, type Room } from "matrix-js-sdk";
import {
  MatrixRTCSessionEvent,
  Status as SdkStatus,
  type MatrixRTCSession,
  type Transport as SdkTransport,
} from "matrix-js-sdk/lib/matrixrtc/index.js";
import { ClientBackend } from "../src/backends/client.js";
import { CALL_MEMBER_EVENT_TYPE } from "../src/membership/content.js";
import { MembershipManager, type MembershipManagerOptions } from "../src/manager/MembershipManager.js";
import type { Support } from "../src/manager/state.js";
import type { EffectiveTiming, TimingOptions } from "../src/core/config.js";
import {
  bareClient,
  startFaultyLink,
  startTestHomeserver,
  stopClient,
  syncedClient,
  type CallHomeserver,
  type FaultyLink,
  type RequestLogEntry,
  type TestHomeserver,
  type TestHomeserverOptions,
  type UserCreds,
} from "../src/testing/index.js";

export type Impl = "ours" | "js-sdk";
export const IMPLS: readonly Impl[] = ["ours", "js-sdk"];

/** Element Call's settings (call-apps.md §3): delay 10 s, network retry 1 s, 11 network retries. */
export const EC_DELAY_MS = 10_000;
export const EC_JOIN_CONFIG = {
  delayedLeaveEventDelayMs: EC_DELAY_MS,
  networkErrorRetryMs: 1000,
  // ceil(min(sync grace, delay) / networkErrorRetryMs) + 1 with EC's defaults
  maximumNetworkErrorRetryCount: 11,
  manageMediaKeys: false,
  unstableSendStickyEvents: false,
  useLegacyMemberEvents: false,
} as const;

/** The SFU transport EC advertises in Compatibility mode (multi_sfu, with `livekit_alias` = room id). */
export function ecTransport(roomId: string): SdkTransport {
  return { type: "livekit", livekit_service_url: "https://livekit.bench.test", livekit_alias: roomId };
}

/** Routes that manage a membership (what a heartbeat, join, leave or rejoin costs the server). */
export const MEMBERSHIP_ROUTES = new Set([
  "state.put",
  "state.put.delayed",
  "delayed.restart",
  "delayed.send",
  "delayed.cancel",
  "delayed.legacy",
]);

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Poll until `pred` holds (every `everyMs`); resolves Date.now() at that moment, rejects after `timeoutMs`. */
export async function until(
  pred: () => boolean,
  timeoutMs: number,
  what: string,
  everyMs = 1,
): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (pred()) return Date.now();
    if (Date.now() - start > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * What a bench needs of its server: the test homeserver (with its request log and faults), or a real
 * Synapse (no request log: requests are then read from each device's link, see membershipRequests).
 */
export type BenchServer = CallHomeserver & { readonly requests?: RequestLogEntry[] };

/** The homeserver, one room-owner, and an observer that talks to it directly (no link, no added latency). */
export interface Bench<H extends BenchServer = TestHomeserver> {
  hs: H;
  owner: UserCreds;
  observer: Observer;
  rttMs: number;
  close(): Promise<void>;
}

/**
 * Another user's synced js-sdk client, connected directly: it sees a membership as soon as the server
 * holds it. Its MatrixRTCSession per room says who is in the call, timestamped on every change.
 */
export class Observer {
  private readonly sessions = new Map<string, MatrixRTCSession>();
  constructor(
    readonly client: MatrixClient,
    private readonly hs: BenchServer,
    private readonly user: UserCreds,
  ) {}

  /** Join a room and wait until the client holds it. */
  async enter(roomId: string): Promise<void> {
    await this.hs.joinRoom(this.user.accessToken, roomId);
    await until(() => !!this.client.getRoom(roomId), 10_000, "the observer to see the room", 5);
    const session = this.client.matrixRTC.getRoomSession(this.client.getRoom(roomId)!);
    this.sessions.set(roomId, session);
  }

  members(roomId: string): string[] {
    const session = this.sessions.get(roomId);
    return session ? session.memberships.map((m) => `${m.sender}|${m.deviceId}`) : [];
  }

  sees(roomId: string, userId: string, deviceId: string): boolean {
    return this.members(roomId).includes(`${userId}|${deviceId}`);
  }

  /** Resolves Date.now() when the membership list first satisfies `pred` (checked on every change). */
  when(roomId: string, pred: () => boolean, timeoutMs: number, what: string): Promise<number> {
    const session = this.sessions.get(roomId);
    if (!session) return Promise.reject(new Error(`observer is not in ${roomId}`));
    if (pred()) return Promise.resolve(Date.now());
    return new Promise((resolve, reject) => {
      const onChange = () => {
        if (!pred()) return;
        cleanup();
        resolve(Date.now());
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`observer: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        session.off(MatrixRTCSessionEvent.MembershipsChanged, onChange);
      };
      session.on(MatrixRTCSessionEvent.MembershipsChanged, onChange);
    });
  }
}

export async function startBench(
  opts: { rttMs: number; homeserver?: TestHomeserverOptions } = { rttMs: 50 },
): Promise<Bench> {
  const hs = await startTestHomeserver({ requestLogLimit: 200_000, ...opts.homeserver });
  return benchOn(hs, opts.rttMs);
}

/** The bench's owner and observer on a running server (closed with the bench). */
export async function benchOn<H extends BenchServer>(hs: H, rttMs: number): Promise<Bench<H>> {
  const owner = await hs.createUser("bench-owner");
  const obsUser = await hs.createUser("observer");
  const observerClient = await syncedClient(hs.baseUrl, obsUser);
  const observer = new Observer(observerClient, hs, obsUser);
  return {
    hs,
    owner,
    observer,
    rttMs,
    async close() {
      stopClient(observerClient);
      await hs.close();
    },
  };
}

/** A fresh room the observer is in (each device gets its own, so js-sdk's session sees only its own call). */
export async function newRoom(bench: Bench<BenchServer>, name: string): Promise<string> {
  const roomId = await bench.hs.createRoom(bench.owner.accessToken, { name });
  await bench.observer.enter(roomId);
  return roomId;
}

/** One device of either implementation, behind its own FaultyLink with `rttMs` added per round trip. */
export interface Device {
  readonly impl: Impl;
  readonly userId: string;
  readonly deviceId: string;
  readonly roomId: string;
  readonly stateKey: string;
  readonly link: FaultyLink;
  join(): void;
  /** Resolves Date.now() when the manager reports itself connected. */
  whenConnected(timeoutMs: number): Promise<number>;
  isConnected(): boolean;
  /** Resolves when the manager reports the leave done. */
  leave(): Promise<unknown>;
  /** Still trying to be in the call (not failed / stopped). */
  isActive(): boolean;
  /** Ours only: the timing in force (the adaptive heartbeat's interval, restart timeout and margin). */
  timing?(): EffectiveTiming;
  /** Ours only: what the manager knows of support (who holds the delayed leave: delegation). */
  support?(): Support;
  lastError?: unknown;
  close(): Promise<void>;
}

export function serverHoldsMembership(hs: BenchServer, d: Device): boolean {
  return Object.keys(hs.stateContent(d.roomId, CALL_MEMBER_EVENT_TYPE, d.stateKey) ?? {}).length > 0;
}

/** The state key both implementations use for the default room call (legacy state events). */
function legacyStateKey(userId: string, deviceId: string): string {
  return `_${userId}_${deviceId}_m.call`;
}

/** Options for our manager beyond the shared setup (only the heartbeat's variants use them). */
export type OursTuning = Pick<TimingOptions, "heartbeatIntervalMs" | "heartbeatMarginMs"> &
  Pick<
    MembershipManagerOptions,
    "delegation" | "sfuUrl" | "delegatedDelayMs" | "delegatedHeartbeatIntervalMs"
  > & {
    /**
     * Give our manager a syncing client (as an app that shows the room has) instead of a bare one: its
     * eyes are then the synced room, and it reads nothing from the server to watch its membership.
     */
    synced?: boolean;
  };

/** `linkRttMs`: the device's link adds this much instead of the bench's RTT (the heartbeat's slow-link pair). */
export async function newDevice(
  bench: Bench<BenchServer>,
  impl: Impl,
  roomId: string,
  name: string,
  tuning: OursTuning = {},
  linkRttMs = bench.rttMs,
): Promise<Device> {
  const user = await bench.hs.createUser(name);
  await bench.hs.joinRoom(user.accessToken, roomId);
  const link = await startFaultyLink({ target: bench.hs.baseUrl });
  link.setLatency(linkRttMs, 0);
  return impl === "ours" ? oursDevice(link, user, roomId, tuning) : sdkDevice(link, user, roomId);
}

async function oursDevice(
  link: FaultyLink,
  user: UserCreds,
  roomId: string,
  tuning: OursTuning,
): Promise<Device> {
  const { synced, ...timing } = tuning;
  const client = synced ? await syncedClient(link.url, user) : bareClient(link.url, user);
  // An app's client has fetched /versions and /capabilities long before it joins a call (js-sdk's
  // started client has, at startClient): warm both caches so join() does not pay for them.
  await client.doesServerSupportUnstableFeature("org.matrix.msc4140");
  await client.getCapabilities();
  const manager = new MembershipManager({
    backend: new ClientBackend(client),
    roomId,
    userId: user.userId,
    deviceId: user.deviceId,
    delayedLeaveDelayMs: EC_DELAY_MS,
    // The same content as EC's Compatibility mode.
    focusActive: { type: "livekit", focus_selection: "multi_sfu" },
    fociPreferred: [ecTransport(roomId)],
    ...timing,
  });
  const device: Device = {
    impl: "ours",
    userId: user.userId,
    deviceId: user.deviceId,
    roomId,
    stateKey: manager.stateKey,
    link,
    join: () => manager.join(),
    whenConnected: (timeoutMs) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          sub.unsubscribe();
          reject(new Error(`ours: not connected within ${timeoutMs} ms`));
        }, timeoutMs);
        const sub = manager.status$.subscribe((s) => {
          if (s !== "connected") return;
          const at = Date.now();
          clearTimeout(timer);
          queueMicrotask(() => sub.unsubscribe());
          resolve(at);
        });
      }),
    isConnected: () => manager.status === "connected",
    leave: () => manager.leave({ timeoutMs: 30_000 }),
    isActive: () => manager.state.kind !== "failed" && manager.state.kind !== "left",
    timing: () => manager.effectiveTiming,
    support: () => manager.support,
    async close() {
      manager.dispose();
      stopClient(client);
      await link.close();
    },
  };
  manager.errors$.subscribe((e) => (device.lastError = e));
  return device;
}

async function sdkDevice(link: FaultyLink, user: UserCreds, roomId: string): Promise<Device> {
  const client = await syncedClient(link.url, user);
  await until(() => !!client.getRoom(roomId), 10_000, "js-sdk device to see its room", 5);
  const room: Room = client.getRoom(roomId)!;
  const session = client.matrixRTC.getRoomSession(room);
  let failed = false;
  const device: Device = {
    impl: "js-sdk",
    userId: user.userId,
    deviceId: user.deviceId,
    roomId,
    stateKey: legacyStateKey(user.userId, user.deviceId),
    link,
    join() {
      // As Element Call's LocalMember.enterRTCSession in Compatibility mode.
      session.joinRTCSession(
        { userId: user.userId, deviceId: user.deviceId, memberId: randomUUID() },
        [],
        ecTransport(roomId),
        { ...EC_JOIN_CONFIG },
      );
    },
    // The status getter reads the action queue directly; its StatusChanged event is emitted lazily.
    whenConnected: (timeoutMs) =>
      until(() => session.membershipStatus === SdkStatus.Connected, timeoutMs, "js-sdk connected"),
    isConnected: () => session.membershipStatus === SdkStatus.Connected,
    leave: () => session.leaveRoomSession(30_000),
    isActive: () => !failed && session.isJoined(),
    async close() {
      try {
        await Promise.race([session.leaveRoomSession(0), sleep(50)]);
      } catch {
        // already stopped
      }
      stopClient(client);
      await link.close();
    },
  };
  session.on(MatrixRTCSessionEvent.MembershipManagerError, (e) => {
    failed = true;
    device.lastError = e;
  });
  void ClientEvent;
  return device;
}

/** Median round trip of a trivial request through a link with the bench's latency (what "RTT" means here). */
export async function measureRtt(bench: Bench<BenchServer>, reps = 15): Promise<number> {
  const link = await startFaultyLink({ target: bench.hs.baseUrl });
  link.setLatency(bench.rttMs, 0);
  const samples: number[] = [];
  try {
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      const res = await fetch(`${link.url}/_matrix/client/versions`);
      await res.arrayBuffer();
      samples.push(performance.now() - t0);
    }
  } finally {
    await link.close();
  }
  return median(samples.slice(2));
}
