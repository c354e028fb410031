/**
 * The delegated column (issue 22 part 3, `BENCH_ONLY=delegated`): our manager with `delegation: "auto"`
 * against the test homeserver with the test token service behind its MSC4512 proxy, beside our manager
 * holding the leave itself and matrix-js-sdk (Element Call's settings), each device behind its own link
 * with the bench's RTT.
 *
 * Time is scaled for the delegated device: MSC4195's 1 h delay and Element Call's 5 min restarts become
 * 36 s and 3 s (÷100), so one "device-hour" of the delegated device is 36 s, and its counts over that
 * window are its counts per device-hour. The other two run on their real timing; their counts over the
 * same window are multiplied by 100 to a device-hour.
 *
 * - Heartbeat requests per device-hour: the device's own restarts (ours delegated: plus its delegation
 *   checks, and separately the service's restarts of the same leave at the homeserver).
 * - Ghost after the device dies: its link is cut; for the delegated device the SFU is told it is gone at
 *   the same moment (the test plays the SFU: its own detection time comes on top, LiveKit's is seconds);
 *   the time until the observer's MatrixRTCSession no longer lists the device.
 */
import { startTestHomeserver, startTestSfuAuth, type TestSfuAuth } from "../src/testing/index.js";
import {
  benchOn,
  EC_DELAY_MS,
  measureRtt,
  median,
  newDevice,
  newRoom,
  sleep,
  until,
  type Bench,
  type Device,
  type Impl,
  type OursTuning,
} from "./lib.js";
import type { Row } from "./report.js";

const SCALE = 100;
const HOUR = 3_600_000 / SCALE;
const INTERVAL = 300_000 / SCALE;

export interface DelegatedRun {
  rttMs: number;
  scale: number;
  windowMs: number;
  reps: number;
  /** Per device, over the window (raw counts). */
  restarts: { delegated: number[]; self: number[]; "js-sdk": number[] };
  delegationChecks: number[];
  serviceRestarts: number[];
  ghostMs: { delegated: number[]; self: number[]; "js-sdk": number[] };
  rows: Row[];
}

type Kind = "delegated" | "self" | "js-sdk";

async function joined(bench: Bench, sfu: TestSfuAuth, kind: Kind, tag: string): Promise<Device> {
  const impl: Impl = kind === "js-sdk" ? "js-sdk" : "ours";
  const tuning: OursTuning =
    kind === "delegated"
      ? { sfuUrl: sfu.livekitUrl, delegatedDelayMs: HOUR, delegatedHeartbeatIntervalMs: INTERVAL }
      : {};
  const roomId = await newRoom(bench, `${tag}-${kind}`);
  const d = await newDevice(bench, impl, roomId, `${tag}-${kind}`, tuning);
  if (kind === "delegated") sfu.connected({ userId: d.userId });
  const seen = bench.observer.when(
    roomId,
    () => bench.observer.sees(roomId, d.userId, d.deviceId),
    10_000,
    kind,
  );
  d.join();
  await d.whenConnected(10_000);
  await seen;
  if (kind === "delegated")
    await until(() => d.support?.().delayedLeaveHolder === "delegated", 10_000, "delegated", 10);
  return d;
}

/** The device's own restarts at the homeserver in [from, to) (the service's, as the same user, taken out). */
function ownRestarts(bench: Bench, sfu: TestSfuAuth, d: Device, from: number, to: number): number {
  const all = bench.hs.requests.filter(
    (r) => r.userId === d.userId && r.route === "delayed.restart" && r.ts >= from && r.ts < to,
  ).length;
  return all - serviceRestarts(sfu, d, from, to);
}

function serviceRestarts(sfu: TestSfuAuth, d: Device, from: number, to: number): number {
  return sfu.homeserverRequests.filter(
    (r) => r.action === "restart" && r.userId === d.userId && r.at >= from && r.at < to,
  ).length;
}

