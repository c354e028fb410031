/** Shared pieces of the real-Synapse suites. */
import { CALL_MEMBER_EVENT_TYPE } from "../../src/index.js";
import type { SynapseHomeserver, TestCall, TestDevice } from "../../src/testing/index.js";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls a server-side condition every 100 ms (each read is a blocking request to Synapse, so polling
 * faster would starve the code under test on this thread); resolves to how long it took.
 */
export async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (pred()) return Date.now() - start;
    if (Date.now() - start > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** Every `{}` Synapse holds in the timeline at the device's key (leaves others saw). */
export function leavesOnServer(call: TestCall<SynapseHomeserver>, d: TestDevice): number {
  return call.homeserver
    .timeline(call.roomId)
    .filter(
      (e) =>
        e.type === CALL_MEMBER_EVENT_TYPE &&
        e.state_key === d.manager.stateKey &&
        Object.keys(e.content ?? {}).length === 0,
    ).length;
}
