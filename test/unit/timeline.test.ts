/**
 * The timeline picture's layout, on a synthetic trace built to crowd it: a cut, a fired leave, the
 * manager's probablyLeft, the network's return, a reset, a 404 and a rejoin within 40 ms of each other,
 * and a second cut still running at the end with deadlines due after it. Checked on the SVG itself:
 * no two labels overlap, no label covers a marker, nothing is drawn past the end of the recording, and
 * the labels that tell the story are all there.
 */
import { describe, expect, it } from "@jest/globals";
import { writeFileSync } from "node:fs";
import {
  labelBoxes,
  overlappingPairs,
  renderTimeline,
  type Box,
  type CallTrace,
  type DeviceRequest,
} from "../../src/testing/index.js";

const T0 = 1_700_000_000_000;
const at = (s: number) => T0 + Math.round(s * 1000);

function crowdedTrace(): CallTrace {
  const requests: DeviceRequest[] = [];
  const req = (device: string, op: DeviceRequest["op"], s: number, ms: number, error?: string) =>
    requests.push({ device, op, start: at(s), end: at(s) + ms, ok: !error, ...(error ? { error } : {}) });
  for (const device of ["alice", "bob"]) {
    req(device, "schedule", 0.2, 12);
    req(device, "state", 0.215, 8);
  }
  for (let s = 1.7; s < 4.3; s += 1.5) req("alice", "restart", s, 5);
  for (let s = 1.7; s < 14.9; s += 1.5) req("bob", "restart", s, 5);
  for (const s of [5.3, 5.9, 6.5, 7.1]) req("alice", "restart", s, 600, "no answer in time (600 ms)");
  req("alice", "restart", 7.205, 3, "fetch failed: ECONNRESET");
  req("alice", "restart", 7.21, 4, "404 M_NOT_FOUND");
  req("alice", "schedule", 7.215, 6);
  req("alice", "state", 7.222, 6);
  for (let s = 8.7; s < 12; s += 1.5) req("alice", "restart", s, 5);
  for (const s of [12.5, 13.1, 13.7, 14.3]) req("alice", "restart", s, 600, "no answer in time (600 ms)");
  const deadlines: CallTrace["server"]["deadlines"] = [];
  let prev: (typeof deadlines)[number] | undefined;
  for (const s of [0.2, 1.7, 3.2]) {
    if (prev) Object.assign(prev, { endAt: at(s), end: "restarted" });
    prev = { device: "alice", leave: "alice#1", setAt: at(s), sendTs: at(s + 3) };
    deadlines.push(prev);
  }
  Object.assign(prev!, { endAt: at(6.2), end: "fired" });
  prev = undefined;
  for (const s of [7.215, 8.7, 10.2, 11.7]) {
    if (prev) Object.assign(prev, { endAt: at(s), end: "restarted" });
    prev = { device: "alice", leave: "alice#2", setAt: at(s), sendTs: at(s + 3) };
    deadlines.push(prev);
  }
  prev = undefined;
  for (let s = 0.2; s < 14.9; s += 1.5) {
    if (prev) Object.assign(prev, { endAt: at(s), end: "restarted" });
    prev = { device: "bob", leave: "bob#1", setAt: at(s), sendTs: at(s + 3) };
    deadlines.push(prev);
  }
  const serverRequests = requests
    .filter((r) => r.ok || r.error?.startsWith("404"))
    .map((r) => ({
      t: r.start + 1,
      device: r.device,
      route: { schedule: "state.put.delayed", state: "state.put", restart: "delayed.restart" }[
        r.op as string
      ]!,
      status: r.ok ? 200 : 404,
    }));
  return {
    t0: T0,
    tEnd: at(15),
    delayMs: 3000,
    heartbeatMs: 1500,
    devices: [
      {
        name: "alice",
        mode: "standalone: ClientBackend, behind a faulty link",
        userId: "@alice:x",
        deviceId: "A",
      },
      { name: "bob", mode: "widget: WidgetBackend → widget API", userId: "@bob:x", deviceId: "B" },
      {
        name: "carol",
        mode: "observer: a synced client",
        userId: "@carol:x",
        deviceId: "C",
        kind: "observer",
      },
    ],
    requests,
    statuses: [
      { device: "alice", t: at(0.2), status: "connecting" },
      { device: "alice", t: at(0.23), status: "connected" },
      { device: "alice", t: at(6.2), status: "reconnecting", reason: "heartbeat-failing" },
      { device: "alice", t: at(7.215), status: "reconnecting", reason: "delayed-leave-fired" },
      { device: "alice", t: at(7.23), status: "connected" },
      { device: "alice", t: at(14.3), status: "reconnecting", reason: "heartbeat-failing" },
      { device: "bob", t: at(0.2), status: "connecting" },
      { device: "bob", t: at(0.23), status: "connected" },
    ],
    probablyLeft: [{ device: "alice", t: at(6.2) }],
    views: [
      { device: "carol", t: at(0.25), sees: ["alice", "bob"] },
      { device: "carol", t: at(6.21), sees: ["bob"] },
      { device: "carol", t: at(7.24), sees: ["alice", "bob"] },
      { device: "alice", t: at(0.25), sees: ["alice", "bob"] },
      { device: "bob", t: at(0.25), sees: ["alice", "bob"] },
      { device: "bob", t: at(6.21), sees: ["bob"] },
      { device: "bob", t: at(7.24), sees: ["alice", "bob"] },
    ],
    syncs: [
      { device: "alice", t: at(4.5), state: "ERROR" },
      { device: "alice", t: at(10.1), state: "SYNCING" },
    ],
    server: {
      recorded: true,
      label: "test homeserver",
      requests: serverRequests,
      deadlines,
      memberships: [
        { device: "alice", t: at(0.22), joined: true, cause: "device" },
        { device: "bob", t: at(0.22), joined: true, cause: "device" },
        { device: "alice", t: at(6.2), joined: false, cause: "fired", leave: "alice#1" },
        { device: "alice", t: at(7.225), joined: true, cause: "device" },
      ],
    },
    outages: [
      { device: "alice", from: at(4.3), to: at(7.2) },
      { device: "alice", from: at(12.2) },
    ],
    milestones: [],
  };
}

