/**
 * `startSynapse()`: a real Synapse (pip-installed once per version, see install.ts) on 127.0.0.1 with
 * SQLite in a temporary directory, behind a handle shaped like `startTestHomeserver()`'s so the same
 * tests and scenario helpers run on both. Reads (`roomState`, `pendingDelayedEvents`...) are synchronous
 * like the emulator's: they go over HTTP to Synapse through a blocking worker (syncHttp.ts).
 */
import { randomBytes } from "node:crypto";
import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DelayedEventRecord } from "../homeserver/delayed-events.js";
import type { CreateRoomOptions, StateEventRecord, TimelineEventRecord } from "../homeserver/homeserver.js";
import type { Credentials } from "../homeserver/users.js";
import { clientCall, registerWithSharedSecret } from "./admin.js";
import { ensureSynapse } from "./install.js";
import { DEFAULT_SYNAPSE_VERSION, loggingConfig, synapseConfig, type SynapseOptions } from "./options.js";
import { freePort, launchSynapse, logTail, SynapseStartError, type RunningSynapse } from "./process.js";
import { signingKey } from "./signingKey.js";
import { sleepSync, SyncHttp, type SyncResponse } from "./syncHttp.js";
import { ensureTemplateDb, TEMPLATE_SERVER_NAME } from "./template.js";

const CALL_MEMBER_TYPE = "org.matrix.msc3401.call.member";
const DELAYED_EVENTS_PATH = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events";
/** Bounds on the synchronous reads: one request, and all retries after a 429 together. */
const READ_TIMEOUT_MS = 10_000;
const READ_RETRY_BUDGET_MS = 15_000;
const PORT_ATTEMPTS = 3;

/**
 * A running Synapse, from `startSynapse()`. Has the test homeserver's reading and user/room members
 * (so it fits `CallHomeserver`), but no fault injection, request log or clock: those exist only in the
 * emulator. Call `close()` when done, or the Synapse process outlives the test.
 */
export interface SynapseHomeserver {
  /** `http://127.0.0.1:<port>`, for clients; the same after `restart()`. */
  readonly baseUrl: string;
  /** The `server_name` (part of every user and room id), default "localhost". */
  readonly serverName: string;
  /** The `matrix-synapse` version running. */
  readonly version: string;
  /** The temporary directory with homeserver.yaml, the SQLite database and the log (removed on close). */
  readonly dataDir: string;
  /** The homeserver.yaml Synapse was started with (inside `dataDir`). */
  readonly configPath: string;
  /** Synapse's log file (inside `dataDir`); see also `logTail()`. */
  readonly logPath: string;
  /** The homeserver.yaml in force. */
  readonly config: Readonly<Record<string, unknown>>;
  /** The venv Synapse runs from. */
  readonly venvDir: string;
  /** A server admin made at start (not a member of any room the handle creates). */
  readonly admin: Credentials;
  /** Registers a user with the shared secret (no captcha, no email). */
  createUser(localpart: string, opts?: { guest?: boolean }): Promise<Credentials>;
  /** Another device (new access token) of a user made by `createUser`. */
  loginDevice(localpart: string, deviceId?: string): Promise<Credentials>;
  /** Default `public_chat`; members may send `org.matrix.msc3401.call.member` (power level 0). */
  createRoom(accessToken: string, options?: CreateRoomOptions): Promise<string>;
  /** Joins the token's user to a room (public rooms, or after an invite). */
  joinRoom(accessToken: string, roomId: string): Promise<void>;
  /** The room's current state, read through the admin API. */
  roomState(roomId: string): StateEventRecord[];
  /** The content of one current state event (`{}` for a left membership), undefined when there is none. */
  stateContent(roomId: string, type: string, stateKey: string): Record<string, unknown> | undefined;
  /** The room's events, oldest first (admin API, at most the last 1000). */
  timeline(roomId: string): TimelineEventRecord[];
  /**
   * Every pending delayed event of the users `createUser` made, due soonest first, read through each
   * user's `GET …/delayed_events`. Each call costs one request per user in Synapse's
   * `rc_delayed_event_mgmt` bucket (a 429 is waited out, bounded). `deviceId` is not in Synapse's
   * answer: it is the device of the token that listed the event.
   */
  pendingDelayedEvents(): DelayedEventRecord[];
  /** Stops Synapse, waits `downMs`, starts it again on the same port and database. */
  restart(options?: { downMs?: number }): Promise<void>;
  /** The last lines of Synapse's log. */
  logTail(lines?: number): string;
  /** Stops Synapse and removes `dataDir` (kept when `MATRIXRTC_SYNAPSE_KEEP` is set). Idempotent. */
  close(): Promise<void>;
}

