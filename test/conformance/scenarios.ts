/**
 * The test homeserver's MSC4140 behaviour as data (protocol.md A.2–A.10). Every scenario runs against
 * the emulator and against real Synapse; the records must be identical for a preset and its version.
 * Delays are short (hundreds of ms) because real Synapse runs on a real clock; effects Synapse applies
 * asynchronously (auto-cancel, firing) are polled for, never slept on alone.
 */
import type { SynapsePreset } from "../../src/testing/index.js";
import type { RequestStep, Scenario, Step, StepRecord, View } from "./types.js";
import {
  msc4140Capability,
  msc4140Flag,
  msc4354Flag,
  stateAt,
  stickyTimeline,
  syncHasRoom,
  syncRoom,
  timelineOf,
} from "./views.js";

const MEMBER = "org.matrix.msc3401.call.member";
const DELAY = "org.matrix.msc4140.delay";
const HOUR = 3_600_000;
const MAX_DELAY = 24 * HOUR;

const statePath = (key: string, delay?: number | string, type = MEMBER): string =>
  `/_matrix/client/v3/rooms/{room}/state/${type}/${key}` +
  (delay === undefined ? "" : `?${DELAY}=${encodeURIComponent(String(delay))}`);

const sendPath = (txn: string, delay?: number | string, type = "com.example.ping"): string =>
  `/_matrix/client/v3/rooms/{room}/send/${type}/${txn}` +
  (delay === undefined ? "" : `?${DELAY}=${encodeURIComponent(String(delay))}`);

const req = (label: string, step: Omit<RequestStep, "kind" | "label">): RequestStep => ({
  kind: "request",
  label,
  ...step,
});

const schedule = (
  label: string,
  key: string,
  delay: number | string,
  opts: Partial<RequestStep> = {},
): RequestStep => req(label, { method: "PUT", path: statePath(key, delay), body: {}, ...opts });

const action = (
  label: string,
  id: string,
  act: string,
  as?: string,
  extra: Partial<RequestStep> = {},
): RequestStep => req(label, { method: "POST", path: `{U}/delayed_events/{id:${id}}/${act}`, as, ...extra });

const legacy = (
  label: string,
  id: string,
  body: unknown,
  as?: string,
  extra: Partial<RequestStep> = {},
): RequestStep => req(label, { method: "POST", path: `{U}/delayed_events/{id:${id}}`, body, as, ...extra });

const list = (label: string, as?: string, extra: Partial<RequestStep> = {}): RequestStep =>
  req(label, { method: "GET", path: "{U}/delayed_events", as, ...extra });

const getOne = (label: string, id: string, as?: string): RequestStep =>
  req(label, { method: "GET", path: `{U}/delayed_events/{id:${id}}`, as });

const state = (label: string, key: string, extra: Partial<RequestStep> = {}): RequestStep =>
  req(label, {
    method: "GET",
    path: "/_matrix/client/v3/rooms/{room}/state",
    view: stateAt(MEMBER, key),
    ...extra,
  });

/** Listing items with `content` replaced by its keys (for oversized contents). */
const summariseContent: View = (body) => {
  const items = (body as { delayed_events?: Record<string, unknown>[] }).delayed_events;
  if (!Array.isArray(items)) return body;
  return {
    delayed_events: items.map((item) => ({ ...item, content: Object.keys(item.content as object) })),
  };
};

const wait = (ms: number): Step => ({ kind: "wait", ms });

const present = (r: StepRecord): boolean => r.body !== "absent";
const listLength =
  (n: number) =>
  (r: StepRecord): boolean =>
    Array.isArray((r.body as { delayed_events?: unknown[] }).delayed_events) &&
    (r.body as { delayed_events: unknown[] }).delayed_events.length === n;

