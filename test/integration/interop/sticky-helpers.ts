/**
 * Pieces of the sticky-membership interop tests (MSC4143 `org.matrix.msc4143.rtc.member` sticky events,
 * MSC4354): a device joined with matrix-js-sdk 43's own MatrixRTCSession in either of its membership
 * formats, and what a plain `/sync` (no js-sdk, no code of ours) delivers to another user, reduced to the
 * devices whose sticky membership is current.
 *
 * Why a raw `/sync`: it is independent of our code, so "our side gets js-sdk's sticky device" does not
 * rest on our own observer (which lists it too: observer-sticky.test.ts, widget-observer-sticky.test.ts).
 * It is read by the rule js-sdk 43 and MSC4354 share: one entry per (sender, sticky key), the newest
 * wins, a member is current while its stickiness lasts and its content is a join (has `member`).
 */
import { randomUUID } from "node:crypto";
import type { MatrixClient } from "matrix-js-sdk";
import type { MatrixRTCSession } from "matrix-js-sdk/lib/matrixrtc/index.js";
import { stopClient, syncedClient, waitFor, type UserCreds } from "../../helpers/matrix.js";
import { roomOf } from "./helpers.js";

export const RTC_MEMBER = "org.matrix.msc4143.rtc.member";
export const STATE_MEMBER = "org.matrix.msc3401.call.member";

/** A device in the call through js-sdk's MatrixRTCSession, with its state or its sticky manager. */
export interface JsDevice {
  userId: string;
  deviceId: string;
  /** The member id js-sdk joined with (the sticky key, in the sticky format). */
  memberId: string;
  format: "state" | "sticky";
  client: MatrixClient;
  session: MatrixRTCSession;
  /** "@user|DEVICE" of every device its MatrixRTCSession lists. */
  lists(): string[];
  leave(timeoutMs?: number): Promise<boolean>;
  stop(): void;
}

export async function joinWithJs(
  baseUrl: string,
  creds: UserCreds,
  roomId: string,
  options: { delayMs: number; format: "state" | "sticky"; client?: MatrixClient },
): Promise<JsDevice> {
  const client = options.client ?? (await syncedClient(baseUrl, creds));
  const room = await roomOf(client, roomId);
  const session = client.matrixRTC.getRoomSession(room);
  // js-sdk's sticky manager keys its membership by this id: fresh per join, as MSC4143 asks.
  const memberId = options.format === "sticky" ? randomUUID() : `${creds.userId}:${creds.deviceId}`;
  const transport = { type: "livekit", livekit_service_url: `https://lk.${creds.deviceId}.example` };
  session.joinRTCSession(
    { userId: creds.userId, deviceId: creds.deviceId, memberId },
    [transport],
    // js-sdk 43's sticky manager publishes the active transport and throws without one (as Element Call
    // in matrix_2_0 mode passes it).
    options.format === "sticky" ? transport : undefined,
    {
      callIntent: "video",
      delayedLeaveEventDelayMs: options.delayMs,
      delayedLeaveEventRestartMs: Math.round(options.delayMs / 3),
      delayedLeaveEventRestartLocalTimeoutMs: Math.round(options.delayMs / 4),
      networkErrorRetryMs: 200,
      manageMediaKeys: false,
      ...(options.format === "sticky" ? { unstableSendStickyEvents: true } : {}),
    },
  );
  return {
    userId: creds.userId,
    deviceId: creds.deviceId,
    memberId,
    format: options.format,
    client,
    session,
    lists: () => listedBy(client, roomId),
    leave: (timeoutMs = 5000) => session.leaveRoomSession(timeoutMs),
    stop: () => stopClient(client),
  };
}

/** "@user|DEVICE" of every member js-sdk's MatrixRTCSession in `client` lists, sorted. */
export function listedBy(client: MatrixClient, roomId: string): string[] {
  const room = client.getRoom(roomId);
  if (!room) return [];
  return client.matrixRTC
    .getRoomSession(room)
    .memberships.map((m) => `${m.sender}|${m.deviceId}`)
    .sort();
}

