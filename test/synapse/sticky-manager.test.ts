/**
 * The manager in the sticky format (client mode: ClientBackend over matrix-js-sdk 43) on a real Synapse
 * 1.163.2 with MSC4354 on (issue 21 item 5): join, heartbeats, refreshes before the (shortened) stickiness
 * runs out, clean leave; a crash fires the sticky delayed leave; a network cut longer than the delay, then
 * the rejoin. Every assertion is on what Synapse delivers through `/sync` to another user (its timeline
 * and its `msc4354_sticky` section, with the TTL Synapse computes) and on what Synapse holds (its pending
 * delayed events, its room state), not on what the manager says. And a Synapse with MSC4354 off (which
 * would silently send a plain event): the typed error `sticky-events-unsupported`, and Synapse holds no
 * event of ours.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@jest/globals";
import { createClient, type MatrixClient } from "matrix-js-sdk";
import log from "loglevel";
import { ClientBackend, MembershipManager, type LeaveResult } from "../../src/index.js";
import {
  startFaultyLink,
  startSynapse,
  type Credentials,
  type FaultyLink,
  type SynapseHomeserver,
} from "../../src/testing/index.js";
import { RTC_MEMBER_EVENT_TYPE } from "../../src/membership/rtcMember.js";
import { silentLogger } from "../integration/homeserver/helpers.js";
import { sleep, until } from "./helpers.js";

const quiet = log.getLogger("quiet-sticky-manager");
quiet.setLevel("silent");

// Long enough that the manager's local request timeout (delay / 5) holds on a loaded machine's Synapse.
const DELAY = 4000;
/** The shortened stickiness: the manager sends its membership again every half of it (format.ts). */
const STICKY = 10_000;

/** One sticky event as Bob's /sync delivers it. */
interface SyncedEvent {
  event_id: string;
  sender: string;
  type: string;
  origin_server_ts: number;
  content: Record<string, unknown>;
  msc4354_sticky?: { duration_ms?: number };
  unsigned?: { msc4354_sticky_duration_ttl_ms?: number };
}

/** What Bob's fresh /sync shows of Alice's sticky memberships, by sticky key. */
interface BobView {
  /** Sticky `m.rtc.member` events of Alice (timeline and sticky section, deduplicated by event id). */
  events: SyncedEvent[];
  /** The event that counts per sticky key: unexpired by Synapse's TTL, the newest. */
  current: Map<string, SyncedEvent>;
  /** Whether each came in the sticky section. */
  inStickySection: Set<string>;
}

let synapse: SynapseHomeserver;
let users = 0;
let syncs = 0;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  synapse = await startSynapse({ version: "1.163.2", stickyEvents: true });
}, 180_000);
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  await synapse?.close();
});