export const SCENARIOS: Scenario[] = [
  {
    name: "discovery",
    what: "the /versions flag and the capability",
    config: "relaxed",
    actors: ["alice"],
    steps: [
      req("versions flag", {
        method: "GET",
        path: "/_matrix/client/versions",
        as: "none",
        view: msc4140Flag,
      }),
      req("capability", { method: "GET", path: "/_matrix/client/v3/capabilities", view: msc4140Capability }),
    ],
  },
  {
    name: "schedule-list-cancel",
    what: "schedule state, list it, get it, cancel it per action; a second cancel is 404",
    config: "relaxed",
    actors: ["alice", "bob"],
    steps: [
      schedule("schedule state", "k1", 60_000, { body: { a: 1 }, save: "x", mark: { name: "scheduled" } }),
      list("list (owner)"),
      list("list (other user)", "bob"),
      list("list ignores query params", "alice", { path: "{U}/delayed_events?status=finalised&from=abc" }),
      getOne("get one (owner)", "x"),
      getOne("get one (other user)", "x", "bob"),
      getOne("get one (no token)", "x", "none"),
      req("get one (unknown id)", { method: "GET", path: "{U}/delayed_events/syd_unknownunknownunkn" }),
      action("cancel", "x", "cancel"),
      list("list after cancel"),
      action("cancel again", "x", "cancel"),
      getOne("get one after cancel", "x"),
      state("nothing was sent", "k1"),
    ],
  },
  {
    name: "schedule-message-txn",
    what: "a delayed message event; a retried txn id gives the same delay id; POST send works too",
    config: "relaxed",
    actors: ["alice"],
    steps: [
      req("schedule message", { method: "PUT", path: sendPath("t1", 60_000), body: { n: 1 }, save: "m" }),
      req("retry same txn", { method: "PUT", path: sendPath("t1", 60_000), body: { n: 1 }, save: "m2" }),
      req("new txn", { method: "PUT", path: sendPath("t2", 30_000), body: { n: 2 }, save: "m3" }),
      req("POST send (no txn)", {
        method: "POST",
        path: `/_matrix/client/v3/rooms/{room}/send/com.example.ping?${DELAY}=45000`,
        body: { n: 3 },
        save: "m4",
      }),
      list("list: due soonest first"),
    ],
  },
  {
    name: "delay-parsing",
    what: "every way to spell the delay parameter, valid or not",
    config: "relaxed",
    actors: ["alice"],
    steps: [
      schedule("not an integer", "p", "abc"),
      schedule("decimal", "p", "1.5"),
      schedule("empty", "p", ""),
      schedule("negative", "p", -1),
      // Fires at once: its own key, since ≤1.126 the owner's write would cancel the others at "p".
      schedule("minus zero", "z", "-0", { save: "z" }),
      schedule("plus sign", "p", "+50000", { save: "plus" }),
      schedule("underscore digits", "p", "5_0000", { save: "under" }),
      schedule("surrounding spaces", "p", " 40000 ", { save: "spaces" }),
      wait(300),
      list("what got scheduled"),
    ],
  },
  {
    name: "delay-maximum",
    what: "the maximum delay: equal is fine, one more is refused (error changes with the version)",
    config: "relaxed",
    actors: ["alice"],
    steps: [
      schedule("delay = max", "m", MAX_DELAY, { save: "max" }),
      schedule("delay = max + 1", "m", MAX_DELAY + 1),
      schedule("delay 48 h", "m", 2 * MAX_DELAY),
      req("message delay 48 h", { method: "PUT", path: sendPath("big", 2 * MAX_DELAY), body: {} }),
    ],
  },
  {
    name: "schedule-errors",
    what: "authentication, body and room errors when scheduling",
    config: "relaxed",
    actors: ["alice"],
    steps: [
      schedule("no token", "e", 1000, { as: "none" }),
      schedule("unknown token", "e", 1000, { as: "bogus" }),
      schedule("body not JSON", "e", 1000, { body: undefined, rawBody: "{nope" }),
      schedule("body is an array", "e", 1000, { body: [1, 2] }),
      schedule("no body", "e", 1000, { body: undefined }),
      req("unknown room", {
        method: "PUT",
        path: `/_matrix/client/v3/rooms/!nosuchroom:localhost/state/${MEMBER}/e?${DELAY}=1000`,
        body: {},
      }),
      list("nothing scheduled"),
    ],
  },
  {
    name: "schedule-validation",
    what: "event-shape checks at scheduling (Synapse's validate_builder); membership and power are only checked when it fires",
    config: "relaxed",
    actors: ["alice"],
    steps: [
      req("m.room.message without body", {
        method: "PUT",
        path: sendPath("v1", 60_000, "m.room.message"),
        body: { msgtype: "m.text" },
      }),
      req("m.room.message with a number body", {
        method: "PUT",
        path: sendPath("v2", 60_000, "m.room.message"),
        body: { msgtype: "m.text", body: 5 },
      }),
      req("m.room.topic as a message event", {
        method: "PUT",
        path: sendPath("v3", 60_000, "m.room.topic"),
        body: { topic: "t" },
      }),
      req("m.room.member without membership", {
        method: "PUT",
        path: statePath("@someone:localhost", 60_000, "m.room.member"),
        body: {},
      }),
      req("m.room.member with an invalid membership", {
        method: "PUT",
        path: statePath("@someone:localhost", 60_000, "m.room.member"),
        body: { membership: "dance" },
      }),
      req("m.room.name with a number name", {
        method: "PUT",
        path: statePath("", 60_000, "m.room.name"),
        body: { name: 5 },
      }),
      req("power levels the user lacks (checked only at send)", {
        method: "PUT",
        path: statePath("", 60_000, "m.room.power_levels"),
        body: { users: {} },
        save: "pl",
      }),
      req("content over 64 KiB", {
        method: "PUT",
        path: sendPath("big", 60_000),
        body: { pad: "x".repeat(70_000) },
        save: "big",
      }),
      // Content summarised: the 70 kB body would bloat the recordings.
      list("what got scheduled", undefined, { view: summariseContent }),
    ],
  },
  {
    name: "legacy-management",
    what: "POST delayed_events/{id} with {action}: body checks, auth, ownership",
    config: "relaxed",
    actors: ["alice", "bob"],
    steps: [
      schedule("schedule", "k", 60_000, { save: "x" }),
      legacy("action missing", "x", {}),
      legacy("action invalid", "x", { action: "explode" }),
      req("body not JSON", { method: "POST", path: "{U}/delayed_events/{id:x}", rawBody: "nope" }),
      req("no body", { method: "POST", path: "{U}/delayed_events/{id:x}" }),
      legacy("restart (owner)", "x", { action: "restart" }),
      legacy("restart (no token)", "x", { action: "restart" }, "none"),
      legacy("restart (unknown token)", "x", { action: "restart" }, "bogus"),
      legacy("restart (other user)", "x", { action: "restart" }, "bob"),
      legacy("restart unknown id", "unknown", { action: "restart" }),
      legacy("cancel (other user)", "x", { action: "cancel" }, "bob"),
      list("still pending?"),
      legacy("cancel (owner)", "x", { action: "cancel" }),
      legacy("cancel again", "x", { action: "cancel" }),
      req("empty id", { method: "POST", path: "{U}/delayed_events/", body: { action: "cancel" } }),
    ],
  },
  {
    name: "per-action-management",
    what: "POST delayed_events/{id}/{action}: routes, auth, ownership, unknown ids and actions",
    config: "relaxed",
    actors: ["alice", "bob"],
    steps: [
      schedule("schedule", "k", 60_000, { save: "x" }),
      action("restart (owner)", "x", "restart"),
      action("restart (no token)", "x", "restart", "none"),
      action("restart (unknown token)", "x", "restart", "bogus"),
      action("restart (other user)", "x", "restart", "bob"),
      action("restart unknown id", "unknown", "restart"),
      action("unknown action", "x", "explode"),
      req("GET on an action route", { method: "GET", path: "{U}/delayed_events/{id:x}/restart" }),
      req("PUT on the id route", { method: "PUT", path: "{U}/delayed_events/{id:x}", body: {} }),
      req("stable v1 route", { method: "POST", path: "/_matrix/client/v1/delayed_events/{id:x}/restart" }),
      action("cancel (other user)", "x", "cancel", "bob"),
      list("pending after all that"),
      action("cancel (owner)", "x", "cancel"),
      schedule("schedule another", "s", 60_000, { body: { via: "send action" }, save: "y" }),
      action("send per action", "y", "send"),
      state("sent state", "s"),
    ],
  },
  {
    name: "restart-rearms-from-now",
    what: "restart moves the send time to now + the original delay; the fired event's origin_server_ts is that time",
    config: "relaxed",
    actors: ["alice"],
    steps: [
      // Wide margins: real Synapse on a loaded machine answers hundreds of ms late.
      schedule("schedule 4000 ms", "k", 4000, {
        body: { left: true },
        save: "x",
        mark: [{ name: "scheduled" }, { name: "first-due", offsetMs: 4000 }],
      }),
      wait(1500),
      legacy("restart after 1500 ms", "x", { action: "restart" }, undefined, {
        mark: [{ name: "restarted" }, { name: "rearmed-due", offsetMs: 4000 }],
      }),
      list("list after restart"),
      { kind: "waitUntil", mark: "first-due", plusMs: 400 },
      state("not fired when first due", "k"),
      state("fired at restart + delay", "k", { poll: { until: present, timeoutMs: 8000 } }),
      list("gone from the list", undefined, { poll: { until: listLength(0), timeoutMs: 3000 } }),
      legacy("restart after it fired", "x", { action: "restart" }),
    ],
  },
  {
    name: "firing-order",
    what: "delayed events fire in send-time order with origin_server_ts = their send time",
    config: "relaxed",
    actors: ["alice", "bob"],
    steps: [
      // Far apart: real Synapse sends each due batch in its own background task, so two events due
      // close together can be persisted in either order under load.
      req("schedule late (2500 ms)", {
        method: "PUT",
        path: sendPath("late", 2500),
        body: { n: "late" },
        save: "late",
      }),
      req("schedule early (1000 ms)", {
        method: "PUT",
        path: sendPath("early", 1000),
        body: { n: "early" },
        save: "early",
      }),
      // The server's own send times, which the fired events' origin_server_ts must equal.
      list("both pending"),
      req("timeline (owner view)", {
        method: "GET",
        path: "/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=30",
        view: timelineOf("com.example.ping"),
        poll: { until: (r) => Array.isArray(r.body) && r.body.length === 2, timeoutMs: 4000 },
      }),
      req("timeline (other user's view)", {
        method: "GET",
        path: "/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=30",
        as: "bob",
        view: timelineOf("com.example.ping"),
      }),
    ],
  },
  {
    name: "send-action",
    what: "send now: the event appears at once, as the owner, and the id is spent",
    config: "relaxed",
    actors: ["alice", "bob"],
    steps: [
      schedule("schedule", "k", 60_000, { body: { sent: "now" }, save: "x", mark: { name: "scheduled" } }),
      wait(300),
      legacy("send", "x", { action: "send" }, undefined, { mark: { name: "send-action" } }),
      state("state right after send", "k"),
      state("other user's view", "k", { as: "bob" }),
      legacy("send again", "x", { action: "send" }),
      legacy("restart after send", "x", { action: "restart" }),
      list("list after send"),
    ],
  },
  {
    name: "auto-cancel",
    what: "another user's state write at the key cancels pending delayed state; the owner's own writes do not (since 1.127)",
    config: "relaxed",
    actors: ["alice", "bob"],
    steps: [
      schedule("alice schedules at k1", "k1", 60_000, { save: "a1" }),
      schedule("alice schedules at k2", "k2", 60_000, { save: "a2" }),
      req("alice schedules a message", { method: "PUT", path: sendPath("m", 60_000), body: {}, save: "am" }),
      req("bob writes k1", { method: "PUT", path: statePath("k1"), body: { bob: 1 }, as: "bob" }),
      list("k1 cancelled", undefined, { poll: { until: listLength(2), timeoutMs: 3000 } }),
      req("alice writes k2", { method: "PUT", path: statePath("k2"), body: { alice: 1 } }),
      wait(600),
      list("after alice's own write"),
      req("bob sends a message", { method: "PUT", path: sendPath("b", undefined), body: {}, as: "bob" }),
      wait(300),
      list("messages never cancel"),
    ],
  },
  {
    name: "same-user-other-device",
    what: "another device of the owner writing the key does not cancel (since 1.127); it can manage the event",
    config: "relaxed",
    actors: ["alice"],
    secondDevices: ["alice"],
    steps: [
      schedule("device 1 schedules", "k", 60_000, { save: "x" }),
      list("device 2 lists it", "alice#2"),
      action("device 2 restarts", "x", "restart", "alice#2"),
      legacy("device 2 restarts (legacy)", "x", { action: "restart" }, "alice#2"),
      req("device 2 writes k", { method: "PUT", path: statePath("k"), body: { d: 2 }, as: "alice#2" }),
      wait(600),
      list("still pending after device 2's write"),
    ],
  },
  {
    name: "pending-limit",
    what: "the per-user pending limit (5 here): 429 with Retry-After until one fires or is cancelled (≥1.157)",
    config: "relaxed",
    actors: ["alice", "bob"],
    steps: [
      schedule("1", "l1", 60_000, { save: "l1" }),
      schedule("2", "l2", 70_000, { save: "l2" }),
      schedule("3", "l3", 80_000, { save: "l3" }),
      req("4 (message)", { method: "PUT", path: sendPath("l4", 90_000), body: {}, save: "l4" }),
      schedule("5", "l5", 100_000, { save: "l5" }),
      schedule("6: over the limit", "l6", 1000, { save: "l6" }),
      schedule("bob is not limited", "b1", 60_000, { as: "bob", save: "b1" }),
      action("cancel one", "l3", "cancel"),
      schedule("6 again after cancel", "l6", 60_000, { save: "l6b" }),
      list("pending"),
    ],
  },
];

