/**
 * Issue 11 item 1, over real HTTP: the server schedules our delayed leave but answers 200 with a body
 * whose `delay_id` is missing, a number, null, "" or an object. The manager must not take that as a
 * delayed leave: no membership write before a real one, no request with a made-up id, retries with
 * backoff, and the leaves the server did schedule (orphans) cancelled before they can fire. In both
 * membership formats (issue 21): the state format's delayed `{}` (`PUT …/state`), and the sticky
 * format's delayed sticky leave (`PUT …/send` with the delay and sticky parameters).
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import log from "loglevel";
import type { MatrixClient } from "matrix-js-sdk";
import {
  CALL_MEMBER_EVENT_TYPE,
  ClientBackend,
  MembershipManager,
  type MembershipError,
} from "../../../src/index.js";
import { startTestHomeserver, type TestHomeserver } from "../../../src/testing/index.js";
import { bareClient, stopClient, waitFor, type UserCreds } from "../../helpers/matrix.js";
import { isLeftContent } from "../../../src/membership/content.js";
import { RTC_MEMBER_EVENT_TYPE } from "../../../src/membership/rtcMember.js";

const quiet = log.getLogger("quiet-malformed");
quiet.setLevel("silent");

const DELAY = 2000;
// (An answer with an event id and no delay id is not malformed: it proves the server ignored the delay,
// test/integration/manager/dialect-change.test.ts.)
const BODIES: [string, unknown][] = [
  ["missing", { no_delay_id: true }],
  ["a number", { delay_id: 5 }],
  ["null", { delay_id: null }],
  ["an empty string", { delay_id: "" }],
  ["an object", { delay_id: { id: "syd_x" } }],
];

let hs: TestHomeserver;
let roomId: string;
let creator: UserCreds;
const clients: MatrixClient[] = [];
const managers: MembershipManager[] = [];

beforeAll(async () => {
  hs = await startTestHomeserver({
    rateLimits: { message: null, delayedEventMgmt: null },
    stickyEvents: true,
  });
  creator = await hs.createUser("creator");
  roomId = await hs.createRoom(creator.accessToken);
});
afterAll(async () => {
  for (const m of managers) m.dispose();
  for (const c of clients) stopClient(c);
  await hs.close();
});

describe.each(["state", "sticky"] as const)("%s format", (format) => {
  const sticky = format === "sticky";
  /** The routes of the delayed leave and of the membership write in this format. */
  const scheduleRoute = sticky ? "send.delayed" : "state.put.delayed";
  const writeRoute = sticky ? "send" : "state.put";
  it("a 200 without a usable delay_id is retried with backoff and never taken as a delayed leave", async () => {
    const runs = await Promise.all(
      BODIES.map(async ([name, body], i) => {
        const user = await hs.createUser(`malformed${format}${i}`);
        await hs.joinRoom(user.accessToken, roomId);
        // The server does the work (a real delayed leave is pending) and answers with the wrong shape.
        hs.faults.add({
          route: scheduleRoute,
          userId: user.userId,
          times: 3,
          respond: { status: 200, body, process: true },
        });
        const client = bareClient(hs.baseUrl, user);
        clients.push(client);
        const manager = new MembershipManager({
          backend: new ClientBackend(client),
          roomId,
          userId: user.userId,
          deviceId: user.deviceId,
          delayedLeaveDelayMs: DELAY,
          logger: quiet,
          ...(sticky ? { membershipFormat: "sticky" as const } : {}),
        });
        managers.push(manager);
        const errors: MembershipError[] = [];
        manager.errors$.subscribe((e) => errors.push(e));
        return { name, user, manager, errors };
      }),
    );
    const startedAt = Date.now();
    for (const r of runs) r.manager.join();
    // (Kept: the manager forgets its member id once the call ends, and the leave is checked after that.)
    const memberIds = new Map(runs.map((r) => [r.name, r.manager.memberId]));

    // The sticky format's delayed leaves and memberships carry the call's member id as their sticky key.
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

    await waitFor(
      () => runs.every((r) => r.manager.status === "connected" && pending(r).length === 1),
      8000,
      "every manager connected with exactly one pending delayed leave",
    );
    // Longer than the delay: an orphan left pending would fire now and wipe the membership.
    await new Promise((r) => setTimeout(r, DELAY + 500));
    const elapsedS = (Date.now() - startedAt) / 1000;

    for (const r of runs) {
      const log = hs.requests.filter((e) => e.userId === r.user.userId);
      const schedules = log.filter((e) => e.route === scheduleRoute);
      expect({ name: r.name, faulted: schedules.filter((e) => e.fault === "respond").length }).toEqual({
        name: r.name,
        faulted: 3,
      });
      // The membership went out only after a schedule whose answer was real.
      const firstGoodSchedule = log.findIndex(
        (e) => e.route === scheduleRoute && !e.fault && e.status === 200,
      );
      const firstMembership = log.findIndex((e) => e.route === writeRoute);
      expect({ name: r.name, before: firstMembership > firstGoodSchedule && firstGoodSchedule >= 0 }).toEqual(
        {
          name: r.name,
          before: true,
        },
      );
      // No heartbeat or leave with a made-up delay id (`undefined`, `5`, `null`, `[object Object]`): none
      // 404s. (A cancel of an orphan may 404 if the orphan fired first, before any membership was written.)
      expect({
        name: r.name,
        notFound: log
          // (The sticky format asks whether the room is encrypted: a 404 there means "no".)
          .filter(
            (e) =>
              e.status === 404 &&
              e.route !== "delayed.cancel" &&
              !e.path.includes("/state/m.room.encryption"),
          )
          .map((e) => `${e.method} ${e.path}`),
      }).toEqual({ name: r.name, notFound: [] });
      // Bounded: retries waited (today: ~1,000 requests a second).
      expect(log.length / elapsedS).toBeLessThan(15);
      // The server holds our membership and exactly one delayed leave: the orphans were cancelled.
      expect(isLeftContent(membership(r))).toBe(false);
      expect(pending(r)).toHaveLength(1);
      expect(r.manager.state).toEqual({ kind: "joined", delayedLeave: true });
      expect(
        r.errors.some(
          (e) => e.code === "server" && e.errorClass?.kind === "server" && e.errorClass.malformed,
        ),
      ).toBe(true);
    }

    for (const r of runs)
      expect(await r.manager.leave({ timeoutMs: 5000 })).toMatchObject({ status: "left" });
    for (const r of runs) {
      expect(isLeftContent(membership(r))).toBe(true);
      expect(pending(r)).toHaveLength(0);
    }
  });
});

it("a userId that is not the client's own is refused at construction", () => {
  const client = bareClient(hs.baseUrl, creator);
  clients.push(client);
  expect(
    () =>
      new MembershipManager({
        backend: new ClientBackend(client),
        roomId,
        userId: "@someone-else:localhost",
        deviceId: creator.deviceId,
      }),
  ).toThrow(/userId "@someone-else:localhost" must be the client's own user/);
});