/** Bob's /sync, fresh (no `since`): what a client joining now, or syncing from scratch, is told. */
async function bobSees(
  hs: SynapseHomeserver,
  bob: Credentials,
  roomId: string,
  aliceId: string,
): Promise<BobView> {
  // Synapse answers the same initial /sync from its cache for a while (sync_response_cache_duration):
  // a filter of its own each time (excluding an event type nobody sends) makes every one fresh.
  const filter = JSON.stringify({ room: { timeline: { limit: 50, not_types: [`x.fresh.${++syncs}`] } } });
  const res = await fetch(
    `${hs.baseUrl}/_matrix/client/v3/sync?filter=${encodeURIComponent(filter)}&timeout=0`,
    {
      headers: { authorization: `Bearer ${bob.accessToken}` },
    },
  );
  if (!res.ok) throw new Error(`Bob's /sync: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as {
    rooms?: {
      join?: Record<
        string,
        { timeline?: { events?: SyncedEvent[] }; msc4354_sticky?: { events?: SyncedEvent[] } }
      >;
    };
  };
  const room = body.rooms?.join?.[roomId];
  const byId = new Map<string, SyncedEvent>();
  const inStickySection = new Set<string>();
  for (const e of room?.msc4354_sticky?.events ?? []) {
    byId.set(e.event_id, e);
    inStickySection.add(e.event_id);
  }
  for (const e of room?.timeline?.events ?? []) if (e.msc4354_sticky) byId.set(e.event_id, e);
  const events = [...byId.values()].filter((e) => e.type === RTC_MEMBER_EVENT_TYPE && e.sender === aliceId);
  const current = new Map<string, SyncedEvent>();
  for (const e of events) {
    const key = e.content.msc4354_sticky_key;
    const ttl = e.unsigned?.msc4354_sticky_duration_ttl_ms;
    if (typeof key !== "string" || !(typeof ttl === "number" && ttl > 0)) continue;
    const seen = current.get(key);
    if (!seen || seen.origin_server_ts <= e.origin_server_ts) current.set(key, e);
  }
  return { events, current, inStickySection };
}

/** A joined membership (MSC4143): its member, application, transports; a leave has only slot and key. */
const isMembership = (e: SyncedEvent | undefined) =>
  !!e && typeof e.content.member === "object" && e.content.application !== undefined;
const isLeave = (e: SyncedEvent | undefined, key: string) =>
  !!e &&
  Object.keys(e.content).length === 2 &&
  e.content.slot_id === "m.call#ROOM" &&
  e.content.msc4354_sticky_key === key;

/** Polls Bob's fresh /sync until `pred` holds (every 250 ms: each is a full sync). */
async function untilBob(
  hs: SynapseHomeserver,
  w: World,
  pred: (v: BobView) => boolean,
  timeoutMs: number,
  what: string,
): Promise<BobView> {
  const start = Date.now();
  for (;;) {
    const v = await bobSees(hs, w.bob, w.roomId, w.alice.userId);
    if (pred(v)) return v;
    if (Date.now() - start > timeoutMs)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for Bob to see ${what}; he sees ${JSON.stringify(v.events.map((e) => [e.content.msc4354_sticky_key, Object.keys(e.content).length, e.unsigned]))}`,
      );
    await sleep(250);
  }
}

interface World {
  alice: Credentials;
  bob: Credentials;
  roomId: string;
  link: FaultyLink;
  client: MatrixClient;
  manager: MembershipManager;
}

/** Alice (the manager, a bare js-sdk client behind a FaultyLink) and Bob (a /sync reader) in a fresh room. */
async function world(hs: SynapseHomeserver): Promise<World> {
  users += 1;
  const alice = await hs.createUser(`stickymgralice${users}`);
  const bob = await hs.createUser(`stickymgrbob${users}`);
  const roomId = await hs.createRoom(alice.accessToken);
  await hs.joinRoom(bob.accessToken, roomId);
  const link = await startFaultyLink({ target: hs.baseUrl });
  cleanups.push(() => link.close());
  const client = createClient({ baseUrl: link.url, ...alice, logger: silentLogger });
  cleanups.push(() => client.stopClient());
  const manager = new MembershipManager({
    backend: new ClientBackend(client),
    roomId,
    userId: alice.userId,
    deviceId: alice.deviceId,
    delayedLeaveDelayMs: DELAY,
    membershipFormat: "sticky",
    stickyDurationMs: STICKY,
    fociPreferred: [{ type: "livekit", livekit_service_url: "https://lk.example" }],
    logger: quiet,
  });
  cleanups.push(() => manager.dispose());
  return { alice, bob, roomId, link, client, manager };
}

/** Alice's pending delayed events on Synapse (read through Alice's own listing). */
const pendingOf = (hs: SynapseHomeserver, w: World) =>
  hs.pendingDelayedEvents().filter((e) => e.userId === w.alice.userId);

/** Join and wait until Bob's /sync lists Alice's membership at her member id. */
async function joined(hs: SynapseHomeserver): Promise<World & { memberId: string }> {
  const w = await world(hs);
  w.manager.join();
  const memberId = w.manager.memberId!;
  try {
    await untilBob(hs, w, (v) => isMembership(v.current.get(memberId)), 10_000, "Alice's membership");
  } catch (e) {
    // What the manager said and what went through its link (paths only: no tokens), for the reader.
    const requests = w.link.log.map((r) => `${r.method} ${r.path.slice(-50)} ${r.upstreamStatus}`);
    throw new Error(
      `${String(e)}; manager ${JSON.stringify(w.manager.state)}; requests ${requests.join(", ")}`,
    );
  }
  return { ...w, memberId };
}