/** Scenarios on a rate-limited server (0.1/s, burst 3; the join spends one of rc_message's 3). */
export const LIMITED_SCENARIOS: Scenario[] = [
  {
    name: "rate-limit-scheduling",
    what: "the join and scheduling spend rc_message: the 3rd scheduling is 429 with retry_after_ms and Retry-After",
    config: "limited",
    actors: ["alice"],
    steps: [
      schedule("1", "r1", 60_000),
      schedule("2", "r2", 60_000),
      schedule("3", "r3", 60_000),
      schedule("4: limited", "r4", 60_000),
      req("a plain state write shares the bucket", { method: "PUT", path: statePath("plain"), body: {} }),
    ],
  },
  {
    name: "rate-limit-management",
    what: "management spends rc_delayed_event_mgmt (rc_message before 1.126), keyed per user or per IP",
    config: "limited",
    ownServer: true,
    actors: ["alice", "bob"],
    steps: [
      schedule("schedule", "k", 60_000, { save: "x" }),
      legacy("restart 1", "x", { action: "restart" }),
      legacy("restart 2", "x", { action: "restart" }),
      legacy("restart 3", "x", { action: "restart" }),
      legacy("restart 4", "x", { action: "restart" }),
      legacy("bob restarts (own bucket?)", "x", { action: "restart" }, "bob"),
      action("per-action without token", "x", "restart", "none"),
      action("per-action unknown id without token", "unknown", "restart", "none"),
      list("listing as alice"),
    ],
  },
  {
    name: "rate-limit-send-action",
    what: "the send action: the request spends the management bucket, the event it sends rc_message",
    config: "limited",
    actors: ["alice"],
    steps: [
      schedule("schedule 1", "s1", 60_000, { save: "s1" }),
      schedule("schedule 2", "s2", 60_000, { save: "s2" }),
      legacy("send 1", "s1", { action: "send" }),
      legacy("send 2", "s2", { action: "send" }),
      list("listing"),
    ],
  },
];

