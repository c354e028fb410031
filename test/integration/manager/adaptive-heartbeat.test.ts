/**
 * Issue 22 part 2 over real HTTP: the adaptive heartbeat behind a FaultyLink whose latency steps up
 * (20 → 250 → 500 ms) and back. Asserted on the test homeserver's records: its delayed-event records
 * (the one delayed leave we scheduled stays pending, always due in the future, and never fires while
 * the link is merely slow) and its request log (the restart rate: longer intervals than delay / 2 on
 * the fast link, shorter ones as the link slows, back when it is fast again).
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import log from "loglevel";
import { CALL_MEMBER_EVENT_TYPE, ClientBackend, MembershipManager } from "../../../src/index.js";
import { startFaultyLink, startTestHomeserver, type TestHomeserver } from "../../../src/testing/index.js";
import { bareClient, stopClient, waitFor } from "../../helpers/matrix.js";

const quiet = log.getLogger("quiet");
quiet.setLevel("silent");
const DELAY_MS = 4000;
/** The configured timing's margin (delay/2 − delay/5): the adaptive heartbeat keeps at least this. */
const MARGIN_MS = DELAY_MS / 2 - DELAY_MS / 5;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let hs: TestHomeserver | undefined;
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
  await hs?.close();
  hs = undefined;
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

describe("adaptive heartbeat over a link that slows down (real HTTP)", () => {
  it("20 → 250 → 500 → 20 ms: the interval follows the link, the delayed leave never fires", async () => {
    hs = await startTestHomeserver({ rateLimits: { message: null, delayedEventMgmt: null } });
    const server = hs;
    const alice = await server.createUser("alice");
    const roomId = await server.createRoom(alice.accessToken);
    const link = await startFaultyLink({ target: server.baseUrl });
    link.setLatency(20);
    const client = bareClient(link.url, alice);
    const m = new MembershipManager({
      backend: new ClientBackend(client),
      roomId,
      userId: alice.userId,
      deviceId: alice.deviceId,
      delayedLeaveDelayMs: DELAY_MS,
      logger: quiet,
    });
    cleanup.push(
      () => link.close(),
      () => stopClient(client),
      () => m.dispose(),
    );
    const probablyLeft: boolean[] = [];
    m.probablyLeft$.subscribe((p) => probablyLeft.push(p));
    m.join();
    await waitFor(() => m.status === "connected", 5000, "connected");
    const ours = () => server.pendingDelayedEvents().filter((d) => d.stateKey === m.stateKey);
    const delayId = ours()[0]?.delayId;
    expect(delayId).toBeDefined();

    /** Run one phase at `latencyMs`, sampling the server's delayed-event record every 50 ms. */
    const phase = async (latencyMs: number, ms: number, judgeFrom = 1 / 3) => {
      link.setLatency(latencyMs);
      const from = Date.now();
      while (Date.now() - from < ms) {
        const pending = ours();
        // Exactly our one delayed leave, due in the future: it has not fired, nothing replaced it.
        expect(pending.map((d) => d.delayId)).toEqual([delayId]);
        expect(pending[0].sendTs).toBeGreaterThan(Date.now());
        expect(m.status).toBe("connected");
        await sleep(50);
      }
      // Restarts the server got after the phase's first third (the link measured by then; the last half
      // when the link comes back fast: the restart timeout's deviation decays one restart at a time, and
      // on a loaded machine a third of the phase was not always enough), and the gaps
      // between them that are heartbeat intervals: a retry after a local timeout (a loaded machine can
      // stall an answer past a 250 ms timeout) comes within a restart timeout, well under 1 200 ms.
      const arrivals = server.requests
        .filter(
          (r) => r.userId === alice.userId && r.route === "delayed.restart" && r.ts >= from + ms * judgeFrom,
        )
        .map((r) => r.ts);
      const gaps = arrivals.slice(1).map((t, i) => t - arrivals[i]);
      return { gaps: gaps.filter((g) => g > 1200), timing: m.effectiveTiming };
    };

    const fast = await phase(20, 8000);
    const slower = await phase(250, 9000);
    const slow = await phase(500, 9000);
    const fastAgain = await phase(20, 15_000, 1 / 2);

    // The fast link: restart timeout 250 ms (a little more if the machine stalled answers), interval
    // 4000 − timeout − 1200 (the margin kept): longer than the fixed delay/2 (2 000 ms), about 0.78 × its
    // requests.
    expect(fast.timing.restartTimeoutMs).toBeLessThan(500);
    expect(fast.timing.heartbeatIntervalMs).toBe(DELAY_MS - fast.timing.restartTimeoutMs - MARGIN_MS);
    expect(Math.abs(median(fast.gaps) - fast.timing.heartbeatIntervalMs)).toBeLessThan(250);
    expect(median(fast.gaps)).toBeGreaterThan(2200);
    // Slower: longer timeouts, shorter intervals (what the server saw follows what the manager says).
    expect(slower.timing.restartTimeoutMs).toBeGreaterThan(250);
    expect(slow.timing.restartTimeoutMs).toBeGreaterThan(slower.timing.restartTimeoutMs);
    expect(slow.timing.heartbeatIntervalMs).toBeLessThan(slower.timing.heartbeatIntervalMs);
    expect(slower.timing.heartbeatIntervalMs).toBeLessThan(fast.timing.heartbeatIntervalMs);
    expect(median(slow.gaps)).toBeLessThan(median(fast.gaps) - 300);
    expect(Math.abs(median(slow.gaps) - slow.timing.heartbeatIntervalMs)).toBeLessThan(250);
    // The margin was never given away, and there was always room for two attempts.
    for (const t of [fast.timing, slower.timing, slow.timing, fastAgain.timing]) {
      expect(t.heartbeatMarginMs).toBeGreaterThanOrEqual(MARGIN_MS);
      expect(DELAY_MS - t.heartbeatIntervalMs).toBeGreaterThanOrEqual(2 * t.restartTimeoutMs);
    }
    // Fast again: the measurements follow it back down.
    expect(fastAgain.timing.heartbeatIntervalMs).toBeGreaterThan(slow.timing.heartbeatIntervalMs);
    expect(median(fastAgain.gaps)).toBeGreaterThan(median(slow.gaps));

    // Never a fired leave: no `{}` at our key from a delayed event, and we never said "probably left".
    const firedAtOurKey = server
      .timeline(roomId)
      .filter(
        (e) =>
          e.type === CALL_MEMBER_EVENT_TYPE &&
          e.state_key === m.stateKey &&
          e.unsigned["org.matrix.msc4140.delay_id"] !== undefined,
      );
    expect(firedAtOurKey).toHaveLength(0);
    expect(probablyLeft).toEqual([false]);
    expect(
      Object.keys(server.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, m.stateKey) ?? {}),
    ).not.toHaveLength(0);
  }, 90_000);
});