describe("the manager in the sticky format on real Synapse 1.163.2 (msc4354_enabled)", () => {
  it("join, heartbeats, refreshes before the stickiness runs out, clean leave: as Bob's /sync shows it", async () => {
    const w = await joined(synapse);
    const { memberId } = w;
    const first = (await bobSees(synapse, w.bob, w.roomId, w.alice.userId)).current.get(memberId)!;
    // What Synapse delivers: MSC4143 content, sticky for our (shortened) duration, the TTL counting down.
    expect(first.content).toMatchObject({
      slot_id: "m.call#ROOM",
      application: { type: "m.call" },
      member: { user_id: w.alice.userId, device_id: w.alice.deviceId, id: memberId },
      msc4354_sticky_key: memberId,
    });
    expect(first.msc4354_sticky).toEqual({ duration_ms: STICKY });
    expect(first.unsigned!.msc4354_sticky_duration_ttl_ms).toBeLessThanOrEqual(STICKY);
    // The sticky format writes no state: no call member state event of Alice's in the room.
    expect(synapse.roomState(w.roomId).filter((e) => e.type.includes("call.member"))).toEqual([]);
    // The delayed leave Synapse holds: MSC4143's "left" at our key, sticky.
    const [pending] = pendingOf(synapse, w);
    expect(pendingOf(synapse, w)).toHaveLength(1);
    expect(pending).toMatchObject({
      delayMs: DELAY,
      type: RTC_MEMBER_EVENT_TYPE,
      content: { slot_id: "m.call#ROOM", msc4354_sticky_key: memberId },
    });

    // Past two stickinesses: heartbeats keep the same delayed leave, refreshes keep Bob seeing Alice
    // (a fresh /sync sees an unexpired membership throughout, each refresh a new event).
    const until2 = first.origin_server_ts + 2 * STICKY + 1000;
    let samples = 0;
    while (Date.now() < until2) {
      const v = await bobSees(synapse, w.bob, w.roomId, w.alice.userId);
      expect(isMembership(v.current.get(memberId))).toBe(true);
      samples++;
      await sleep(1000);
    }
    expect(samples).toBeGreaterThan(10);
    const after = await bobSees(synapse, w.bob, w.roomId, w.alice.userId);
    const memberships = after.events.filter(
      (e) => e.content.msc4354_sticky_key === memberId && isMembership(e),
    );
    // One first event and a refresh at least every half stickiness.
    expect(memberships.length).toBeGreaterThanOrEqual(4);
    expect(new Set(memberships.map((e) => e.event_id)).size).toBe(memberships.length);
    const later = pendingOf(synapse, w);
    expect(later).toHaveLength(1);
    expect(later[0].delayId).toBe(pending.delayId);
    expect(later[0].sendTs).toBeGreaterThan(pending.sendTs + STICKY);

    const result: LeaveResult = await w.manager.leave({ timeoutMs: 5000 });
    expect(result).toEqual({ status: "left", via: "delayed-event-sent" });
    const left = await untilBob(
      synapse,
      w,
      (v) => isLeave(v.current.get(memberId), memberId),
      5000,
      "Alice's leave",
    );
    expect(isLeave(left.current.get(memberId), memberId)).toBe(true);
    expect(pendingOf(synapse, w)).toHaveLength(0);
  });

  it("a fresh /sync delivers a membership outside the timeline in the sticky section", async () => {
    const w = await joined(synapse);
    // Bury Alice's membership under more timeline events than Bob's filter asks for.
    const bobClient = createClient({ baseUrl: synapse.baseUrl, ...w.bob, logger: silentLogger });
    cleanups.push(() => bobClient.stopClient());
    for (let i = 0; i < 6; i++) await bobClient.sendTextMessage(w.roomId, `filler ${i}`);
    const filter = JSON.stringify({ room: { timeline: { limit: 3, not_types: [`x.fresh.${++syncs}`] } } });
    const res = await fetch(
      `${synapse.baseUrl}/_matrix/client/v3/sync?filter=${encodeURIComponent(filter)}&timeout=0`,
      {
        headers: { authorization: `Bearer ${w.bob.accessToken}` },
      },
    );
    const body = (await res.json()) as {
      rooms: { join: Record<string, { msc4354_sticky?: { events?: SyncedEvent[] } }> };
    };
    const sticky = body.rooms.join[w.roomId].msc4354_sticky?.events ?? [];
    const ours = sticky.filter(
      (e) => e.sender === w.alice.userId && e.content.msc4354_sticky_key === w.memberId,
    );
    expect(ours.length).toBeGreaterThanOrEqual(1);
    expect(isMembership(ours.at(-1))).toBe(true);
  });

  it("crash (dispose without leave): Synapse fires the sticky delayed leave within the delay", async () => {
    const w = await joined(synapse);
    await sleep(DELAY / 2);
    const crashedAt = Date.now();
    w.manager.dispose();
    await untilBob(
      synapse,
      w,
      (v) => isLeave(v.current.get(w.memberId), w.memberId),
      DELAY + 3000,
      "the fired leave",
    );
    expect(Date.now() - crashedAt).toBeLessThanOrEqual(DELAY + 3000);
    // Fired by Synapse's own timer: nothing of Alice's went out after the crash (a request already on
    // its way at the crash is given 100 ms).
    expect(w.link.log.filter((r) => r.ts > crashedAt + 100)).toEqual([]);
    expect(pendingOf(synapse, w)).toHaveLength(0);
  });

  it("a network cut longer than the delay: the leave fires, then the rejoin after the restore", async () => {
    const w = await joined(synapse);
    w.link.cut();
    const cutAt = Date.now();
    await untilBob(
      synapse,
      w,
      (v) => isLeave(v.current.get(w.memberId), w.memberId),
      DELAY + 3000,
      "the fired leave",
    );
    expect(Date.now() - cutAt).toBeLessThanOrEqual(DELAY + 3000);
    expect(pendingOf(synapse, w)).toHaveLength(0);
    await until(() => w.manager.probablyLeft, DELAY, "probablyLeft");
    await sleep(DELAY);

    w.link.restore();
    const key = () => w.manager.memberId!;
    const back = await untilBob(synapse, w, (v) => isMembership(v.current.get(key())), 15_000, "Alice back");
    expect(back.current.get(key())!.content).toMatchObject({
      member: { id: key(), device_id: w.alice.deviceId },
    });
    await until(() => pendingOf(synapse, w).length === 1, 5000, "a new delayed leave");
    expect(pendingOf(synapse, w)[0].content).toEqual({ slot_id: "m.call#ROOM", msc4354_sticky_key: key() });
    await until(() => w.manager.status === "connected" && !w.manager.probablyLeft, 5000, "connected");
  });
});