/** Scenarios that restart the server (each on a server of its own). */
export const RESTART_SCENARIOS: Scenario[] = [
  {
    name: "server-restart",
    what: "delayed events survive a restart; one that fell due while down fires on start with origin_server_ts = its send time",
    config: "relaxed",
    ownServer: true,
    actors: ["alice"],
    steps: [
      schedule("due while down", "k1", 1500, { body: { n: 1 }, save: "due", mark: { name: "scheduled" } }),
      wait(300),
      schedule("due later", "k2", 60_000, {
        body: { n: 2 },
        save: "later",
        mark: { name: "scheduled-later" },
      }),
      list("before the restart"),
      { kind: "restartServer", downMs: 2500 },
      state("fired on start", "k1", { poll: { until: present, timeoutMs: 8000 } }),
      list("the later one is still pending", undefined, { poll: { until: listLength(1), timeoutMs: 3000 } }),
      legacy("restart the later one", "later", { action: "restart" }),
      legacy("the fired one is gone", "due", { action: "restart" }),
    ],
  },
];

export const DISABLED_SCENARIOS: Scenario[] = [
  {
    name: "feature-disabled",
    what: "max_event_delay_duration unset: flag false, scheduling refused, management finds nothing",
    config: "disabled",
    actors: ["alice"],
    steps: [
      req("versions flag", {
        method: "GET",
        path: "/_matrix/client/versions",
        as: "none",
        view: msc4140Flag,
      }),
      req("capability", { method: "GET", path: "/_matrix/client/v3/capabilities", view: msc4140Capability }),
      schedule("schedule state", "k", 1000),
      req("schedule message", { method: "PUT", path: sendPath("t", 1000), body: {} }),
      schedule("bad delay is still parsed first", "k", "abc"),
      list("listing"),
      legacy("manage unknown", "unknown", { action: "cancel" }),
    ],
  },
];

