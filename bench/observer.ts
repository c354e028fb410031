/**
 * Reading a call at scale: our `callMembers$` beside matrix-js-sdk 43's `MatrixRTCSession`, each on a
 * synced matrix-js-sdk client of the same room (N members, each with its own call membership).
 *
 * One child process per N (`node --expose-gc --import tsx bench/observer.ts <N> <changes>`), which runs
 * the homeserver in a grandchild (bench/observer-server.ts) so that only the observing side is counted.
 * In it, each variant gets a fresh client that syncs the room from scratch (js-sdk 43 starts its own
 * MatrixRTC manager after the first sync: kept off except in the js-sdk variant):
 * - "client only": no observer (the baseline: what the client itself costs);
 * - "ours": `callMembers$(client, { roomId })`;
 * - "js-sdk": `client.matrixRTC.start()` and the room's `MatrixRTCSession` (what Element Call runs);
 * - "both": ours and js-sdk's on one client, to compare their lists.
 * CPU is `process.cpuUsage()` of that process; an observer's cost is its variant's minus the baseline's.
 * Prints one JSON line (ObserverSizeResult).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { pathToFileURL } from "node:url";
import { ClientEvent, RoomEvent, type MatrixClient, type MatrixEvent, type Room } from "matrix-js-sdk";
import { MatrixRTCSessionEvent, type MatrixRTCSession } from "matrix-js-sdk/lib/matrixrtc/index.js";
import type { Subscription } from "rxjs";
import { callMembers$, type CallMember } from "../src/index.js";
import { CALL_MEMBER_EVENT_TYPE } from "../src/membership/content.js";
import { storeCounters } from "../src/membership/store.js";
import { bareClient, quietMatrixSdkLogs, stopClient, type UserCreds } from "../src/testing/index.js";

export type ObserverVariant = "none" | "ours" | "js-sdk";

export interface ObserverVariantResult {
  /** Subscribing to the first full list: wall ms and CPU ms. */
  firstListMs: number;
  firstListCpuMs: number;
  /** Heap growth from attaching the observer to a synced client (bytes, after gc). */
  memoryBytes: number;
  /** Per single membership change: process CPU (µs) and write → list (ms), one sample each. */
  changeCpuUs: number[];
  changeLatencyMs: number[];
  /**
   * 50 memberships rewritten, all delivered in one sync: CPU from the last write until the list shows
   * them (ms), lists emitted.
   */
  burst: { cpuMs: number; emissions: number; wallMs: number };
  /** The same with all N rewritten (a catch-up after everyone refreshed). */
  catchUp: { cpuMs: number; emissions: number; wallMs: number };
  /** Per sync carrying only a chat message: CPU (µs), and the observer's evaluations over all of them. */
  chatCpuUs: number[];
  chatEvaluations: number;
  /** Ours only: CPU inside the observer (bracketed), per change (µs), burst and catch-up (ms), per chat sync (µs). */
  own?: { changeUs: number[]; burstMs: number; catchUpMs: number; chatUs: number[] };
}

export interface ObserverSizeResult {
  n: number;
  changes: number;
  setupMs: number;
  variants: Record<ObserverVariant, ObserverVariantResult>;
  /** Ours and js-sdk's lists on one client compared after every step: how many times, how many equal. */
  agreement: { checks: number; equal: number; firstDifference?: string };
}

const BURST = 50;
const progress = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const gcFn = (globalThis as { gc?: () => void }).gc;
function heapAfterGc(): number {
  if (gcFn) for (let i = 0; i < 3; i++) gcFn();
  return process.memoryUsage().heapUsed;
}
const cpuUs = (from: NodeJS.CpuUsage) => {
  const d = process.cpuUsage(from);
  return d.user + d.system;
};

/** The homeserver process, driven over IPC. */
class ServerProcess {
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly ready: Promise<void>;
  private readonly child: ChildProcess;

  constructor() {
    this.child = spawn(process.execPath, ["--import", "tsx", "bench/observer-server.ts"], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.ready = new Promise((resolve) => {
      this.child.on("message", (m: { ready?: boolean; id?: number; result?: unknown; error?: string }) => {
        if (m.ready) return resolve();
        const w = this.waiting.get(m.id!);
        this.waiting.delete(m.id!);
        if (m.error) w?.reject(new Error(m.error));
        else w?.resolve(m.result);
      });
    });
  }

  call<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.next;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, cmd, ...args });
    });
  }

  close(): void {
    this.child.send({ id: 0, cmd: "close" });
    setTimeout(() => this.child.kill("SIGKILL"), 5000).unref();
  }
}