describe("the manager in the sticky format on a Synapse 1.163.2 with MSC4354 off", () => {
  let plain: SynapseHomeserver | undefined;
  afterAll(async () => {
    await plain?.close();
  });

  it("fails with sticky-events-unsupported; Synapse holds no event of ours and nothing delayed", async () => {
    plain = await startSynapse({ version: "1.163.2", stickyEvents: false });
    const w = await world(plain);
    const codes: string[] = [];
    w.manager.errors$.subscribe((e) => codes.push(e.code));
    w.manager.join();
    await until(() => w.manager.state.kind === "failed", 10_000, "failed");
    expect(w.manager.state).toMatchObject({ kind: "failed", error: { code: "sticky-events-unsupported" } });
    expect(codes).toContain("sticky-events-unsupported");
    await sleep(DELAY);
    // Nothing of Alice's beyond joining the room (her create/join events): no plain m.rtc.member.
    const ours = plain
      .timeline(w.roomId)
      .filter((e) => e.sender === w.alice.userId && !e.type.startsWith("m.room."));
    expect(ours).toEqual([]);
    expect(pendingOf(plain, w)).toHaveLength(0);
    // And nothing was even asked of it: no PUT went through Alice's link.
    expect(w.link.log.filter((r) => r.method === "PUT")).toEqual([]);
  }, 180_000);
});
