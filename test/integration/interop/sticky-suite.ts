/**
 * Sticky memberships against matrix-js-sdk 43's MatrixRTCSession (issue 21 item 5): one suite, run on
 * the test homeserver with `stickyEvents: true` (sticky-js-sdk.test.ts, in `npm test`) and on real
 * Synapse 1.163.2 with `msc4354_enabled` (test/synapse/sticky-interop.test.ts).
 *
 * 1. js-sdk lists our sticky device (`membershipFormat: "sticky"`, ClientBackend over real HTTP), and
 *    the server delivers js-sdk's sticky device (its `StickyEventMembershipManager`) to our side: our
 *    observer (`callMembers$` on another user's synced client, issue 21 item 2) lists it, and so does the
 *    raw `/sync` a user of ours gets (sticky-helpers.ts: what the server delivers, read without our code).
 * 0. A server without sticky events (Synapse with `msc4354_enabled` off sends a plain event for a sticky
 *    request): our sticky device sends nothing into the room and says `sticky-events-unsupported`.
 * 1b. A cut longer than the delay: the server fires our sticky delayed leave, js-sdk drops us, and lists
 *    us again once we are back (the manager puts the membership back within the same call).
 * 2. A mixed call: our device in each format and js-sdk's device in each, one room: every js-sdk
 *    participant lists the same 4 devices, then 3 after our state device leaves, then 2 after our sticky
 *    device leaves; our observer lists the same sets, and the raw `/sync` carries the two sticky ones.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import type { CallHomeserver, TestCall, TestDevice } from "../../../src/testing/index.js";
import "../../helpers/matrix.js"; // quiet matrix-js-sdk
import log from "loglevel";
import type { MatrixClient } from "matrix-js-sdk";
import { stopClient, syncedClient, waitFor } from "../../helpers/matrix.js";
import { observeWithUs, roomOf, type OurObserver } from "./helpers.js";
import {
  idOf,
  joinWithJs,
  RTC_MEMBER,
  sorted,
  STATE_MEMBER,
  stickyMembersInSync,
  untilEqual,
  type JsDevice,
} from "./sticky-helpers.js";

export interface StickySuiteOptions {
  /** A call on a server with sticky events, every device's delayed leave `delayMs`. */
  start(delayMs: number): Promise<TestCall<CallHomeserver>>;
  /** The same server with sticky events off (Synapse then ignores the sticky parameter). */
  startWithoutSticky(delayMs: number): Promise<TestCall<CallHomeserver>>;
  /** The delayed leave's delay (short on the test homeserver, longer on a loaded Synapse). */
  delayMs: number;
  /** How long a device may take to show in or drop out of another's list. */
  seeMs: number;
}

/** A logger that prints nothing (a failure the test expects). */
function silent(): log.Logger {
  const logger = log.getLogger("sticky-suite: expected failure");
  logger.setLevel("silent");
  return logger;
}