/** What each variant exposes to the measuring loop. */
interface Probe {
  /** Attach to the synced client; resolves with the first full list. */
  attach(): Promise<void>;
  /** Resolves once the list (or, without observer, the client) shows `userId` with `intent`. */
  shows(userId: string, intent: string): Promise<void>;
  /** Lists emitted so far. */
  emissions(): number;
  /** Its evaluations so far (ours: the store's counter; js-sdk: recalculations started). */
  evaluations(): number;
  /** "@user|DEVICE" in order. */
  ids(): string[];
  /** CPU spent inside the observer itself so far (µs), where it can be bracketed (ours: yes). */
  ownCpuUs(): number;
  detach(): void;
}

type Waiter = { check: () => boolean; resolve: () => void };

function runWaiters(waiters: Set<Waiter>): void {
  for (const w of [...waiters])
    if (w.check()) {
      waiters.delete(w);
      w.resolve();
    }
}

function ourProbe(client: MatrixClient, roomId: string, n: number): Probe {
  let lists: CallMember[][] = [];
  let sub: Subscription | undefined;
  let emitted = 0;
  let own = 0;
  let mark: NodeJS.CpuUsage | undefined;
  const before = () => (mark = process.cpuUsage());
  const after = () => {
    if (mark) own += cpuUs(mark);
    mark = undefined;
  };
  const waiters = new Set<Waiter>();
  const index = new Map<string, number>();
  const find = (userId: string): CallMember | undefined => {
    const list = lists.at(-1) ?? [];
    const i = index.get(userId);
    if (i !== undefined && list[i]?.userId === userId) return list[i];
    const j = list.findIndex((m) => m.userId === userId);
    if (j >= 0) index.set(userId, j);
    return list[j];
  };
  return {
    async attach() {
      // Our flush runs inside js-sdk's `sync` emission: listeners registered before and after ours
      // bracket it (EventEmitter calls them in order).
      client.on(ClientEvent.Sync, before);
      await new Promise<void>((resolve) => {
        sub = callMembers$(client, { roomId }).subscribe((m) => {
          // Keep the latest two: the bench must not hold every list of a 5,000-member catch-up.
          lists = [lists.at(-1) ?? [], m];
          emitted++;
          if (m.length === n) resolve();
          runWaiters(waiters);
        });
      });
      client.on(ClientEvent.Sync, after);
    },
    shows(userId, intent) {
      return new Promise((resolve) => {
        const w = { check: () => find(userId)?.callIntent === intent, resolve };
        if (w.check()) resolve();
        else waiters.add(w);
      });
    },
    emissions: () => emitted,
    evaluations: () => storeCounters.evaluations,
    ids: () => (lists.at(-1) ?? []).map((m) => `${m.userId}|${m.deviceId}`),
    ownCpuUs: () => own,
    detach: () => {
      sub?.unsubscribe();
      client.off(ClientEvent.Sync, before);
      client.off(ClientEvent.Sync, after);
    },
  };
}

function jsSdkProbe(client: MatrixClient, room: Room, n: number): Probe {
  let session: MatrixRTCSession | undefined;
  let emitted = 0;
  let recalcs = 0;
  const waiters = new Set<Waiter>();
  const onChanged = () => {
    emitted++;
    runWaiters(waiters);
  };
  return {
    async attach() {
      const done = new Promise<void>((resolve) =>
        waiters.add({ check: () => session?.memberships.length === n, resolve }),
      );
      client.matrixRTC.start();
      session = client.matrixRTC.getRoomSession(room);
      const original = session.ensureRecalculateSessionMembers.bind(session);
      session.ensureRecalculateSessionMembers = () => {
        recalcs++;
        return original();
      };
      session.on(MatrixRTCSessionEvent.MembershipsChanged, onChanged);
      runWaiters(waiters);
      await done;
    },
    shows(userId, intent) {
      return new Promise((resolve) => {
        const w = {
          check: () => session!.memberships.some((m) => m.userId === userId && m.callIntent === intent),
          resolve,
        };
        if (w.check()) resolve();
        else waiters.add(w);
      });
    },
    emissions: () => emitted,
    evaluations: () => recalcs,
    ids: () => (session?.memberships ?? []).map((m) => `${m.userId}|${m.deviceId}`),
    ownCpuUs: () => NaN,
    detach: () => {
      session?.off(MatrixRTCSessionEvent.MembershipsChanged, onChanged);
      client.matrixRTC.stop();
    },
  };
}

