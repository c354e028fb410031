/**
 * The demo's timeline picture: a standalone SVG with one lane per device and one for the server, on a
 * shared time axis (seconds since the start).
 *
 * - Device lanes: the requests the device's manager made (one glyph each, failures as red crosses), its
 *   status, and who its own client lists in the call (hatched while that view is stale).
 * - Server lane: the requests that arrived, each device's membership in room state, and each device's
 *   delayed leave as "time left until the server sends it": a sawtooth that a heartbeat (restart) resets
 *   to the full delay. A dotted line runs on to the deadline the heartbeat replaced (a hollow dot), so
 *   the deadline visibly moves with each restart; a red dot marks the deadline the server reached.
 * - A shaded band across all lanes marks the network cut; a red dashed line marks the fired leave.
 */
import type { DemoTrace, DeviceRequest, RequestOp } from "./trace.js";

const W = 1500;
const LEFT = 330;
const RIGHT = 30;
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
const DEVICE_COLORS = ["#0d9488", "#4f46e5", "#b45309", "#be185d"];
const RED = "#dc2626";

const esc = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const f = (n: number): string => (Math.round(n * 10) / 10).toString();
const textWidth = (s: string, size: number): number => s.length * size * 0.56;

/** Greedy label placement: each label takes the lowest level where it does not overlap another. */
class Levels {
  private readonly taken: [number, number][][] = [];
  constructor(private readonly count: number) {}
  place(x0: number, x1: number): number | undefined {
    for (let level = 0; level < this.count; level++) {
      const row = (this.taken[level] ??= []);
      if (row.every(([a, b]) => x1 + 4 < a || x0 > b + 4)) {
        row.push([x0, x1]);
        return level;
      }
    }
    return undefined;
  }
}

