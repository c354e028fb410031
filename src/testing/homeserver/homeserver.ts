/**
 * `startTestHomeserver()`: the public handle tests and the demo use. Helpers here act directly on the
 * server's state (no HTTP, so they never show up in `requests` or consume rate limits).
 */
import { HomeserverCore } from "./core.js";
import type { DelayedEventRecord } from "./delayed-events.js";
import type { JsonObject } from "./errors.js";
import type { ServerFaults } from "./faults.js";
import { HttpFrontend, type RequestLogEntry } from "./http-server.js";
import {
  DEFAULT_OPTIONS,
  mergeOptions,
  type ResolvedOptions,
  type TestHomeserverOptions,
} from "./options.js";
import { joinContent } from "./rooms.js";
import { Router } from "./router.js";
import { buildRoutes } from "./routes.js";
import { serializeEvent } from "./serialize.js";
import type { Credentials } from "./users.js";

/** A room event as the server holds it, in client format (`unsigned` as the sender would see it). */
export interface TimelineEventRecord {
  event_id: string;
  room_id: string;
  type: string;
  sender: string;
  state_key?: string;
  content: Record<string, unknown>;
  origin_server_ts: number;
  unsigned: Record<string, unknown>;
}

export interface StateEventRecord extends TimelineEventRecord {
  state_key: string;
}

export interface CreateRoomOptions {
  name?: string;
  roomVersion?: string;
  powerLevelContentOverride?: object;
  invite?: string[];
  /** Default `public_chat` so `joinRoom` works without an invite; power levels are Synapse's either way. */
  preset?: "private_chat" | "public_chat" | "trusted_private_chat";
}

export interface TestHomeserver {
  readonly baseUrl: string;
  readonly serverName: string;
  /** The options in force (after presets, patches and `configure`). */
  readonly options: Readonly<ResolvedOptions>;
  createUser(localpart: string, opts?: { guest?: boolean }): Promise<Credentials>;
  /** Another device (new access token) of an existing user. */
  loginDevice(localpart: string, deviceId?: string): Promise<Credentials>;
  createRoom(accessToken: string, options?: CreateRoomOptions): Promise<string>;
  joinRoom(accessToken: string, roomId: string): Promise<void>;
  roomState(roomId: string): StateEventRecord[];
  stateContent(roomId: string, type: string, stateKey: string): Record<string, unknown> | undefined;
  timeline(roomId: string): TimelineEventRecord[];
  /** Every pending delayed event (all users), due soonest first. */
  pendingDelayedEvents(): DelayedEventRecord[];
  /** Changes switches at run time (not port/host/serverName/clock/deterministicIds). */
  configure(patch: Partial<TestHomeserverOptions>): void;
  readonly faults: ServerFaults;
  /** The server forgets a pending delayed event without telling anyone. */
  loseDelayedEvent(delayId: string): void;
  /**
   * Simulated restart: stop listening and drop all connections, wait `downMs`, listen again on the same
   * port. Delayed events persist; those that fell due while down fire at once, in send_ts order.
   */
  restart(options?: { downMs?: number }): Promise<void>;
  readonly requests: RequestLogEntry[];
  close(): Promise<void>;
}

const FIXED_OPTIONS = ["port", "host", "serverName", "clock", "deterministicIds"] as const;

const CALL_MEMBER_TYPE = "org.matrix.msc3401.call.member";

export async function startTestHomeserver(options: TestHomeserverOptions = {}): Promise<TestHomeserver> {
  const core = new HomeserverCore(mergeOptions(DEFAULT_OPTIONS, options));
  let baseUrl = "";
  const frontend = new HttpFrontend(core, new Router(buildRoutes(core, () => baseUrl)));
  const port = await frontend.listen(core.options.host, core.options.port);
  baseUrl = `http://${core.options.host}:${port}`;
  let closed = false;

  const serverView = (): { now: number; delayIdInUnsigned: boolean } => ({
    now: core.now(),
    delayIdInUnsigned: true,
  });
  const room = (roomId: string) => {
    const record = core.rooms.get(roomId);
    if (!record) throw new Error(`test homeserver: unknown room ${roomId}`);
    return record;
  };

  const handle: TestHomeserver = {
    get baseUrl() {
      return baseUrl;
    },
    serverName: core.options.serverName,
    get options() {
      return core.options;
    },
    async createUser(localpart, opts) {
      return core.users.register(localpart, { guest: opts?.guest });
    },
    async loginDevice(localpart, deviceId) {
      return core.users.login(localpart, deviceId);
    },
    async createRoom(accessToken, opts = {}) {
      const requester = core.users.authenticate(accessToken);
      const override = (opts.powerLevelContentOverride ?? {}) as JsonObject;
      return core.rooms.createRoom({
        creator: requester.userId,
        roomVersion: opts.roomVersion,
        preset: opts.preset ?? "public_chat",
        name: opts.name,
        invite: opts.invite,
        // Like Element's call rooms: every member may publish their own call membership.
        powerLevelContentOverride: {
          ...override,
          events: { [CALL_MEMBER_TYPE]: 0, ...((override.events as JsonObject | undefined) ?? {}) },
        },
      });
    },
    async joinRoom(accessToken, roomId) {
      const requester = core.users.authenticate(accessToken);
      if (core.rooms.membership(roomId, requester.userId) === "join") return;
      core.sendEvent(
        {
          roomId,
          sender: requester.userId,
          type: "m.room.member",
          stateKey: requester.userId,
          content: joinContent(requester.userId),
        },
        { ratelimit: false },
      );
    },
    roomState(roomId) {
      return [...room(roomId).state.values()].map((e) =>
        serializeEvent(e, "server", serverView()),
      ) as unknown as StateEventRecord[];
    },
    stateContent(roomId, type, stateKey) {
      return core.rooms.stateEvent(roomId, type, stateKey)?.content;
    },
    timeline(roomId) {
      return room(roomId).events.map((e) =>
        serializeEvent(e, "server", serverView()),
      ) as unknown as TimelineEventRecord[];
    },
    pendingDelayedEvents() {
      return core.delayed.all();
    },
    configure(patch) {
      for (const key of FIXED_OPTIONS) {
        if (patch[key] !== undefined && patch[key] !== core.options[key]) {
          throw new Error(`test homeserver: '${key}' cannot change while running`);
        }
      }
      core.options = mergeOptions(core.options, patch);
    },
    faults: core.faults,
    loseDelayedEvent(delayId) {
      core.delayed.lose(delayId);
    },
    async restart(opts = {}) {
      if (closed) throw new Error("test homeserver: already closed");
      core.delayed.stop();
      await frontend.stop();
      if (opts.downMs && opts.downMs > 0) await new Promise((resolve) => setTimeout(resolve, opts.downMs));
      await frontend.listen(core.options.host, port);
      core.delayed.start();
    },
    requests: frontend.requests,
    async close() {
      if (closed) return;
      closed = true;
      core.delayed.stop();
      core.faults.clear();
      await frontend.stop();
    },
  };
  return handle;
}
