/**
 * The observer bench's probes: what each variant (no observer, ours, js-sdk's `MatrixRTCSession`)
 * exposes to the measuring loop in bench/observer.ts.
 */
import { ClientEvent, type MatrixClient, type Room } from "matrix-js-sdk";
import { MatrixRTCSessionEvent, type MatrixRTCSession } from "matrix-js-sdk/lib/matrixrtc/index.js";
import type { Subscription } from "rxjs";
import { callMembers$, type CallMember } from "../src/index.js";
import { CALL_MEMBER_EVENT_TYPE } from "../src/membership/content.js";
import { storeCounters } from "../src/membership/store.js";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const cpuUs = (from: NodeJS.CpuUsage) => {
  const d = process.cpuUsage(from);
  return d.user + d.system;
};

/** What each variant exposes to the measuring loop. */
export interface Probe {
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
  /**
   * Resolves once the observer has nothing left to do for what it received (js-sdk: its chain of
   * recalculations has run out; ours works synchronously inside the sync). Bounded: about a second at most.
   */
  settled(): Promise<void>;
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

export function ourProbe(client: MatrixClient, roomId: string, n: number): Probe {
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
    settled: () => sleep(20),
    detach: () => {
      sub?.unsubscribe();
      client.off(ClientEvent.Sync, before);
      client.off(ClientEvent.Sync, after);
    },
  };
}

export function jsSdkProbe(client: MatrixClient, room: Room, n: number): Probe {
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
    async settled() {
      // js-sdk chains each recalculation on the previous one's promise; a sync's later events may start
      // another while one runs. Quiet means: the chain did not grow while we waited on it.
      const s = session as unknown as {
        recalculateSessionMembersPromise?: Promise<void>;
        membershipNeedsRecalculation?: boolean;
      };
      for (let i = 0; i < 50; i++) {
        const chain = s?.recalculateSessionMembersPromise;
        await chain?.catch(() => undefined);
        await sleep(20);
        if (chain === s?.recalculateSessionMembersPromise && !s?.membershipNeedsRecalculation) return;
      }
    },
    detach: () => {
      session?.off(MatrixRTCSessionEvent.MembershipsChanged, onChanged);
      client.matrixRTC.stop();
    },
  };
}

/** No observer: "shows" is the client's room state holding the event at the end of a sync. */
export function clientProbe(client: MatrixClient, room: Room, stateKeys: Map<string, string>): Probe {
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
      return new Promise((resolve) => {
        const w = { check: () => intentOf(userId) === intent, resolve };
        if (w.check()) resolve();
        else waiters.add(w);
      });
    },
    emissions: () => 0,
    evaluations: () => 0,
    ids: () => [],
    ownCpuUs: () => NaN,
    settled: () => sleep(20),
    detach: () => client.off(ClientEvent.Sync, onSync),
  };
}
