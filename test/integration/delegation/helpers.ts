/**
 * Shared pieces of the delegation suites (test homeserver and real Synapse): a delayed leave scheduled
 * and a membership written over plain HTTP, the three delegation requests as clients send them, and a
 * world of one room with alice (in the call) and bob (watching).
 */
import type { Credentials, TestSfuAuth } from "../../../src/testing/index.js";

export const CALL_MEMBER = "org.matrix.msc3401.call.member";
export const SLOT = "m.call#ROOM";
export const DELAY_QUERY = "org.matrix.msc4140.delay";
export const HOMESERVER_DELEGATE =
  "/_matrix/client/unstable/io.element.msc4195/rtc/livekit/delegate_delayed_leave";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const enc = encodeURIComponent;

/** The homeserver handle members these suites use (the test homeserver and `startSynapse()` both fit). */
export interface DelegationHomeserver {
  readonly baseUrl: string;
  createUser(localpart: string): Promise<Credentials>;
  createRoom(accessToken: string): Promise<string>;
  joinRoom(accessToken: string, roomId: string): Promise<void>;
  stateContent(roomId: string, type: string, stateKey: string): Record<string, unknown> | undefined;
  pendingDelayedEvents(): { delayId: string; userId: string; sendTs: number }[];
}

export const stateKeyOf = (user: Credentials) => `_${user.userId}_${user.deviceId}_m.call`;

async function json(res: Response): Promise<Record<string, unknown>> {
  const text = await res.text();
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { raw: text };
  }
}

/** `PUT` state; with `delayMs`, as a delayed event (MSC4140 unstable), returning its delay id. */
export async function putState(
  baseUrl: string,
  user: Credentials,
  roomId: string,
  stateKey: string,
  content: Record<string, unknown>,
  delayMs?: number,
): Promise<string | undefined> {
  const query = delayMs === undefined ? "" : `?${DELAY_QUERY}=${delayMs}`;
  const res = await fetch(
    `${baseUrl}/_matrix/client/v3/rooms/${enc(roomId)}/state/${enc(CALL_MEMBER)}/${enc(stateKey)}${query}`,
    {
      method: "PUT",
      headers: { Authorization: `Bearer ${user.accessToken}`, "content-type": "application/json" },
      body: JSON.stringify(content),
    },
  );
  const body = await json(res);
  if (res.status !== 200) throw new Error(`PUT state → ${res.status} ${JSON.stringify(body)}`);
  return body.delay_id as string | undefined;
}

export const joinContent = (user: Credentials, memberId: string) => ({
  application: "m.call",
  call_id: "",
  scope: "m.room",
  device_id: user.deviceId,
  member_id: memberId,
  expires: 3_600_000,
  focus_active: { type: "livekit", focus_selection: "oldest_membership" },
  foci_preferred: [],
});

/** The delayed leave first, then the membership (the order js-sdk and this package use). */
export async function joinWithDelayedLeave(
  baseUrl: string,
  user: Credentials,
  roomId: string,
  memberId: string,
  delayMs: number,
): Promise<string> {
  const key = stateKeyOf(user);
  const delayId = await putState(baseUrl, user, roomId, key, {}, delayMs);
  if (!delayId) throw new Error("no delay id");
  await putState(baseUrl, user, roomId, key, joinContent(user, memberId));
  return delayId;
}

export async function openIdToken(baseUrl: string, user: Credentials): Promise<Record<string, unknown>> {
  const res = await fetch(`${baseUrl}/_matrix/client/v3/user/${enc(user.userId)}/openid/request_token`, {
    method: "POST",
    headers: { Authorization: `Bearer ${user.accessToken}`, "content-type": "application/json" },
    body: "{}",
  });
  if (res.status !== 200) throw new Error(`openid → ${res.status}`);
  return json(res);
}

export interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** MSC4195's homeserver endpoint, as matrix-js-sdk 43 calls it (`member: {id, claimed_device_id}`). */
export async function delegateAtHomeserver(
  baseUrl: string,
  user: Credentials,
  body: Record<string, unknown>,
  path = HOMESERVER_DELEGATE,
): Promise<Answer> {
  const res = await fetch(`${baseUrl}${path}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${user.accessToken}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await json(res) };
}

export const jsSdkBody = (
  sfu: TestSfuAuth,
  user: Credentials,
  roomId: string,
  memberId: string,
  delayId: string,
): Record<string, unknown> => ({
  url: sfu.livekitUrl,
  room_id: roomId,
  slot_id: SLOT,
  member: { id: memberId, claimed_device_id: user.deviceId },
  delay_id: delayId,
});

/** POST to the token service itself (lk-jwt-service's own endpoints). */
export async function postToService(sfu: TestSfuAuth, path: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${sfu.url}${path}`, {
    method: "POST",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await json(res) };
}

/** The restarts and sends the service made, as `action status` strings. */
export const serviceActions = (sfu: TestSfuAuth, delayId: string) =>
  sfu.homeserverRequests
    .filter((r) => r.delayId === delayId && (r.action === "restart" || r.action === "send"))
    .map((r) => `${r.action} ${r.status}`);

export const isPending = (hs: DelegationHomeserver, delayId: string) =>
  hs.pendingDelayedEvents().some((e) => e.delayId === delayId);