/** No observer: "shows" is the client's room state holding the event at the end of a sync. */
function clientProbe(client: MatrixClient, room: Room, stateKeys: Map<string, string>): Probe {
  const waiters = new Set<Waiter>();
  const onSync = () => runWaiters(waiters);
  const intentOf = (userId: string) =>
    room.currentState.getStateEvents(CALL_MEMBER_EVENT_TYPE, stateKeys.get(userId)!)?.getContent()[
      "m.call.intent"
    ];
  return {
    async attach() {
      client.on(ClientEvent.Sync, onSync);
    },
    shows(userId, intent) {
      return new Promise((resolve) => waiters.add({ check: () => intentOf(userId) === intent, resolve }));
    },
    emissions: () => 0,
    evaluations: () => 0,
    ids: () => [],
    ownCpuUs: () => NaN,
    detach: () => client.off(ClientEvent.Sync, onSync),
  };
}

/** Start (or restart) a client; js-sdk's own MatrixRTC manager stays off (a variant starts it itself). */
async function start(client: MatrixClient): Promise<void> {
  const ready = new Promise<void>((resolve) => {
    const onSync = (state: string) => {
      if (state !== "PREPARED" && state !== "SYNCING") return;
      client.off(ClientEvent.Sync, onSync);
      resolve();
    };
    client.on(ClientEvent.Sync, onSync);
  });
  const started = client.startClient({ initialSyncLimit: 1 });
  // js-sdk 43 starts `client.matrixRTC` after the first sync, with a session per call room.
  client.off(ClientEvent.Sync, (client as unknown as { startMatrixRTC: () => void }).startMatrixRTC);
  await started;
  await ready;
}

async function startClient(
  url: string,
  owner: UserCreds,
  roomId: string,
): Promise<{ client: MatrixClient; room: Room }> {
  const client = bareClient(url, owner);
  await start(client);
  for (let i = 0; !client.getRoom(roomId); i++) {
    if (i > 3000) throw new Error("the observing client never saw the room");
    await sleep(10);
  }
  return { client, room: client.getRoom(roomId)! };
}

