/**
 * The testing kit's picture of a call: `startTestCall({ timeline: true, trace })` records a network
 * loss on the test homeserver, and `writeTimeline()` draws it. Checked against the server's own
 * records: the fired leave and the rejoin the picture shows are the ones in the room's timeline, the
 * trace's lines match the requests the server logged, and no delay id the server issued appears in them.
 */
import { afterAll, describe, expect, it } from "@jest/globals";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CALL_MEMBER_EVENT_TYPE } from "../../../src/index.js";
import { labelBoxes, overlappingPairs, startTestCall } from "../../../src/testing/index.js";

const DELAY_MS = 2000;
let dir: string | undefined;
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("startTestCall's timeline and trace", () => {
  it("records a cut, the server's fired leave and the rejoin; the picture and the trace say what the server holds", async () => {
    const lines: string[] = [];
    const call = await startTestCall({ delayMs: DELAY_MS, timeline: true, trace: (l) => lines.push(l) });
    let svg: string;
    const delayIds = new Set<string>();
    try {
      const alice = await call.device("alice");
      const bob = await call.observer("bob");
      alice.manager.join();
      await bob.waitUntilSees(alice, { withinMs: 2000 });
      for (const e of alice.pendingDelayedLeaves()) delayIds.add(e.delayId);
      alice.network.cut();
      await bob.waitUntilGone(alice, { withinMs: DELAY_MS + 1000 });
      alice.network.restore();
      await bob.waitUntilSees(alice, { withinMs: 3000 });
      await alice.waitUntilConnected({ withinMs: 1000 });
      for (const e of alice.pendingDelayedLeaves()) delayIds.add(e.delayId);
      dir = await mkdtemp(join(tmpdir(), "timeline-"));
      const path = await call.writeTimeline(join(dir, "sub", "call.svg"));
      svg = await readFile(path, "utf8");
      // TIMELINE_OUT=/tmp/call.svg: keep the picture, to look at it.
      if (process.env.TIMELINE_OUT) await call.writeTimeline(process.env.TIMELINE_OUT);

      // What the picture shows is what the server's timeline holds.
      const trace = call.recorded();
      const timeline = call.homeserver.timeline(call.roomId);
      const leaves = timeline.filter(
        (e) =>
          e.type === CALL_MEMBER_EVENT_TYPE &&
          e.state_key === alice.manager.stateKey &&
          Object.keys(e.content).length === 0,
      );
      expect(leaves).toHaveLength(1);
      const fired = trace.server.memberships.filter((m) => m.cause === "fired");
      expect(fired).toEqual([expect.objectContaining({ device: "alice", t: leaves[0].origin_server_ts })]);
      expect(trace.outages).toEqual([{ device: "alice", from: expect.any(Number), to: expect.any(Number) }]);
      expect(trace.devices.map((d) => [d.name, d.kind ?? "device"])).toEqual([
        ["alice", "device"],
        ["bob", "observer"],
      ]);
      // The trace's successful restarts are the restarts the server answered 200.
      const restartsOk = lines.filter((l) => /^alice ← #\d+ restart leave#\d+ ok/.test(l)).length;
      const served = call.homeserver.requests.filter(
        (r) => r.route === "delayed.restart" && r.status === 200,
      ).length;
      // One restart may have reached the server just as the cut began, its answer lost to alice.
      expect(served - restartsOk).toBeGreaterThanOrEqual(0);
      expect(served - restartsOk).toBeLessThanOrEqual(1);
    } finally {
      await call.close();
    }
    expect(delayIds.size).toBe(2);
    const all = lines.join("\n");
    for (const id of delayIds) expect(all).not.toContain(id);
    expect(lines).toContainEqual(
      expect.stringMatching(/^alice ← #\d+ restart leave#1 failed: no answer within \d+ ms/),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/^alice ← #\d+ restart leave#1 failed in \d+ ms: 404 M_NOT_FOUND$/),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/^alice ← #\d+ schedule the delayed leave ok in \d+ ms: leave#2$/),
    );

    for (const label of [
      ">alice<",
      ">bob<",
      ">server<",
      "alice's network cut",
      "network back",
      ">fired<",
      ">rejoined<",
    ])
      expect(svg!).toContain(label);
    expect(overlappingPairs(labelBoxes(svg!).map((l) => l.box))).toEqual([]);
    // Still there after close().
    expect(call.timelineSvg()).toContain(">rejoined<");
  }, 20_000);

  it("without timeline: true, asking for the picture says how to get one", async () => {
    const call = await startTestCall({ delayMs: DELAY_MS });
    try {
      expect(() => call.timelineSvg()).toThrow(/startTestCall\(\{ timeline: true \}\)/);
    } finally {
      await call.close();
    }
  });
});
