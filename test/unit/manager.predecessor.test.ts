/**
 * Issue 20 item 11: a page that died without dispose() (a reload) left a delayed leave at our key, or
 * had one still on its way; a new manager for the same device must end in the call as the server sees
 * it. Where the backend lists our delayed events, the first join sweeps our key at once and again after a
 * live tab's longest heartbeat; elsewhere the manager's eyes put the membership back. Virtual time, FakeServer.
 */
import { describe, expect, it } from "@jest/globals";
import log from "loglevel";
import type { MembershipBackend } from "../../src/backends/types.js";
import { MembershipManager } from "../../src/manager/MembershipManager.js";
import { harness, isJoinedOnServer } from "../helpers/managerHarness.js";

const DELAY = 2000;
const predecessorsLeave = (h: ReturnType<typeof harness>) =>
  h.server.sendDelayedStateEvent({
    roomId: "!room:localhost",
    eventType: "org.matrix.msc3401.call.member",
    stateKey: h.key,
    content: {},
    delayMs: DELAY,
  });

describe("a dead predecessor's delayed leave (issue 20 item 11)", () => {
  it("pending at join: swept, it never fires, our membership stays", async () => {
    const h = harness({ delayedLeaveDelayMs: DELAY });
    const theirs = await (async () => {
      const p = predecessorsLeave(h);
      await h.time.advance(50);
      return p;
    })();
    h.manager.join();
    await h.time.advance(4 * DELAY);
    expect(h.server.delayed.has(theirs)).toBe(false);
    expect(h.server.history.some((e) => e.by === "delayed")).toBe(false);
    expect(isJoinedOnServer(h)).toBe(true);
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
    expect(h.manager.status).toBe("connected");
    h.manager.dispose();
  });

  it("landing just after our join (in flight when the page died): it fires before two listings can judge it, and our eyes put the membership back", async () => {
    // Listings that judge a predecessor are spaced wider than a live tab's longest heartbeat (orphans.ts
    // relistAfterMs), so a live second tab is never taken for a dead page; one that lands after our first
    // listing fires before a second and third can judge it. (At half a delay apart, the second sweep took
    // it, and cancelled a live adaptive-heartbeat tab's delayed leave too: test/synapse/two-tabs.)
    const h = harness({ delayedLeaveDelayMs: DELAY });
    h.manager.join();
    await h.time.advance(300);
    const theirs = predecessorsLeave(h);
    await h.time.advance(50);
    const id = await theirs;
    await h.time.advance(4 * DELAY);
    expect(h.server.delayed.has(id)).toBe(false);
    expect(isJoinedOnServer(h)).toBe(true);
    expect(h.manager.status).toBe("connected");
    h.manager.dispose();
  });

  it("without a listing: it fires, and the manager's eyes put the membership back within a heartbeat", async () => {
    const h = harness((server) => {
      const b: MembershipBackend = {
        sendDelayedStateEvent: server.sendDelayedStateEvent.bind(server),
        sendStateEvent: server.sendStateEvent.bind(server),
        updateDelayedEvent: server.updateDelayedEvent.bind(server),
        readState: server.readState.bind(server),
      };
      return { delayedLeaveDelayMs: DELAY, backend: b };
    });
    h.manager.join();
    await h.time.advance(300);
    const theirs = predecessorsLeave(h);
    await h.time.advance(50);
    await theirs;
    await h.time.until(() => h.server.history.some((e) => e.by === "delayed"), 5000);
    const firedAt = h.time.now();
    await h.time.until(() => isJoinedOnServer(h), 5000, 5);
    expect(h.time.now() - firedAt).toBeLessThanOrEqual(h.manager.effectiveTiming.heartbeatIntervalMs + 100);
    await h.time.advance(500);
    expect(h.manager.status).toBe("connected");
    h.manager.dispose();
  });

  it("a second live tab whose delayed leave is delegated (restarted only every delegated heartbeat) is not taken for a dead page's", async () => {
    // Found by the randomized invariants with a second tab and the delegation service (test/unit/invariants.test.ts,
    // T3): listings spaced by the normal heartbeat judged the delegated leave dead and cancelled it.
    const delegation = {
      sfuUrl: "wss://sfu.example",
      delegatedDelayMs: 10_000,
      delegatedHeartbeatIntervalMs: 4000,
    };
    const tab2 = harness({ delayedLeaveDelayMs: DELAY, ...delegation }, (s) =>
      s.startDelegation("confirm", 10_000),
    );
    const quiet = log.getLogger("test-quiet-tab1");
    quiet.setLevel("silent");
    const tab1 = new MembershipManager({
      backend: tab2.server,
      roomId: "!room:localhost",
      userId: "@alice:localhost",
      deviceId: "DEV",
      delayedLeaveDelayMs: DELAY,
      ...delegation,
      scheduler: tab2.time.scheduler,
      logger: quiet,
      random: () => 0.5,
      fociPreferred: [{ type: "livekit", livekit_service_url: "https://tab-one.example" }],
    });
    expect(tab1.stateKey).toBe(tab2.key);
    let held: string | undefined;
    tab2.manager.delayId$.subscribe((id) => (held = id));
    tab2.manager.join();
    await tab2.time.until(() => tab2.manager.support.delayedLeaveHolder === "delegated", 10_000);
    const delegated = held!;
    tab1.join();
    await tab2.time.advance(30_000);
    // Nobody cancelled tab 2's delegated leave; it still holds it, and never had to recover.
    expect(tab2.server.log.filter((e) => e.op === "cancel" && e.delayId === delegated)).toEqual([]);
    expect(tab2.server.delayed.has(delegated)).toBe(true);
    expect(held).toBe(delegated);
    expect(tab2.states.some((st) => st.kind === "reconnecting")).toBe(false);
    expect(tab1.status).toBe("connected");
    expect(isJoinedOnServer(tab2)).toBe(true);
    tab1.dispose();
    tab2.manager.dispose();
  });
});
