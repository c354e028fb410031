/**
 * The timeline picture of a recorded call (a `CallTrace`): a standalone SVG with one lane per device, one
 * per observer and one for the server, on a time axis that runs from the start of the recording to its
 * end.
 *
 * - Device lanes: the requests the device's manager made (one glyph each, failures as red crosses), its
 *   status, and who its own client lists in the call (hatched while that view is stale).
 * - Observer lanes: who the observer's client lists in the call.
 * - Server lane (test homeserver only): the requests that arrived, each device's membership in room
 *   state, and each device's delayed leave as "time left until the server sends it": a sawtooth that a
 *   heartbeat (restart) resets to the full delay. A dotted line runs on to the deadline the heartbeat
 *   replaced (a hollow dot), so the deadline visibly moves with each restart; a red dot marks the
 *   deadline the server reached.
 * - A shaded band across all lanes marks a network cut; a red dashed line marks a fired leave.
 *
 * Labels are laid out by layout.ts: each goes to the first nearby place where it overlaps no other label
 * or marker, or is left out; nothing is drawn past the end of the recording.
 */
import type { CallTrace, DeviceInfo, DeviceRequest, RequestOp } from "./types.js";
import {
  around,
  overlaps,
  textBox,
  textWidth,
  Placer,
  type Anchor,
  type Box,
  type Candidate,
} from "./layout.js";

/** Options of `renderTimeline`. */
export interface TimelineOptions {
  /** The picture's title. Default: "Call timeline: " and the lanes' names. */
  title?: string;
}

const W = 1500;
const LEFT = 330;
const RIGHT = 100;
const FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif\"";

const OP_COLOR: Record<RequestOp, string> = {
  schedule: "#2563eb",
  state: "#16a34a",
  "leave-state": "#9333ea",
  restart: "#64748b",
  send: "#9333ea",
  cancel: "#ea580c",
  read: "#0891b2",
  list: "#0891b2",
  probe: "#94a3b8",
};
const OP_LABEL: Partial<Record<RequestOp, string>> = {
  schedule: "schedule leave",
  state: "join",
  "leave-state": "write leave",
  send: "leave",
  cancel: "cancel",
  read: "read state",
  list: "list",
};
const ROUTE_OP: Record<string, RequestOp> = {
  "state.put.delayed": "schedule",
  "delayed.schedule": "schedule",
  "state.put": "state",
  "delayed.restart": "restart",
  "delayed.send": "send",
  "delayed.cancel": "cancel",
  "state.get": "read",
  "delayed.list": "list",
};
const STATUS_COLOR: Record<string, string> = {
  connecting: "#fde68a",
  connected: "#bbf7d0",
  reconnecting: "#fdba74",
  disconnecting: "#e9d5ff",
};
const DEVICE_COLORS = ["#0d9488", "#4f46e5", "#b45309", "#be185d", "#0369a1", "#4d7c0f"];
const RED = "#dc2626";

const esc = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const f = (n: number): string => (Math.round(n * 10) / 10).toString();

function intervals<T>(changes: { t: number; v: T }[], end: number): { from: number; to: number; v: T }[] {
  const out: { from: number; to: number; v: T }[] = [];
  changes.forEach((c, i) => {
    const to = Math.min(i + 1 < changes.length ? changes[i + 1].t : end, end);
    const last = out.at(-1);
    // Equal primitive values in a row are one interval.
    if (last && last.v === c.v) last.to = to;
    else out.push({ from: c.t, to, v: c.v });
  });
  return out.filter((x) => x.to > x.from);
}

function failureLabel(r: DeviceRequest): string {
  const e = r.error ?? "";
  if (e.startsWith("no answer")) return "timeout";
  const code = /^(\d{3})/.exec(e);
  if (code) return code[1];
  if (/fetch failed|reset|socket/i.test(e)) return "conn. reset";
  return "failed";
}

/** A tick step (seconds) that keeps tick labels at least 45 px apart. */
function tickStep(seconds: number, plotW: number): number {
  for (const step of [1, 2, 5, 10, 15, 30, 60, 120, 300, 600])
    if ((plotW / seconds) * step >= 45) return step;
  return 1800;
}

