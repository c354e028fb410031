/** Projections of response bodies used by the scenarios: keep what MSC4140 decides, drop the rest. */
import type { View } from "./types.js";

type Json = Record<string, unknown>;

const DELAY_ID_KEY = "org.matrix.msc4140.delay_id";

/** The parts of a delivered event a client of delayed events reads. */
function eventFacts(event: Json): Json {
  const unsigned = (event.unsigned ?? {}) as Json;
  return {
    type: event.type,
    sender: event.sender,
    ...(event.state_key !== undefined ? { state_key: event.state_key } : {}),
    content: event.content,
    origin_server_ts: event.origin_server_ts,
    delay_id_in_unsigned: unsigned[DELAY_ID_KEY] ?? null,
  };
}

/** `GET /rooms/{room}/state`: the one event at (type, stateKey), or "absent". */
export const stateAt =
  (type: string, stateKey: string): View =>
  (body) => {
    if (!Array.isArray(body)) return body;
    const event = (body as Json[]).find((e) => e.type === type && e.state_key === stateKey);
    return event ? eventFacts(event) : "absent";
  };

/** `GET /rooms/{room}/messages?dir=b`: events of `type`, oldest first. */
export const timelineOf =
  (type: string): View =>
  (body) => {
    const chunk = (body as Json | undefined)?.chunk;
    if (!Array.isArray(chunk)) return body;
    return (chunk as Json[])
      .filter((e) => e.type === type)
      .reverse()
      .map(eventFacts);
  };

/** `GET /versions`: only the MSC4140 flag. */
export const msc4140Flag: View = (body) =>
  ((body as Json).unstable_features as Json | undefined)?.["org.matrix.msc4140"] ?? "absent";

/** `GET /capabilities`: only the MSC4140 capability. */
export const msc4140Capability: View = (body) =>
  ((body as Json).capabilities as Json | undefined)?.["org.matrix.msc4140.delayed_events"] ?? "absent";

/** MSC4354 (Synapse 1.163's names). */
const STICKY_FIELD = "msc4354_sticky";
const STICKY_TTL = "msc4354_sticky_duration_ttl_ms";
const STICKY_CAP_MS = 3_600_000;
/**
 * How far a TTL may be from "capped duration − age" and still count as the remaining stickiness: the two
 * are computed at the same instant, but a fired delayed event's `age` counts from its persisting, a little
 * after its send time. A TTL counted from the scheduling (4 s earlier in the scenarios) is well outside.
 */
const TTL_SLACK_MS = 2000;

/** `/versions`: only the MSC4354 flag. */
export const msc4354Flag: View = (body) =>
  ((body as Json).unstable_features as Json | undefined)?.["org.matrix.msc4354"] ?? "absent";

/**
 * A delivered event as a sticky-event client reads it: the field as sent, and whether `unsigned` carries
 * a TTL that is the remaining stickiness (`remaining`), none (`absent`), or a wrong one (`off by N s`).
 */
export function stickyFacts(event: Json): Json {
  const unsigned = (event.unsigned ?? {}) as Json;
  const sticky = event[STICKY_FIELD] as { duration_ms?: unknown } | undefined;
  const ttl = unsigned[STICKY_TTL];
  let ttlFact: string;
  if (ttl === undefined) ttlFact = "absent";
  else if (typeof ttl !== "number" || typeof sticky?.duration_ms !== "number")
    ttlFact = `unexpected ${String(ttl)}`;
  else {
    const expected = Math.min(sticky.duration_ms, STICKY_CAP_MS) - Number(unsigned.age ?? 0);
    const off = ttl - expected;
    ttlFact = Math.abs(off) <= TTL_SLACK_MS ? "remaining" : `off by ${Math.round(off / 1000)} s`;
  }
  return {
    type: event.type,
    sender: event.sender,
    ...(event.state_key !== undefined ? { state_key: event.state_key } : {}),
    content: event.content,
    origin_server_ts: event.origin_server_ts,
    [STICKY_FIELD]: sticky ?? "absent",
    ttl: ttlFact,
  };
}

/** The scenarios' own event types; anything else (joins, room set-up) shows as its type only. */
const isScenarioEvent = (event: Json): boolean =>
  String(event.type).startsWith("com.example.") || event.type === "org.matrix.msc3401.call.member";

/** `GET /rooms/{room}/messages?dir=b`: the scenario's events with their sticky facts, oldest first. */
export const stickyTimeline: View = (body) => {
  const chunk = (body as Json | undefined)?.chunk;
  if (!Array.isArray(chunk)) return body;
  return (chunk as Json[]).filter(isScenarioEvent).reverse().map(stickyFacts);
};

/**
 * `GET /sync`: the scenario's room only: its timeline (scenario events with sticky facts, others by
 * type), `limited`, and the `msc4354_sticky` section (or `absent`); `room absent` when not in the answer.
 * With `compact`, events are reduced to `content.n` (for scenarios with a hundred of them).
 */
export const syncRoom =
  (compact = false): View =>
  (body, ctx) => {
    const join = ((body as Json).rooms as Json | undefined)?.join as Json | undefined;
    const room = join?.[ctx.roomId] as Json | undefined;
    if (!room) return "room absent";
    const fact = (event: Json): unknown =>
      !isScenarioEvent(event) ? event.type : compact ? (event.content as Json).n : stickyFacts(event);
    const timeline = room.timeline as { events: Json[]; limited: boolean };
    const section = room[STICKY_FIELD] as { events: Json[] } | undefined;
    return {
      timeline: timeline.events.map(fact),
      limited: timeline.limited,
      [STICKY_FIELD]: section ? section.events.map(fact) : "absent",
    };
  };

/** `GET /sync` when only its token matters: whether the scenario's room is among the joined ones. */
export const syncHasRoom: View = (body, ctx) =>
  Boolean((((body as Json).rooms as Json | undefined)?.join as Json | undefined)?.[ctx.roomId]);
