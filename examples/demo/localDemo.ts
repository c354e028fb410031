/**
 * The scripted demo on the embedded test homeserver, in-process (main.ts prints it; the demo test checks
 * it against the server). Two devices join one call:
 * - alice, standalone: a MembershipManager on a ClientBackend, her synced matrix-js-sdk client talking
 *   to the server through a FaultyLink (so her network can be cut);
 * - bob, widget mode: a MembershipManager on a WidgetBackend inside a widget, whose host runs a
 *   ClientWidgetApi with this package's DelayedEventWidgetDriver on bob's synced client.
 * Then alice's network is cut, the server fires her delayed leave, bob sees her go, the network returns,
 * she rejoins, and both leave cleanly.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import log from "loglevel";
import type { MatrixClient } from "matrix-js-sdk";
import {
  CALL_MEMBER_EVENT_TYPE,
  ClientBackend,
  MembershipManager,
  WidgetBackend,
  type MembershipBackend,
} from "../../src/index.js";
import {
  CallRecorder,
  quietMatrixSdkLogs,
  renderTimeline,
  rtcMembers,
  startFaultyLink,
  startTestHomeserver,
  stopClient,
  syncedClient,
  waitFor,
  type CallTrace,
  type DelayedEventRecord,
  type RequestLogEntry,
  type TimelineEventRecord,
} from "../../src/testing/index.js";
import { hostWidget, quietWidgetLogs, type InProcessWidget } from "./inProcessWidget.js";

/** The delayed leave's delay: short, so the demo is quick (Element Call uses 10 s). Heartbeats every half. */
export const DEMO_DELAY_MS = 3000;
/** How long both stay in the call before the cut, and after the rejoin. */
const IN_CALL_MS = 4000;
/** How long alice stays offline after the server fired her leave. */
const OFFLINE_AFTER_FIRE_MS = 1000;

export interface DemoReport {
  ok: boolean;
  failures: string[];
  /** Every printed line, with ms since the start. */
  events: { t: number; device: string; what: string }[];
  /** Everything recorded, absolute times (the homeserver runs on the same clock). */
  trace: CallTrace;
  /** What the demo says happened (absolute times); the demo test checks these against `server`. */
  claims: {
    cutAt?: number;
    restoredAt?: number;
    /** origin_server_ts of alice's leave as the server fired it. */
    firedAt?: number;
    bobSawAliceGoneAt?: number;
    aliceProbablyLeftAt?: number;
    rejoinedAt?: number;
    /** Successful restarts per device, as the devices saw them. */
    heartbeats: Record<string, number>;
  };
  /** The server's own records, taken just before it shut down. */
  server: {
    roomId: string;
    stateKeys: Record<string, string>;
    userIds: Record<string, string>;
    requests: RequestLogEntry[];
    timeline: TimelineEventRecord[];
    pendingAtEnd: DelayedEventRecord[];
    membershipAtEnd: Record<string, Record<string, unknown> | undefined>;
  };
  /** Where the timeline picture went, when asked for. */
  timelinePath?: string;
}

