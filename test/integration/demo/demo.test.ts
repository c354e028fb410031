/**
 * `npm run demo`'s scenario, in-process: what the demo reports (its claims and its trace) is checked
 * against the test homeserver's own records (request log, room timeline, pending delayed events),
 * taken just before it shut down. Plus the timeline picture, the CLI's usage errors, and the
 * standalone example.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { CALL_MEMBER_EVENT_TYPE } from "../../../src/index.js";
import { DEMO_DELAY_MS, runLocalDemo, type DemoReport } from "../../../examples/demo/localDemo.js";
import { labelBoxes, overlappingPairs } from "../../../src/testing/index.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const DELAY_ID_KEY = "org.matrix.msc4140.delay_id";

let dir: string;
let report: DemoReport;
let lines: string[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "demo-test-"));
  lines = [];
  report = await runLocalDemo({ print: (l) => lines.push(l), timelinePath: join(dir, "timeline.svg") });
}, 60_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the demo's scenario, checked against the server", () => {
  it("passes every step, within a minute", () => {
    expect(report.failures).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.trace.tEnd - report.trace.t0).toBeLessThan(60_000);
    // One timestamped line per event.
    expect(lines.length).toBeGreaterThan(30);
    for (const line of lines) expect(line).toMatch(/^ *\d+\.\d{3}s {2}\S+ +\S/);
  });

  it("alice's leave was fired by the server's timer, a delay after her last heartbeat that got through", () => {
    const { claims, server } = report;
    const cutAt = claims.cutAt!;
    const restoredAt = claims.restoredAt!;
    const alice = server.userIds.alice;
    const leaves = server.timeline.filter(
      (e) =>
        e.type === CALL_MEMBER_EVENT_TYPE &&
        e.state_key === server.stateKeys.alice &&
        Object.keys(e.content).length === 0 &&
        e.origin_server_ts > cutAt &&
        e.origin_server_ts < restoredAt,
    );
    expect(leaves).toHaveLength(1);
    const fired = leaves[0];
    expect(fired.sender).toBe(alice);
    expect(fired.unsigned[DELAY_ID_KEY]).toEqual(expect.any(String)); // sent by a delayed event
    expect(claims.firedAt).toBe(fired.origin_server_ts);

    // Nothing of alice's reached the server during the cut (she could not have asked for it).
    const duringCut = server.requests.filter(
      (r) => r.userId === alice && r.ts > cutAt + 50 && r.ts < restoredAt && r.route !== "sync",
    );
    expect(duringCut).toEqual([]);
    const lastBeat = server.requests
      .filter((r) => r.userId === alice && r.route === "delayed.restart" && r.status === 200 && r.ts <= cutAt)
      .at(-1)!;
    expect(fired.origin_server_ts - lastBeat.ts).toBeGreaterThanOrEqual(DEMO_DELAY_MS);
    expect(fired.origin_server_ts - lastBeat.ts).toBeLessThan(DEMO_DELAY_MS + 250);
    expect(fired.origin_server_ts - cutAt).toBeGreaterThan(0);
    expect(fired.origin_server_ts - cutAt).toBeLessThanOrEqual(DEMO_DELAY_MS);

    // The trace's deadline for it is the same instant, ended by firing.
    const deadline = report.trace.server.deadlines.find((d) => d.device === "alice" && d.end === "fired");
    expect(deadline?.sendTs).toBe(fired.origin_server_ts);
  });

  it("alice knew before or as the server fired; bob saw her go right after", () => {
    const { claims } = report;
    expect(claims.aliceProbablyLeftAt).toBeGreaterThan(claims.cutAt!);
    expect(claims.aliceProbablyLeftAt!).toBeLessThanOrEqual(claims.firedAt! + 250);
    expect(claims.bobSawAliceGoneAt!).toBeGreaterThanOrEqual(claims.firedAt!);
    expect(claims.bobSawAliceGoneAt! - claims.firedAt!).toBeLessThan(2000);
  });

  it("alice rejoined after the network returned: a new delayed leave, then her membership", () => {
    const { claims, server } = report;
    const alice = server.userIds.alice;
    const joins = server.timeline.filter(
      (e) =>
        e.type === CALL_MEMBER_EVENT_TYPE &&
        e.state_key === server.stateKeys.alice &&
        Object.keys(e.content).length > 0 &&
        e.origin_server_ts > claims.restoredAt!,
    );
    expect(joins).toHaveLength(1);
    expect(claims.rejoinedAt).toBe(joins[0].origin_server_ts);
    expect(claims.rejoinedAt! - claims.restoredAt!).toBeLessThan(3000);
    const after = server.requests.filter(
      (r) => r.userId === alice && r.ts >= claims.restoredAt! && r.status === 200,
    );
    const schedule = after.findIndex((r) => r.route === "state.put.delayed");
    const membership = after.findIndex((r) => r.route === "state.put");
    expect(schedule).toBeGreaterThanOrEqual(0);
    expect(membership).toBeGreaterThan(schedule);
  });

  it("the heartbeats each device reported are the restarts the server answered", () => {
    const { claims, server } = report;
    for (const name of ["alice", "bob"]) {
      const answered = server.requests.filter(
        (r) => r.userId === server.userIds[name] && r.route === "delayed.restart" && r.status === 200,
      ).length;
      expect(claims.heartbeats[name]).toBe(answered);
      expect(answered).toBeGreaterThanOrEqual(4);
    }
  });

  it("bob's requests went through the widget host to the server, as bob", () => {
    const { server } = report;
    const bob = server.requests.filter((r) => r.userId === server.userIds.bob);
    const count = (route: string) => bob.filter((r) => r.route === route && r.status === 200).length;
    expect(count("state.put.delayed")).toBe(1);
    expect(count("state.put")).toBe(1);
    expect(count("delayed.send")).toBe(1);
    // bob stayed in the call throughout: one join, one leave (his own).
    expect(report.trace.server.memberships.filter((m) => m.device === "bob")).toEqual([
      expect.objectContaining({ joined: true, cause: "device" }),
      expect.objectContaining({ joined: false, cause: "sent" }),
    ]);
  });

  it("both left cleanly: leaves sent on request, no membership and no delayed event left", () => {
    const { server, trace } = report;
    expect(server.pendingAtEnd.filter((d) => d.roomId === server.roomId)).toEqual([]);
    expect(server.membershipAtEnd).toEqual({ alice: {}, bob: {} });
    for (const name of ["alice", "bob"]) {
      const last = server.timeline
        .filter((e) => e.type === CALL_MEMBER_EVENT_TYPE && e.state_key === server.stateKeys[name])
        .at(-1)!;
      expect(last.content).toEqual({});
      expect(last.unsigned[DELAY_ID_KEY]).toEqual(expect.any(String));
      expect(trace.server.memberships.filter((m) => m.device === name).at(-1)).toMatchObject({
        joined: false,
        cause: "sent",
        t: last.origin_server_ts,
      });
    }
  });
});

describe("the timeline picture", () => {
  it("is written, well-formed SVG, with a lane per device and one for the server", async () => {
    expect(report.timelinePath).toBe(join(dir, "timeline.svg"));
    const svg = await readFile(report.timelinePath!, "utf8");
    expect(() => checkWellFormed(svg)).not.toThrow();
    expect(svg).toMatch(/<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    for (const label of [
      ">alice<",
      ">bob<",
      ">server<",
      "network cut",
      "deadline reached: fired",
      "rejoined",
    ])
      expect(svg).toContain(label);
  });

  it("no two labels overlap, and the axis ends with the run", async () => {
    const svg = await readFile(report.timelinePath!, "utf8");
    const labels = labelBoxes(svg);
    const pairs = overlappingPairs(labels.map((l) => ({ ...l.box, text: l.text })));
    expect(pairs.map(([a, b]) => `${a.text} / ${b.text}`)).toEqual([]);
    const seconds = ((report.trace.tEnd - report.trace.t0) / 1000).toFixed(1);
    const end = labels.find((l) => l.text === `${seconds} s`);
    expect(end).toBeDefined();
    // The end's label is the axis's last: no tick label to its right.
    expect(labels.filter((l) => /^\d+ s$/.test(l.text) && l.box.x0 > end!.box.x0)).toEqual([]);
  });

  it("the checker itself rejects broken XML", () => {
    expect(() => checkWellFormed("<svg><g></svg>")).toThrow();
    expect(() => checkWellFormed('<svg><text x="1">a & b</text></svg>')).toThrow();
    expect(() => checkWellFormed('<svg a="1" a="2"/>')).toThrow();
    expect(() => checkWellFormed("<svg><rect x=1/></svg>")).toThrow();
    expect(() => checkWellFormed("<svg/><svg/>")).toThrow();
  });
});

describe("the command line and the standalone example", () => {
  it("bad or missing arguments: a short usage message and exit 2", async () => {
    for (const args of [
      ["--homeserver", "http://localhost:8008"],
      ["--bogus"],
      ["--token", "x", "--room", "!r:x"],
    ]) {
      const r = await run(["examples/demo/main.ts", ...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("usage:");
      expect(r.stderr.split("\n").length).toBeLessThan(10);
    }
    const help = await run(["examples/demo/main.ts", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("usage:");
  }, 30_000);

  it("examples/standalone/main.ts joins, stays, and leaves cleanly on the embedded homeserver", async () => {
    const r = await run(["examples/standalone/main.ts"], { HOMESERVER: "" });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("status: connected");
    expect(r.stdout).toContain("pending delayed leaves on the server: 1");
    expect(r.stdout).toMatch(/leave: \{ status: 'left', via: 'delayed-event-sent' \}/);
  }, 30_000);
});

function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", ...args],
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: 25_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

/** Enough of XML 1.0 to catch what a string-built SVG gets wrong: nesting, quoting, escaping, one root. */
function checkWellFormed(xml: string): void {
  const entity = /&(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g;
  const checkText = (s: string, where: string) => {
    if (/[<]/.test(s) || /&/.test(s.replace(entity, "")))
      throw new Error(`unescaped text ${where}: ${s.slice(0, 40)}`);
  };
  let rest = xml.replace(/^\uFEFF?<\?xml[^?]*\?>\s*/, "");
  const stack: string[] = [];
  let roots = 0;
  while (rest.length > 0) {
    if (rest.startsWith("<!--")) {
      const end = rest.indexOf("-->");
      if (end < 0) throw new Error("unterminated comment");
      rest = rest.slice(end + 3);
      continue;
    }
    if (rest.startsWith("</")) {
      const m = /^<\/([A-Za-z_][\w.:-]*)\s*>/.exec(rest);
      if (!m) throw new Error(`bad end tag: ${rest.slice(0, 40)}`);
      if (stack.pop() !== m[1]) throw new Error(`mismatched </${m[1]}>`);
      rest = rest.slice(m[0].length);
      continue;
    }
    if (rest.startsWith("<")) {
      const m = /^<([A-Za-z_][\w.:-]*)((?:\s+[A-Za-z_][\w.:-]*\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>/.exec(
        rest,
      );
      if (!m) throw new Error(`bad start tag: ${rest.slice(0, 60)}`);
      const names = new Set<string>();
      for (const a of m[2].matchAll(/([A-Za-z_][\w.:-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
        if (names.has(a[1])) throw new Error(`duplicate attribute ${a[1]}`);
        names.add(a[1]);
        checkText(a[2] ?? a[3], `in attribute ${a[1]}`);
      }
      if (stack.length === 0 && ++roots > 1) throw new Error("more than one root element");
      if (!m[3]) stack.push(m[1]);
      rest = rest.slice(m[0].length);
      continue;
    }
    const next = rest.indexOf("<");
    const text = next < 0 ? rest : rest.slice(0, next);
    if (stack.length === 0 && text.trim() !== "") throw new Error("text outside the root element");
    checkText(text, "");
    rest = next < 0 ? "" : rest.slice(next);
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.at(-1)}>`);
  if (roots !== 1) throw new Error("no root element");
}
