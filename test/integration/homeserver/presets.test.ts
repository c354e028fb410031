/** Each Synapse preset shows its release's observable MSC4140 behaviour (protocol.md A.1). */
import { afterEach, describe, expect, it } from "@jest/globals";
import {
  SYNAPSE_PRESETS,
  startTestHomeserver,
  type SynapsePreset,
  type TestHomeserver,
} from "../../../src/testing/index.js";
import {
  CALL_MEMBER,
  delayQuery,
  mgmt,
  mgmtLegacy,
  NO_LIMITS,
  raw,
  scheduleState,
  statePath,
} from "./helpers.js";

interface Expectation {
  flag: boolean;
  capability: boolean;
  perActionRoutes: boolean;
  /** Status and errcode for a delay over the maximum (or when disabled). */
  tooLong: [number, string];
  ownWriteCancels: boolean;
}

// `merged` speaks another HTTP shape (no query parameter): test/integration/homeserver/merged.test.ts.
const EXPECTED: Record<Exclude<SynapsePreset, "merged">, Expectation> = {
  "1.116": {
    flag: true,
    capability: false,
    perActionRoutes: false,
    tooLong: [400, "M_UNKNOWN"],
    ownWriteCancels: true,
  },
  "1.127": {
    flag: true,
    capability: false,
    perActionRoutes: false,
    tooLong: [400, "M_UNKNOWN"],
    ownWriteCancels: false,
  },
  "1.143": {
    flag: true,
    capability: false,
    perActionRoutes: true,
    tooLong: [400, "M_UNKNOWN"],
    ownWriteCancels: false,
  },
  "1.156": {
    flag: true,
    capability: false,
    perActionRoutes: true,
    tooLong: [400, "M_UNKNOWN"],
    ownWriteCancels: false,
  },
  "1.157": {
    flag: true,
    capability: true,
    perActionRoutes: true,
    tooLong: [403, "M_FORBIDDEN"],
    ownWriteCancels: false,
  },
  "1.163": {
    flag: true,
    capability: true,
    perActionRoutes: true,
    tooLong: [400, "ORG.MATRIX.MSC4140_DELAY_TOO_LARGE"],
    ownWriteCancels: false,
  },
  disabled: {
    flag: false,
    capability: true,
    perActionRoutes: true,
    tooLong: [403, "M_FORBIDDEN"],
    ownWriteCancels: false,
  },
};

let hs: TestHomeserver | undefined;
afterEach(async () => {
  await hs?.close();
  hs = undefined;
});

describe.each(Object.keys(EXPECTED) as (keyof typeof EXPECTED)[])("preset %s", (preset) => {
  it("has the release's flag, capability, routes, error format and auto-cancel rule", async () => {
    const want = EXPECTED[preset];
    hs = await startTestHomeserver({ ...NO_LIMITS, ...SYNAPSE_PRESETS[preset] });
    const alice = await hs.createUser("alice");
    const roomId = await hs.createRoom(alice.accessToken);

    const versions = await raw(hs, "GET", "/_matrix/client/versions");
    expect(versions.body.unstable_features["org.matrix.msc4140"]).toBe(want.flag);
    const caps = await raw(hs, "GET", "/_matrix/client/v3/capabilities", { token: alice.accessToken });
    expect("org.matrix.msc4140.delayed_events" in caps.body.capabilities).toBe(want.capability);

    const tooLong = await raw(hs, "PUT", statePath(roomId, CALL_MEMBER, "k"), {
      token: alice.accessToken,
      body: {},
      query: delayQuery(48 * 3600 * 1000),
    });
    expect([tooLong.status, tooLong.body.errcode]).toEqual(want.tooLong);
    if (!want.flag) return;

    const id = await scheduleState(hs, alice, roomId, "k", 60_000);
    const perAction = await mgmt(hs, id, "restart", alice.accessToken);
    expect(perAction.status === 200).toBe(want.perActionRoutes);
    if (!want.perActionRoutes) expect(perAction.body.errcode).toBe("M_UNRECOGNIZED");
    expect((await mgmtLegacy(hs, id, { action: "restart" }, alice.accessToken)).status).toBe(200);

    await raw(hs, "PUT", statePath(roomId, CALL_MEMBER, "k"), {
      token: alice.accessToken,
      body: { joined: true },
    });
    expect(hs.pendingDelayedEvents().length === 0).toBe(want.ownWriteCancels);
  });
});
