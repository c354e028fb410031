/**
 * Two tabs of one device (same user, same device id, two access tokens) with our package, on a real
 * Synapse 1.163.2: the behaviour test/integration/interop/same-user.test.ts asserts on the emulator's
 * 1.157 preset, checked against the real server.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import log from "loglevel";
import {
  CALL_MEMBER_EVENT_TYPE,
  ClientBackend,
  MembershipManager,
  type MembershipManagerOptions,
} from "../../src/index.js";
import {
  bareClient,
  startTestCall,
  stopClient,
  waitFor,
  type SynapseHomeserver,
  type TestCall,
  type TestDevice,
} from "../../src/testing/index.js";
import { idOf, roomOf } from "../integration/interop/helpers.js";
import { sleep, until } from "./helpers.js";

// Long enough that the manager's local request timeout (delay / 5) holds on a loaded machine's Synapse.
const DELAY = 4000;
const quiet = log.getLogger("synapse-tabs-quiet");
quiet.setLevel("silent");

let call: TestCall<SynapseHomeserver> | undefined;
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) c();
  await call?.close();
  call = undefined;
});

const localpartOf = (userId: string) => userId.slice(1).split(":")[0];

/** Membership writes at a key, oldest first: "{}" for a leave, else the first focus URL. */
function writesAt(c: TestCall<SynapseHomeserver>, stateKey: string): string[] {
  return c.homeserver
    .timeline(c.roomId)
    .filter((e) => e.type === CALL_MEMBER_EVENT_TYPE && e.state_key === stateKey)
    .map((e) =>
      Object.keys(e.content).length === 0
        ? "{}"
        : String((e.content.foci_preferred as { livekit_service_url?: string }[])[0]?.livekit_service_url),
    );
}

async function secondTab(
  c: TestCall<SynapseHomeserver>,
  first: TestDevice,
  extra: Partial<MembershipManagerOptions> = {},
): Promise<MembershipManager> {
  const creds = await c.homeserver.loginDevice(localpartOf(first.userId), first.deviceId);
  expect(creds.deviceId).toBe(first.deviceId);
  const client = bareClient(c.homeserver.baseUrl, creds);
  const tab = new MembershipManager({
    backend: new ClientBackend(client),
    roomId: c.roomId,
    userId: first.userId,
    deviceId: first.deviceId,
    delayedLeaveDelayMs: DELAY,
    logger: quiet,
    fociPreferred: [{ type: "livekit", livekit_service_url: "https://tab-two.example" }],
    ...extra,
  });
  cleanups.push(
    () => tab.dispose(),
    () => stopClient(client),
  );
  return tab;
}

describe("two tabs of one device on real Synapse", () => {
  it("the second join overwrites; each tab keeps its own delayed leave; the first tab's leave wipes the device out, and the other tab (reading its key) puts it back", async () => {
    call = await startTestCall({ server: "synapse", delayMs: DELAY });
    const tab1 = await call.device("alice", { logger: quiet });
    const tab2 = await secondTab(call, tab1);
    expect(tab2.stateKey).toBe(tab1.manager.stateKey);
    const bob = await call.observer("bob");

    tab1.manager.join();
    await tab1.waitUntilConnected();
    tab2.join();
    await waitFor(() => tab2.status === "connected", 5000, "tab 2 connected");
    await until(() => tab1.pendingDelayedLeaves().length === 2, 3000, "two delayed leaves at one key");
    await bob.waitUntilSees(tab1);
    await sleep(DELAY + 1000);
    expect(writesAt(call, tab1.manager.stateKey)).toEqual([
      "https://livekit.test",
      "https://tab-two.example",
    ]);
    expect(tab1.pendingDelayedLeaves()).toHaveLength(2);
    expect(tab1.manager.status).toBe("connected");
    expect(tab2.status).toBe("connected");
    expect(bob.members()).toEqual([idOf(tab1)]);

    expect(await tab1.manager.leave({ timeoutMs: 5000 })).toEqual({
      status: "left",
      via: "delayed-event-sent",
    });
    await bob.waitUntilGone(tab1, { withinMs: 3000 });
    // Tab 2's own delayed leave is still restarted successfully; before issue 25 it never noticed. Its
    // client does not sync, so it reads its key every heartbeat interval: it puts the device back.
    await bob.waitUntilSees(tab1, { withinMs: DELAY + 1000 });
    await sleep(DELAY);
    expect(tab1.isJoinedOnServer()).toBe(true);
    expect(tab2.status).toBe("connected");
    expect(tab1.pendingDelayedLeaves()).toHaveLength(1);
  });

  it("with the manager's roomState view, the remaining tab puts the device back", async () => {
    call = await startTestCall({ server: "synapse", delayMs: DELAY });
    const tab1 = await call.device("alice", { logger: quiet });
    const bob = await call.observer("bob");
    await roomOf(bob.client, call.roomId);
    const tab2 = await secondTab(call, tab1, { roomState: bob.client, membershipGraceMs: 300 });
    const reasons: string[] = [];
    tab2.state$.subscribe((s) => s.kind === "reconnecting" && reasons.push(s.reason));

    tab1.manager.join();
    await tab1.waitUntilConnected();
    tab2.join();
    await waitFor(() => tab2.status === "connected", 5000, "tab 2 connected");
    await bob.waitUntilSees(tab1);

    await tab1.manager.leave({ timeoutMs: 5000 });
    const leftAt = Date.now();
    await until(() => tab1.isJoinedOnServer(), 5000, "tab 2 to restore the membership");
    await bob.waitUntilSees(tab1, { withinMs: 3000 });
    expect(Date.now() - leftAt).toBeLessThan(3000);
    expect(reasons).toContain("membership-removed");
    const writes = writesAt(call, tab1.manager.stateKey);
    expect(writes.at(-2)).toBe("{}");
    expect(writes.at(-1)).toBe("https://tab-two.example");
    await sleep(DELAY);
    expect(bob.sees(tab1)).toBe(true);
    expect(tab2.status).toBe("connected");
    expect(tab1.pendingDelayedLeaves()).toHaveLength(1);
  });
});