export async function runDelegatedRows(opts: {
  rttMs: number;
  reps: number;
  say: (s: string) => void;
}): Promise<DelegatedRun> {
  const sfu = await startTestSfuAuth({ delegation: { minDelayMs: HOUR } });
  const hs = await startTestHomeserver({
    requestLogLimit: 200_000,
    appServices: [sfu.appServiceRegistration()],
    msc4512Enabled: true,
  });
  sfu.useHomeserver(hs.baseUrl);
  const bench = await benchOn(hs, opts.rttMs);
  const devices: { kind: Kind; d: Device }[] = [];
  try {
    const rttMs = await measureRtt(bench);
    const kinds: Kind[] = ["delegated", "self", "js-sdk"];
    for (let rep = 0; rep < opts.reps; rep++)
      for (const kind of kinds) devices.push({ kind, d: await joined(bench, sfu, kind, `dg${rep}`) });
    opts.say(
      `delegated: ${devices.length} devices joined; counting over one scaled device-hour (${HOUR / 1000} s)…`,
    );
    await sleep(2000);
    const from = Date.now();
    await sleep(HOUR);
    const to = Date.now();
    const run: DelegatedRun = {
      rttMs,
      scale: SCALE,
      windowMs: to - from,
      reps: opts.reps,
      restarts: { delegated: [], self: [], "js-sdk": [] },
      delegationChecks: [],
      serviceRestarts: [],
      ghostMs: { delegated: [], self: [], "js-sdk": [] },
      rows: [],
    };
    for (const { kind, d } of devices) {
      run.restarts[kind].push(ownRestarts(bench, sfu, d, from, to));
      if (kind !== "delegated") continue;
      run.delegationChecks.push(
        sfu.requests.filter(
          (r) =>
            r.userIdentifier === d.userId &&
            r.path.endsWith("/delegate_delayed_leave") &&
            r.at >= from &&
            r.at < to,
        ).length,
      );
      run.serviceRestarts.push(serviceRestarts(sfu, d, from, to));
    }
    opts.say("delegated: every device dies (its link cut; the SFU told at once for the delegated ones)…");
    await Promise.all(
      devices.map(async ({ kind, d }) => {
        const sees = () => bench.observer.sees(d.roomId, d.userId, d.deviceId);
        d.link.cut();
        const cutAt = Date.now();
        if (kind === "delegated") sfu.disconnected({ userId: d.userId });
        const goneAt = await bench.observer
          .when(d.roomId, () => !sees(), EC_DELAY_MS * 3, `${kind} gone`)
          .catch(() => NaN);
        run.ghostMs[kind].push(goneAt - cutAt);
      }),
    );
    const perHour = (kind: Kind, n: number) => (kind === "delegated" ? n : (n * 3_600_000) / run.windowMs);
    const med = (kind: Kind) => median(run.restarts[kind].map((n) => perHour(kind, n)));
    run.rows = [
      {
        id: "delegated.restarts",
        label: "delegated: heartbeat restarts per device-hour",
        unit: "req/h",
        ours: med("delegated"),
        theirs: med("js-sdk"),
        lowerIsBetter: true,
        goal: { max: 12, text: "≤ 12 (a restart every 5 min) plus the delegation checks" },
        reps: opts.reps,
        note:
          `ours holding the leave itself: ${med("self").toFixed(0)}; ours delegated also sends ` +
          `${median(run.delegationChecks)} delegation checks, and the service restarts it ${median(run.serviceRestarts)} times ` +
          `per device-hour (scaled ÷${SCALE})`,
      },
      {
        id: "delegated.ghost",
        label: "delegated: ghost after the device dies (SFU notices at once)",
        unit: "ms",
        ours: median(run.ghostMs.delegated),
        theirs: median(run.ghostMs["js-sdk"]),
        lowerIsBetter: true,
        goal: { max: 2 * rttMs + 100, text: "≤ the SFU's detection + 1 RTT (+100 ms)" },
        reps: opts.reps,
        note: `ours holding the leave itself: ${median(run.ghostMs.self).toFixed(0)} ms (it waits for the server to fire its leave, a delay after its last restart: the cut comes at a random phase); the SFU's own detection time comes on top of the delegated figure`,
      },
    ];
    return run;
  } finally {
    await Promise.all(devices.map(({ d }) => d.close().catch(() => undefined)));
    await sfu.close();
    await bench.close();
  }
}