/** The median of a sample. */
export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The p-th percentile (nearest rank). */
export function percentile(xs: number[], p: number): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export async function runObserverSize(n: number, changes: number): Promise<ObserverSizeResult> {
  quietMatrixSdkLogs();
  const server = new ServerProcess();
  await server.ready;
  const t0 = performance.now();
  const { url, roomId, owner, userIds, stateKeys, writeMs } = await server.call<{
    url: string;
    roomId: string;
    owner: UserCreds;
    userIds: string[];
    stateKeys: string[];
    writeMs: number;
  }>("setup", { n });
  const keyOf = new Map(userIds.map((u, i) => [u, stateKeys[i]]));
  const setupMs = performance.now() - t0;
  progress(`N = ${n}: room ready in ${(setupMs / 1000).toFixed(1)} s`);
  const variants: Partial<Record<ObserverVariant, ObserverVariantResult>> = {};
  const agreement = { checks: 0, equal: 0, firstDifference: undefined as string | undefined };

  /** Resolves once `client` has processed the sync carrying the owner's next chat message. */
  const chatSynced = (client: MatrixClient) =>
    new Promise<void>((resolve) => {
      const onTimeline = (event: MatrixEvent) => {
        if (event.getType() !== "m.room.message" || event.getSender() !== owner.userId) return;
        client.off(RoomEvent.Timeline, onTimeline);
        client.once(ClientEvent.Sync, () => resolve());
      };
      client.on(RoomEvent.Timeline, onTimeline);
    });

  /**
   * Write `count` memberships so that they all reach `client` in one sync: a chat message ends its
   * long poll, and its next sync waits at the link (added latency) until every write is done.
   */
  let writeMsPerMember = writeMs / n;
  const writeInOneSync = async (client: MatrixClient, count: number, intent: string) => {
    // Hold the next sync three times as long as the writes should take (the machine is shared).
    const holdMs = Math.max(1500, Math.ceil(3 * writeMsPerMember * count) + 500);
    await server.call("latency", { ms: 2 * holdMs });
    const synced = chatSynced(client);
    await server.call("chat");
    await synced;
    const t = performance.now();
    await server.call("write", { from: 0, count, intent });
    // Later requests go through at once (the held one keeps its delay).
    await server.call("latency", { ms: 0 });
    const took = performance.now() - t;
    writeMsPerMember = took / count;
    // The lists emitted say whether it still came in one sync.
    if (took > holdMs)
      progress(`  writing ${count} took ${took.toFixed(0)} ms, longer than the ${holdMs} ms hold`);
  };

  const probeFor = (variant: ObserverVariant, client: MatrixClient, room: Room): Probe =>
    variant === "ours"
      ? ourProbe(client, roomId, n)
      : variant === "js-sdk"
        ? jsSdkProbe(client, room, n)
        : clientProbe(client, room, keyOf);

  for (const variant of ["none", "ours", "js-sdk"] as const) {
    const { client, room } = await startClient(url, owner, roomId);
    await sleep(200);
    // The first full list: three attaches to warm the code up (an app pays that once; both sides need
    // a few passes before their code runs optimised), then the median of five, timed without forcing a
    // GC first. Memory: the first attach on this client (js-sdk keeps what it computed for a room's events
    // after `matrixRTC.stop()`, so a later attach would not show it).
    const firsts: { ms: number; cpuMs: number }[] = [];
    let probe = probeFor(variant, client, room);
    let memoryBytes = NaN;
    const WARM_UP = 3;
    for (let round = 0; round < WARM_UP + 5; round++) {
      if (round > 0) {
        probe.detach();
        probe = probeFor(variant, client, room);
      }
      await sleep(50);
      // Only the memory round starts from a collected heap: a full GC right before a timed round would
      // charge the allocations of any code with the heap's regrowth.
      const heap0 = round === 0 ? heapAfterGc() : 0;
      const cpu0 = process.cpuUsage();
      const w0 = performance.now();
      await probe.attach();
      if (round >= WARM_UP) firsts.push({ ms: performance.now() - w0, cpuMs: cpuUs(cpu0) / 1000 });
      await sleep(100);
      if (round === 0) memoryBytes = heapAfterGc() - heap0;
    }
    const firstListMs = median(firsts.map((f) => f.ms));
    const firstListCpuMs = median(firsts.map((f) => f.cpuMs));

    progress(
      `  ${variant}: first list ${firstListMs.toFixed(1)} ms (CPU ${firsts.map((f) => f.cpuMs.toFixed(1)).join(", ")} ms); ${changes} single changes…`,
    );
    // Single changes, one after another.
    const changeCpuUs: number[] = [];
    const changeLatencyMs: number[] = [];
    const ownChangeUs: number[] = [];
    for (let i = 0; i < changes; i++) {
      const user = userIds[i % n];
      const intent = `${variant}-change-${i}`;
      await sleep(10);
      const shown = probe.shows(user, intent);
      const own0 = probe.ownCpuUs();
      const c = process.cpuUsage();
      const t = performance.now();
      await server.call("write", { from: i % n, count: 1, intent });
      await shown;
      changeLatencyMs.push(performance.now() - t);
      changeCpuUs.push(cpuUs(c));
      ownChangeUs.push(probe.ownCpuUs() - own0);
    }

    // A burst, and a catch-up of everyone, each arriving in one sync.
    const inOneSync = async (count: number, intent: string) => {
      await sleep(50);
      const e0 = probe.emissions();
      await writeInOneSync(client, count, intent);
      const shown = probe.shows(userIds[count - 1], intent);
      const own0 = probe.ownCpuUs();
      const c = process.cpuUsage();
      const t = performance.now();
      await shown;
      const result = {
        cpuMs: cpuUs(c) / 1000,
        emissions: 0,
        wallMs: performance.now() - t,
        ownMs: (probe.ownCpuUs() - own0) / 1000,
      };
      await sleep(200); // js-sdk's second, coalesced recalculation
      result.emissions = probe.emissions() - e0;
      return result;
    };
    // Medians of three (CPU, and the most lists any of them emitted).
    const repeat = async (count: number, what: string) => {
      const runs = [];
      for (let r = 0; r < 3; r++) runs.push(await inOneSync(count, `${variant}-${what}-${r}`));
      return {
        cpuMs: median(runs.map((x) => x.cpuMs)),
        emissions: Math.max(...runs.map((x) => x.emissions)),
        wallMs: median(runs.map((x) => x.wallMs)),
        ownMs: median(runs.map((x) => x.ownMs)),
      };
    };
    progress(`  ${variant}: bursts and catch-ups…`);
    const burst = await repeat(Math.min(BURST, n), "burst");
    const catchUp = await repeat(n, "catchup");

    // Syncs that carry only a chat message.
    const chatCpuUs: number[] = [];
    const ownChatUs: number[] = [];
    const ev0 = probe.evaluations();
    for (let i = 0; i < 10; i++) {
      await sleep(20);
      const arrived = chatSynced(client);
      const own0 = probe.ownCpuUs();
      const c = process.cpuUsage();
      await server.call("chat");
      await arrived;
      await sleep(5);
      chatCpuUs.push(cpuUs(c));
      ownChatUs.push(probe.ownCpuUs() - own0);
    }
    const chatEvaluations = probe.evaluations() - ev0;
    probe.detach();
    stopClient(client);
    variants[variant] = {
      firstListMs,
      firstListCpuMs,
      memoryBytes,
      changeCpuUs,
      changeLatencyMs,
      burst: { cpuMs: burst.cpuMs, emissions: burst.emissions, wallMs: burst.wallMs },
      catchUp: { cpuMs: catchUp.cpuMs, emissions: catchUp.emissions, wallMs: catchUp.wallMs },
      chatCpuUs,
      chatEvaluations,
    };
    if (variant === "ours")
      variants[variant]!.own = {
        changeUs: ownChangeUs,
        burstMs: burst.ownMs,
        catchUpMs: catchUp.ownMs,
        chatUs: ownChatUs,
      };
  }

  progress(`  both on one client…`);
  // Both on one client: the same list after every step?
  {
    const { client, room } = await startClient(url, owner, roomId);
    const ours = ourProbe(client, roomId, n);
    const theirs = jsSdkProbe(client, room, n);
    await ours.attach();
    await theirs.attach();
    const compare = (what: string) => {
      agreement.checks++;
      if (ours.ids().join() === theirs.ids().join()) agreement.equal++;
      else agreement.firstDifference ??= `${what}: ours ${ours.ids().length}, js-sdk ${theirs.ids().length}`;
    };
    compare("first list");
    for (let i = 0; i < Math.min(changes, 20); i++) {
      const intent = `both-${i}`;
      const shown = Promise.all([ours.shows(userIds[i % n], intent), theirs.shows(userIds[i % n], intent)]);
      await server.call("write", { from: i % n, count: 1, intent });
      await shown;
      await sleep(20);
      compare(`change ${i}`);
    }
    await writeInOneSync(client, n, "both-catchup");
    await Promise.all([
      ours.shows(userIds[n - 1], "both-catchup"),
      theirs.shows(userIds[n - 1], "both-catchup"),
    ]);
    await sleep(200);
    compare("catch-up");
    ours.detach();
    theirs.detach();
    stopClient(client);
  }
  server.close();
  return {
    n,
    changes,
    setupMs,
    variants: variants as Record<ObserverVariant, ObserverVariantResult>,
    agreement,
  };
}

/** Run one size in a child process with --expose-gc. */
export function runObserverChild(
  n: number,
  changes: number,
  timeoutMs = 900_000,
): Promise<ObserverSizeResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--expose-gc", "--import", "tsx", "bench/observer.ts", String(n), String(changes)],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`observer bench N=${n}: no result within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      const line = out.trim().split("\n").pop() ?? "";
      try {
        resolve(JSON.parse(line) as ObserverSizeResult);
      } catch {
        reject(new Error(`observer bench N=${n} exited ${code}: ${err.slice(-2000) || out.slice(-2000)}`));
      }
    });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  process.setSourceMapsEnabled(false);
  const n = Number(process.argv[2] ?? 1000);
  const changes = Number(process.argv[3] ?? 50);
  const result = await runObserverSize(n, changes);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}
