/**
 * Runs one conformance scenario against a server over real HTTP and records each answer normalised:
 * ids become names (`<id:x>`, `<room>`, `<user:alice>`), timestamps become the named request window
 * they fall into (`<ts:due>`), `retry_after_ms` becomes whole seconds. Two servers that behave the
 * same produce identical records.
 */
import type { ConformanceServer, RequestStep, Scenario, StepRecord } from "./types.js";

export const UNSTABLE = "/_matrix/client/unstable/org.matrix.msc4140";

interface Actor {
  userId: string;
  accessToken: string;
  deviceId: string;
}

interface Window {
  name: string;
  from: number;
  to: number;
}

/** Clock slack between our Date.now() and the server's (same machine) plus timer granularity. */
const TS_SLACK_MS = 15;
const POLL_INTERVAL_MS = 50;

/** Keys whose numeric values are timestamps (ms since epoch). */
const TS_KEYS = new Set(["origin_server_ts", "running_since", "delayed_since_ts"]);

/** MSC4354's remaining stickiness changes every millisecond: views judge it, raw values become `<ttl>`. */
const isTtlKey = (key: string | undefined): boolean =>
  key !== undefined && key.endsWith("sticky_duration_ttl_ms");

export interface RunOptions {
  /** Makes localparts unique per run (servers are shared between scenarios). */
  runId: string;
  /** Log in a second device for an actor (needed by scenarios with `secondDevices`). */
  loginDevice?: (localpart: string) => Promise<Actor>;
}

/**
 * Retry times compared by order of magnitude: real Synapse on a loaded machine answers seconds late
 * (and pauses 0.5 s before every 429), which shortens the wait it reports. 10 s and 60 s still differ.
 */
function retryBucket(seconds: number): string {
  if (!Number.isFinite(seconds)) return "not-a-number";
  if (seconds <= 0) return "0s";
  for (const [upper, label] of [
    [1, "0-1s"],
    [4, "1-4s"],
    [20, "4-20s"],
    [100, "20-100s"],
  ] as const) {
    if (seconds <= upper) return label;
  }
  return ">100s";
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function runScenario(
  server: ConformanceServer,
  scenario: Scenario,
  options: RunOptions,
): Promise<StepRecord[]> {
  const prefix = `${scenario.name.replace(/[^a-z0-9]/g, "").slice(0, 24)}${options.runId}`.toLowerCase();
  const actors = new Map<string, Actor>();
  const owner = await server.createUser(`${prefix}_owner`);
  const roomId = await server.createRoom(owner.accessToken);
  for (const name of scenario.actors) {
    const actor = await server.createUser(`${prefix}_${name}`);
    // Over HTTP, not the handle's helper: the join spends rc_message on real Synapse, so it must here too.
    const joined = await fetch(`${server.baseUrl}/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${actor.accessToken}`, "Content-Type": "application/json" },
      body: "{}",
    });
    if (joined.status !== 200) throw new Error(`join failed: ${joined.status} ${await joined.text()}`);
    actors.set(name, actor);
  }
  for (const name of scenario.secondDevices ?? []) {
    if (!options.loginDevice) throw new Error(`scenario ${scenario.name} needs loginDevice`);
    actors.set(`${name}#2`, await options.loginDevice(`${prefix}_${name}`));
  }
  // Registered, not joined: a step joins them.
  for (const name of scenario.lateActors ?? [])
    actors.set(name, await server.createUser(`${prefix}_${name}`));

  const ids = new Map<string, string>();
  const tokens = new Map<string, string>();
  const windows: Window[] = [];
  const records: StepRecord[] = [];

  const normaliser = makeNormaliser(roomId, actors, ids, windows, owner.userId);
  const ctx = {
    userId: (actor: string) => {
      const found = actors.get(actor);
      if (!found) throw new Error(`unknown actor ${actor}`);
      return found.userId;
    },
    roomId,
  };

  for (const step of scenario.steps) {
    if (step.kind === "wait") {
      await sleep(step.ms);
      continue;
    }
    if (step.kind === "restartServer") {
      if (!server.restart || !scenario.ownServer)
        throw new Error(`${scenario.name}: cannot restart the server`);
      await server.restart({ downMs: step.downMs });
      continue;
    }
    if (step.kind === "waitUntil") {
      const window = windows.find((w) => w.name === step.mark);
      if (!window) throw new Error(`no mark ${step.mark}`);
      await sleep(Math.max(0, window.to + step.plusMs - Date.now()));
      continue;
    }
    const deadline = step.poll ? Date.now() + step.poll.timeoutMs : 0;
    for (;;) {
      const { record, sentAt, receivedAt, rawBody } = await execute(
        server,
        step,
        roomId,
        actors,
        ids,
        tokens,
      );
      if (step.view) record.body = step.view(record.body, ctx);
      record.body = normaliser(record.body);
      if (step.poll) {
        const met = step.poll.until(record);
        if (!met && Date.now() < deadline) {
          await sleep(POLL_INTERVAL_MS);
          continue;
        }
        record.settled = met;
      }
      if (step.save && record.status === 200) {
        const delayId = (rawBody as { delay_id?: unknown } | undefined)?.delay_id;
        if (typeof delayId === "string") ids.set(step.save, delayId);
        // A retried transaction must give the same id: normalise it to the first name it got.
        if (typeof delayId === "string") record.body = normaliser(rawBody);
      }
      if (step.saveToken && record.status === 200) {
        const token = (rawBody as { next_batch?: unknown } | undefined)?.next_batch;
        if (typeof token !== "string") throw new Error(`${scenario.name}: ${step.label} gave no next_batch`);
        tokens.set(step.saveToken, token);
      }
      for (const mark of step.mark === undefined ? [] : [step.mark].flat()) {
        const offset = mark.offsetMs ?? 0;
        windows.push({ name: mark.name, from: sentAt + offset, to: receivedAt + offset });
      }
      records.push(record);
      break;
    }
  }
  return records;
}

