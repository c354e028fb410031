/**
 * Issue 11 item 3, over real HTTP: hostile or odd rate-limit hints on the heartbeat. Whatever the hint
 * (`Retry-After: 0`, `-5`, dates in the past or far future, `retry_after_ms: 1e12`, none at all, an
 * hour), every retry waits between a floor and a ceiling, no timer overflows, and when the server
 * recovers after 1.5 s the device is still in the call as the server sees it. In both membership formats
 * (issue 21): the heartbeat is the same restart; the sticky format's membership is the newest sticky
 * event at the call's member id.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import log from "loglevel";
import type { MatrixClient } from "matrix-js-sdk";
import { CALL_MEMBER_EVENT_TYPE, ClientBackend, MembershipManager } from "../../../src/index.js";
import { startTestHomeserver, type TestHomeserver } from "../../../src/testing/index.js";
import { bareClient, stopClient, waitFor, type UserCreds } from "../../helpers/matrix.js";
import { isLeftContent } from "../../../src/membership/content.js";
import { RTC_MEMBER_EVENT_TYPE } from "../../../src/membership/rtcMember.js";

const quiet = log.getLogger("quiet-retry-after");
quiet.setLevel("silent");

// Heartbeat every 3 s; a 429 on it waits clamp(hint or backoff, floor, max(rejoin cap 600 ms, delay / 4) = 1.5 s).
const DELAY = 6000;
const HOUR_S = 3600;

/** Each hint, and the least the manager must wait after it (a hint of "now" 250 ms, no usable hint 1 s). */
const HINTS: [string, { body?: Record<string, unknown>; headers?: Record<string, string> }, number][] = [
  ["Retry-After: 0", { headers: { "Retry-After": "0" } }, 250],
  ["Retry-After: -5", { headers: { "Retry-After": "-5" } }, 1000],
  [
    "Retry-After: a date in the past",
    { headers: { "Retry-After": new Date(Date.now() - 3600_000).toUTCString() } },
    250,
  ],
  [
    "Retry-After: a date in 30 years",
    { headers: { "Retry-After": new Date(Date.now() + 1e12).toUTCString() } },
    1500,
  ],
  ["retry_after_ms: 1e12", { body: { retry_after_ms: 1e12 } }, 1500],
  ["no hint at all", {}, 1000],
  ["Retry-After: 3600", { headers: { "Retry-After": String(HOUR_S) } }, 1500],
];

let hs: TestHomeserver;
let roomId: string;
const clients: MatrixClient[] = [];
const managers: MembershipManager[] = [];

beforeAll(async () => {
  hs = await startTestHomeserver({
    rateLimits: { message: null, delayedEventMgmt: null },
    stickyEvents: true,
  });
  const creator = await hs.createUser("creator");
  roomId = await hs.createRoom(creator.accessToken);
});
afterAll(async () => {
  for (const m of managers) m.dispose();
  for (const c of clients) stopClient(c);
  await hs.close();
});