export function stickyInteropSuite(title: string, o: StickySuiteOptions): void {
  describe(title, () => {
    let call: TestCall<CallHomeserver> | undefined;
    const js: JsDevice[] = [];
    const observers: OurObserver[] = [];
    const clients: MatrixClient[] = [];
    afterEach(async () => {
      for (const ob of observers.splice(0)) ob.stop();
      for (const c of clients.splice(0)) stopClient(c);
      for (const d of js.splice(0)) d.stop();
      await call?.close();
      call = undefined;
    });

    const jsDevice = async (c: TestCall<CallHomeserver>, name: string, format: "state" | "sticky") => {
      const creds = await c.homeserver.createUser(name);
      await c.homeserver.joinRoom(creds.accessToken, c.roomId);
      const d = await joinWithJs(c.homeserver.baseUrl, creds, c.roomId, { delayMs: o.delayMs, format });
      js.push(d);
      return d;
    };
    /** A user of ours reading the room with plain `/sync` requests. */
    const ourReader = async (c: TestCall<CallHomeserver>) => {
      const creds = await c.homeserver.createUser("reader");
      await c.homeserver.joinRoom(creds.accessToken, c.roomId);
      return () => stickyMembersInSync(c.homeserver.baseUrl, creds.accessToken, c.roomId);
    };
    /** Our observer (`callMembers$`) on a synced client of another user of ours. */
    const ourObserver = async (c: TestCall<CallHomeserver>) => {
      const creds = await c.homeserver.createUser("watcher");
      await c.homeserver.joinRoom(creds.accessToken, c.roomId);
      const client = await syncedClient(c.homeserver.baseUrl, creds);
      clients.push(client);
      await roomOf(client, c.roomId);
      const ob = observeWithUs(client, c.roomId);
      observers.push(ob);
      return () => sorted(ob.ids());
    };
    /** Our device's sticky events in the server's timeline. */
    const stickyEventsOf = (c: TestCall<CallHomeserver>, d: TestDevice) =>
      c.homeserver.timeline(c.roomId).filter((e) => e.type === RTC_MEMBER && e.sender === d.userId);

    it("a server without sticky events: nothing of ours reaches the room, and the manager says sticky-events-unsupported", async () => {
      call = await o.startWithoutSticky(o.delayMs);
      const alice = await call.device("alice", { membershipFormat: "sticky", logger: silent() });
      const codes: string[] = [];
      const sub = alice.manager.errors$.subscribe((e) => codes.push(e.code));
      alice.manager.join();
      await waitFor(() => alice.manager.state.kind === "failed", o.seeMs, "the manager to fail");
      sub.unsubscribe();
      expect(codes).toContain("sticky-events-unsupported");
      // Neither a plain membership event nor a delayed one: Synapse would have sent either as plain.
      expect(stickyEventsOf(call, alice)).toEqual([]);
      expect(call.homeserver.pendingDelayedEvents().filter((e) => e.userId === alice.userId)).toEqual([]);
    });

    it("js-sdk's sticky MatrixRTCSession lists our sticky device, and the server delivers its sticky device to us", async () => {
      call = await o.start(o.delayMs);
      const alice = await call.device("alice", { membershipFormat: "sticky", callIntent: "video" });
      const bob = await jsDevice(call, "bob", "sticky");
      const readSync = await ourReader(call);
      const ourList = await ourObserver(call);

      alice.manager.join();
      const both = [idOf(alice), idOf(bob)];
      await untilEqual(bob.lists, both, o.seeMs, "js-sdk (bob) to list alice and bob");
      const memberships = bob.session.memberships;
      const ofAlice = memberships.find((m) => m.sender === alice.userId)!;
      // js-sdk read it as a sticky MSC4143 membership keyed by the member id our manager chose.
      expect(alice.manager.memberId).toEqual(expect.any(String));
      expect(ofAlice.memberId).toBe(alice.manager.memberId);
      expect(ofAlice.deviceId).toBe(alice.deviceId);
      expect(ofAlice.slotId).toBe("m.call#ROOM");
      expect(ofAlice.transports).toEqual([{ type: "livekit", livekit_service_url: "https://livekit.test" }]);
      expect(ofAlice.isExpired()).toBe(false);
      const ofBob = memberships.find((m) => m.sender === bob.userId)!;
      expect(ofBob.memberId).toBe(bob.memberId);

      // What the server holds: our join as a sticky timeline event, nothing at the state key.
      const joins = stickyEventsOf(call, alice).filter((e) => "member" in e.content);
      expect(joins.length).toBeGreaterThanOrEqual(1);
      expect(joins[0].msc4354_sticky?.duration_ms).toBeGreaterThan(0);
      expect(joins[0].content.msc4354_sticky_key).toBe(alice.manager.memberId);
      expect(alice.membershipOnServer()).toBeUndefined();

      // Our side: a plain /sync from scratch delivers both devices' current sticky memberships.
      await untilEqual(readSync, both, o.seeMs, "our /sync to carry both sticky memberships");
      // Our observer (issue 21 item 2) lists both sticky devices, as js-sdk does.
      await untilEqual(ourList, both, o.seeMs, "our observer to list alice and bob");

      const result = await alice.manager.leave({ timeoutMs: 5000 });
      expect(result.status).toBe("left");
      await untilEqual(bob.lists, [idOf(bob)], o.seeMs, "js-sdk (bob) to drop alice");
      await untilEqual(readSync, [idOf(bob)], o.seeMs, "our /sync to drop alice");
      await untilEqual(ourList, [idOf(bob)], o.seeMs, "our observer to drop alice");
      // Her leave is a sticky event at her sticky key with only the slot and the key.
      const last = stickyEventsOf(call, alice).at(-1)!;
      expect(last.content).toEqual({
        slot_id: "m.call#ROOM",
        msc4354_sticky_key: joins[0].content.msc4354_sticky_key,
      });

      expect(await bob.leave()).toBe(true);
      await untilEqual(readSync, [], o.seeMs, "our /sync to drop bob after his leave");
    });

    it("a cut longer than the delay: our sticky delayed leave fires on the server, js-sdk drops us, and lists us again once we are back", async () => {
      call = await o.start(o.delayMs);
      const alice = await call.device("alice", { membershipFormat: "sticky" });
      const bob = await jsDevice(call, "bob", "sticky");
      alice.manager.join();
      const both = [idOf(alice), idOf(bob)];
      await untilEqual(bob.lists, both, o.seeMs, "js-sdk (bob) to list alice");
      await alice.waitUntilConnected({ withinMs: o.seeMs });
      const firstKey = alice.manager.memberId;

      alice.network.cut();
      const cutAt = Date.now();
      await untilEqual(
        bob.lists,
        [idOf(bob)],
        o.delayMs + o.seeMs,
        "js-sdk (bob) to drop alice after the cut",
      );
      // The server fired her delayed leave: a sticky event at her key with only the slot and the key,
      // no earlier than a delay after the cut less one heartbeat interval (restarts run every delay / 3 at most).
      const fired = stickyEventsOf(call, alice).find(
        (e) => e.content.msc4354_sticky_key === firstKey && !("member" in e.content),
      );
      expect(fired?.content).toEqual({ slot_id: "m.call#ROOM", msc4354_sticky_key: firstKey });
      expect(fired?.msc4354_sticky?.duration_ms).toBeGreaterThan(0);
      expect(fired!.origin_server_ts).toBeGreaterThanOrEqual(cutAt - o.delayMs);

      alice.network.restore();
      await untilEqual(bob.lists, both, o.delayMs + o.seeMs, "js-sdk (bob) to list alice again");
      // The manager put her membership back within the same call (its member id is per join(), so the
      // same key): her join is newer than the fired leave at that key, which is what js-sdk goes by.
      const again = bob.session.memberships.find((m) => m.sender === alice.userId)!;
      expect(again.memberId).toBe(alice.manager.memberId);
      const atKey = stickyEventsOf(call, alice).filter(
        (e) => e.content.msc4354_sticky_key === alice.manager.memberId,
      );
      expect(atKey.at(-1)?.content).toHaveProperty("member");
    });

    it("a mixed call (ours in state and sticky format, js-sdk's in both): every js-sdk participant lists the same 4, then 3, then 2", async () => {
      call = await o.start(o.delayMs);
      const ourState = await call.device("ourstate");
      const ourSticky = await call.device("oursticky", { membershipFormat: "sticky" });
      const jsState = await jsDevice(call, "jsstate", "state");
      const jsSticky = await jsDevice(call, "jssticky", "sticky");
      const readSync = await ourReader(call);
      const ours = observeWithUs(jsState.client, call.roomId);
      observers.push(ours);

      ourState.manager.join();
      ourSticky.manager.join();
      const all = sorted([ourState, ourSticky, jsState, jsSticky].map(idOf));
      for (const d of [jsState, jsSticky])
        await untilEqual(d.lists, all, o.seeMs, `js-sdk (${d.format}) to list all four`);
      expect(jsState.lists()).toEqual(jsSticky.lists());
      // Each format went out as itself: state events for the state devices, sticky ones for the others.
      const timeline = call.homeserver.timeline(call.roomId);
      const senders = (type: string) =>
        sorted([
          ...new Set(
            timeline.filter((e) => e.type === type && Object.keys(e.content).length > 0).map((e) => e.sender),
          ),
        ]);
      expect(senders(STATE_MEMBER)).toEqual(sorted([ourState.userId, jsState.userId]));
      expect(senders(RTC_MEMBER)).toEqual(sorted([ourSticky.userId, jsSticky.userId]));
      // Our side: the observer lists all four, whichever format; /sync carries the sticky ones.
      await untilEqual(() => sorted(ours.ids()), all, o.seeMs, "our observer to list all four");
      await untilEqual(readSync, sorted([idOf(ourSticky), idOf(jsSticky)]), o.seeMs, "our /sync");

      expect((await ourState.manager.leave({ timeoutMs: 5000 })).status).toBe("left");
      const three = all.filter((id) => id !== idOf(ourState));
      for (const d of [jsState, jsSticky])
        await untilEqual(
          d.lists,
          three,
          o.seeMs,
          `js-sdk (${d.format}) to list three after our state device left`,
        );
      expect(jsState.lists()).toEqual(jsSticky.lists());
      await untilEqual(() => sorted(ours.ids()), three, o.seeMs, "our observer to list three");

      expect((await ourSticky.manager.leave({ timeoutMs: 5000 })).status).toBe("left");
      const two = three.filter((id) => id !== idOf(ourSticky));
      for (const d of [jsState, jsSticky])
        await untilEqual(
          d.lists,
          two,
          o.seeMs,
          `js-sdk (${d.format}) to list two after our sticky device left`,
        );
      expect(jsState.lists()).toEqual(jsSticky.lists());
      await untilEqual(readSync, [idOf(jsSticky)], o.seeMs, "our /sync to drop our sticky device");
      await untilEqual(() => sorted(ours.ids()), two, o.seeMs, "our observer to list two");
    });
  });
}
