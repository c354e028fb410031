/**
 * A sticky delayed leave whose answer is lost (the server scheduled it, the connection dropped before
 * the delay id reached us) is an orphan at our sticky key: if it fires, its `{slot_id, sticky key}` is
 * the newest event at our key and every reader drops us while we think we are in the call, until the
 * hourly refresh. The manager finds it by listing our delayed events, which in client mode
 * (ClientBackend over Synapse's listing) must say which sticky key each one carries. Asserted on the
 * server's timeline and pending delayed events, and on what matrix-js-sdk's sticky session lists.
 */
import { afterEach, expect, it } from "@jest/globals";
import { startTestCall, type TestCall } from "../../../src/testing/index.js";
import "../../helpers/matrix.js"; // quiet matrix-js-sdk
import { NO_LIMITS, sleep } from "./helpers.js";
import { idOf, joinWithJs, RTC_MEMBER, untilEqual, type JsDevice } from "./sticky-helpers.js";

const DELAY = 1000;

let call: TestCall | undefined;
let bob: JsDevice | undefined;
afterEach(async () => {
  bob?.stop();
  bob = undefined;
  await call?.close();
  call = undefined;
});

it("the lost schedule's delayed leave is cancelled, never fires, and js-sdk keeps listing our sticky device", async () => {
  call = await startTestCall({ delayMs: DELAY, homeserver: { ...NO_LIMITS, stickyEvents: true } });
  const alice = await call.device("alice", { membershipFormat: "sticky" });
  const creds = await call.homeserver.createUser("bob");
  await call.homeserver.joinRoom(creds.accessToken, call.roomId);
  bob = await joinWithJs(call.homeserver.baseUrl, creds, call.roomId, { delayMs: DELAY, format: "sticky" });
  await untilEqual(bob.lists, [idOf(bob)], 5000, "bob to list himself");

  // Alice's first delayed leave is scheduled, but its answer never reaches her.
  call.homeserver.faults.add({
    route: "send.delayed",
    method: "PUT",
    userId: alice.userId,
    times: 1,
    respond: "process-then-drop",
  });
  alice.manager.join();
  await untilEqual(bob.lists, [idOf(alice), idOf(bob)].sort(), 5000, "bob to list alice");
  const key = alice.manager.memberId;

  // Three delays later: the orphan was found and cancelled; it never fired at her key.
  const seen: string[][] = [];
  for (let i = 0; i < 30; i++) {
    seen.push(bob.lists());
    await sleep(DELAY / 10);
  }
  expect(seen.filter((l) => !l.includes(idOf(alice)))).toEqual([]);
  const leaves = call.homeserver
    .timeline(call.roomId)
    .filter((e) => e.type === RTC_MEMBER && e.sender === alice.userId && !("member" in e.content));
  expect(leaves).toEqual([]);
  const pending = call.homeserver.pendingDelayedEvents().filter((e) => e.userId === alice.userId);
  expect(pending).toHaveLength(1);
  expect(pending[0].content).toEqual({ slot_id: "m.call#ROOM", msc4354_sticky_key: key });
  expect(alice.manager.status).toBe("connected");
});