const STICKY = "org.matrix.msc4354.sticky_duration_ms";
const STICKY_TYPE = "com.example.sticky";
/** Only Synapse 1.163.2 is compared for MSC4354 (the release the issue targets). */
const STICKY_PRESETS: SynapsePreset[] = ["1.163"];

/** `PUT …/send/com.example.sticky/{txn}` with the sticky parameter (and a delay) as given. */
const stickySend = (
  label: string,
  txn: string,
  sticky: number | string | undefined,
  body: unknown,
  extra: Partial<RequestStep> & { delay?: number } = {},
): RequestStep => {
  const { delay, ...rest } = extra;
  const query = [
    ...(sticky === undefined ? [] : [`${STICKY}=${encodeURIComponent(String(sticky))}`]),
    ...(delay === undefined ? [] : [`${DELAY}=${delay}`]),
  ];
  return req(label, {
    method: "PUT",
    path: `/_matrix/client/v3/rooms/{room}/send/${STICKY_TYPE}/${txn}${query.length ? `?${query.join("&")}` : ""}`,
    body,
    ...rest,
  });
};

/** A /sync as `as` with a timeline limit (distinct requests: Synapse caches identical ones for 2 min). */
const syncStep = (
  label: string,
  as: string,
  opts: { since?: string; limit: number; saveToken?: string; view?: View },
): RequestStep =>
  req(label, {
    method: "GET",
    as,
    path:
      `/_matrix/client/v3/sync?timeout=0&filter=${encodeURIComponent(JSON.stringify({ room: { timeline: { limit: opts.limit } } }))}` +
      (opts.since === undefined ? "" : `&since={since:${opts.since}}`),
    view: opts.view ?? syncRoom(),
    ...(opts.saveToken !== undefined ? { saveToken: opts.saveToken } : {}),
  });