export interface DemoOptions {
  /** Receives one timestamped line per event. */
  print: (line: string) => void;
  /** Write the timeline picture (SVG) here. */
  timelinePath?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runLocalDemo({ print, timelinePath }: DemoOptions): Promise<DemoReport> {
  quietMatrixSdkLogs();
  const restoreConsole = quietWidgetLogs();
  const quiet = log.getLogger("matrixrtc-membership-demo");
  quiet.setLevel("silent");
  const rec = new CallRecorder({ print, delayMs: DEMO_DELAY_MS });
  const failures: string[] = [];
  const claims: DemoReport["claims"] = { heartbeats: {} };
  const step = async (what: string, fn: () => Promise<unknown>): Promise<boolean> => {
    try {
      await fn();
      return true;
    } catch (e) {
      failures.push(`${what}: ${(e as Error).message}`);
      rec.say("demo", `FAILED: ${what} (${(e as Error).message})`);
      return false;
    }
  };

  const hs = await startTestHomeserver({ rateLimits: { message: null, delayedEventMgmt: null } });
  const aliceCreds = await hs.createUser("alice");
  const bobCreds = await hs.createUser("bob");
  const roomId = await hs.createRoom(aliceCreds.accessToken, { name: "demo call" });
  await hs.joinRoom(bobCreds.accessToken, roomId);
  const link = await startFaultyLink({ target: hs.baseUrl });
  rec.say("server", `test homeserver on ${hs.baseUrl}, room ${roomId}`);
  rec.addDevice(
    { name: "alice", mode: "standalone: ClientBackend, behind a faulty link", ...aliceCreds },
    "",
  );
  rec.addDevice(
    { name: "bob", mode: "widget: WidgetBackend → widget API → DelayedEventWidgetDriver", ...bobCreds },
    " via the widget host",
  );
  rec.watchServer(hs, roomId, "embedded test homeserver");

  const clients: MatrixClient[] = [];
  const managers: MembershipManager[] = [];
  let widget: InProcessWidget | undefined;
  const manager = (name: string, creds: typeof aliceCreds, backend: MembershipBackend) => {
    const m = new MembershipManager({
      backend: rec.traceBackend(name, hs, backend),
      roomId,
      userId: creds.userId,
      deviceId: creds.deviceId,
      delayedLeaveDelayMs: DEMO_DELAY_MS,
      logger: quiet,
      fociPreferred: [{ type: "livekit", livekit_service_url: "https://livekit.example" }],
    });
    managers.push(m);
    rec.watchManager(name, m);
    return m;
  };
  const onServer = (m: MembershipManager) =>
    Object.keys(hs.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, m.stateKey) ?? {}).length > 0;
  const sees = (viewer: string, device: string) => {
    const v = rec.trace.views.filter((x) => x.device === viewer).at(-1);
    return v?.sees.includes(device) ?? false;
  };

