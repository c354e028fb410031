/**
 * A 429 storm from Synapse's own `rc_delayed_event_mgmt` bucket (not an injected fault): another
 * session of the same user drains the bucket, so the manager's restarts get Synapse's real 429 with
 * `retry_after_ms`. Shorter than the delay, the storm must cost nothing visible: no fired leave, still
 * joined, and Synapse's deadline moves again once the bucket refills.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import { startTestCall, waitFor, type SynapseHomeserver, type TestCall } from "../../src/testing/index.js";
import { leavesOnServer, sleep, until } from "./helpers.js";

// Element Call's delay: a heartbeat every DELAY/2 = 5 s. The storm starts right after a restart and
// lasts 6.5 s, so it covers the next restart (at +5 s) and ends 3.5 s before Synapse's deadline (+10 s).
// After it, Synapse's bucket still needs up to 1 s to refill and the manager waits Retry-After (whole
// seconds) between tries: 3.5 s leaves room for two. (With 8 s and 5.5 s, started up to 1 s late, the
// margin was about 1.5 s, one retry cadence, and 1 run in 10 lost the race: a leave fired.)
const DELAY = 10_000;
const STORM_MS = 6500;
const FLOODERS = 5;

let call: TestCall<SynapseHomeserver> | undefined;
afterEach(async () => {
  await call?.close();
  call = undefined;
});

describe("rate limits on real Synapse", () => {
  it("a storm of Synapse's own 429s on management, shorter than the delay: retried, no leave", async () => {
    call = await startTestCall({
      server: "synapse",
      delayMs: DELAY,
      // Room for the manager's own restarts, but a flood drains it at once.
      synapse: { rateLimits: { delayedEventMgmt: { perSecond: 1, burstCount: 4 } } },
    });
    // The fixed DELAY/2 cadence the storm is timed for (see above). The adaptive heartbeat would restart
    // after the storm (6.75 s), and its 250 ms restart timeout gives up on Synapse's slow answers while
    // the flood loads it: a network error and an extra restart, which this test does not count.
    const alice = await call.device("alice", { heartbeatIntervalMs: DELAY / 2 });
    const bob = await call.observer("bob");
    const errors: string[] = [];
    alice.manager.errors$.subscribe((e) => errors.push(`${e.code}:${e.operation}`));
    alice.manager.join();
    await bob.waitUntilSees(alice, { withinMs: 5000 });
    await alice.waitUntilConnected({ withinMs: 2000 });
    await until(() => alice.pendingDelayedLeaves().length === 1, 3000, "the delayed leave");
    // Another session of alice will flood the management endpoint (the bucket is per user).
    const flooder = await call.homeserver.loginDevice("alice");
    await sleep(1000); // the bucket refills from the reads above
    const restartsBefore = alice.network.log.length;
    await waitFor(
      () =>
        alice.network.log
          .slice(restartsBefore)
          .some((r) => r.path.includes("/delayed_events/") && r.upstreamStatus === 200),
      DELAY,
      "a successful restart",
    );

    const statuses: number[] = [];
    let retryAfterMs: number | undefined;
    const stormUntil = Date.now() + STORM_MS;
    const url = `${call.homeserver.baseUrl}/_matrix/client/unstable/org.matrix.msc4140/delayed_events/syd_nonexistent/restart`;
    // FLOODERS requests in flight at a time for STORM_MS: far more than the bucket's 1/s refill, so the
    // manager rarely wins a refilled token.
    const flood = async () => {
      while (Date.now() < stormUntil) {
        const res = await fetch(url, {
          method: "POST",
          headers: { authorization: `Bearer ${flooder.accessToken}` },
          body: "{}",
        });
        statuses.push(res.status);
        if (res.status === 429) {
          retryAfterMs ??= ((await res.json()) as { retry_after_ms?: number }).retry_after_ms;
          expect(res.headers.get("retry-after")).not.toBeNull();
        } else await res.text();
      }
    };
    await Promise.all(Array.from({ length: FLOODERS }, flood));
    // Synapse itself answered 429 (with retry_after_ms) for most of the storm.
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(statuses.length / 2);
    expect(retryAfterMs).toBeGreaterThan(0);

    // Past the storm and more than one delay later: never left, deadline moving again.
    await sleep(DELAY);
    const linkLog = alice.network.log.map(
      (r) => `${r.ts - stormUntil} ${r.method} ${r.path.slice(-50)} ${r.upstreamStatus}`,
    );
    const story = `manager's requests (ms from the storm's end):\n${linkLog.join("\n")}\nerrors: ${errors.join(",")}\nflood: ${statuses.join(",")}`;
    if (leavesOnServer(call, alice) !== 0) throw new Error(`the leave fired during the storm\n${story}`);
    expect(bob.sees(alice)).toBe(true);
    expect(alice.manager.status).toBe("connected");
    expect(alice.manager.probablyLeft).toBe(false);
    const [pending] = alice.pendingDelayedLeaves();
    expect(pending.sendTs).toBeGreaterThan(stormUntil + DELAY / 2);
    // Every 429 the manager's restarts met (the manager competes with the flood for each token Synapse
    // refills, so how many varies) was reported as rate-limited, and nothing else went wrong.
    const met429 = alice.network.log.filter(
      (r) => r.path.includes("/delayed_events/") && r.upstreamStatus === 429,
    ).length;
    expect(errors.filter((e) => e === "rate-limited:restart").length).toBe(met429);
    expect(errors.filter((e) => !e.startsWith("rate-limited"))).toEqual([]);
  });
});
