/**
 * `startTestHomeserver()`: the public handle tests and the demo use. Helpers here act directly on the
 * server's state (no HTTP, so they never show up in `requests` or consume rate limits).
 */
import { validateAppServices } from "./appservices.js";
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
import { serializeEvent, type SerializeOptions } from "./serialize.js";
import type { Credentials } from "./users.js";

/** A room event as the server holds it, in client format (`unsigned` as the sender would see it). */
export interface TimelineEventRecord {
  /** Server-assigned event id (`$…`). */
  event_id: string;
  /** Room the event belongs to. */
  room_id: string;
  /** Event type, e.g. `org.matrix.msc3401.call.member`. */
  type: string;
  /** User id of the sender; for a fired delayed event, the user who scheduled it. */
  sender: string;
  /** Present only on state events. */
  state_key?: string;
  /** Event content as stored. */
  content: Record<string, unknown>;
  /** Server clock time when the event was persisted; a delayed event fired by its timer gets its due time. */
  origin_server_ts: number;
  /** MSC4354 sticky event (Synapse 1.163's name): the duration it was sent with, uncapped. */
  msc4354_sticky?: { duration_ms: number };
  /** MSC4354 sticky event with the merged text's names (`stickyEventsShape: "merged"`). */
  sticky?: { duration_ms: number };
  /**
   * `age`, `prev_content`/`prev_sender`/`replaces_state` for replaced state,
   * `org.matrix.msc4140.delay_id` on fired delayed events (always shown here, whatever `delayIdInUnsigned`),
   * and while sticky events are on, the remaining stickiness (`msc4354_sticky_duration_ttl_ms`).
   */
  unsigned: Record<string, unknown>;
}

/** A current-state event as returned by `TestHomeserver.roomState`. */
export interface StateEventRecord extends TimelineEventRecord {
  /** Always present on state; `""` for room-wide state such as `m.room.create`. */
  state_key: string;
}

/** Options for `TestHomeserver.createRoom`, a subset of `/createRoom`'s body. */
export interface CreateRoomOptions {
  /** Seeds an `m.room.name` event when set. */
  name?: string;
  /** Room version (default `"10"`). */
  roomVersion?: string;
  /**
   * Merged over the default power levels (objects such as `events` and `users` merge one level deep).
   * `org.matrix.msc3401.call.member` is at level 0 unless this sets it, like Element's call rooms.
   */
  powerLevelContentOverride?: object;
  /** User ids given an `invite` membership at creation (power 100 with `trusted_private_chat`). */
  invite?: string[];
  /** Default `public_chat` so `joinRoom` works without an invite; power levels are Synapse's either way. */
  preset?: "private_chat" | "public_chat" | "trusted_private_chat";
}

/**
 * A running in-process homeserver speaking enough of the Matrix client-server API (with MSC4140 delayed
 * events) for matrix-js-sdk and this package, plus direct test access to its state, faults and request log.
 */
export interface TestHomeserver {
  /** `http://host:port` to give clients; stays the same across `restart`. */
  readonly baseUrl: string;
  /** The server name in user and room ids (`@alice:<serverName>`). */
  readonly serverName: string;
  /** The options in force (after presets, patches and `configure`). */
  readonly options: Readonly<ResolvedOptions>;
  /**
   * Registers `localpart` and logs in one new device. Throws if the user already exists.
   * `guest: true` makes a guest account (refused where Synapse refuses guests).
   */
  createUser(localpart: string, opts?: { guest?: boolean }): Promise<Credentials>;
  /** Another device (new access token) of an existing user. */
  loginDevice(localpart: string, deviceId?: string): Promise<Credentials>;
  /** Creates a room as the token's user (no HTTP, no rate limit) and returns its room id. */
  createRoom(accessToken: string, options?: CreateRoomOptions): Promise<string>;
  /** Joins the token's user to the room without HTTP or rate limits; a no-op if already joined. */
  joinRoom(accessToken: string, roomId: string): Promise<void>;
  /** The room's current state, in client format. Throws on an unknown room. */
  roomState(roomId: string): StateEventRecord[];
  /** Content of the current state event at (type, stateKey), or undefined when there is none. */
  stateContent(roomId: string, type: string, stateKey: string): Record<string, unknown> | undefined;
  /** Every event of the room in persistence order, state included. Throws on an unknown room. */
  timeline(roomId: string): TimelineEventRecord[];
  /** Every pending delayed event (all users), due soonest first. */
  pendingDelayedEvents(): DelayedEventRecord[];
  /** Changes switches at run time (not port/host/serverName/clock/deterministicIds). */
  configure(patch: Partial<TestHomeserverOptions>): void;
  /** Arms server-side faults (error answers, hangs, dropped connections) on chosen routes. */
  readonly faults: ServerFaults;
  /** The server forgets a pending delayed event without telling anyone. */
  loseDelayedEvent(delayId: string): void;
  /**
   * Simulated restart: stop listening and drop all connections, wait `downMs`, listen again on the same
   * port. Delayed events persist; those that fell due while down fire at once, in send_ts order.
   */
  restart(options?: { downMs?: number }): Promise<void>;
  /**
   * Every HTTP request received, oldest first, trimmed to the newest `requestLogLimit` (in batches).
   * It is the live array, so it can be read at any time.
   */
  readonly requests: RequestLogEntry[];
  /**
   * Stops the delayed-event timer (pending events never fire), releases hung requests and closes the
   * listener. Idempotent.
   */
  close(): Promise<void>;
}

const FIXED_OPTIONS = ["port", "host", "serverName", "clock", "deterministicIds"] as const;

const CALL_MEMBER_TYPE = "org.matrix.msc3401.call.member";

/**
 * Starts a test homeserver on loopback (default `127.0.0.1`, a free port) with `options` over
 * `DEFAULT_OPTIONS`; spread a `SYNAPSE_PRESETS` entry into `options` to mimic a given Synapse release.
 * Call `close()` when done.
 */
export async function startTestHomeserver(options: TestHomeserverOptions = {}): Promise<TestHomeserver> {
  const core = new HomeserverCore(mergeOptions(DEFAULT_OPTIONS, options));
  validateAppServices(core.options.appServices);
  let baseUrl = "";
  const frontend = new HttpFrontend(core, new Router(buildRoutes(core, () => baseUrl)));
  const port = await frontend.listen(core.options.host, core.options.port);
  baseUrl = `http://${core.options.host}:${port}`;
  let closed = false;

  const serverView = (): SerializeOptions => ({ ...core.serializeOptions(), delayIdInUnsigned: true });
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
      if (patch.appServices) validateAppServices(patch.appServices);
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
