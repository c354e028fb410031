/**
 * Widget mode on a server speaking MSC4140 as merged: the host's DelayedEventWidgetDriver carries the
 * widget's `send_event` with `delay` and its `update_delayed_event` actions to the merged endpoints
 * (request log), and on a 1.157 server to the unstable ones.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@jest/globals";
import { SYNAPSE_PRESETS, type TestHomeserverOptions } from "../../../src/testing/index.js";
import { waitFor } from "../../helpers/matrix.js";
import { expectLeftThroughDelayedLeave } from "../../helpers/leave.js";
import { quietWidgetLogs } from "../../helpers/widgetBus.js";
import { NO_LIMITS, sleep, startWidgetWorld, type WidgetWorld } from "./harness.js";

const DELAY = 1000;

let restoreConsole: () => void;
beforeAll(() => {
  restoreConsole = quietWidgetLogs();
});
afterAll(() => restoreConsole());

let world: WidgetWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

/** MSC4140 requests the server saw: route ids and whether any used an unstable path. */
function spoken(w: WidgetWorld): { routes: string[]; unstable: boolean } {
  const requests = w.hs.requests.filter(
    (r) => r.route.startsWith("delayed.") || r.route.endsWith(".delayed"),
  );
  return {
    routes: [...new Set(requests.map((r) => r.route))].sort(),
    unstable: requests.some((r) => r.path.includes("/unstable/")),
  };
}

describe.each<[string, TestHomeserverOptions, { routes: string[]; unstable: boolean }]>([
  [
    "merged",
    SYNAPSE_PRESETS.merged,
    { routes: ["delayed.restart", "delayed.schedule", "delayed.send"], unstable: false },
  ],
  [
    "1.157",
    SYNAPSE_PRESETS["1.157"],
    { routes: ["delayed.restart", "delayed.send", "state.put.delayed"], unstable: true },
  ],
])("widget mode on a %s server", (_name, preset, want) => {
  it("joins, heartbeats and leaves through the shape the server speaks", async () => {
    world = await startWidgetWorld({ ...preset, ...NO_LIMITS });
    const c = await world.call();
    c.manager.join();
    await waitFor(() => c.manager.status === "connected" && c.pending().length === 1, 5000, "joined");
    await sleep(DELAY * 2);
    expect(c.joinedOnServer()).toBe(true);
    expect(c.pending()).toHaveLength(1);
    expectLeftThroughDelayedLeave(
      await c.manager.leave({ timeoutMs: 5000 }),
      world.hs.requests,
      world.alice.userId,
    );
    expect(c.membership()).toEqual({});
    expect(c.pending()).toEqual([]);
    expect(c.backend.failures).toEqual([]);
    expect(spoken(world)).toEqual(want);
  });
});
