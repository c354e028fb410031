import log from "loglevel";
import type { MatrixClient } from "matrix-js-sdk";
import { ClientBackend, MembershipManager, CALL_MEMBER_EVENT_TYPE } from "../../src/index.js";
import { quietMatrixSdkLogs, startFaultyLink, startTestHomeserver } from "../../src/testing/index.js";
import { bareClient, rtcMembers, syncedClient, stopClient, waitFor } from "../../src/testing/scenario.js";

export interface DemoReport {
  ok: boolean;
  failures: string[];
  /** Milestones in ms since the start, for tests and the timeline. */
  events: { t: number; device: string; what: string }[];
}

const DELAY_MS = 3000;

/** The scripted demo, in-process; `print` receives one timestamped line per event. */
export async function runLocalDemo({ print }: { print: (line: string) => void }): Promise<DemoReport> {
  quietMatrixSdkLogs();
  const quiet = log.getLogger("demo-quiet");
  quiet.setLevel("silent");
  const start = Date.now();
  const events: DemoReport["events"] = [];
  const failures: string[] = [];
  const say = (device: string, what: string) => {
    const t = Date.now() - start;
    events.push({ t, device, what });
    print(`${(t / 1000).toFixed(3).padStart(7)}s  ${device.padEnd(8)} ${what}`);
  };
  const step = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      failures.push(`${what}: ${(e as Error).message}`);
      say("demo", `FAILED: ${what}`);
    }
  };

  const hs = await startTestHomeserver({ rateLimits: { message: null, delayedEventMgmt: null } });
  say("server", `test homeserver on ${hs.baseUrl}`);
  const alice = await hs.createUser("alice");
  const bob = await hs.createUser("bob");
  const roomId = await hs.createRoom(alice.accessToken, { name: "demo call" });
  await hs.joinRoom(bob.accessToken, roomId);
  const link = await startFaultyLink({ target: hs.baseUrl });
  say("server", `room ${roomId}; alice talks through a faulty link at ${link.url}`);

  const clients: MatrixClient[] = [];
  const makeManager = (name: string, baseUrl: string, creds: typeof alice) => {
    const client = bareClient(baseUrl, creds);
    clients.push(client);
    const m = new MembershipManager({
      backend: new ClientBackend(client),
      roomId,
      userId: creds.userId,
      deviceId: creds.deviceId,
      delayedLeaveDelayMs: DELAY_MS,
      logger: quiet,
      fociPreferred: [{ type: "livekit", livekit_service_url: "https://livekit.example" }],
    });
    m.status$.subscribe((s) => say(name, `status ${s}`));
    m.probablyLeft$.subscribe((p) => p && say(name, "probablyLeft: the server has probably fired our leave"));
    return m;
  };
  const aliceM = makeManager("alice", link.url, alice);
  const bobM = makeManager("bob", hs.baseUrl, bob);
  const bobView = await syncedClient(hs.baseUrl, bob);
  clients.push(bobView);
  const aliceId = `${alice.userId}|${alice.deviceId}`;
  const bobSees = () => rtcMembers(bobView, roomId);
  const aliceOnServer = () =>
    Object.keys(hs.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, aliceM.stateKey) ?? {}).length > 0;

  try {
    aliceM.join();
    bobM.join();
    await step("both connected", () =>
      waitFor(() => aliceM.status === "connected" && bobM.status === "connected", 10_000, "both connected"),
    );
    await step("bob sees alice", () =>
      waitFor(() => bobSees().includes(aliceId), 10_000, "bob to list alice"),
    );
    say("bob", `sees in the call: ${bobSees().join(", ")}`);

    await new Promise((r) => setTimeout(r, DELAY_MS));
    say(
      "alice",
      `heartbeats so far: ${hs.requests.filter((r) => r.route === "delayed.restart" && r.userId === alice.userId).length}`,
    );

    link.cut();
    const cutAt = Date.now();
    say("network", "alice's network is cut");
    await step("server fires alice's leave", () =>
      waitFor(() => !aliceOnServer(), DELAY_MS * 3, "the server to fire the leave"),
    );
    say(
      "server",
      `fired alice's delayed leave ${Date.now() - cutAt} ms after the cut (delay ${DELAY_MS} ms)`,
    );
    await step("bob sees alice leave", () =>
      waitFor(() => !bobSees().includes(aliceId), 10_000, "bob to drop alice"),
    );
    say("bob", `sees in the call: ${bobSees().join(", ") || "(nobody else)"}`);
    await step("alice knows she probably left", () =>
      waitFor(() => aliceM.probablyLeft, DELAY_MS * 2, "probablyLeft"),
    );

    link.restore();
    const backAt = Date.now();
    say("network", "alice's network is back");
    await step("alice rejoins", () =>
      waitFor(() => aliceM.status === "connected" && aliceOnServer(), 10_000, "rejoin"),
    );
    say("alice", `rejoined ${Date.now() - backAt} ms after the network returned`);
    await step("bob sees alice again", () =>
      waitFor(() => bobSees().includes(aliceId), 10_000, "bob to list alice again"),
    );
    say("bob", `sees in the call: ${bobSees().join(", ")}`);

    const [ra, rb] = await Promise.all([aliceM.leave({ timeoutMs: 5000 }), bobM.leave({ timeoutMs: 5000 })]);
    say("alice", `leave: ${JSON.stringify(ra)}`);
    say("bob", `leave: ${JSON.stringify(rb)}`);
    await step("nothing left on the server", async () => {
      if (aliceOnServer()) throw new Error("alice's membership is still in room state");
      const left = hs.pendingDelayedEvents().filter((d) => d.roomId === roomId);
      if (left.length > 0) throw new Error(`${left.length} delayed events still pending`);
    });
    say("server", "room state holds no membership and no delayed event is pending");
  } finally {
    aliceM.dispose();
    bobM.dispose();
    for (const c of clients) stopClient(c);
    await link.close();
    await hs.close();
  }
  return { ok: failures.length === 0, failures, events };
}