export const sorted = (ids: string[]): string[] => [...ids].sort();
export const idOf = (d: { userId: string; deviceId: string }): string => `${d.userId}|${d.deviceId}`;

/** One sticky membership event as `/sync` delivered it. */
export interface RawStickyEvent {
  event_id: string;
  type: string;
  sender: string;
  origin_server_ts: number;
  content: Record<string, unknown>;
  unsigned?: { msc4354_sticky_duration_ttl_ms?: number };
  msc4354_sticky?: { duration_ms?: number };
}

let syncs = 0;

/**
 * A plain HTTP `/sync` of `accessToken` (from scratch unless `since`), timeline limit 100 or more. Each
 * request's filter differs (the limit counts up): Synapse answers an identical `/sync` from its response
 * cache for two minutes, so polling the same from-scratch request would read the first answer again.
 */
export async function rawSync(
  baseUrl: string,
  accessToken: string,
  since?: string,
): Promise<Record<string, unknown>> {
  syncs = (syncs + 1) % 900;
  const limit = 100 + syncs;
  const params = new URLSearchParams({ filter: JSON.stringify({ room: { timeline: { limit } } }) });
  if (since) params.set("since", since);
  params.set("timeout", "0");
  const res = await fetch(`${baseUrl}/_matrix/client/v3/sync?${params}`, {
    headers: { Authorization: `Bearer ${accessToken}` },
  });
  if (res.status !== 200) throw new Error(`/sync answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as Record<string, unknown>;
}

/** Every event of `type` a `/sync` body delivers for `roomId`: the timeline and the sticky section. */
export function syncedEvents(body: Record<string, unknown>, roomId: string, type: string): RawStickyEvent[] {
  const room = (body.rooms as { join?: Record<string, Record<string, { events?: unknown[] }>> } | undefined)
    ?.join?.[roomId];
  if (!room) return [];
  const all = [...(room.msc4354_sticky?.events ?? []), ...(room.timeline?.events ?? [])] as RawStickyEvent[];
  const seen = new Set<string>();
  return all.filter((e) => e.type === type && !seen.has(e.event_id) && seen.add(e.event_id));
}

/**
 * The devices whose sticky membership in `roomId` is current in a from-scratch `/sync` of `accessToken`,
 * as "@user|DEVICE", sorted: per (sender, sticky key) the newest event, kept while its TTL lasts and when
 * it is a join (`member` with the sender's user id).
 */
export async function stickyMembersInSync(
  baseUrl: string,
  accessToken: string,
  roomId: string,
): Promise<string[]> {
  const events = syncedEvents(await rawSync(baseUrl, accessToken), roomId, RTC_MEMBER);
  const newest = new Map<string, RawStickyEvent>();
  for (const e of events) {
    const key = e.content.msc4354_sticky_key;
    if (typeof key !== "string") continue;
    const id = `${e.sender}\u0000${key}`;
    const had = newest.get(id);
    if (!had || e.origin_server_ts >= had.origin_server_ts) newest.set(id, e);
  }
  const members: string[] = [];
  for (const e of newest.values()) {
    if ((e.unsigned?.msc4354_sticky_duration_ttl_ms ?? 0) <= 0) continue;
    const member = e.content.member as { user_id?: unknown; device_id?: unknown } | undefined;
    if (member?.user_id !== e.sender || typeof member.device_id !== "string") continue;
    members.push(`${e.sender}|${member.device_id}`);
  }
  return members.sort();
}

/** Waits until `read()` equals `expected` (both sorted lists); the error names what was last seen. */
export async function untilEqual(
  read: () => string[] | Promise<string[]>,
  expected: string[],
  timeoutMs: number,
  what: string,
): Promise<void> {
  let last: string[] = [];
  const want = JSON.stringify(sorted(expected));
  try {
    await waitFor(
      async () => {
        last = await read();
        return JSON.stringify(last) === want;
      },
      timeoutMs,
      what,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}: last saw ${JSON.stringify(last)}, wanted ${want}`);
  }
}