/** The timeline picture of `trace` as a standalone SVG document. */
export function renderTimeline(trace: CallTrace, options: TimelineOptions = {}): string {
  const t0 = trace.t0;
  const tEnd = Math.max(trace.tEnd, t0 + 1);
  const seconds = (tEnd - t0) / 1000;
  const plotX0 = LEFT;
  const plotX1 = W - RIGHT;
  const x = (t: number): number =>
    plotX0 + ((Math.min(Math.max(t, t0), tEnd) - t0) / (tEnd - t0)) * (plotX1 - plotX0);
  const inRun = (t: number): boolean => t >= t0 && t <= tEnd;
  const lanes: DeviceInfo[] = trace.devices;
  const members = lanes.filter((d) => (d.kind ?? "device") === "device");
  const names = members.map((d) => d.name);
  const colorOf = new Map(lanes.map((d, i) => [d.name, DEVICE_COLORS[i % DEVICE_COLORS.length]]));
  const serverShown = trace.server.recorded !== false;
  const out: string[] = [];

  // --- drawing helpers ---------------------------------------------------------------------------------
  type TextOpts = { size?: number; weight?: string; fill?: string; anchor?: Anchor; italic?: boolean };
  const drawText = (tx: number, ty: number, s: string, o: TextOpts = {}) => {
    const size = o.size ?? 11;
    out.push(
      `<text x="${f(tx)}" y="${f(ty)}" font-size="${size}"` +
        (o.weight ? ` font-weight="${o.weight}"` : "") +
        (o.italic ? ` font-style="italic"` : "") +
        ` fill="${o.fill ?? "#1e293b"}"` +
        (o.anchor && o.anchor !== "start" ? ` text-anchor="${o.anchor}"` : "") +
        `>${esc(s)}</text>`,
    );
  };
  const isBold = (w?: string) => w === "600" || w === "700" || w === "bold";
  const rect = (x0: number, y0: number, w: number, h: number, fill: string, extra = "") =>
    out.push(
      `<rect x="${f(x0)}" y="${f(y0)}" width="${f(Math.max(w, 0))}" height="${f(h)}" fill="${fill}"${extra}/>`,
    );
  const line = (x1: number, y1: number, x2: number, y2: number, stroke: string, extra = "") =>
    out.push(`<line x1="${f(x1)}" y1="${f(y1)}" x2="${f(x2)}" y2="${f(y2)}" stroke="${stroke}"${extra}/>`);

  // Header and lane geometry first: the placer needs the picture's bounds.
  const HEADER_AXIS = 70;
  const BAND_LEVELS = 3;
  const TOP = HEADER_AXIS + 14 + BAND_LEVELS * 12;
  const deviceRows = { requests: 50, status: 60, sees: 86 };
  // A lane lists who its client sees only when it has a client watching (a bare client does not sync).
  const hasView = (d: DeviceInfo) => trace.views.some((v) => v.device === d.name);
  const seesH = names.length * 16 + 18;
  const deviceH = (d: DeviceInfo) => deviceRows.sees + (hasView(d) ? seesH : 0);
  const observerH = 34 + seesH;
  const serverRowsH = 30 + names.length * 14 + 10 + names.length * 14 + 12 + names.length * 58;
  const order: (DeviceInfo | "server")[] = [];
  const firstDevice = lanes.findIndex((d) => (d.kind ?? "device") === "device");
  lanes.forEach((d, i) => {
    order.push(d);
    if (i === firstDevice && serverShown) order.push("server");
  });
  if (firstDevice < 0 && serverShown) order.unshift("server");
  const laneY = new Map<string, number>();
  const laneH = (lane: DeviceInfo | "server") =>
    lane === "server" ? serverRowsH : (lane.kind ?? "device") === "device" ? deviceH(lane) : observerH;
  let y = TOP;
  for (const lane of order) {
    laneY.set(lane === "server" ? "server" : lane.name, y);
    y += laneH(lane) + 10;
  }
  const lanesBottom = y - 10;
  const legendY = lanesBottom + 26;
  const placer = new Placer({ x0: 0, y0: 0, x1: W, y1: lanesBottom + 200 });
  /** A label at a fixed place, reserved so that placed labels keep clear of it. */
  const fixed = (tx: number, ty: number, s: string, o: TextOpts = {}) => {
    placer.reserve(textBox(tx, ty, s, o.size ?? 11, o.anchor ?? "start", isBold(o.weight)));
    drawText(tx, ty, s, o);
  };
  /** Labels about a moment stay over the plot: never left of its start (before the recording). */
  const plot: Box = { x0: plotX0, y0: 0, x1: W, y1: lanesBottom + 200 };
  /** A label at the first free candidate place over the plot; left out when none is free. */
  const placed = (s: string, candidates: Candidate[], o: Omit<TextOpts, "anchor"> = {}): boolean => {
    const c = placer.place(s, o.size ?? 11, candidates, isBold(o.weight), plot);
    if (c) drawText(c.x, c.y, s, { ...o, anchor: c.anchor });
    return !!c;
  };
  /** A marker (a point glyph): drawn, and kept clear of labels. */
  const marker = (box: Box, svg: string) => {
    placer.reserve(box);
    out.push(svg);
  };
  const dot = (cx: number, cy: number, r: number, fill: string, stroke = "none", extra = "") =>
    marker(
      { x0: cx - r, y0: cy - r, x1: cx + r, y1: cy + r },
      `<circle cx="${f(cx)}" cy="${f(cy)}" r="${r}" fill="${fill}" stroke="${stroke}"${extra}/>`,
    );
  const cross = (cx: number, cy: number, r: number, stroke: string) => {
    placer.reserve({ x0: cx - r, y0: cy - r, x1: cx + r, y1: cy + r });
    line(cx - r, cy - r, cx + r, cy + r, stroke, ` stroke-width="2"`);
    line(cx - r, cy + r, cx + r, cy - r, stroke, ` stroke-width="2"`);
  };
  const diamond = (cx: number, top: number, fill: string) =>
    marker(
      { x0: cx - 5, y0: top, x1: cx + 5, y1: top + 10 },
      `<path d="M${f(cx)} ${f(top)} l5 5 l-5 5 l-5 -5 z" fill="${fill}" stroke="#ffffff" stroke-width="1"/>`,
    );

  // --- background, title, axis, cut bands ----------------------------------------------------------
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(
    `<defs><pattern id="stale" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">` +
      `<rect width="3" height="6" fill="#94a3b8" fill-opacity="0.45"/></pattern></defs>`,
  );
  const outage = trace.outages[0];
  const fired = trace.server.memberships.filter((m) => m.cause === "fired" && inRun(m.t));
  const firstFired = fired[0];
  const rejoin =
    outage?.to !== undefined
      ? trace.server.memberships.find((m) => m.device === outage.device && m.joined && m.t >= outage.to!)
      : undefined;
  fixed(12, 26, options.title ?? `Call timeline: ${lanes.map((d) => d.name).join(", ")}`, {
    size: 17,
    weight: "600",
  });
  const heartbeatS = (trace.heartbeatMs ?? trace.delayMs / 2) / 1000;
  fixed(
    12,
    46,
    `${seconds.toFixed(1)} s recorded. Delayed leave ${trace.delayMs / 1000} s, heartbeat (restart) every ${heartbeatS} s.` +
      (outage
        ? ` ${outage.device}'s network is cut` +
          (outage.to !== undefined
            ? ` for ${((outage.to - outage.from) / 1000).toFixed(1)} s.`
            : " until the end.")
        : "") +
      (firstFired && outage && firstFired.device === outage.device
        ? ` The server fires ${outage.device}'s leave ${((firstFired.t - outage.from) / 1000).toFixed(2)} s into the cut.`
        : "") +
      (rejoin && outage?.to !== undefined
        ? ` ${outage.device} is back ${((rejoin.t - outage.to) / 1000).toFixed(2)} s after the network returns.`
        : ""),
    { size: 12, fill: "#475569" },
  );
  const axisY = HEADER_AXIS;
  const step = tickStep(seconds, plotX1 - plotX0);
  // The axis ends with the recording: its last instant, labelled; a tick label in its way gives way.
  const endLabel = `${seconds.toFixed(1)} s`;
  const endBox = textBox(plotX1, axisY - 4, endLabel, 10, "end", true);
  line(plotX1, axisY - 2, plotX1, lanesBottom, "#94a3b8");
  fixed(plotX1, axisY - 4, endLabel, { size: 10, fill: "#334155", anchor: "end", weight: "600" });
  for (let s = 0; s <= seconds + 1e-9; s += step) {
    const gx = x(t0 + s * 1000);
    line(gx, axisY, gx, lanesBottom, "#e2e8f0");
    const tick = `${s} s`;
    if (!overlaps(textBox(gx, axisY - 4, tick, 10, "middle"), endBox, -4))
      fixed(gx, axisY - 4, tick, { size: 10, fill: "#64748b", anchor: "middle" });
  }
  for (const [i, lane] of order.entries()) {
    const ly = laneY.get(lane === "server" ? "server" : lane.name)!;
    const h = laneH(lane);
    rect(0, ly, W, h, i % 2 ? "#f8fafc" : "#ffffff", ` fill-opacity="0.6"`);
    line(0, ly + h + 5, W, ly + h + 5, "#cbd5e1");
  }
  const bandRows = Array.from({ length: BAND_LEVELS }, (_, i) => axisY + 14 + i * 12);
  const bandLabel = (bx: number, label: string, fill: string) =>
    placed(
      label,
      bandRows.flatMap((row) => around(bx, row, { gap: 4 })),
      { size: 11, weight: "600", fill },
    );
  for (const o of trace.outages) {
    const to = Math.min(o.to ?? tEnd, tEnd);
    rect(x(o.from), axisY, x(to) - x(o.from), lanesBottom - axisY, "#fecaca", ` fill-opacity="0.35"`);
  }
  // The fired leaves: a line through every lane, so "who saw it when" lines up.
  for (const m of fired)
    line(x(m.t), axisY + 4, x(m.t), lanesBottom, RED, ` stroke-dasharray="5 4" stroke-width="1.2"`);
  for (const o of trace.outages) {
    bandLabel(x(o.from), `${o.device}'s network cut`, "#b91c1c");
    if (o.to !== undefined && inRun(o.to)) bandLabel(x(o.to), "network back", "#15803d");
  }
  for (const m of fired) bandLabel(x(m.t), `the server fires ${m.device}'s leave`, RED);

  // --- lane headers and row names (fixed) -----------------------------------------------------------
  for (const d of lanes) {
    const ly = laneY.get(d.name)!;
    fixed(12, ly + 22, d.name, { size: 16, weight: "700", fill: colorOf.get(d.name)! });
    const [modeHead, ...modeRest] = d.mode.split(": ");
    fixed(12, ly + 38, modeHead, { size: 11, fill: "#334155", weight: "600" });
    for (const [i, part] of modeRest
      .join(": ")
      .split(/, | → /)
      .filter((p) => p)
      .entries())
      fixed(12, ly + 52 + i * 12, part, { size: 10, fill: "#64748b" });
  }

  // --- markers first (labels keep clear of them), then labels by importance ----------------------
  const later: (() => void)[] = [];

  // Device lanes: requests, status, what the client lists.
  for (const d of lanes) {
    const ly = laneY.get(d.name)!;
    const isDevice = (d.kind ?? "device") === "device";
    const rows = isDevice ? deviceRows : { requests: 0, status: 0, sees: 30 };
    if (isDevice) {
      const reqY = ly + rows.requests;
      fixed(LEFT - 8, reqY + 4, "requests", { size: 10, fill: "#64748b", anchor: "end" });
      const mine = trace.requests.filter((q) => q.device === d.name && q.op !== "probe" && inRun(q.start));
      const requestLabels: { text: string; at: number; fail: boolean; color: string }[] = [];
      for (const [i, r] of mine.entries()) {
        const x0 = x(r.start);
        const x1 = Math.max(x(r.end), x0 + 3);
        if (!r.ok) {
          cross(x1, reqY, 4, RED);
          // One label per run of the same failure: "timeout ×4".
          const same = (q: DeviceRequest | undefined) =>
            q !== undefined && !q.ok && failureLabel(q) === failureLabel(r);
          let n = 1;
          while (same(mine[i + n])) n++;
          if (!same(mine[i - 1]))
            requestLabels.push({
              text: n > 1 ? `${failureLabel(r)} ×${n}` : failureLabel(r),
              at: x1,
              fail: true,
              color: RED,
            });
        } else if (r.op === "restart") {
          dot(x1, reqY, 3.5, OP_COLOR.restart);
        } else {
          placer.reserve({ x0, y0: reqY - 6, x1, y1: reqY + 6 });
          rect(x0, reqY - 6, x1 - x0, 12, OP_COLOR[r.op], ` rx="1.5"`);
          const label = OP_LABEL[r.op];
          if (label) requestLabels.push({ text: label, at: x0, fail: false, color: OP_COLOR[r.op] });
        }
      }
      later.push(() => {
        // Failures first: they say what went wrong.
        for (const l of [...requestLabels].sort((a, b) => Number(b.fail) - Number(a.fail))) {
          const rowsAbove = [0, 1, 2].map((level) => reqY - 10 - level * 11);
          placed(
            l.text,
            rowsAbove.flatMap((row) => [
              { x: l.fail ? l.at - textWidth(l.text, 10, true) / 2 : l.at, y: row, anchor: "start" as const },
              ...around(l.at, row, { gap: 2, shifts: [0, 14] }),
            ]),
            { size: 10, fill: l.color, weight: "600" },
          );
        }
      });

      // Status band.
      const stY = ly + rows.status;
      fixed(LEFT - 8, stY + 12, "status", { size: 10, fill: "#64748b", anchor: "end" });
      const statuses = intervals(
        trace.statuses.filter((s) => s.device === d.name).map((s) => ({ t: s.t, v: s })),
        tEnd,
      );
      for (const s of statuses) {
        const fill = STATUS_COLOR[s.v.status];
        if (fill) rect(x(s.from), stY, x(s.to) - x(s.from), 17, fill);
      }
      for (const p of trace.probablyLeft.filter((q) => q.device === d.name && inRun(q.t))) {
        const px = x(p.t);
        diamond(px, stY - 3, "#ea580c");
        later.unshift(() =>
          placed("probablyLeft", around(px, stY + 12, { gap: 8, rows: [0, -16], prefer: "left" }), {
            size: 10,
            fill: "#c2410c",
            weight: "700",
          }),
        );
      }
      later.push(() => {
        for (const s of statuses) {
          if (!STATUS_COLOR[s.v.status]) continue;
          const width = x(s.to) - x(s.from);
          const full =
            s.v.status === "reconnecting" && s.v.reason ? `reconnecting: ${s.v.reason}` : s.v.status;
          for (const label of [full, s.v.status]) {
            if (textWidth(label, 10) + 6 > width) continue;
            // Just inside the band; a little further in when a marker sits at its start.
            const inside = [3, 10, 17]
              .filter((dx) => dx + textWidth(label, 10) + 3 <= width)
              .map((dx) => ({ x: x(s.from) + dx, y: stY + 12, anchor: "start" as const }));
            if (placed(label, inside, { size: 10, fill: "#1e293b" })) break;
          }
        }
      });
    }

    // Who this lane's client lists in the call (when it has a client watching).
    if (!hasView(d)) continue;
    const seesY = ly + rows.sees;
    const views = trace.views.filter((v) => v.device === d.name);
    for (const [i, subject] of names.entries()) {
      const ry = seesY + i * 16;
      fixed(LEFT - 8, ry + 9, `sees ${subject}`, { size: 10, fill: "#64748b", anchor: "end" });
      for (const iv of intervals(
        views.map((v) => ({ t: v.t, v: v.sees.includes(subject) })),
        tEnd,
      ))
        if (iv.v)
          rect(
            x(iv.from),
            ry + 2,
            x(iv.to) - x(iv.from),
            9,
            colorOf.get(subject)!,
            ` fill-opacity="0.75" rx="2"`,
          );
    }
    // Stale: the device is offline, or its client is not syncing.
    const stale: { from: number; to: number }[] = trace.outages
      .filter((o) => o.device === d.name)
      .map((o) => ({ from: o.from, to: Math.min(o.to ?? tEnd, tEnd) }));
    for (const iv of intervals(
      trace.syncs.filter((s) => s.device === d.name).map((s) => ({ t: s.t, v: s.state })),
      tEnd,
    ))
      if (iv.v !== "SYNCING" && iv.v !== "PREPARED") stale.push({ from: iv.from, to: iv.to });
    for (const s of stale) rect(x(s.from), seesY, x(s.to) - x(s.from), names.length * 16, "url(#stale)");
    if (stale.length > 0) {
      const s = stale.reduce((a, b) => (x(b.to) - x(b.from) > x(a.to) - x(a.from) ? b : a));
      later.push(() =>
        placed(
          "view stale: client offline or not syncing",
          [
            { x: x(s.from) + 3, y: seesY + names.length * 16 + 10, anchor: "start" },
            { x: x(s.to) - 3, y: seesY + names.length * 16 + 10, anchor: "end" },
          ],
          { size: 9, fill: "#475569", italic: true },
        ),
      );
    }
  }

  // --- server lane --------------------------------------------------------------------------------
  if (serverShown) {
    const sy = laneY.get("server")!;
    fixed(12, sy + 22, "server", { size: 16, weight: "700", fill: "#0f172a" });
    fixed(12, sy + 38, trace.server.label ?? "test homeserver", { size: 11, fill: "#334155", weight: "600" });
    fixed(12, sy + 52, "MSC4140 delayed events", { size: 10, fill: "#64748b" });
    let ry = sy + 30;
    fixed(LEFT - 8, ry - 12, "requests arriving", {
      size: 10,
      fill: "#64748b",
      anchor: "end",
      weight: "600",
    });
    for (const name of names) {
      fixed(LEFT - 8, ry + 4, `from ${name}`, { size: 10, fill: "#64748b", anchor: "end" });
      for (const r of trace.server.requests.filter((q) => q.device === name && inRun(q.t))) {
        const op = ROUTE_OP[r.route];
        if (!op) continue;
        const fill = r.status >= 400 || r.status === 0 ? RED : OP_COLOR[op];
        placer.reserve({ x0: x(r.t) - 1, y0: ry - 5, x1: x(r.t) + 1.5, y1: ry + 5 });
        rect(x(r.t) - 1, ry - 5, 2.5, 10, fill);
      }
      ry += 14;
    }
    ry += 10;
    fixed(LEFT - 8, ry - 2, "in room state", { size: 10, fill: "#64748b", anchor: "end", weight: "600" });
    ry += 6;
    for (const name of names) {
      const rowY = ry;
      fixed(LEFT - 8, rowY + 4, name, { size: 10, fill: "#64748b", anchor: "end" });
      const changes = trace.server.memberships.filter((m) => m.device === name);
      for (const iv of intervals(
        changes.map((m) => ({ t: m.t, v: m.joined })),
        tEnd,
      ))
        if (iv.v)
          rect(
            x(iv.from),
            rowY - 4,
            x(iv.to) - x(iv.from),
            8,
            colorOf.get(name)!,
            ` fill-opacity="0.75" rx="2"`,
          );
      for (const m of changes) {
        if (m.joined || !inRun(m.t)) continue;
        const mx = x(m.t);
        const c = m.cause === "fired" ? RED : OP_COLOR.send;
        dot(mx, rowY, 4, c, "#ffffff");
        const label = m.cause === "fired" ? "fired" : "left";
        later.unshift(() =>
          placed(label, around(mx, rowY + 4, { gap: 7, rows: [0, -9, 9] }), {
            size: 10,
            fill: c,
            weight: "600",
          }),
        );
      }
      if (rejoin && rejoin.device === name && inRun(rejoin.t)) {
        const rx = x(rejoin.t);
        later.unshift(() =>
          placed("rejoined", around(rx, rowY - 6, { gap: 4, rows: [0, -10, 20] }), {
            size: 10,
            fill: colorOf.get(name)!,
            weight: "600",
          }),
        );
      }
      ry += 14;
    }
    ry += 12;
    const sawH = 40;
    for (const name of names) {
      const top = ry + 8;
      const base = top + sawH;
      const yv = (leftMs: number) =>
        base - (Math.max(0, Math.min(leftMs, trace.delayMs)) / trace.delayMs) * sawH;
      fixed(LEFT - 8, top + 8, `${name}'s delayed leave`, {
        size: 10,
        fill: "#334155",
        anchor: "end",
        weight: "600",
      });
      fixed(LEFT - 8, top + 20, "time left until", { size: 9, fill: "#64748b", anchor: "end" });
      fixed(LEFT - 8, top + 31, "the server sends it", { size: 9, fill: "#64748b", anchor: "end" });
      line(plotX0, base, plotX1, base, "#94a3b8");
      line(plotX0, top, plotX1, top, "#e2e8f0", ` stroke-dasharray="2 3"`);
      fixed(plotX0 + 2, top - 1, `${trace.delayMs / 1000} s`, { size: 8, fill: "#94a3b8" });
      const color = colorOf.get(name)!;
      const deadlines = trace.server.deadlines
        .filter((dl) => dl.device === name && dl.setAt <= tEnd)
        .sort((a, b) => a.setAt - b.setAt);
      /** A line from (ta, left ms a) to (tb, left ms b), cut at the end of the recording. */
      const segment = (ta: number, la: number, tb: number, lb: number, extra: string) => {
        if (ta >= tEnd) return;
        const cut = tb > tEnd ? (tEnd - ta) / (tb - ta) : 1;
        const tc = ta + (tb - ta) * cut;
        const lc = la + (lb - la) * cut;
        line(x(ta), yv(la), x(tc), yv(lc), color, extra);
      };
      for (const dl of deadlines) {
        const end = Math.min(dl.endAt ?? tEnd, tEnd);
        // The stretch the server held this deadline.
        segment(dl.setAt, trace.delayMs, end, dl.sendTs - end, ` stroke-width="2"`);
        if (dl.end === "restarted" && (dl.endAt ?? tEnd) <= tEnd) {
          // Where it would have fired: the deadline the heartbeat moved on.
          segment(
            end,
            dl.sendTs - end,
            dl.sendTs,
            0,
            ` stroke-width="1" stroke-dasharray="2 3" stroke-opacity="0.6"`,
          );
          if (inRun(dl.sendTs)) dot(x(dl.sendTs), base, 2.5, "#ffffff", color);
          line(
            x(end),
            yv(dl.sendTs - end),
            x(end),
            yv(trace.delayMs),
            color,
            ` stroke-width="1" stroke-opacity="0.5"`,
          );
        } else if (dl.end === "fired" && inRun(dl.sendTs)) {
          const fx = x(dl.sendTs);
          dot(fx, base, 4.5, RED);
          later.unshift(() =>
            placed("deadline reached: fired", around(fx, base - 4, { gap: 7, rows: [0, -12] }), {
              size: 10,
              fill: RED,
              weight: "600",
            }),
          );
        } else if ((dl.end === "sent" || dl.end === "cancelled") && inRun(end)) {
          const c = dl.end === "sent" ? OP_COLOR.send : OP_COLOR.cancel;
          const ex = x(end);
          const ey = yv(dl.sendTs - end);
          dot(ex, ey, 3.5, c);
          later.push(() =>
            placed(
              dl.end === "sent" ? "sent on leave()" : "cancelled",
              around(ex, ey + 3, { gap: 6, rows: [0, -10, 10] }),
              { size: 9, fill: c, weight: "600" },
            ),
          );
        }
      }
      ry += sawH + 18;
    }
  } else if (firstDevice >= 0) {
    // No server records (real Synapse): say so where the lane would be.
    fixed(LEFT, lanesBottom + 14, "server records not drawn: this server was not recorded (real Synapse)", {
      size: 10,
      fill: "#64748b",
      italic: true,
    });
  }

  for (const place of later) place();

  // --- legend -------------------------------------------------------------------------------------
  fixed(12, legendY + 4, "legend", { size: 11, weight: "700", fill: "#334155" });
  let lx = LEFT;
  let ly = legendY;
  const item = (label: string, draw: (cx: number, cy: number) => void) => {
    const w = 16 + textWidth(label, 10) + 14;
    if (lx + w > W - RIGHT) {
      lx = LEFT;
      ly += 20;
    }
    draw(lx + 6, ly);
    fixed(lx + 16, ly + 4, label, { size: 10, fill: "#334155" });
    lx += w;
  };
  const box = (fill: string) => (cx: number, cy: number) => rect(cx - 5, cy - 5, 10, 10, fill, ` rx="1.5"`);
  const legendDot =
    (r: number, fill: string, stroke = "none") =>
    (cx: number, cy: number) =>
      out.push(`<circle cx="${f(cx)}" cy="${f(cy)}" r="${r}" fill="${fill}" stroke="${stroke}"/>`);
  item("schedule the delayed leave", box(OP_COLOR.schedule));
  item("send the membership (join)", box(OP_COLOR.state));
  item("heartbeat: restart the delayed leave", legendDot(3.5, OP_COLOR.restart));
  item("send the delayed leave now (leave)", box(OP_COLOR.send));
  if (trace.requests.some((r) => r.op === "read")) item("read our membership", box(OP_COLOR.read));
  item("request failed", (cx, cy) => {
    line(cx - 4, cy - 4, cx + 4, cy + 4, RED, ` stroke-width="2"`);
    line(cx - 4, cy + 4, cx + 4, cy - 4, RED, ` stroke-width="2"`);
  });
  lx = W;
  for (const [status, fill] of Object.entries(STATUS_COLOR)) item(status, box(fill));
  item("probablyLeft: no heartbeat got through for a whole delay", (cx, cy) =>
    out.push(`<path d="M${f(cx)} ${f(cy - 5)} l5 5 l-5 5 l-5 -5 z" fill="#ea580c"/>`),
  );
  item("view stale: client offline or not syncing", box("url(#stale)"));
  if (serverShown) {
    lx = W;
    item("time left on the server's current deadline", (cx, cy) =>
      line(cx - 7, cy - 5, cx + 7, cy + 5, "#334155", ` stroke-width="2"`),
    );
    item(
      "a deadline a heartbeat moved later (dotted: where it was heading)",
      legendDot(2.5, "#ffffff", "#334155"),
    );
    item("deadline reached: the server sent the leave itself", legendDot(4.5, RED));
  }
  ly += 22;
  fixed(
    LEFT,
    ly,
    (serverShown
      ? "Server rows come from the homeserver's own records (request log, pending delayed events, room timeline); "
      : "") + "device rows from each device's manager and its own synced client.",
    { size: 10, fill: "#64748b", italic: true },
  );
  const H = ly + 16;

  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${f(H)}" viewBox="0 0 ${W} ${f(H)}" ${FONT}>\n` +
    `<title>${esc(options.title ?? "matrixrtc-membership call timeline")}</title>\n` +
    out.join("\n") +
    `\n</svg>\n`
  );
}

/** One label of a rendered picture and the box it takes. */
export interface LabelBox {
  /** The label's text. */
  text: string;
  /** Where it is drawn (estimated from its font size, see `textWidth`). */
  box: Box;
}

/** The label boxes of a rendered picture, read back from its `<text>` elements (for layout tests). */
export function labelBoxes(svg: string): LabelBox[] {
  const boxes: LabelBox[] = [];
  for (const m of svg.matchAll(/<text ([^>]*)>([^<]*)<\/text>/g)) {
    const attrs = Object.fromEntries([...m[1].matchAll(/([a-z-]+)="([^"]*)"/g)].map((a) => [a[1], a[2]]));
    const text = m[2]
      .replace(/&lt;/g, "<")
      .replace(/&gt;/g, ">")
      .replace(/&quot;/g, '"')
      .replace(/&amp;/g, "&");
    const bold = attrs["font-weight"] === "600" || attrs["font-weight"] === "700";
    boxes.push({
      text,
      box: textBox(
        Number(attrs.x),
        Number(attrs.y),
        text,
        Number(attrs["font-size"]),
        (attrs["text-anchor"] as Anchor | undefined) ?? "start",
        bold,
      ),
    });
  }
  return boxes;
}