async function execute(
  server: ConformanceServer,
  step: RequestStep,
  roomId: string,
  actors: Map<string, Actor>,
  ids: Map<string, string>,
  tokens: Map<string, string>,
): Promise<{ record: StepRecord; sentAt: number; receivedAt: number; rawBody: unknown }> {
  const path = step.path.replace(/\{([a-z]+)(?::([^}]+))?\}/gi, (_m, kind: string, arg?: string) => {
    if (kind === "U") return UNSTABLE;
    if (kind === "room") return encodeURIComponent(roomId);
    if (kind === "id") {
      const id = ids.get(arg ?? "");
      // An id never saved (its scheduling failed on this server) stays a recognisable unknown id.
      return encodeURIComponent(id ?? `syd_unsaved${arg ?? ""}`);
    }
    if (kind === "since") {
      const token = tokens.get(arg ?? "");
      if (token === undefined) throw new Error(`no saved sync token ${arg}`);
      return encodeURIComponent(token);
    }
    if (kind === "user") {
      const actor = actors.get(arg ?? "");
      if (!actor) throw new Error(`unknown actor ${arg}`);
      return encodeURIComponent(actor.userId);
    }
    throw new Error(`unknown placeholder ${kind}`);
  });
  const headers: Record<string, string> = { ...step.headers };
  const as = step.as ?? [...actors.keys()][0];
  if (as === "bogus") headers.Authorization = "Bearer syt_bogus_token_never_issued";
  else if (as !== "none") {
    const actor = actors.get(as);
    if (!actor) throw new Error(`unknown actor ${as}`);
    headers.Authorization = `Bearer ${actor.accessToken}`;
  }
  let body: string | undefined = step.rawBody;
  if (body === undefined && step.body !== undefined) body = JSON.stringify(step.body);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const sentAt = Date.now();
  const res = await fetch(server.baseUrl + path, { method: step.method, headers, body });
  const text = await res.text();
  const receivedAt = Date.now();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep the text: a non-JSON answer is itself a difference worth seeing
  }
  const record: StepRecord = { label: step.label, status: res.status, body: parsed };
  const retryAfter = res.headers.get("retry-after");
  if (retryAfter !== null) record.headers = { "retry-after": retryBucket(Number(retryAfter)) };
  for (const name of step.recordHeaders ?? []) {
    record.headers = { ...record.headers, [name]: res.headers.get(name) ?? "absent" };
  }
  return { record, sentAt, receivedAt, rawBody: parsed };
}

function makeNormaliser(
  roomId: string,
  actors: Map<string, Actor>,
  ids: Map<string, string>,
  windows: Window[],
  ownerId: string,
): (value: unknown) => unknown {
  const replaceIds = (s: string): string => {
    let out = s;
    for (const [name, id] of ids) out = out.split(id).join(`<id:${name}>`);
    out = out.split(roomId).join("<room>");
    for (const [name, actor] of actors) {
      if (name.includes("#")) continue;
      out = out.split(actor.userId).join(`<user:${name}>`);
    }
    for (const [name, actor] of actors) out = out.split(actor.deviceId).join(`<device:${name}>`);
    out = out.split(ownerId).join("<user:owner>");
    out = out.replace(/syd_[A-Za-z]{20}/g, "<delay_id>");
    out = out.replace(/^\$[A-Za-z0-9_+/=-]+(:[a-z0-9.]+)?$/, "<event_id>");
    return out;
  };
  // Send times the server itself reported (listing / GET one): exact, unlike request windows.
  const sendTimes = new Map<number, string>();
  const learnSendTimes = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(learnSendTimes);
    if (value === null || typeof value !== "object") return;
    const item = value as Record<string, unknown>;
    const delay = item.delay_ms ?? item.delay;
    const since = item.delayed_since_ts ?? item.running_since;
    if (typeof item.delay_id === "string" && typeof delay === "number" && typeof since === "number") {
      const name = [...ids].find(([, id]) => id === item.delay_id)?.[0];
      if (name !== undefined) sendTimes.set(since + delay, name);
    }
    Object.values(item).forEach(learnSendTimes);
  };
  const timestamp = (value: number): string => {
    const sent = sendTimes.get(value);
    if (sent !== undefined) return `<send_ts:${sent}>`;
    for (const w of windows) {
      if (value >= w.from - TS_SLACK_MS && value <= w.to + TS_SLACK_MS) return `<ts:${w.name}>`;
    }
    return "<ts>";
  };
  const walk = (value: unknown, key?: string): unknown => {
    if (typeof value === "string") return replaceIds(value);
    if (typeof value === "number") {
      if (key !== undefined && TS_KEYS.has(key)) return timestamp(value);
      if (isTtlKey(key)) return "<ttl>";
      if (key === "retry_after_ms") return `<${retryBucket(value / 1000)}>`;
      return value;
    }
    if (Array.isArray(value)) return value.map((v) => walk(v));
    if (value !== null && typeof value === "object") {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(value).sort()) out[k] = walk((value as Record<string, unknown>)[k], k);
      return out;
    }
    return value;
  };
  return (value) => {
    learnSendTimes(value);
    return walk(value);
  };
}