const stickyMessages = (label: string, as = "bob", extra: Partial<RequestStep> = {}): RequestStep =>
  req(label, {
    method: "GET",
    as,
    path: "/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=40",
    view: stickyTimeline,
    ...extra,
  });

const joinStep = (label: string, as: string): RequestStep =>
  req(label, { method: "POST", as, path: "/_matrix/client/v3/join/{room}", body: {} });

const CORS_HEADERS = [
  "access-control-allow-origin",
  "access-control-allow-methods",
  "access-control-allow-headers",
  "access-control-expose-headers",
];

/** MSC4354 sticky events (Synapse 1.163.2, `msc4354_enabled`), and the same requests with it off. */
export const STICKY_SCENARIOS: Scenario[] = [
  {
    name: "sticky-discovery-cors",
    what: "the org.matrix.msc4354 flag, CORS headers on /versions and an empty 204 preflight (a call app in an iframe)",
    config: "sticky",
    presets: STICKY_PRESETS,
    actors: ["alice"],
    steps: [
      req("versions flag (with an Origin)", {
        method: "GET",
        path: "/_matrix/client/versions",
        as: "none",
        headers: { Origin: "http://127.0.0.1:9" },
        view: msc4354Flag,
        recordHeaders: CORS_HEADERS,
      }),
      req("preflight of /versions", {
        method: "OPTIONS",
        path: "/_matrix/client/versions",
        as: "none",
        headers: {
          Origin: "http://127.0.0.1:9",
          "Access-Control-Request-Method": "GET",
          "Access-Control-Request-Headers": "authorization",
        },
        recordHeaders: CORS_HEADERS,
      }),
      req("preflight of a sticky send", {
        method: "OPTIONS",
        path: `/_matrix/client/v3/rooms/{room}/send/${STICKY_TYPE}/x?${STICKY}=600000`,
        as: "none",
        headers: {
          Origin: "http://127.0.0.1:9",
          "Access-Control-Request-Method": "PUT",
          "Access-Control-Request-Headers": "authorization,content-type",
        },
        recordHeaders: CORS_HEADERS,
      }),
    ],
  },
  {
    name: "sticky-send",
    what: "the parameter on /send: the field (uncapped), the TTL (capped at 1 h), 0, Python int() spellings, every refused value, /state ignoring it",
    config: "sticky",
    presets: STICKY_PRESETS,
    actors: ["alice", "bob"],
    steps: [
      stickySend(
        "sticky 10 min with a sticky key",
        "s1",
        600_000,
        { n: "10min", msc4354_sticky_key: "k1" },
        {
          mark: { name: "sent" },
        },
      ),
      stickySend("sticky 2 h (over the cap)", "s2", 2 * HOUR, { n: "2h" }, { mark: { name: "sent" } }),
      stickySend("sticky 0", "s3", 0, { n: "zero" }, { mark: { name: "sent" } }),
      stickySend("underscore digits", "s4", "60_000", { n: "underscore" }, { mark: { name: "sent" } }),
      stickySend("plus sign", "s5", "+50000", { n: "plus" }, { mark: { name: "sent" } }),
      stickySend("not an integer", "e1", "abc", { n: "e1" }),
      stickySend("decimal", "e2", "1.5", { n: "e2" }),
      stickySend("empty", "e3", "", { n: "e3" }),
      stickySend("negative", "e4", -1, { n: "e4" }),
      stickySend("2^53 (out of JSON range)", "e5", "9007199254740992", { n: "e5" }),
      req("bad sticky and bad delay: which error", {
        method: "PUT",
        path: `/_matrix/client/v3/rooms/{room}/send/${STICKY_TYPE}/e6?${STICKY}=abc&${DELAY}=xyz`,
        body: { n: "e6" },
      }),
      req("bad JSON body and bad sticky", {
        method: "PUT",
        path: `/_matrix/client/v3/rooms/{room}/send/${STICKY_TYPE}/e7?${STICKY}=abc`,
        rawBody: "{nope",
      }),
      req("POST send with the parameter", {
        method: "POST",
        path: `/_matrix/client/v3/rooms/{room}/send/${STICKY_TYPE}?${STICKY}=500000`,
        body: { n: "post" },
        mark: { name: "sent" },
      }),
      req("state with the parameter (ignored)", {
        method: "PUT",
        path: `${statePath("a")}?${STICKY}=600000`,
        body: { n: "state" },
        mark: { name: "sent" },
      }),
      req("state with a bad value (not even parsed)", {
        method: "PUT",
        path: `${statePath("b")}?${STICKY}=abc`,
        body: { n: "state-bad" },
        mark: { name: "sent" },
      }),
      stickyMessages("what bob reads"),
    ],
  },
  {
    name: "sticky-delayed",
    what: "delayed + sticky in one request: scheduled (listing without the duration), fires sticky with the TTL counted from the firing; the send action; an out-of-range duration fails only when sent",
    config: "sticky",
    presets: STICKY_PRESETS,
    actors: ["alice", "bob"],
    steps: [
      stickySend(
        "schedule delayed (4 s) + sticky (10 min)",
        "d1",
        600_000,
        { n: "fires" },
        {
          delay: 4000,
          save: "d",
          mark: { name: "scheduled" },
        },
      ),
      list("listing"),
      getOne("get one", "d"),
      stickyMessages("fired as a sticky event", "bob", {
        poll: { until: (r) => Array.isArray(r.body) && r.body.length === 1, timeoutMs: 9000 },
      }),
      stickySend(
        "schedule delayed (60 s) + sticky (5 min)",
        "d2",
        300_000,
        { n: "sent" },
        {
          delay: 60_000,
          save: "n",
        },
      ),
      wait(300),
      action("send it now", "n", "send", undefined, { mark: { name: "send-action" } }),
      stickyMessages("sent as a sticky event"),
      stickySend(
        "schedule with a 2^53 duration",
        "d3",
        "9007199254740992",
        { n: "big" },
        {
          delay: 60_000,
          save: "big",
        },
      ),
      action("send it: refused now", "big", "send"),
      list("nothing left pending"),
      stickyMessages("still two sticky events"),
    ],
  },
  {
    name: "sticky-sync",
    what: "the msc4354_sticky section: what a gappy sync misses, not what its timeline has, nothing new = no room, everything unexpired for a newly joined user, and an initial sync",
    config: "sticky",
    presets: STICKY_PRESETS,
    actors: ["alice", "bob"],
    lateActors: ["carol"],
    steps: [
      syncStep("bob: first sync", "bob", { limit: 3, saveToken: "b0", view: syncHasRoom }),
      syncStep("carol: first sync (not in the room)", "carol", {
        limit: 3,
        saveToken: "c0",
        view: syncHasRoom,
      }),
      stickySend("short (1.5 s)", "s", 1500, { n: "short" }, { mark: { name: "sent" } }),
      stickySend("A", "a", 600_000, { n: "A" }, { mark: { name: "sent" } }),
      stickySend("B", "b", 600_000, { n: "B", msc4354_sticky_key: "kb" }, { mark: { name: "sent" } }),
      stickySend("plain 1", "p1", undefined, { n: "P1" }, { mark: { name: "sent" } }),
      stickySend("plain 2", "p2", undefined, { n: "P2" }, { mark: { name: "sent" } }),
      wait(2000),
      syncStep("bob: gappy sync (limit 2)", "bob", { since: "b0", limit: 2, saveToken: "b1" }),
      syncStep("bob: nothing new", "bob", { since: "b1", limit: 4, saveToken: "b2" }),
      stickySend("C", "c", 600_000, { n: "C" }, { mark: { name: "sent" } }),
      syncStep("bob: C in the timeline", "bob", { since: "b2", limit: 5 }),
      joinStep("carol joins", "carol"),
      syncStep("carol: newly joined (limit 1)", "carol", { since: "c0", limit: 1 }),
      syncStep("carol: initial sync (limit 2)", "carol", { limit: 2 }),
      stickyMessages("the expired one keeps its field, loses its TTL", "alice"),
    ],
  },
  {
    name: "sticky-sync-limit",
    what: "102 sticky events: an initial sync gets the first 100 and the next sync the rest (the timeline's one again); so does a user who joins after a token from before them; one whose token is from after them gets all 102 at once",
    config: "sticky",
    presets: STICKY_PRESETS,
    actors: ["alice", "bob"],
    lateActors: ["carol", "dave"],
    steps: [
      syncStep("carol: first sync (not in the room)", "carol", {
        limit: 3,
        saveToken: "c0",
        view: syncHasRoom,
      }),
      ...Array.from({ length: 102 }, (_, i) => stickySend(`sticky ${i}`, `m${i}`, 600_000, { n: i })),
      syncStep("bob: initial sync (limit 1)", "bob", { limit: 1, saveToken: "b0", view: syncRoom(true) }),
      syncStep("bob: the rest", "bob", { since: "b0", limit: 1, saveToken: "b1", view: syncRoom(true) }),
      syncStep("bob: then nothing", "bob", { since: "b1", limit: 2, view: syncRoom(true) }),
      joinStep("carol joins", "carol"),
      // Synapse reads the newly joined room's sticky events only up to where the limited read stopped.
      syncStep("carol: newly joined (limit 1)", "carol", {
        since: "c0",
        limit: 1,
        saveToken: "c1",
        view: syncRoom(true),
      }),
      syncStep("carol: the rest", "carol", { since: "c1", limit: 1, view: syncRoom(true) }),
      syncStep("dave: first sync (not in the room)", "dave", {
        limit: 3,
        saveToken: "d0",
        view: syncHasRoom,
      }),
      joinStep("dave joins, after all of them", "dave"),
      syncStep("dave: newly joined gets all 102", "dave", { since: "d0", limit: 1, view: syncRoom(true) }),
    ],
  },
  {
    name: "sticky-off",
    what: "msc4354_enabled off: flag false, the parameter not even parsed (a plain event, bad values too), no sync section",
    config: "relaxed",
    presets: STICKY_PRESETS,
    actors: ["alice", "bob"],
    lateActors: ["carol"],
    steps: [
      req("versions flag", {
        method: "GET",
        path: "/_matrix/client/versions",
        as: "none",
        view: msc4354Flag,
      }),
      syncStep("carol: first sync", "carol", { limit: 3, saveToken: "c0", view: syncHasRoom }),
      stickySend("sticky 10 min", "s1", 600_000, { n: "sticky" }, { mark: { name: "sent" } }),
      stickySend("not an integer", "s2", "abc", { n: "abc" }, { mark: { name: "sent" } }),
      // Apart from the sends, so the scheduling time cannot fall into their windows too.
      wait(100),
      stickySend(
        "delayed + bad sticky",
        "s3",
        "abc",
        { n: "delayed" },
        {
          delay: 60_000,
          save: "d",
          mark: { name: "scheduled" },
        },
      ),
      list("scheduled"),
      stickyMessages("plain events"),
      joinStep("carol joins", "carol"),
      syncStep("carol: newly joined", "carol", { since: "c0", limit: 1 }),
    ],
  },
];

export const ALL_SCENARIOS: Scenario[] = [
  ...SCENARIOS,
  ...LIMITED_SCENARIOS,
  ...RESTART_SCENARIOS,
  ...DISABLED_SCENARIOS,
  ...STICKY_SCENARIOS,
];

/** The scenarios a preset (and the Synapse version judging it) runs. */
export const scenariosFor = (preset: SynapsePreset): Scenario[] =>
  ALL_SCENARIOS.filter((s) => s.presets === undefined || s.presets.includes(preset));
