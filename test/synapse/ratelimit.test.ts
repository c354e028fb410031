/**
 * A 429 storm from Synapse's own `rc_delayed_event_mgmt` bucket (not an injected fault): another
 * session of the same user drains the bucket, so the manager's restarts get Synapse's real 429 with
 * `retry_after_ms`. Shorter than the delay, the storm must cost nothing visible: no fired leave, still
 * joined, and Synapse's deadline moves again once the bucket refills.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import { startTestCall, waitFor, type SynapseHomeserver, type TestCall } from "../../src/testing/index.js";
import { leavesOnServer, sleep, until } from "./helpers.js";

// Heartbeat every DELAY/2 = 4 s. The storm starts right after a restart and lasts 5.5 s, so it covers
// the next restart (at +4 s) and ends with 2.5 s to spare before Synapse's deadline (+8 s).
const DELAY = 8000;
const STORM_MS = 5500;

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
    const alice = await call.device("alice");
    const bob = await call.observer("bob");
    const errors: string[] = [];
    alice.manager.errors$.subscribe((e) => errors.push(`${e.code}:${e.operation}`));
    alice.manager.join();
    await bob.waitUntilSees(alice, { withinMs: 5000 });
    await alice.waitUntilConnected({ withinMs: 2000 });
    await until(() => alice.pendingDelayedLeaves().length === 1, 3000, "the delayed leave");
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

    // Another session of alice floods the management endpoint (the bucket is per user).
    const flooder = await call.homeserver.loginDevice("alice");
    const statuses: number[] = [];
    let retryAfterMs: number | undefined;
    const stormUntil = Date.now() + STORM_MS;
    const url = `${call.homeserver.baseUrl}/_matrix/client/unstable/org.matrix.msc4140/delayed_events/syd_nonexistent/restart`;
    // Three requests in flight at a time for STORM_MS: far more than the bucket's 1/s refill.
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
    await Promise.all([flood(), flood(), flood()]);
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
