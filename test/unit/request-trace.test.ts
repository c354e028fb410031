/**
 * The manager's opt-in request trace (`trace` option), on virtual time against the fake server: one
 * line per request and one per answer or local timeout, in order, with the numbers that matter; delay
 * ids appear only as "leave#N" (the server's real ids never), tokens never; a failing sink is harmless.
 */
import { describe, expect, it } from "@jest/globals";
import { harness } from "../helpers/managerHarness.js";
import { matrixError } from "../helpers/fakeServer.js";

describe("MembershipManager trace", () => {
  it("one line per request and per answer, through a join, a heartbeat and a leave", async () => {
    const lines: string[] = [];
    const h = harness({ delayedLeaveDelayMs: 4000, trace: (l) => lines.push(l) });
    h.manager.join();
    // Until the heartbeat's first restart after the join's (the adaptive interval: 2 550 ms here).
    await h.time.advance(100);
    await h.time.advance(h.manager.effectiveTiming.heartbeatIntervalMs);
    const left = h.manager.leave({ timeoutMs: 5000 });
    await h.time.advance(200);
    expect(await left).toMatchObject({ status: "left" });
    h.manager.dispose();
    // The sweep of our key for a dead predecessor's leftovers at join (issue 20 item 11) interleaves with
    // the rest; counted here, left out of the sequence below. The next comes after a live tab's longest
    // heartbeat plus a restart's flight (3 350 ms here, orphans.ts relistAfterMs), after the leave.
    expect(lines.filter((l) => l.startsWith("→") && l.includes("list our delayed events"))).toHaveLength(1);
    const shape = lines
      .filter((l) => !l.includes("list our delayed events"))
      .map((l) =>
        l
          .replace(/^([→←]) #\d+/, "$1 #n")
          .replace(/timeout \d+ ms/, "timeout N ms")
          .replace(/in \d+ ms/, "in N ms"),
      );
    expect(shape).toEqual([
      "→ #n probe the server's support (timeout N ms)",
      "→ #n schedule the delayed leave (delay 4000 ms, timeout N ms)",
      "← #n probe the server's support ok in N ms",
      "← #n schedule the delayed leave ok in N ms: leave#1",
      "→ #n write the membership (timeout N ms)",
      "← #n write the membership ok in N ms",
      // Its server timestamp is read back (created_ts of later writes, issue 20), and the write is
      // followed by an immediate restart (README "How it works", 2).
      "→ #n read our membership (timeout N ms)",
      "→ #n restart leave#1 (timeout N ms)",
      "← #n read our membership ok in N ms",
      "← #n restart leave#1 ok in N ms",
      // No room view here: our key is read once per check interval (issue 25), before the heartbeat's
      // next restart (its adaptive interval is longer).
      "→ #n read our membership (timeout N ms)",
      "← #n read our membership ok in N ms",
      "→ #n restart leave#1 (timeout N ms)",
      "← #n restart leave#1 ok in N ms",
      "→ #n send leave#1 (timeout N ms)",
      "← #n send leave#1 ok in N ms",
    ]);
    // Each answer names the request it answers, and its time is the fake server's round trip.
    const main = lines.filter((l) => !l.includes("list our delayed events"));
    expect(main[3]).toMatch(new RegExp(`^← ${/#\d+/.exec(main[1])![0]} schedule .* ok in 20 ms`));
    // The server's delay ids never appear.
    const ids = [...h.server.log.map((e) => e.delayId).filter((d): d is string => !!d)];
    expect(ids.length).toBeGreaterThan(0);
    for (const id of ids) expect(lines.join("\n")).not.toContain(id);
  });

  it("says when our local timeout fired, and what an error was", async () => {
    const lines: string[] = [];
    const h = harness({ delayedLeaveDelayMs: 4000, trace: (l) => lines.push(l) });
    h.manager.join();
    await h.time.advance(300);
    h.server.inject("restart", { kind: "hang" });
    h.server.inject("restart", { kind: "error", error: () => matrixError(429, "M_LIMIT_EXCEEDED") });
    await h.time.advance(4000);
    h.manager.dispose();
    expect(lines).toContainEqual(
      expect.stringMatching(/^← #\d+ restart leave#1 failed: no answer within \d+ ms \(local timeout\)$/),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/^← #\d+ restart leave#1 failed in \d+ ms: 429 M_LIMIT_EXCEEDED$/),
    );
  });

  it("redacts access tokens inside error messages; a throwing sink does not break the manager", async () => {
    const lines: string[] = [];
    const h = harness({ trace: (l) => lines.push(l) });
    h.server.inject("state", {
      kind: "error",
      error: () =>
        new Error("fetch failed for https://hs/_matrix/client/v3/rooms?access_token=syt_secret_token"),
    });
    h.manager.join();
    await h.time.advance(2000);
    const all = lines.join("\n");
    expect(all).toContain("write the membership failed");
    expect(all).not.toContain("syt_secret_token");
    expect(all).toContain("<redacted>");
    h.manager.dispose();

    const broken = harness({
      trace: () => {
        throw new Error("sink broke");
      },
    });
    broken.manager.join();
    await broken.time.advance(1000);
    expect(broken.manager.status).toBe("connected");
    broken.manager.dispose();
  });
});