  try {
    // alice: a standalone app; everything she sends or syncs goes through her (faulty) network.
    const aliceClient = await syncedClient(link.url, aliceCreds);
    clients.push(aliceClient);
    const alice = manager("alice", aliceCreds, new ClientBackend(aliceClient));
    rec.say("alice", `standalone app (ClientBackend); her network: a faulty link at ${link.url}`);

    // bob: a host app (its synced client runs the widget driver) and a call widget inside it.
    const bobHost = await syncedClient(hs.baseUrl, bobCreds);
    clients.push(bobHost);
    widget = await hostWidget(bobHost, roomId, { userId: bobCreds.userId, deviceId: bobCreds.deviceId });
    const bob = manager(
      "bob",
      bobCreds,
      new WidgetBackend(widget.widgetApi, {
        membership: { userId: bobCreds.userId, deviceId: bobCreds.deviceId },
      }),
    );
    rec.say(
      "bob",
      "widget (WidgetBackend) in a host (ClientWidgetApi + DelayedEventWidgetDriver), capabilities granted",
    );
    rec.watchView("alice", () => rtcMembers(aliceClient, roomId));
    rec.watchSync("alice", aliceClient);
    rec.watchView("bob", () => rtcMembers(bobHost, roomId));

    rec.say("demo", "both join the call");
    alice.join();
    bob.join();
    await step("both connected", () =>
      waitFor(() => alice.status === "connected" && bob.status === "connected", 10_000, "both connected"),
    );
    await step("each sees both", () =>
      waitFor(
        () => sees("alice", "alice") && sees("alice", "bob") && sees("bob", "alice") && sees("bob", "bob"),
        10_000,
        "both devices to list both",
      ),
    );
    rec.say(
      "demo",
      `in the call for ${IN_CALL_MS / 1000} s: heartbeats keep both delayed leaves from firing`,
    );
    await sleep(IN_CALL_MS);

    link.cut();
    claims.cutAt = Date.now();
    rec.outage("alice", claims.cutAt);
    rec.say("network", "alice's network is cut: nothing she sends arrives, nothing comes back", claims.cutAt);
    const fired = () =>
      rec.trace.server.memberships.find(
        (m) => m.device === "alice" && m.cause === "fired" && m.t >= claims.cutAt!,
      );
    await step("the server fires alice's delayed leave", () =>
      waitFor(() => fired() !== undefined, DEMO_DELAY_MS + 2000, "the server to fire alice's leave"),
    );
    claims.firedAt = fired()?.t;
    await step("bob sees alice leave", () =>
      waitFor(() => !sees("bob", "alice"), 5000, "bob's client to drop alice"),
    );
    claims.bobSawAliceGoneAt = rec.trace.views.filter((v) => v.device === "bob").at(-1)?.t;
    await step("alice knows she probably left", () =>
      waitFor(() => alice.probablyLeft, DEMO_DELAY_MS, "alice's probablyLeft"),
    );
    claims.aliceProbablyLeftAt = rec.trace.probablyLeft.find((p) => p.device === "alice")?.t;
    await sleep(OFFLINE_AFTER_FIRE_MS);

    link.restore();
    claims.restoredAt = Date.now();
    rec.outageEnds("alice", claims.restoredAt);
    rec.say("network", "alice's network is back", claims.restoredAt);
    const rejoin = () =>
      rec.trace.server.memberships.find((m) => m.device === "alice" && m.joined && m.t >= claims.restoredAt!);
    await step("alice rejoins", () =>
      waitFor(() => alice.status === "connected" && rejoin() !== undefined, 10_000, "alice to rejoin"),
    );
    claims.rejoinedAt = rejoin()?.t;
    if (claims.rejoinedAt)
      rec.say(
        "alice",
        `back in the call ${claims.rejoinedAt - claims.restoredAt} ms after the network returned`,
      );
    await step("bob sees alice again", () => waitFor(() => sees("bob", "alice"), 5000, "bob to list alice"));
    // alice's own client resumes syncing by itself: matrix-js-sdk retries 2-7 s after a failed /sync.
    const aliceState = () =>
      hs.roomState(roomId).find((e) => e.type === CALL_MEMBER_EVENT_TYPE && e.state_key === alice.stateKey);
    await step("alice's client catches up", () =>
      waitFor(
        () =>
          aliceClient
            .getRoom(roomId)
            ?.currentState.getStateEvents(CALL_MEMBER_EVENT_TYPE, alice.stateKey)
            ?.getId() === aliceState()?.event_id,
        12_000,
        "alice's client to sync her rejoin",
      ),
    );
    rec.say("alice", "her client has caught up with the server: her view of the call is current again");
    await sleep(DEMO_DELAY_MS / 2);

    rec.say("demo", "both leave");
    const [ra, rb] = await Promise.all([alice.leave({ timeoutMs: 5000 }), bob.leave({ timeoutMs: 5000 })]);
    rec.say("alice", `leave() → ${JSON.stringify(ra)}`);
    rec.say("bob", `leave() → ${JSON.stringify(rb)}`);
    await step("both views empty", () =>
      waitFor(
        () => ["alice", "bob"].every((v) => !sees(v, "alice") && !sees(v, "bob")),
        5000,
        "both clients to list nobody",
      ),
    );
    await step("nothing left on the server", async () => {
      if (onServer(alice) || onServer(bob)) throw new Error("a membership is still in room state");
      const left = hs.pendingDelayedEvents().filter((d) => d.roomId === roomId);
      if (left.length > 0) throw new Error(`${left.length} delayed events still pending`);
    });
    rec.say("server", "room state holds no membership and no delayed event is pending");
  } finally {
    rec.stop();
    for (const m of managers) m.dispose();
    widget?.close();
    for (const c of clients) stopClient(c);
    restoreConsole();
  }
  for (const d of rec.trace.devices)
    claims.heartbeats[d.name] = rec.trace.requests.filter(
      (r) => r.device === d.name && r.op === "restart" && r.ok,
    ).length;
  const stateKeys = Object.fromEntries(managers.map((m, i) => [rec.trace.devices[i].name, m.stateKey]));
  const server: DemoReport["server"] = {
    roomId,
    stateKeys,
    userIds: { alice: aliceCreds.userId, bob: bobCreds.userId },
    requests: [...hs.requests],
    timeline: hs.timeline(roomId),
    pendingAtEnd: hs.pendingDelayedEvents(),
    membershipAtEnd: Object.fromEntries(
      Object.entries(stateKeys).map(([name, key]) => [
        name,
        hs.stateContent(roomId, CALL_MEMBER_EVENT_TYPE, key),
      ]),
    ),
  };
  await link.close();
  await hs.close();

  const report: DemoReport = {
    ok: failures.length === 0,
    failures,
    events: rec.trace.milestones.map((m) => ({ ...m, t: m.t - rec.trace.t0 })),
    trace: rec.trace,
    claims,
    server,
  };
  if (timelinePath) {
    await mkdir(dirname(timelinePath), { recursive: true });
    await writeFile(
      timelinePath,
      renderTimeline(rec.trace, {
        title:
          "matrixrtc-membership demo: alice (standalone) and bob (widget) in one call; alice loses her network",
      }),
    );
    report.timelinePath = timelinePath;
  }
  return report;
}
