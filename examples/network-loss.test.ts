// The call-app network-loss test from the README: runnable on its own with
//   npm run test:jest -- examples/network-loss.test.ts
import { expect, it } from "@jest/globals";
import { startTestCall } from "../src/testing/index.js";

it("Alice loses the network for 15 s; Bob sees her leave within the delay; she is back within 2 s", async () => {
  const call = await startTestCall({ delayMs: 10_000 });
  try {
    const alice = await call.device("alice");
    const bob = await call.observer("bob");
    alice.manager.join();
    await bob.waitUntilSees(alice, { withinMs: 2000 });

    alice.network.cut(); // Wi-Fi gone: requests hang, nothing gets through
    await bob.waitUntilGone(alice, { withinMs: 10_000 + 500 }); // the server fired her delayed leave
    expect(alice.manager.probablyLeft).toBe(true); // her app knows others see her gone
    await new Promise((r) => setTimeout(r, 15_000 - 10_500));

    alice.network.restore(); // back online
    await bob.waitUntilSees(alice, { withinMs: 2000 });
    await alice.waitUntilConnected({ withinMs: 100 });
    expect(alice.pendingDelayedLeaves()).toHaveLength(1); // protected again
  } finally {
    await call.close();
  }
}, 30_000);