const enc = encodeURIComponent;

/**
 * Starts a real Synapse on 127.0.0.1 (a free port) with SQLite in a fresh temporary directory,
 * installing `options.version` into a cached venv first if needed (needs Python 3 and PyPI access;
 * the first install takes minutes). Resolves once it answers and an admin user exists.
 */
export async function startSynapse(options: SynapseOptions = {}): Promise<SynapseHomeserver> {
  const version = options.version ?? DEFAULT_SYNAPSE_VERSION;
  const installed = await ensureSynapse(version, {
    timeoutMs: options.installTimeoutMs,
    onProgress: options.onProgress,
  });
  const dataDir = await mkdtemp(join(tmpdir(), "matrixrtc-synapse-"));
  const configPath = join(dataDir, "homeserver.yaml");
  const logPath = join(dataDir, "homeserver.log");
  const logConfigPath = join(dataDir, "log.yaml");
  const signingKeyPath = join(dataDir, "signing.key");
  const registrationSecret = randomBytes(16).toString("hex");
  // JSON is YAML: no YAML writer needed.
  await writeFile(logConfigPath, JSON.stringify(loggingConfig(logPath), null, 1));
  await writeFile(signingKeyPath, signingKey());
  // An empty database with Synapse's schema already in it saves a third of the start.
  if ((options.serverName ?? TEMPLATE_SERVER_NAME) === TEMPLATE_SERVER_NAME) {
    const template = await ensureTemplateDb(installed, options.startTimeoutMs ?? 60_000);
    if (template) await copyFile(template, join(dataDir, "homeserver.db"));
  }

  const appServiceFiles: string[] = [];
  for (const [i, registration] of (options.appServices ?? []).entries()) {
    const file = join(dataDir, `appservice-${i}.yaml`);
    await writeFile(file, JSON.stringify(registration, null, 1));
    appServiceFiles.push(file);
  }

  let port = 0;
  let config: Record<string, unknown> = {};
  let running: RunningSynapse | undefined;
  let baseUrl = "";
  const launch = () =>
    launchSynapse({
      python: installed.python,
      configPath,
      logPath,
      baseUrl,
      cwd: dataDir,
      timeoutMs: options.startTimeoutMs ?? 60_000,
    });
  for (let attempt = 1; !running; attempt++) {
    port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    config = synapseConfig(options, {
      dataDir,
      port,
      logConfigPath,
      signingKeyPath,
      registrationSecret,
      appServiceFiles,
    });
    await writeFile(configPath, JSON.stringify(config, null, 1));
    try {
      running = await launch();
    } catch (e) {
      if (!(e instanceof SynapseStartError && e.portInUse && attempt < PORT_ATTEMPTS)) {
        if (!process.env.MATRIXRTC_SYNAPSE_KEEP) await rm(dataDir, { recursive: true, force: true });
        throw e;
      }
    }
  }

  const serverName = String(config.server_name);
  const password = randomBytes(12).toString("hex");
  const http = new SyncHttp();
  const users = new Map<string, Credentials>();
  let admin: Credentials;
  try {
    admin = await registerWithSharedSecret(baseUrl, registrationSecret, {
      localpart: "synapse-admin",
      password,
      admin: true,
    });
  } catch (e) {
    await running.stop();
    await http.close();
    throw e;
  }
  let closed = false;

  /** A synchronous JSON read; waits out 429s within READ_RETRY_BUDGET_MS. */
  const readJson = (path: string, token: string): Record<string, unknown> => {
    const giveUpAt = Date.now() + READ_RETRY_BUDGET_MS;
    for (;;) {
      const res: SyncResponse = http.request({
        method: "GET",
        url: `${baseUrl}${path}`,
        headers: { authorization: `Bearer ${token}` },
        timeoutMs: READ_TIMEOUT_MS,
      });
      if (res.status === 200) return JSON.parse(res.text) as Record<string, unknown>;
      if (res.status === 429 && Date.now() < giveUpAt) {
        let wait = 1000;
        try {
          wait = Number((JSON.parse(res.text) as { retry_after_ms?: number }).retry_after_ms ?? 1000);
        } catch {
          // keep the default
        }
        sleepSync(Math.min(Math.max(wait, 10), giveUpAt - Date.now(), 5000));
        continue;
      }
      throw new Error(`synapse: GET ${path.split("?")[0]} → ${res.status} ${res.text.slice(0, 300)}`);
    }
  };

  const roomState = (roomId: string): StateEventRecord[] => {
    const body = readJson(`/_synapse/admin/v1/rooms/${enc(roomId)}/state`, admin.accessToken);
    return (body.state as StateEventRecord[]).map((e) => ({ ...e, unsigned: e.unsigned ?? {} }));
  };

  const handle: SynapseHomeserver = {
    get baseUrl() {
      return baseUrl;
    },
    serverName,
    version,
    dataDir,
    configPath,
    logPath,
    config,
    venvDir: installed.venvDir,
    admin,
    async createUser(localpart, opts) {
      if (opts?.guest) throw new Error("startSynapse: guest users are not supported");
      const creds = await registerWithSharedSecret(baseUrl, registrationSecret, {
        localpart,
        password,
        admin: false,
      });
      users.set(localpart, creds);
      return creds;
    },
    async loginDevice(localpart, deviceId) {
      const body = await clientCall(baseUrl, undefined, "POST", "/_matrix/client/v3/login", {
        type: "m.login.password",
        identifier: { type: "m.id.user", user: localpart },
        password,
        ...(deviceId ? { device_id: deviceId } : {}),
      });
      return {
        userId: body.user_id as string,
        accessToken: body.access_token as string,
        deviceId: body.device_id as string,
      };
    },
    async createRoom(accessToken, opts = {}) {
      const override = (opts.powerLevelContentOverride ?? {}) as Record<string, unknown>;
      const body = await clientCall(baseUrl, accessToken, "POST", "/_matrix/client/v3/createRoom", {
        preset: opts.preset ?? "public_chat",
        ...(opts.name ? { name: opts.name } : {}),
        ...(opts.roomVersion ? { room_version: opts.roomVersion } : {}),
        ...(opts.invite ? { invite: opts.invite } : {}),
        ...(opts.powerLevelContentOverride ? { power_level_content_override: override } : {}),
      });
      const roomId = body.room_id as string;
      // Synapse replaces the whole `events` map with an override's (a shallow update), so the call
      // member level is added to the room's actual power levels afterwards, keeping Synapse's defaults.
      const plPath = `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.power_levels/`;
      const levels = await clientCall(baseUrl, accessToken, "GET", plPath);
      const events = (levels.events ?? {}) as Record<string, unknown>;
      if (events[CALL_MEMBER_TYPE] === undefined) {
        const overrideEvents = (override.events ?? {}) as Record<string, unknown>;
        await clientCall(baseUrl, accessToken, "PUT", plPath, {
          ...levels,
          events: { ...events, [CALL_MEMBER_TYPE]: 0, ...overrideEvents },
        });
      }
      return roomId;
    },
    async joinRoom(accessToken, roomId) {
      await clientCall(baseUrl, accessToken, "POST", `/_matrix/client/v3/join/${enc(roomId)}`, {});
    },
    roomState,
    stateContent(roomId, type, stateKey) {
      return roomState(roomId).find((e) => e.type === type && e.state_key === stateKey)?.content;
    },
    timeline(roomId) {
      const body = readJson(
        `/_synapse/admin/v1/rooms/${enc(roomId)}/messages?dir=b&limit=1000`,
        admin.accessToken,
      );
      return (body.chunk as TimelineEventRecord[])
        .map((e) => ({ ...e, unsigned: e.unsigned ?? {} }))
        .reverse();
    },
    pendingDelayedEvents() {
      const all: DelayedEventRecord[] = [];
      for (const creds of users.values()) {
        const body = readJson(DELAYED_EVENTS_PATH, creds.accessToken);
        for (const raw of body.delayed_events as Record<string, unknown>[]) {
          // ≥1.161 names them delay_ms/delayed_since_ts; earlier releases delay/running_since.
          const delayMs = Number(raw.delay_ms ?? raw.delay);
          const since = Number(raw.delayed_since_ts ?? raw.running_since);
          all.push({
            delayId: raw.delay_id as string,
            userId: creds.userId,
            deviceId: creds.deviceId,
            roomId: raw.room_id as string,
            type: raw.type as string,
            ...(typeof raw.state_key === "string" ? { stateKey: raw.state_key } : {}),
            content: raw.content as DelayedEventRecord["content"],
            delayMs,
            sendTs: since + delayMs,
          });
        }
      }
      return all.sort((a, b) => a.sendTs - b.sendTs);
    },
    async restart(opts = {}) {
      if (closed) throw new Error("startSynapse: already closed");
      await running?.stop();
      running = undefined;
      if (opts.downMs && opts.downMs > 0) await new Promise((r) => setTimeout(r, opts.downMs));
      running = await launch();
    },
    logTail(lines) {
      return logTail(logPath, lines);
    },
    async close() {
      if (closed) return;
      closed = true;
      await running?.stop();
      await http.close();
      if (!process.env.MATRIXRTC_SYNAPSE_KEEP) await rm(dataDir, { recursive: true, force: true });
    },
  };
  return handle;
}
