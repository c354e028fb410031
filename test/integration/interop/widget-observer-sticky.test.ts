/**
 * Issue 21 item 1 end to end: our observer in widget mode lists sticky memberships. Alice's widget runs
 * `callMembers$` on a `WidgetStateSource` (made before `start()`, asking `widgetObserverCapabilities`),
 * through matrix-widget-api 1.19 on the in-process bus and our `DelayedEventWidgetDriver` on Alice's synced
 * client, on the test homeserver speaking MSC4354 as Synapse 1.163 does (`stickyEvents: true`). What reaches
 * the widget is what the host sends it: the room's sticky events at negotiation (`readStickyEvents`) and
 * each new one from its sticky feed, as `send_event` with the sticky field intact.
 *
 * In the call: Bob, our manager in the sticky format (ClientBackend over HTTP), joined before the widget
 * started; Carol, matrix-js-sdk 43's MatrixRTCSession with `unstableSendStickyEvents: true`, joining after.
 * Judged against what the server holds (its timeline, its pending delayed events) and delivers (a fourth
 * user's plain `/sync`, reduced to the current sticky members without our code), and against js-sdk's own
 * session on the host's client.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import "../../helpers/matrix.js"; // quiet matrix-js-sdk
import log from "loglevel";
import type { MatrixClient } from "matrix-js-sdk";
import {
  callMembers$,
  widgetObserverCapabilities,
  WidgetStateSource,
  type CallMember,
} from "../../../src/index.js";
import {
  connectWidget,
  quietWidgetLogs,
  startTestCall,
  type TestCall,
  type UserCreds,
} from "../../../src/testing/index.js";
import { DelayedEventWidgetDriver } from "../../../src/widget-host/index.js";
import { stopClient, syncedClient } from "../../helpers/matrix.js";
import { NO_LIMITS, roomOf } from "./helpers.js";
import {
  idOf,
  joinWithJs,
  listedBy,
  RTC_MEMBER,
  sorted,
  stickyMembersInSync,
  untilEqual,
  type JsDevice,
} from "./sticky-helpers.js";

const DELAY = 1500;
const SEE_MS = 8000;
const quiet = log.getLogger("widget-observer-sticky-quiet");
quiet.setLevel("silent");

let call: TestCall | undefined;
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) c();
  await call?.close();
  call = undefined;
});

/**
 * Alice's host (a synced client, as Element Web's) and her observing widget: the source is made before
 * `start()`, so the host's pushes at negotiation reach it.
 */
async function observingWidget(c: TestCall, alice: UserCreds) {
  const restore = quietWidgetLogs();
  cleanups.push(restore);
  const hostClient: MatrixClient = await syncedClient(c.homeserver.baseUrl, alice);
  cleanups.push(() => stopClient(hostClient));
  await roomOf(hostClient, c.roomId);
  const capabilities = widgetObserverCapabilities(c.roomId);
  let source!: WidgetStateSource;
  const pair = await connectWidget({
    driver: new DelayedEventWidgetDriver(hostClient, {
      roomId: c.roomId,
      validateCapabilities: capabilities,
    }),
    capabilities,
    creatorUserId: alice.userId,
    beforeStart: (widgetApi) => (source = new WidgetStateSource(widgetApi, c.roomId)),
  });
  const lists: CallMember[][] = [];
  const sub = callMembers$(source).subscribe((m) => lists.push(m));
  cleanups.push(
    () => pair.close(),
    () => source.close(),
    () => sub.unsubscribe(),
  );
  const latest = () => lists.at(-1) ?? [];
  return {
    pair,
    hostClient,
    lists,
    latest,
    ids: () => sorted(latest().map((m) => `${m.userId}|${m.deviceId}`)),
    member: (d: { userId: string; deviceId: string }) =>
      latest().find((m) => m.userId === d.userId && m.deviceId === d.deviceId),
  };
}

/** A user of ours reading the room with plain `/sync` requests (no js-sdk, no code of ours). */
async function syncReader(c: TestCall) {
  const creds = await c.homeserver.createUser("reader");
  await c.homeserver.joinRoom(creds.accessToken, c.roomId);
  return () => stickyMembersInSync(c.homeserver.baseUrl, creds.accessToken, c.roomId);
}

