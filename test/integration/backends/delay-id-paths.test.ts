/**
 * Issue 20 item 12: a delay id is a server's answer, and it goes into management URLs. A server (or a
 * proxy) answering the schedule with an id outside the grammar servers mint (`../../../rooms`, `..`, `a/b`,
 * whitespace, over 255 characters) must never make us send a request anywhere: the answer is a
 * MalformedResponseError, and a listing entry with such an id is skipped. Both MSC4140 dialects, the
 * client backend, the widget host driver and the manager, judged on the test homeserver's request log.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@jest/globals";
import log from "loglevel";
import { ClientBackend } from "../../../src/backends/client.js";
import { MalformedResponseError } from "../../../src/errors.js";
import { CALL_MEMBER_EVENT_TYPE, MembershipManager, widgetCapabilities } from "../../../src/index.js";
import {
  startTestHomeserver,
  SYNAPSE_PRESETS,
  type TestHomeserver,
  type TestHomeserverOptions,
} from "../../../src/testing/index.js";
import { DelayedEventWidgetDriver } from "../../../src/widget-host/index.js";
import { bareClient } from "../../helpers/matrix.js";
import { connectWidget, quietWidgetLogs } from "../../helpers/widgetBus.js";

const NO_LIMITS: TestHomeserverOptions = { rateLimits: { message: null, delayedEventMgmt: null } };
const BAD_IDS = [
  "../../../rooms",
  "..",
  ".",
  "a/b",
  "syd x",
  "syd\u0000x",
  "%2e%2e",
  "syd?x=1",
  "x".repeat(256),
];
const quiet = log.getLogger("delay-id-paths-quiet");
quiet.setLevel("silent");

let restoreConsole: () => void;
beforeAll(() => {
  restoreConsole = quietWidgetLogs();
});
afterAll(() => restoreConsole());

const servers: TestHomeserver[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function setup(options: TestHomeserverOptions = {}) {
  const hs = await startTestHomeserver({ ...NO_LIMITS, ...options });
  servers.push(hs);
  const alice = await hs.createUser("alice");
  const roomId = await hs.createRoom(alice.accessToken);
  return { hs, alice, roomId };
}

/** Requests that are not one of the known routes, or that name a path outside the delayed-events API. */
const strayRequests = (hs: TestHomeserver) =>
  hs.requests.filter(
    (r) =>
      r.route === "unknown" ||
      (r.path.includes("delayed_event") &&
        !r.route.startsWith("delayed.") &&
        r.route !== "state.put.delayed"),
  );

/** Answers every schedule (both dialects) with `id`, after really scheduling it. */
function answerScheduleWith(hs: TestHomeserver, id: string): void {
  for (const route of ["state.put.delayed", "delayed.schedule"] as const)
    hs.faults.add({ route, respond: { status: 200, body: { delay_id: id }, process: true } });
}

describe.each([
  ["unstable MSC4140 (Synapse 1.163)", SYNAPSE_PRESETS["1.163"]],
  ["MSC4140 as merged", SYNAPSE_PRESETS.merged],
])("delay ids as path segments: %s", (_name, preset) => {
  it.each(BAD_IDS.map((id) => [JSON.stringify(id).slice(0, 24), id]))(
    "client backend: a schedule answered with %s is a malformed answer; nothing is requested with it",
    async (_label, id) => {
      const { hs, alice, roomId } = await setup(preset);
      const client = bareClient(hs.baseUrl, alice);
      try {
        const backend = new ClientBackend(client);
        answerScheduleWith(hs, id);
        const req = { roomId, eventType: CALL_MEMBER_EVENT_TYPE, stateKey: "k", content: {}, delayMs: 5000 };
        await expect(backend.sendDelayedStateEvent(req)).rejects.toBeInstanceOf(MalformedResponseError);
        const before = hs.requests.length;
        for (const action of ["restart", "send", "cancel"] as const)
          await expect(backend.updateDelayedEvent(id, action)).rejects.toBeInstanceOf(MalformedResponseError);
        await expect(backend.getDelayedEvent(id)).rejects.toBeInstanceOf(MalformedResponseError);
        expect(hs.requests.slice(before)).toEqual([]);
        expect(strayRequests(hs)).toEqual([]);
      } finally {
        client.stopClient();
      }
    },
  );
});

describe("delay ids as path segments: listings, the host driver, the manager", () => {
  it("a listing entry with an id outside the grammar is skipped, never cancelled", async () => {
    const { hs, alice, roomId } = await setup();
    const client = bareClient(hs.baseUrl, alice);
    try {
      hs.faults.add({
        route: "delayed.list",
        respond: {
          status: 200,
          body: {
            delayed_events: [
              ...BAD_IDS.map((delay_id) => ({ delay_id, room_id: roomId, state_key: "k" })),
              { delay_id: "syd_good", room_id: roomId, state_key: "k" },
            ],
          },
        },
      });
      const listed = await new ClientBackend(client).listDelayedEvents();
      expect(listed.map((e) => e.delayId)).toEqual(["syd_good"]);
    } finally {
      client.stopClient();
    }
  });

  it("the host driver: a widget's schedule answered with a bad id fails; the widget can never use it", async () => {
    const { hs, alice, roomId } = await setup();
    const client = bareClient(hs.baseUrl, alice);
    const key = { userId: alice.userId, deviceId: alice.deviceId };
    const capabilities = widgetCapabilities(key);
    const driver = new DelayedEventWidgetDriver(client, { roomId, validateCapabilities: capabilities });
    const pair = await connectWidget({ driver, capabilities, creatorUserId: alice.userId });
    try {
      const stateKey = `_${alice.userId}_${alice.deviceId}_m.call`;
      for (const id of BAD_IDS) {
        hs.faults.clear();
        answerScheduleWith(hs, id);
        await expect(
          pair.widgetApi.sendStateEvent(CALL_MEMBER_EVENT_TYPE, stateKey, {}, undefined, 5000),
        ).rejects.toThrow();
        const before = hs.requests.length;
        await expect(pair.widgetApi.restartScheduledDelayedEvent(id)).rejects.toThrow();
        await expect(pair.widgetApi.sendScheduledDelayedEvent(id)).rejects.toThrow();
        expect(hs.requests.slice(before)).toEqual([]);
      }
      expect(strayRequests(hs)).toEqual([]);
    } finally {
      pair.close();
      client.stopClient();
    }
  });

  it("a manager whose server answers '../../../rooms' sends nothing outside the delayed-events API", async () => {
    const { hs, alice, roomId } = await setup();
    const client = bareClient(hs.baseUrl, alice);
    const manager = new MembershipManager({
      backend: new ClientBackend(client),
      roomId,
      userId: alice.userId,
      deviceId: alice.deviceId,
      delayedLeaveDelayMs: 1000,
      logger: quiet,
    });
    try {
      answerScheduleWith(hs, "../../../rooms");
      manager.join();
      await new Promise((r) => setTimeout(r, 3000));
      expect(strayRequests(hs)).toEqual([]);
      // What it managed, it managed by the real ids its listing named (routes of the delayed-events API).
      const managed = hs.requests.filter((r) => r.path.includes("/delayed_events/"));
      expect(
        managed.every((r) => r.route.startsWith("delayed.") && (r.status === 200 || r.status === 404)),
      ).toBe(true);
    } finally {
      manager.dispose();
      client.stopClient();
    }
  });
});