/** The boxes of the picture's markers (circles and diamonds) above the legend. */
function markerBoxes(svg: string, above: number): Box[] {
  const boxes: Box[] = [];
  for (const m of svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)" r="([\d.]+)"/g)) {
    const [cx, cy, r] = [Number(m[1]), Number(m[2]), Number(m[3])];
    if (cy < above) boxes.push({ x0: cx - r, y0: cy - r, x1: cx + r, y1: cy + r });
  }
  for (const m of svg.matchAll(/<path d="M([\d.]+) ([\d.]+) l5 5 l-5 5 l-5 -5 z" fill="#ea580c" stroke/g))
    boxes.push({ x0: Number(m[1]) - 5, y0: Number(m[2]), x1: Number(m[1]) + 5, y1: Number(m[2]) + 10 });
  return boxes;
}

const overlap = (a: Box, b: Box) => a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;

describe("renderTimeline layout", () => {
  const svg = renderTimeline(crowdedTrace(), { title: "crowded" });
  // TIMELINE_OUT=/tmp/crowded.svg: write the picture, to look at it.
  if (process.env.TIMELINE_OUT) writeFileSync(process.env.TIMELINE_OUT, svg);
  const labels = labelBoxes(svg);
  const legendTop = Math.min(...labels.filter((l) => l.text === "legend").map((l) => l.box.y0));

  it("no two labels overlap, even where five things happen within 40 ms", () => {
    const pairs = overlappingPairs(labels.map((l) => ({ ...l.box, text: l.text })));
    expect(pairs.map(([a, b]) => `${a.text} / ${b.text}`)).toEqual([]);
  });

  it("no label covers a marker (heartbeat dots, fired and left dots, the probablyLeft diamond)", () => {
    const markers = markerBoxes(svg, legendTop);
    expect(markers.length).toBeGreaterThan(20);
    const covered = labels.filter((l) => markers.some((m) => overlap(l.box, m))).map((l) => l.text);
    expect(covered).toEqual([]);
  });

  it("the labels that tell the story are there", () => {
    const texts = labels.map((l) => l.text);
    for (const t of [
      "alice's network cut",
      "network back",
      "the server fires alice's leave",
      "probablyLeft",
      "timeout ×4",
      "404",
      "conn. reset",
      "fired",
      "rejoined",
      "deadline reached: fired",
      "15.0 s",
    ])
      expect(texts).toContain(t);
  });

  it("the axis ends with the recording: nothing is drawn past its last instant", () => {
    const end = labels.find((l) => l.text === "15.0 s")!;
    const endX = end.box.x1; // anchored at the end instant
    const past: string[] = [];
    for (const m of svg.matchAll(/<(line|rect|circle) ([^>]*)\/>/g)) {
      const a = Object.fromEntries([...m[2].matchAll(/([a-z0-9-]+)="([^"]*)"/g)].map((p) => [p[1], p[2]]));
      const num = (k: string) => Number(a[k]);
      if (m[1] === "line") {
        if (num("x1") === 0) continue; // lane separators span the picture
        if (Math.max(num("x1"), num("x2")) > endX + 0.1) past.push(m[0]);
      } else if (m[1] === "circle") {
        if (num("cy") < legendTop && num("cx") - num("r") > endX + 0.1) past.push(m[0]);
      } else if (a.width !== "100%" && num("x") !== 0 && num("y") < legendTop - 20) {
        if (num("x") + num("width") > endX + 0.1) past.push(m[0]);
      }
    }
    expect(past).toEqual([]);
    // Ticks stop before the end's label.
    const ticks = labels.filter((l) => /^\d+ s$/.test(l.text));
    expect(ticks.at(-1)!.box.x1).toBeLessThan(end.box.x0);
  });

  it("an observer has a lane of its own with what its client lists; the still-running cut is drawn to the end", () => {
    expect(labels.filter((l) => l.text === "carol")).toHaveLength(1);
    expect(svg.match(/>sees alice</g)).toHaveLength(3);
    expect(svg).toContain("alice's network is cut for 2.9 s.");
  });
});
