/**
 * The test homeserver's MSC4354 rules on their own (no HTTP): which field makes an event sticky, the
 * expiry from `min(origin_server_ts, now)`, the TTL, and what the sticky table hands /sync. Each rule is
 * Synapse 1.163.2's (its Rust `Event.sticky_duration` and `serialize.rs`, `sticky_events.py`).
 */
import { describe, expect, it } from "@jest/globals";
import type { StoredEvent } from "../../../src/testing/homeserver/rooms.js";
import {
  checkTopLevelIntegers,
  StickyEventTable,
  stickyDurationOf,
  stickyExpiresAt,
  stickyTtl,
} from "../../../src/testing/homeserver/sticky-events.js";

const FIELD = "msc4354_sticky";
const HOUR = 3_600_000;

let pos = 0;
const event = (roomId: string, ts: number, sticky: unknown, n = pos + 1): StoredEvent => {
  pos += 1;
  return {
    event_id: `$e${pos}`,
    room_id: roomId,
    type: "org.example",
    sender: "@a:localhost",
    content: { n },
    origin_server_ts: ts,
    pos,
    ...(sticky === undefined ? {} : { topLevel: { [FIELD]: sticky } }),
  };
};

describe("which events are sticky, and for how long", () => {
  it("needs an object with a non-negative integer duration_ms; caps it at 1 h", () => {
    expect(stickyDurationOf(event("!r", 0, { duration_ms: 5000 }), FIELD)).toBe(5000);
    expect(stickyDurationOf(event("!r", 0, { duration_ms: 0 }), FIELD)).toBe(0);
    expect(stickyDurationOf(event("!r", 0, { duration_ms: 2 * HOUR }), FIELD)).toBe(HOUR);
    for (const bad of [
      undefined,
      null,
      5000,
      "5000",
      [5000],
      {},
      { duration_ms: -1 },
      { duration_ms: 1.5 },
    ]) {
      expect(stickyDurationOf(event("!r", 0, bad), FIELD)).toBeUndefined();
    }
    // The other dialect's field name does not count.
    expect(stickyDurationOf(event("!r", 0, { duration_ms: 5000 }), "sticky")).toBeUndefined();
  });

  it("counts from min(origin_server_ts, now): a timestamp in the future buys nothing", () => {
    const now = 1_000_000;
    expect(stickyExpiresAt(event("!r", now - 400, { duration_ms: 1000 }), FIELD, now)).toBe(now + 600);
    expect(stickyExpiresAt(event("!r", now + 50_000, { duration_ms: 1000 }), FIELD, now)).toBe(now + 1000);
    expect(stickyTtl(event("!r", now - 400, { duration_ms: 1000 }), FIELD, now)).toBe(600);
    expect(stickyTtl(event("!r", now - 1000, { duration_ms: 1000 }), FIELD, now)).toBeUndefined();
    expect(stickyTtl(event("!r", now, { duration_ms: 0 }), FIELD, now)).toBeUndefined();
  });

  it("refuses integers beyond 2^53 − 1 in room versions with strict canonical JSON (6 and later)", () => {
    const big = { [FIELD]: { duration_ms: 2 ** 53 } };
    expect(() => checkTopLevelIntegers("10", big)).toThrow("JSON integer out of range");
    expect(() => checkTopLevelIntegers("6", big)).toThrow("JSON integer out of range");
    expect(() => checkTopLevelIntegers("5", big)).not.toThrow();
    expect(() => checkTopLevelIntegers("10", { [FIELD]: { duration_ms: 2 ** 53 - 1 } })).not.toThrow();
  });
});

describe("the sticky table", () => {
  it("keeps only unexpired sticky events and hands them out in stream order per room, within bounds", () => {
    const table = new StickyEventTable();
    const now = 1_000_000;
    const a = event("!a", now, { duration_ms: 10_000 }, 1);
    const plain = event("!a", now, undefined, 2);
    const zero = event("!a", now, { duration_ms: 0 }, 3);
    const b = event("!b", now, { duration_ms: 10_000 }, 4);
    const short = event("!a", now, { duration_ms: 100 }, 5);
    for (const e of [a, plain, zero, b, short]) table.record(e, FIELD, now);
    const both = new Set(["!a", "!b"]);
    expect(table.select(both, 0, pos, now).byRoom).toEqual(
      new Map([
        ["!a", [a, short]],
        ["!b", [b]],
      ]),
    );
    // Bounds are (from, to]; expired rows are skipped at read time; other rooms are not read.
    expect(table.select(both, a.pos, b.pos, now).byRoom).toEqual(new Map([["!b", [b]]]));
    expect(table.select(both, 0, pos, now + 100).byRoom.get("!a")).toEqual([a]);
    expect(table.select(new Set(["!b"]), 0, pos, now).byRoom.has("!a")).toBe(false);
  });

  it("stops at the limit and says where, so the next read starts with the first row not handed out", () => {
    const table = new StickyEventTable();
    const now = 2_000_000;
    const rows = Array.from({ length: 5 }, (_, i) => event("!r", now, { duration_ms: 10_000 }, i));
    for (const e of rows) table.record(e, FIELD, now);
    const first = table.select(new Set(["!r"]), 0, pos, now, 3);
    expect(first.byRoom.get("!r")).toEqual(rows.slice(0, 3));
    expect(first.readUpTo).toBe(rows[3].pos - 1);
    const rest = table.select(new Set(["!r"]), first.readUpTo, pos, now, 3);
    expect(rest.byRoom.get("!r")).toEqual(rows.slice(3));
    expect(rest.readUpTo).toBe(pos);
  });
});