function intervals<T>(changes: { t: number; v: T }[], end: number): { from: number; to: number; v: T }[] {
  const out: { from: number; to: number; v: T }[] = [];
  changes.forEach((c, i) => {
    const to = i + 1 < changes.length ? changes[i + 1].t : end;
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

export function renderTimeline(trace: DemoTrace): string {
  const t0 = trace.t0;
  // Room for the last deadlines (they lie up to a delay past the end) and their labels.
  const drawnTo = trace.server.deadlines.filter((d) => d.end !== "sent" && d.end !== "cancelled");
  const lastT = Math.max(trace.tEnd, ...drawnTo.map((d) => d.sendTs));
  const seconds = Math.max(1, Math.ceil((lastT - t0) / 1000 + 0.9));
  const plotW = W - LEFT - RIGHT;
  const x = (t: number): number => LEFT + ((t - t0) / 1000 / seconds) * plotW;
  const colorOf = new Map(trace.devices.map((d, i) => [d.name, DEVICE_COLORS[i % DEVICE_COLORS.length]]));
  const names = trace.devices.map((d) => d.name);
  const out: string[] = [];
  const text = (
    tx: number,
    ty: number,
    s: string,
    opts: { size?: number; weight?: string; fill?: string; anchor?: string; italic?: boolean } = {},
  ) =>
    out.push(
      `<text x="${f(tx)}" y="${f(ty)}" font-size="${opts.size ?? 11}"` +
        (opts.weight ? ` font-weight="${opts.weight}"` : "") +
        (opts.italic ? ` font-style="italic"` : "") +
        ` fill="${opts.fill ?? "#1e293b"}"` +
        (opts.anchor ? ` text-anchor="${opts.anchor}"` : "") +
        `>${esc(s)}</text>`,
    );
  const rect = (x0: number, y0: number, w: number, h: number, fill: string, extra = "") =>
    out.push(
      `<rect x="${f(x0)}" y="${f(y0)}" width="${f(Math.max(w, 0))}" height="${f(h)}" fill="${fill}"${extra}/>`,
    );
  const line = (x1: number, y1: number, x2: number, y2: number, stroke: string, extra = "") =>
    out.push(`<line x1="${f(x1)}" y1="${f(y1)}" x2="${f(x2)}" y2="${f(y2)}" stroke="${stroke}"${extra}/>`);
  const cross = (cx: number, cy: number, r: number, stroke: string) => {
    line(cx - r, cy - r, cx + r, cy + r, stroke, ` stroke-width="2"`);
    line(cx - r, cy + r, cx + r, cy - r, stroke, ` stroke-width="2"`);
  };

  // --- layout -------------------------------------------------------------------------------------
  const TOP = 104;
  const DEVICE_H = 132;
  const deviceRows = { requests: 46, status: 56, sees: 82 };
  const serverRowsH = 30 + names.length * 14 + 10 + names.length * 14 + 12 + names.length * 58;
  const order = [names[0], "server", ...names.slice(1)];
  const laneY = new Map<string, number>();
  let y = TOP;
  for (const lane of order) {
    laneY.set(lane, y);
    y += (lane === "server" ? serverRowsH : DEVICE_H) + 10;
  }
  const lanesBottom = y - 10;
  const legendY = lanesBottom + 26;

  // --- background, title, axis, cut band ---------------------------------------------------------
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(
    `<defs><pattern id="stale" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">` +
      `<rect width="3" height="6" fill="#94a3b8" fill-opacity="0.45"/></pattern></defs>`,
  );
  const outage = trace.outages[0];
  const fired = trace.server.memberships.find((m) => m.cause === "fired");
  const rejoin =
    outage?.to !== undefined
      ? trace.server.memberships.find((m) => m.device === outage.device && m.joined && m.t >= outage.to!)
      : undefined;
  text(
    12,
    26,
    "matrixrtc-membership demo: alice (standalone) and bob (widget) in one call; alice loses her network",
    {
      size: 17,
      weight: "600",
    },
  );
  const heartbeatS = trace.delayMs / 2000;
  text(
    12,
    46,
    `Delayed leave ${trace.delayMs / 1000} s, heartbeat (restart) every ${heartbeatS} s.` +
      (outage?.to !== undefined
        ? ` ${outage.device}'s network is cut for ${((outage.to - outage.from) / 1000).toFixed(1)} s.`
        : "") +
      (fired && outage
        ? ` The server fires her leave ${((fired.t - outage.from) / 1000).toFixed(2)} s into the cut.`
        : "") +
      (rejoin && outage?.to !== undefined
        ? ` She is back ${((rejoin.t - outage.to) / 1000).toFixed(2)} s after the network returns.`
        : ""),
    { size: 12, fill: "#475569" },
  );
  const axisY = TOP - 30;
  for (let s = 0; s <= seconds; s++) {
    const gx = x(t0 + s * 1000);
    line(gx, axisY, gx, lanesBottom, "#e2e8f0");
    text(gx, axisY - 4, `${s} s`, { size: 10, fill: "#64748b", anchor: "middle" });
  }
  for (let s = 0.5; s < seconds; s += 1)
    line(x(t0 + s * 1000), axisY + 4, x(t0 + s * 1000), lanesBottom, "#f1f5f9");
  for (const [i, lane] of order.entries()) {
    const ly = laneY.get(lane)!;
    const h = lane === "server" ? serverRowsH : DEVICE_H;
    rect(0, ly, W, h, i % 2 ? "#f8fafc" : "#ffffff", ` fill-opacity="0.6"`);
    line(0, ly + h + 5, W, ly + h + 5, "#cbd5e1");
  }
  const band = new Levels(2);
  const bandLabel = (bx: number, label: string, fill: string) => {
    const level = band.place(bx, bx + textWidth(label, 11)) ?? 1;
    text(bx, axisY + 14 + level * 12, label, { size: 11, weight: "600", fill });
  };
  for (const o of trace.outages) {
    const to = o.to ?? trace.tEnd;
    rect(x(o.from), axisY, x(to) - x(o.from), lanesBottom - axisY, "#fecaca", ` fill-opacity="0.35"`);
    bandLabel(x(o.from) + 4, `${o.device}'s network cut`, "#b91c1c");
    bandLabel(x(to) + 4, "network back", "#15803d");
  }

  // --- device lanes -------------------------------------------------------------------------------
  for (const d of trace.devices) {
    const ly = laneY.get(d.name)!;
    const color = colorOf.get(d.name)!;
    text(12, ly + 22, d.name, { size: 16, weight: "700", fill: color });
    const [modeHead, ...modeRest] = d.mode.split(": ");
    text(12, ly + 38, modeHead, { size: 11, fill: "#334155", weight: "600" });
    for (const [i, part] of modeRest
      .join(": ")
      .split(/, | → /)
      .entries())
      text(12, ly + 52 + i * 12, part, { size: 10, fill: "#64748b" });

    // Requests: glyph row at ly+requests, labels above in three levels.
    const reqY = ly + deviceRows.requests;
    text(LEFT - 8, reqY + 4, "requests", { size: 10, fill: "#64748b", anchor: "end" });
    const levels = new Levels(3);
    const mine = trace.requests.filter((q) => q.device === d.name && q.op !== "probe");
    for (const [i, r] of mine.entries()) {
      const x0 = x(r.start);
      const x1 = Math.max(x(r.end), x0 + 3);
      let label: string | undefined;
      if (!r.ok) {
        cross(x1, reqY, 4, RED);
        // One label per run of the same failure: "timeout ×4".
        const same = (q: DeviceRequest | undefined) =>
          q !== undefined && !q.ok && failureLabel(q) === failureLabel(r);
        let n = 1;
        while (same(mine[i + n])) n++;
        label = same(mine[i - 1]) ? undefined : n > 1 ? `${failureLabel(r)} ×${n}` : failureLabel(r);
      } else if (r.op === "restart") {
        out.push(`<circle cx="${f(x1)}" cy="${f(reqY)}" r="3.5" fill="${OP_COLOR.restart}"/>`);
      } else {
        rect(x0, reqY - 6, x1 - x0, 12, OP_COLOR[r.op], ` rx="1.5"`);
        label = OP_LABEL[r.op];
      }
      if (label) {
        const lx = r.ok ? x0 : x1 - textWidth(label, 10) / 2;
        const level = levels.place(lx, lx + textWidth(label, 10));
        if (level !== undefined)
          text(lx, reqY - 10 - level * 11, label, {
            size: 10,
            fill: r.ok ? OP_COLOR[r.op] : RED,
            weight: "600",
          });
      }
    }

    // Status band.
    const stY = ly + deviceRows.status;
    text(LEFT - 8, stY + 12, "status", { size: 10, fill: "#64748b", anchor: "end" });
    const statuses = intervals(
      trace.statuses.filter((s) => s.device === d.name).map((s) => ({ t: s.t, v: s })),
      trace.tEnd,
    );
    for (const s of statuses) {
      const fill = STATUS_COLOR[s.v.status];
      if (!fill) continue;
      rect(x(s.from), stY, x(s.to) - x(s.from), 17, fill);
      const label = s.v.status === "reconnecting" && s.v.reason ? `reconnecting: ${s.v.reason}` : s.v.status;
      const fit =
        textWidth(label, 10) + 6 < x(s.to) - x(s.from)
          ? label
          : textWidth(s.v.status, 10) + 6 < x(s.to) - x(s.from)
            ? s.v.status
            : "";
      if (fit) text(x(s.from) + 3, stY + 12, fit, { size: 10, fill: "#1e293b" });
    }
    for (const p of trace.probablyLeft.filter((q) => q.device === d.name)) {
      const px = x(p.t);
      out.push(
        `<path d="M${f(px)} ${f(stY - 3)} l5 5 l-5 5 l-5 -5 z" fill="#ea580c" stroke="#ffffff" stroke-width="1"/>`,
      );
      text(px - 8, stY + 12, "probablyLeft", { size: 10, fill: "#c2410c", weight: "700", anchor: "end" });
    }

    // Who this device's own client lists in the call.
    const seesY = ly + deviceRows.sees;
    const views = trace.views.filter((v) => v.device === d.name);
    for (const [i, subject] of names.entries()) {
      const ry = seesY + i * 16;
      text(LEFT - 8, ry + 9, `sees ${subject}`, { size: 10, fill: "#64748b", anchor: "end" });
      for (const iv of intervals(
        views.map((v) => ({ t: v.t, v: v.sees.includes(subject) })),
        trace.tEnd,
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
      .map((o) => ({ from: o.from, to: o.to ?? trace.tEnd }));
    for (const iv of intervals(
      trace.syncs.filter((s) => s.device === d.name).map((s) => ({ t: s.t, v: s.state })),
      trace.tEnd,
    ))
      if (iv.v !== "SYNCING" && iv.v !== "PREPARED") stale.push({ from: iv.from, to: iv.to });
    for (const s of stale) {
      rect(x(s.from), seesY, x(s.to) - x(s.from), names.length * 16, "url(#stale)");
    }
    if (stale.length > 0) {
      const s = stale.reduce((a, b) => (x(b.to) - x(b.from) > x(a.to) - x(a.from) ? b : a));
      text(x(s.from) + 3, seesY + names.length * 16 + 10, "view stale: client offline or not syncing", {
        size: 9,
        fill: "#475569",
        italic: true,
      });
    }
  }

  // --- server lane --------------------------------------------------------------------------------
  const sy = laneY.get("server")!;
  text(12, sy + 22, "server", { size: 16, weight: "700", fill: "#0f172a" });
  text(12, sy + 38, "embedded test homeserver", { size: 11, fill: "#334155", weight: "600" });
  text(12, sy + 52, "MSC4140 delayed events", { size: 10, fill: "#64748b" });
  let ry = sy + 30;
  text(LEFT - 8, ry - 12, "requests arriving", { size: 10, fill: "#64748b", anchor: "end", weight: "600" });
  for (const name of names) {
    text(LEFT - 8, ry + 4, `from ${name}`, { size: 10, fill: "#64748b", anchor: "end" });
    for (const r of trace.server.requests.filter((q) => q.device === name)) {
      const op = ROUTE_OP[r.route];
      if (!op) continue;
      const rx = x(r.t);
      const fill = r.status >= 400 || r.status === 0 ? RED : OP_COLOR[op];
      rect(rx - 1, ry - 5, 2.5, 10, fill);
    }
    ry += 14;
  }
  ry += 10;
  text(LEFT - 8, ry - 2, "in room state", { size: 10, fill: "#64748b", anchor: "end", weight: "600" });
  ry += 6;
  const firedLabels = new Levels(1);
  for (const name of names) {
    text(LEFT - 8, ry + 4, name, { size: 10, fill: "#64748b", anchor: "end" });
    const changes = trace.server.memberships.filter((m) => m.device === name);
    for (const iv of intervals(
      changes.map((m) => ({ t: m.t, v: m.joined })),
      trace.tEnd,
    ))
      if (iv.v)
        rect(x(iv.from), ry - 4, x(iv.to) - x(iv.from), 8, colorOf.get(name)!, ` fill-opacity="0.75" rx="2"`);
    for (const m of changes) {
      if (m.joined) continue;
      const mx = x(m.t);
      const c = m.cause === "fired" ? RED : OP_COLOR.send;
      out.push(`<circle cx="${f(mx)}" cy="${f(ry)}" r="4" fill="${c}" stroke="#ffffff"/>`);
      const label = m.cause === "fired" ? "fired" : "left";
      const lx = mx + 7;
      if (m.cause !== "fired" || firedLabels.place(lx, lx + textWidth(label, 10)) !== undefined)
        text(lx, ry + 4, label, { size: 10, fill: c, weight: "600" });
    }
    const again = rejoin && rejoin.device === name ? rejoin : undefined;
    if (again)
      text(x(again.t) + 4, ry - 6, "rejoined", { size: 10, fill: colorOf.get(name)!, weight: "600" });
    ry += 14;
  }
  ry += 12;
  const sawH = 40;
  for (const name of names) {
    const top = ry + 8;
    const base = top + sawH;
    const yv = (leftMs: number) => base - (Math.max(0, leftMs) / trace.delayMs) * sawH;
    text(LEFT - 8, top + 8, `${name}'s delayed leave`, {
      size: 10,
      fill: "#334155",
      anchor: "end",
      weight: "600",
    });
    text(LEFT - 8, top + 20, "time left until", { size: 9, fill: "#64748b", anchor: "end" });
    text(LEFT - 8, top + 30, "the server sends it", { size: 9, fill: "#64748b", anchor: "end" });
    line(LEFT, base, W - RIGHT, base, "#94a3b8");
    line(LEFT, top, W - RIGHT, top, "#e2e8f0", ` stroke-dasharray="2 3"`);
    text(LEFT + 2, top - 1, `${trace.delayMs / 1000} s`, { size: 8, fill: "#94a3b8" });
    const color = colorOf.get(name)!;
    const deadlines = trace.server.deadlines
      .filter((dl) => dl.device === name)
      .sort((a, b) => a.setAt - b.setAt);
    for (const dl of deadlines) {
      const end = dl.endAt ?? trace.tEnd;
      // The stretch the server held this deadline.
      line(x(dl.setAt), yv(trace.delayMs), x(end), yv(dl.sendTs - end), color, ` stroke-width="2"`);
      if (dl.end === "restarted") {
        // Where it would have fired: the deadline the heartbeat moved on.
        line(
          x(end),
          yv(dl.sendTs - end),
          x(dl.sendTs),
          base,
          color,
          ` stroke-width="1" stroke-dasharray="2 3" stroke-opacity="0.6"`,
        );
        out.push(
          `<circle cx="${f(x(dl.sendTs))}" cy="${f(base)}" r="2.5" fill="#ffffff" stroke="${color}"/>`,
        );
        line(
          x(end),
          yv(dl.sendTs - end),
          x(end),
          yv(trace.delayMs),
          color,
          ` stroke-width="1" stroke-opacity="0.5"`,
        );
      } else if (dl.end === "fired") {
        out.push(`<circle cx="${f(x(dl.sendTs))}" cy="${f(base)}" r="4.5" fill="${RED}"/>`);
        text(x(dl.sendTs) + 7, base - 4, "deadline reached: fired", { size: 10, fill: RED, weight: "600" });
      } else if (dl.end === "sent" || dl.end === "cancelled") {
        const c = dl.end === "sent" ? OP_COLOR.send : OP_COLOR.cancel;
        out.push(`<circle cx="${f(x(end))}" cy="${f(yv(dl.sendTs - end))}" r="3.5" fill="${c}"/>`);
        text(x(end) + 6, yv(dl.sendTs - end) + 3, dl.end === "sent" ? "sent on leave()" : "cancelled", {
          size: 9,
          fill: c,
          weight: "600",
        });
      }
    }
    ry += sawH + 18;
  }

  // A fired leave: a line through every lane, so "who saw it when" lines up.
  if (fired) {
    line(x(fired.t), axisY + 4, x(fired.t), lanesBottom, RED, ` stroke-dasharray="5 4" stroke-width="1.2"`);
    bandLabel(x(fired.t) + 4, `the server fires ${fired.device}'s leave`, RED);
  }

  // --- legend -------------------------------------------------------------------------------------
  text(12, legendY + 4, "legend", { size: 11, weight: "700", fill: "#334155" });
  let lx = LEFT;
  let ly = legendY;
  const item = (label: string, draw: (cx: number, cy: number) => void) => {
    const w = 16 + textWidth(label, 10) + 22;
    if (lx + w > W - RIGHT) {
      lx = LEFT;
      ly += 20;
    }
    draw(lx + 6, ly);
    text(lx + 16, ly + 4, label, { size: 10, fill: "#334155" });
    lx += w;
  };
  const box = (fill: string) => (cx: number, cy: number) => rect(cx - 5, cy - 5, 10, 10, fill, ` rx="1.5"`);
  const dot =
    (r: number, fill: string, stroke = "none") =>
    (cx: number, cy: number) =>
      out.push(`<circle cx="${f(cx)}" cy="${f(cy)}" r="${r}" fill="${fill}" stroke="${stroke}"/>`);
  item("schedule the delayed leave", box(OP_COLOR.schedule));
  item("send the membership (join)", box(OP_COLOR.state));
  item("heartbeat: restart the delayed leave", dot(3.5, OP_COLOR.restart));
  item("send the delayed leave now (leave)", box(OP_COLOR.send));
  if (trace.requests.some((r) => r.op === "read")) item("read our membership", box(OP_COLOR.read));
  item("request failed", (cx, cy) => cross(cx, cy, 4, RED));
  lx = W;
  for (const [status, fill] of Object.entries(STATUS_COLOR)) item(status, box(fill));
  item("probablyLeft: no heartbeat got through for a whole delay", (cx, cy) =>
    out.push(`<path d="M${f(cx)} ${f(cy - 5)} l5 5 l-5 5 l-5 -5 z" fill="#ea580c"/>`),
  );
  item("view stale: client offline or not syncing", box("url(#stale)"));
  lx = W;
  item("time left on the server's current deadline", (cx, cy) =>
    line(cx - 7, cy - 5, cx + 7, cy + 5, "#334155", ` stroke-width="2"`),
  );
  item("a deadline a heartbeat moved later (dotted: where it was heading)", dot(2.5, "#ffffff", "#334155"));
  item("deadline reached: the server sent the leave itself", dot(4.5, RED));
  ly += 22;
  text(
    LEFT,
    ly,
    "Server rows come from the homeserver's own records (request log, pending delayed events, room timeline); " +
      "device rows from each device's manager and its own synced client.",
    { size: 10, fill: "#64748b", italic: true },
  );
  const H = ly + 16;

  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${f(H)}" viewBox="0 0 ${W} ${f(H)}" ${FONT}>\n` +
    `<title>matrixrtc-membership demo timeline</title>\n` +
    out.join("\n") +
    `\n</svg>\n`
  );
}
