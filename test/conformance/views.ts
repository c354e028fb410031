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
