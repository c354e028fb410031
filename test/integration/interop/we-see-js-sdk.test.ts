/**
 * Direction 2: devices joined with matrix-js-sdk's own MatrixRTCSession.joinRTCSession (what Element
 * Call runs) are listed by our observer with the same fields and in the same order as js-sdk's session
 * reports, from a synced client and from the server's room state as plain events.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import "../../helpers/matrix.js"; // quiet matrix-js-sdk
import type { MatrixClient } from "matrix-js-sdk";
import { firstValueFrom } from "rxjs";
import {
  CALL_MEMBER_EVENT_TYPE,
  callMembers$,
  eventsStateSource,
  ownMembership,
} from "../../../src/index.js";
import { startFaultyLink, startTestCall, waitFor, type TestCall } from "../../../src/testing/index.js";
import { syncedClient, stopClient } from "../../helpers/matrix.js";
import {
  idOf,
  joinWithJsSdk,
  jsSdkView,
  NO_LIMITS,
  observeWithUs,
  roomOf,
  viewOfOurs,
  type JsSdkDevice,
  type OurObserver,
} from "./helpers.js";

const DELAY = 1500;

let call: TestCall | undefined;
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) c();
  await call?.close();
  call = undefined;
});

async function jsSdkDevice(name: string, opts: { callIntent?: string } = {}): Promise<JsSdkDevice> {
  const hs = call!.homeserver;
  const creds = await hs.createUser(name);
  await hs.joinRoom(creds.accessToken, call!.roomId);
  const device = await joinWithJsSdk(hs.baseUrl, creds, call!.roomId, { delayMs: DELAY, ...opts });
  cleanups.push(() => device.stop());
  return device;
}

async function watcher(name: string): Promise<{ client: MatrixClient; ours: OurObserver }> {
  const hs = call!.homeserver;
  const creds = await hs.createUser(name);
  await hs.joinRoom(creds.accessToken, call!.roomId);
  const client = await syncedClient(hs.baseUrl, creds);
  await roomOf(client, call!.roomId);
  const ours = observeWithUs(client, call!.roomId);
  cleanups.push(
    () => ours.stop(),
    () => stopClient(client),
  );
  return { client, ours };
}

describe("our observer lists devices joined with matrix-js-sdk's MatrixRTCSession", () => {
  it("same members, same fields, same order as js-sdk, through joins, an intent update and a leave", async () => {
    call = await startTestCall({ delayMs: DELAY, homeserver: NO_LIMITS });
    const { client, ours } = await watcher("watcher");
    const carol = await jsSdkDevice("carol", { callIntent: "video" });
    await waitFor(() => ours.ids().includes(idOf(carol)), 5000, "our observer to list carol");
    // Ours (package) between two js-sdk devices, so the order is not just "ours last".
    const alice = await call.device("alice", { callIntent: "audio" });
    alice.manager.join();
    await waitFor(() => ours.ids().includes(idOf(alice)), 5000, "our observer to list alice");
    const dave = await jsSdkDevice("dave", { callIntent: "audio" });
    await waitFor(() => ours.ids().length === 3, 5000, "our observer to list dave");
    await waitFor(() => jsSdkView(client, call!.roomId).length === 3, 3000, "js-sdk to list all three");

    expect(ours.ids()).toEqual([idOf(carol), idOf(alice), idOf(dave)]);
    expect(ours.view()).toEqual(jsSdkView(client, call.roomId));
    const carolMember = ours.latest()[0];
    expect(carolMember).toMatchObject({
      userId: carol.userId,
      deviceId: carol.deviceId,
      stateKey: `_${carol.userId}_${carol.deviceId}_m.call`,
      callIntent: "video",
      focusActive: { type: "livekit", focus_selection: "oldest_membership" },
      fociPreferred: [{ type: "livekit", livekit_service_url: `https://lk.${carol.deviceId}.example` }],
      memberId: `${carol.userId}:${carol.deviceId}`,
    });
    // js-sdk's first join has no created_ts: the event's origin_server_ts is the creation time.
    expect(carolMember.content.created_ts).toBeUndefined();
    expect(carolMember.createdTs).toBe(carolMember.originServerTs);
    // The js-sdk device sees itself and the others exactly like the watcher does.
    await waitFor(() => jsSdkView(carol.client, call!.roomId).length === 3, 3000, "carol's own session");
    expect(jsSdkView(carol.client, call.roomId)).toEqual(ours.view());

    // The client itself as the source (roomStateSource under the hood): the same list.
    const direct = await firstValueFrom(callMembers$(client, { roomId: call.roomId }));
    expect(direct.map(viewOfOurs)).toEqual(ours.view());
    // The same from the server's state as plain events (a different source, same answer).
    const fromServer = await firstValueFrom(
      callMembers$(eventsStateSource(call.homeserver.roomState(call.roomId))),
    );
    expect(fromServer.map(viewOfOurs)).toEqual(ours.view());
    expect(ownMembership(fromServer, alice.userId, alice.deviceId)?.callIntent).toBe("audio");

    // js-sdk's updateCallIntent re-sends the membership with created_ts: an update, same place.
    await carol.session.updateCallIntent("audio");
    await waitFor(() => ours.latest()[0]?.callIntent === "audio", 3000, "our observer to see carol's update");
    expect(ours.latest()[0].content.created_ts).toBe(carolMember.createdTs);
    expect(ours.ids()).toEqual([idOf(carol), idOf(alice), idOf(dave)]);
    await waitFor(() => jsSdkView(client, call!.roomId)[0]?.callIntent === "audio", 3000, "js-sdk to agree");
    expect(ours.view()).toEqual(jsSdkView(client, call.roomId));

    expect(await carol.leave()).toBe(true);
    await waitFor(() => !ours.ids().includes(idOf(carol)), 3000, "our observer to drop carol");
    expect(ours.ids()).toEqual([idOf(alice), idOf(dave)]);
    await waitFor(() => jsSdkView(client, call!.roomId).length === 2, 3000, "js-sdk to drop carol");
    expect(ours.view()).toEqual(jsSdkView(client, call.roomId));
  });

  it("a js-sdk device that loses the network is dropped when its delayed leave fires, and listed again after", async () => {
    call = await startTestCall({ delayMs: DELAY, homeserver: NO_LIMITS });
    const { ours } = await watcher("watcher");
    const hs = call.homeserver;
    const creds = await hs.createUser("carol");
    await hs.joinRoom(creds.accessToken, call.roomId);
    const link = await startFaultyLink({ target: hs.baseUrl });
    const carol = await joinWithJsSdk(link.url, creds, call.roomId, { delayMs: DELAY });
    cleanups.push(
      () => void link.close(),
      () => carol.stop(),
    );
    await waitFor(() => ours.ids().includes(idOf(carol)), 5000, "our observer to list carol");
    // Not a leave: js-sdk's manager keeps running, but nothing reaches the server any more.
    link.cut();
    const cutAt = Date.now();
    await waitFor(() => !ours.ids().includes(idOf(carol)), DELAY + 2000, "the server to fire carol's leave");
    expect(Date.now() - cutAt).toBeGreaterThanOrEqual(DELAY - 600);
    expect(
      hs.stateContent(call.roomId, CALL_MEMBER_EVENT_TYPE, `_${carol.userId}_${carol.deviceId}_m.call`),
    ).toEqual({});
    link.restore();
    // js-sdk notices (restart 404) and joins again; our observer lists it again.
    await waitFor(() => ours.ids().includes(idOf(carol)), 10_000, "carol to rejoin");
  });
});