describe.each(["state", "sticky"] as const)("%s format", (format) => {
  const sticky = format === "sticky";
  it("every wait after a 429 on the heartbeat is between 1 s and the ceiling; back in the call once the server recovers", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on("warning", onWarning);
    try {
      const runs = await Promise.all(
        HINTS.map(async ([name, hint, floorMs], i) => {
          const user: UserCreds = await hs.createUser(`limited${format}${i}`);
          await hs.joinRoom(user.accessToken, roomId);
          const client = bareClient(hs.baseUrl, user);
          clients.push(client);
          const manager = new MembershipManager({
            backend: new ClientBackend(client),
            roomId,
            userId: user.userId,
            deviceId: user.deviceId,
            delayedLeaveDelayMs: DELAY,
            // A fixed delay/2 cadence, so the first heartbeat comes 3 s after the join, inside the storm
            // below (the adaptive heartbeat's first one comes ~4 s after it on this fast link).
            heartbeatIntervalMs: DELAY / 2,
            logger: quiet,
            ...(sticky ? { membershipFormat: "sticky" as const } : {}),
          });
          managers.push(manager);
          return { name, hint, floorMs, user, manager };
        }),
      );
      for (const r of runs) r.manager.join();
      const memberIds = new Map(runs.map((r) => [r.name, r.manager.memberId]));
      // The state event at our key, or the newest sticky event at the call's member id.
      const membership = (r: (typeof runs)[number]): Record<string, unknown> =>
        sticky
          ? (hs
              .timeline(roomId)
              .filter(
                (e) =>
                  e.type === RTC_MEMBER_EVENT_TYPE && e.content.msc4354_sticky_key === memberIds.get(r.name),
              )
              .at(-1)?.content ?? {})
          : (hs.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, r.manager.stateKey) ?? {});
      const pending = (r: (typeof runs)[number]) =>
        hs
          .pendingDelayedEvents()
          .filter((d) =>
            d.roomId !== roomId
              ? false
              : sticky
                ? d.content.msc4354_sticky_key === memberIds.get(r.name)
                : d.stateKey === r.manager.stateKey,
          );

      await waitFor(() => runs.every((r) => r.manager.status === "connected"), 5000, "all connected");

      // Sample what the server holds while the storm goes on: nobody may drop out of the call.
      const droppedOut = new Set<string>();
      const sampler = setInterval(() => {
        for (const r of runs) if (isLeftContent(membership(r))) droppedOut.add(r.name);
      }, 20);

      // The server rate-limits every heartbeat from 2 s after the join (so the first heartbeat, due 3 s
      // after the join, hits it) and recovers 1.5 s later; the delayed leave would fire 6 s after the join.
      await new Promise((r) => setTimeout(r, 2000));
      const faultIds = runs.map((r) =>
        hs.faults.add({
          route: "delayed.restart",
          userId: r.user.userId,
          respond: {
            status: 429,
            body: { errcode: "M_LIMIT_EXCEEDED", error: "Too Many Requests", ...r.hint.body },
            headers: r.hint.headers,
          },
        }),
      );
      await new Promise((r) => setTimeout(r, 1500));
      for (const id of faultIds) hs.faults.remove(id);
      const recoveredAt = Date.now();
      const mark = hs.requests.length;

      // Back: a heartbeat gets through soon after the recovery, not after the hour.
      await waitFor(
        () =>
          runs.every((r) =>
            hs.requests
              .slice(mark)
              .some((e) => e.userId === r.user.userId && e.route === "delayed.restart" && e.status === 200),
          ),
        3000,
        "a successful heartbeat from every device after the recovery",
      );
      expect(Date.now() - recoveredAt).toBeLessThan(3000);
      clearInterval(sampler);

      for (const r of runs) {
        const restarts = hs.requests.filter(
          (e) => e.userId === r.user.userId && e.route === "delayed.restart",
        );
        const limited = restarts.filter((e) => e.status === 429);
        expect({ name: r.name, limited: limited.length > 0 }).toEqual({ name: r.name, limited: true });
        // Floor: no retry sooner than the floor after a 429 (today: at once for the first five, after
        // 150-600 ms without a hint, and not for the hour after 3600).
        for (const e of limited) {
          const next = restarts.find((n) => n.ts > e.ts);
          if (next)
            expect({ name: r.name, gap: next.ts - e.ts >= r.floorMs - 100 }).toEqual({
              name: r.name,
              gap: true,
            });
        }
        // No hot loop: a 1.5 s storm costs at most 1.5 s / floor + 2 rate-limited heartbeats.
        expect({ name: r.name, bounded: limited.length <= Math.floor(1500 / r.floorMs) + 2 }).toEqual({
          name: r.name,
          bounded: true,
        });
        expect({ name: r.name, state: r.manager.state, probablyLeft: r.manager.probablyLeft }).toEqual({
          name: r.name,
          state: { kind: "joined", delayedLeave: true },
          probablyLeft: false,
        });
        expect(pending(r)).toHaveLength(1);
      }
      expect([...droppedOut]).toEqual([]);
      // No timer past 2^31 ms (Node fires those after 1 ms and warns).
      expect(warnings.filter((w) => /TimeoutOverflow/.test(w))).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });
});
