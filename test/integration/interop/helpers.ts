/**
 * Shared pieces of the interop tests: what matrix-js-sdk's MatrixRTCSession lists in a synced client,
 * what our observer lists in the same client, both reduced to the same comparable shape, and a device
 * joined with js-sdk's own MatrixRTCSession.joinRTCSession.
 */
import type { MatrixClient, Room } from "matrix-js-sdk";
import type { CallMembership, MatrixRTCSession } from "matrix-js-sdk/lib/matrixrtc/index.js";
import type { Subscription } from "rxjs";
import {
  callMembers$,
  roomStateSource,
  type CallMember,
  type CallMembersOptions,
  type Transport,
} from "../../../src/index.js";
import { syncedClient, stopClient, waitFor, type UserCreds } from "../../helpers/matrix.js";

export const NO_LIMITS = { rateLimits: { message: null, delayedEventMgmt: null } };
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The fields both sides expose, in one shape. */
export interface MemberView {
  userId: string;
  deviceId: string;
  memberId: string;
  createdTs: number;
  expiresAt: number | undefined;
  callIntent: string | undefined;
  fociPreferred: Transport[];
  slot: string;
}

export function viewOfJsSdk(m: CallMembership): MemberView {
  return {
    userId: m.userId,
    deviceId: m.deviceId,
    memberId: m.memberId,
    createdTs: m.createdTs(),
    expiresAt: m.getAbsoluteExpiry(),
    callIntent: m.callIntent,
    fociPreferred: m.transports,
    slot: m.slotId,
  };
}

export function viewOfOurs(m: CallMember): MemberView {
  return {
    userId: m.userId,
    deviceId: m.deviceId,
    memberId: m.memberId,
    createdTs: m.createdTs,
    expiresAt: m.expiresAt,
    callIntent: m.callIntent,
    fociPreferred: m.fociPreferred,
    slot: `${m.slot.application}#${m.slot.id}`,
  };
}

export async function roomOf(client: MatrixClient, roomId: string): Promise<Room> {
  await waitFor(() => client.getRoom(roomId) !== null, 5000, `${client.getUserId()} to know the room`);
  return client.getRoom(roomId)!;
}

/** js-sdk's session for the room call, in a synced client. */
export function jsSession(client: MatrixClient, roomId: string): MatrixRTCSession {
  const room = client.getRoom(roomId);
  if (!room) throw new Error("room not synced yet");
  return client.matrixRTC.getRoomSession(room);
}

export const jsSdkView = (client: MatrixClient, roomId: string): MemberView[] =>
  client.getRoom(roomId) ? jsSession(client, roomId).memberships.map(viewOfJsSdk) : [];

/** Our observer on a synced client; `latest()` is the last list it emitted. */
export interface OurObserver {
  latest(): CallMember[];
  view(): MemberView[];
  /** "@user|DEVICE" per member, oldest first. */
  ids(): string[];
  emissions: CallMember[][];
  stop(): void;
}

export function observeWithUs(
  client: MatrixClient,
  roomId: string,
  options: Omit<CallMembersOptions, "roomId"> = {},
): OurObserver {
  const emissions: CallMember[][] = [];
  const sub: Subscription = callMembers$(roomStateSource(client, roomId), options).subscribe((m) =>
    emissions.push(m),
  );
  const latest = () => emissions.at(-1) ?? [];
  return {
    latest,
    view: () => latest().map(viewOfOurs),
    ids: () => latest().map((m) => `${m.userId}|${m.deviceId}`),
    emissions,
    stop: () => sub.unsubscribe(),
  };
}

export const idOf = (d: { userId: string; deviceId: string }) => `${d.userId}|${d.deviceId}`;

/** A device in the call through matrix-js-sdk's own MatrixRTCSession (what Element Call runs). */
export interface JsSdkDevice {
  userId: string;
  deviceId: string;
  client: MatrixClient;
  session: MatrixRTCSession;
  leave(timeoutMs?: number): Promise<boolean>;
  stop(): void;
}

export async function joinWithJsSdk(
  baseUrl: string,
  creds: UserCreds,
  roomId: string,
  options: { delayMs: number; callIntent?: string; fociPreferred?: Transport[] },
): Promise<JsSdkDevice> {
  const client = await syncedClient(baseUrl, creds);
  const room = await roomOf(client, roomId);
  const session = client.matrixRTC.getRoomSession(room);
  session.joinRTCSession(
    { userId: creds.userId, deviceId: creds.deviceId, memberId: `${creds.userId}:${creds.deviceId}` },
    options.fociPreferred ?? [
      { type: "livekit", livekit_service_url: `https://lk.${creds.deviceId}.example` },
    ],
    undefined,
    {
      callIntent: options.callIntent ?? "video",
      delayedLeaveEventDelayMs: options.delayMs,
      delayedLeaveEventRestartMs: Math.round(options.delayMs / 3),
      delayedLeaveEventRestartLocalTimeoutMs: Math.round(options.delayMs / 4),
      networkErrorRetryMs: 200,
      manageMediaKeys: false,
    },
  );
  return {
    userId: creds.userId,
    deviceId: creds.deviceId,
    client,
    session,
    leave: (timeoutMs = 5000) => session.leaveRoomSession(timeoutMs),
    stop: () => stopClient(client),
  };
}