describe("widget mode: our observer lists sticky memberships through our host driver", () => {
  it("lists our sticky-mode device (pushed at negotiation) and js-sdk's sticky session (fed live) as the server delivers them; drops each on its leave", async () => {
    call = await startTestCall({ delayMs: DELAY, homeserver: { ...NO_LIMITS, stickyEvents: true } });
    const hs = call.homeserver;
    const readSync = await syncReader(call);

    // Bob (ours, sticky format) is in the call before the widget starts.
    const bob = await call.device("bob", { membershipFormat: "sticky", callIntent: "audio", logger: quiet });
    bob.manager.join();
    await untilEqual(readSync, [idOf(bob)], SEE_MS, "the server to deliver bob's sticky membership");

    const alice = await hs.createUser("alice");
    await hs.joinRoom(alice.accessToken, call.roomId);
    const widget = await observingWidget(call, alice);
    await untilEqual(widget.ids, [idOf(bob)], SEE_MS, "the widget to list bob from the negotiation push");
    // The event the widget lists is bob's current sticky join on the server, under his member id.
    const bobEvents = () =>
      hs.timeline(call!.roomId).filter((e) => e.type === RTC_MEMBER && e.sender === bob.userId);
    const bobMember = widget.member(bob)!;
    expect(bobMember.stickyKey).toBe(bob.manager.memberId);
    expect(bobMember.memberId).toBe(bob.manager.memberId);
    expect(bobMember.callIntent).toBe("audio");
    expect(bobEvents().map((e) => e.event_id)).toContain(bobMember.eventId);
    expect(bobEvents().find((e) => e.event_id === bobMember.eventId)!.msc4354_sticky).toEqual({
      duration_ms: 3_600_000,
    });
    // Expiry from the TTL: about an hour from now, not from the event's own claims.
    expect(bobMember.expiresAt).toBeGreaterThan(Date.now() + 3_500_000);
    expect(bobMember.expiresAt).toBeLessThanOrEqual(Date.now() + 3_600_000);
    // No state membership of bob's anywhere: what we list is the sticky one.
    expect(
      hs.roomState(call.roomId).filter((e) => e.sender === bob.userId && e.type !== "m.room.member"),
    ).toEqual([]);

    // Carol: js-sdk 43's sticky MatrixRTCSession, after the widget started (the host's live sticky feed).
    const carolCreds = await hs.createUser("carol");
    await hs.joinRoom(carolCreds.accessToken, call.roomId);
    const carol: JsDevice = await joinWithJs(hs.baseUrl, carolCreds, call.roomId, {
      delayMs: DELAY,
      format: "sticky",
    });
    cleanups.push(() => carol.stop());
    const both = [idOf(bob), idOf(carol)];
    await untilEqual(widget.ids, both, SEE_MS, "the widget to list carol");
    expect(widget.member(carol)).toMatchObject({ stickyKey: carol.memberId, memberId: carol.memberId });
    // The same as what the server delivers, as js-sdk's session on the host lists, and as carol lists.
    await untilEqual(readSync, both, SEE_MS, "the server to deliver both");
    await untilEqual(() => listedBy(widget.hostClient, call!.roomId), both, SEE_MS, "js-sdk on the host");
    await untilEqual(carol.lists, both, SEE_MS, "carol's own session");
    // One entry per device: every refresh or restart kept one.
    expect(widget.lists.every((l) => new Set(l.map(idOf)).size === l.length)).toBe(true);

    // Bob leaves (our delayed sticky leave, sent): the widget drops him; the server's last word is a leave.
    await bob.manager.leave({ timeoutMs: 5000 });
    await untilEqual(widget.ids, [idOf(carol)], SEE_MS, "the widget to drop bob");
    const lastOfBob = bobEvents()
      .filter((e) => e.content.msc4354_sticky_key === bobMember.stickyKey)
      .at(-1)!;
    expect(Object.keys(lastOfBob.content).sort()).toEqual(["msc4354_sticky_key", "slot_id"]);
    await untilEqual(readSync, [idOf(carol)], SEE_MS, "the server to deliver bob's leave");

    // Carol leaves through js-sdk: dropped too.
    expect(await carol.leave()).toBe(true);
    await untilEqual(widget.ids, [], SEE_MS, "the widget to drop carol");
    await untilEqual(readSync, [], SEE_MS, "the server to deliver carol's leave");
    expect(hs.pendingDelayedEvents().filter((d) => d.roomId === call!.roomId)).toEqual([]);
  }, 60_000);

  it("drops a device whose sticky membership runs out while its delayed leave is still pending on the server", async () => {
    call = await startTestCall({ delayMs: DELAY, homeserver: { ...NO_LIMITS, stickyEvents: true } });
    const hs = call.homeserver;
    const readSync = await syncReader(call);
    const alice = await hs.createUser("alice");
    await hs.joinRoom(alice.accessToken, call.roomId);
    const widget = await observingWidget(call, alice);

    // Erin: ours, sticky for 3 s at a time, with a delayed leave far longer than that.
    const STICKY_MS = 3000;
    const erin = await call.device("erin", {
      membershipFormat: "sticky",
      stickyDurationMs: STICKY_MS,
      delayedLeaveDelayMs: 30_000,
      logger: quiet,
    });
    erin.manager.join();
    await untilEqual(widget.ids, [idOf(erin)], SEE_MS, "the widget to list erin");
    const erinEvents = () =>
      hs.timeline(call!.roomId).filter((e) => e.type === RTC_MEMBER && e.sender === erin.userId);
    // Refreshes before the stickiness runs out keep her listed past one duration.
    const joinedAt = Date.now();
    await new Promise((r) => setTimeout(r, STICKY_MS + 500));
    expect(widget.ids()).toEqual([idOf(erin)]);
    expect(erinEvents().length).toBeGreaterThan(1);
    expect(Date.now() - joinedAt).toBeGreaterThan(STICKY_MS);

    // Erin's page dies without a word (dispose sends nothing): no refresh, no leave.
    erin.manager.dispose();
    // (a refresh already on its way may still land)
    await new Promise((r) => setTimeout(r, 300));
    const last = erinEvents().at(-1)!;
    const pendingOfErin = () => hs.pendingDelayedEvents().filter((d) => d.userId === erin.userId);
    expect(pendingOfErin()).toHaveLength(1);
    await untilEqual(
      widget.ids,
      [],
      STICKY_MS + SEE_MS,
      "the widget to drop erin when her stickiness runs out",
    );
    const droppedAt = Date.now();
    // Dropped by expiry: the last event is her join, her delayed leave has not fired, and the server no
    // longer delivers her as sticky.
    expect(erinEvents().at(-1)!.event_id).toBe(last.event_id);
    expect(last.content.member).toMatchObject({ user_id: erin.userId, device_id: erin.deviceId });
    expect(pendingOfErin()).toHaveLength(1);
    expect(droppedAt).toBeGreaterThanOrEqual(last.origin_server_ts + STICKY_MS - 50);
    expect(await readSync()).toEqual([]);
  }, 60_000);
});
