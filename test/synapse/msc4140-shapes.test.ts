/**
 * What real Synapse 1.163.2 speaks of MSC4140 (issue 14): the unstable shape only (no merged endpoints,
 * no `org.matrix.msc4140.stable`), `GET …/delayed_events/{delay_id}` on the unstable prefix for pending
 * events only, the new field names, and the new max-delay error. And that ClientBackend, left on
 * `auto`, picks the unstable shape there and reads Synapse's lookup correctly. Recorded in
 * docs/compatibility.md ("MSC4140 as merged").
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { ClientBackend } from "../../src/backends/client.js";
import { classifyError } from "../../src/errors.js";
import { startSynapse, type Credentials, type SynapseHomeserver } from "../../src/testing/index.js";
import { bareClient } from "../helpers/matrix.js";

const CALL_MEMBER = "org.matrix.msc3401.call.member";
const UNSTABLE = "/_matrix/client/unstable/org.matrix.msc4140";
const MAX_DELAY = 60_000;
const enc = encodeURIComponent;

let hs: SynapseHomeserver;
let alice: Credentials;
let bob: Credentials;
let roomId: string;

beforeAll(async () => {
  hs = await startSynapse({ maxDelayMs: MAX_DELAY });
  alice = await hs.createUser("alice");
  bob = await hs.createUser("bob");
  roomId = await hs.createRoom(alice.accessToken);
  await hs.joinRoom(bob.accessToken, roomId);
}, 120_000);
afterAll(async () => {
  await hs?.close();
});

async function req(
  method: string,
  path: string,
  token?: string,
  body?: unknown,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
): Promise<{ status: number; body: any }> {
  const res = await fetch(hs.baseUrl + path, {
    method,
    headers: {
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function scheduleUnstable(
  stateKey: string,
  delayMs: number,
  token = alice.accessToken,
): Promise<string> {
  const path = `/_matrix/client/v3/rooms/${enc(roomId)}/state/${enc(CALL_MEMBER)}/${enc(stateKey)}?org.matrix.msc4140.delay=${delayMs}`;
  const res = await req("PUT", path, token, {});
  expect(res.status).toBe(200);
  return res.body.delay_id as string;
}

describe("Synapse 1.163.2 and MSC4140", () => {
  it("advertises only the unstable shape", async () => {
    const versions = await req("GET", "/_matrix/client/versions");
    expect(versions.body.unstable_features["org.matrix.msc4140"]).toBe(true);
    expect(versions.body.unstable_features["org.matrix.msc4140.stable"]).toBeUndefined();
    const caps = await req("GET", "/_matrix/client/v3/capabilities", alice.accessToken);
    expect(caps.body.capabilities["org.matrix.msc4140.delayed_events"]).toEqual({
      max_delay_ms: MAX_DELAY,
      max_scheduled: 100,
    });
    expect(caps.body.capabilities["m.delayed_events"]).toBeUndefined();
  });

  it("has none of the merged endpoints", async () => {
    const body = { delay_ms: 1000, state_key: "k", content: {} };
    const answers = [
      await req(
        "PUT",
        `/_matrix/client/v3/rooms/${enc(roomId)}/delayed_event/${CALL_MEMBER}/t1`,
        alice.accessToken,
        body,
      ),
      await req(
        "PUT",
        `${UNSTABLE}/rooms/${enc(roomId)}/delayed_event/${CALL_MEMBER}/t2`,
        alice.accessToken,
        body,
      ),
      await req("POST", "/_matrix/client/v1/delayed_events/x/restart", alice.accessToken, {}),
      await req("GET", "/_matrix/client/v1/delayed_events/x", alice.accessToken),
    ];
    expect(answers.map((a) => [a.status, a.body?.errcode])).toEqual([
      [404, "M_UNRECOGNIZED"],
      [404, "M_UNRECOGNIZED"],
      [404, "M_UNRECOGNIZED"],
      [404, "M_UNRECOGNIZED"],
    ]);
  });

  it("GET one on the unstable prefix: pending events only, owner only, delay_ms/delayed_since_ts", async () => {
    const before = Date.now();
    const id = await scheduleUnstable("lookup", 30_000);
    const one = await req("GET", `${UNSTABLE}/delayed_events/${enc(id)}`, alice.accessToken);
    expect(one.status).toBe(200);
    expect(Object.keys(one.body).sort()).toEqual(
      ["content", "delay_id", "delay_ms", "delayed_since_ts", "room_id", "state_key", "type"].sort(),
    );
    expect(one.body).toMatchObject({ delay_id: id, room_id: roomId, type: CALL_MEMBER, state_key: "lookup" });
    expect(one.body.delay_ms).toBe(30_000);
    expect(one.body.delayed_since_ts).toBeGreaterThanOrEqual(before - 1000);
    expect((await req("GET", `${UNSTABLE}/delayed_events/${enc(id)}`, bob.accessToken)).body.errcode).toBe(
      "M_NOT_FOUND",
    );
    // The listing carries the new names and the old ones.
    const list = await req("GET", `${UNSTABLE}/delayed_events`, alice.accessToken);
    const row = list.body.delayed_events.find((d: { delay_id: string }) => d.delay_id === id);
    expect(row).toMatchObject({ delay_ms: 30_000, delay: 30_000 });
    expect(row.running_since).toBe(row.delayed_since_ts);
    // Cancelled: not kept as finalised; the lookup and a conflicting action both answer 404, not 409.
    expect(
      (await req("POST", `${UNSTABLE}/delayed_events/${enc(id)}/cancel`, alice.accessToken, {})).status,
    ).toBe(200);
    const gone = await req("GET", `${UNSTABLE}/delayed_events/${enc(id)}`, alice.accessToken);
    const restart = await req("POST", `${UNSTABLE}/delayed_events/${enc(id)}/restart`, alice.accessToken, {});
    const cancelAgain = await req(
      "POST",
      `${UNSTABLE}/delayed_events/${enc(id)}/cancel`,
      alice.accessToken,
      {},
    );
    expect([gone, restart, cancelAgain].map((a) => [a.status, a.body.errcode])).toEqual([
      [404, "M_NOT_FOUND"],
      [404, "M_NOT_FOUND"],
      [404, "M_NOT_FOUND"],
    ]);
  });

  it("a delay over the maximum: 400 ORG.MATRIX.MSC4140_DELAY_TOO_LARGE, classified max-delay", async () => {
    const path = `/_matrix/client/v3/rooms/${enc(roomId)}/state/${enc(CALL_MEMBER)}/long?org.matrix.msc4140.delay=${MAX_DELAY + 1}`;
    const res = await req("PUT", path, alice.accessToken, {});
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      errcode: "ORG.MATRIX.MSC4140_DELAY_TOO_LARGE",
      error: `The requested delay (${MAX_DELAY + 1}ms) exceeds the allowed maximum (${MAX_DELAY}ms)`,
    });
    const backend = new ClientBackend(bareClient(hs.baseUrl, alice));
    const error = await backend
      .sendDelayedStateEvent({
        roomId,
        eventType: CALL_MEMBER,
        stateKey: "long2",
        content: {},
        delayMs: MAX_DELAY + 1,
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(classifyError(error, "schedule-leave")).toEqual({ kind: "max-delay", maxDelayMs: MAX_DELAY });
  });

  it("ClientBackend on auto speaks the unstable shape and reads the lookup (unknown once not pending)", async () => {
    const backend = new ClientBackend(bareClient(hs.baseUrl, alice));
    const id = await backend.sendDelayedStateEvent({
      roomId,
      eventType: CALL_MEMBER,
      stateKey: "backend",
      content: {},
      delayMs: 20_000,
    });
    const status = await backend.getDelayedEvent(id);
    expect(status).toMatchObject({ status: "pending", delayMs: 20_000 });
    await backend.updateDelayedEvent(id, "send");
    expect(hs.stateContent(roomId, CALL_MEMBER, "backend")).toEqual({});
    // Synapse 1.163 forgets events once they leave the schedule: the lookup cannot say "sent".
    expect(await backend.getDelayedEvent(id)).toEqual({ status: "unknown", tracksFinalised: false });
  });
});
