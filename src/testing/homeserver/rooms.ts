/**
 * Rooms as a linear event log per room with a current-state map. One global stream position orders every
 * event (it is what /sync tokens count). There is no federation and no forking, so the state after an
 * event is simply the replay of the state events before it.
 */
import { authFailure, membershipOf, powerLevelsShapeFailure, type StateLookup } from "./auth-rules.js";
import { badRequest, forbidden, tooLarge, type JsonObject } from "./errors.js";
import type { IdGenerator } from "./ids.js";
import { checkTopLevelIntegers } from "./sticky-events.js";

export interface StoredEvent {
  event_id: string;
  room_id: string;
  type: string;
  sender: string;
  state_key?: string;
  content: JsonObject;
  origin_server_ts: number;
  /** Global stream position. */
  pos: number;
  /** The state event this one replaced (for `unsigned.prev_content`). */
  replaces?: StoredEvent;
  /** Device + transaction id of the sender, to echo `unsigned.transaction_id` to that device only. */
  deviceId?: string;
  txnId?: string;
  /** Set when the event came from a delayed event (`unsigned["org.matrix.msc4140.delay_id"]`). */
  delayId?: string;
  /** Top-level fields beyond the usual ones, e.g. MSC4354's `msc4354_sticky: { duration_ms }`. */
  topLevel?: JsonObject;
}

export interface RoomRecord {
  roomId: string;
  version: string;
  events: StoredEvent[];
  state: Map<string, StoredEvent>;
}

export interface SendRequest {
  roomId: string;
  sender: string;
  type: string;
  content: JsonObject;
  stateKey?: string;
  originServerTs?: number;
  deviceId?: string;
  txnId?: string;
  delayId?: string;
  /** Extra top-level event fields (MSC4354's sticky object). */
  topLevel?: JsonObject;
}

export interface SendResult {
  event: StoredEvent;
  /** Identical state from the same sender: nothing new was persisted, `event` is the existing one. */
  deduplicated: boolean;
}

export interface CreateRoomSpec {
  creator: string;
  roomVersion?: string;
  preset?: "private_chat" | "public_chat" | "trusted_private_chat";
  name?: string;
  topic?: string;
  invite?: string[];
  powerLevelContentOverride?: JsonObject;
  initialState?: { type: string; state_key?: string; content: JsonObject }[];
  creationContent?: JsonObject;
}

export interface RoomHooks {
  /** A state event became current state (auto-cancel of delayed state hangs off this). */
  onStateChanged(event: StoredEvent): void;
  /** Any new event (wakes long-polling /sync requests). */
  onNewEvent(event: StoredEvent): void;
}

export const SUPPORTED_ROOM_VERSIONS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"];
export const DEFAULT_ROOM_VERSION = "10";

/** Join content as Synapse writes it for the join endpoints: the profile's display name included. */
export const joinContent = (userId: string): JsonObject => ({
  membership: "join",
  displayname: userId.slice(1, userId.indexOf(":")),
});

const stateId = (type: string, stateKey: string): string => `${type}\u0000${stateKey}`;

/** Canonical-ish JSON: sorted keys, so equal contents compare equal regardless of key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as JsonObject)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

export class RoomStore {
  private pos = 0;
  private readonly rooms = new Map<string, RoomRecord>();

  public constructor(
    private readonly ids: IdGenerator,
    private readonly now: () => number,
    private readonly hooks: RoomHooks,
    private readonly maxEventBytes: () => number,
  ) {}

  public get streamPos(): number {
    return this.pos;
  }

  public get(roomId: string): RoomRecord | undefined {
    return this.rooms.get(roomId);
  }

  public all(): RoomRecord[] {
    return [...this.rooms.values()];
  }

  public lookup(roomId: string): StateLookup {
    const room = this.rooms.get(roomId);
    return (type, stateKey) => room?.state.get(stateId(type, stateKey));
  }

  public stateEvent(roomId: string, type: string, stateKey: string): StoredEvent | undefined {
    return this.rooms.get(roomId)?.state.get(stateId(type, stateKey));
  }

  public membership(roomId: string, userId: string): string | undefined {
    return membershipOf(this.lookup(roomId), userId);
  }

  /** The user's membership after every event up to and including stream position `pos`. */
  public membershipAt(room: RoomRecord, userId: string, pos: number): string | undefined {
    let membership: string | undefined;
    for (const event of room.events) {
      if (event.pos > pos) break;
      if (event.type === "m.room.member" && event.state_key === userId) {
        membership = typeof event.content.membership === "string" ? event.content.membership : undefined;
      }
    }
    return membership;
  }

  /** Room state after every event up to and including stream position `pos`. */
  public stateAt(room: RoomRecord, pos: number): Map<string, StoredEvent> {
    const state = new Map<string, StoredEvent>();
    for (const event of room.events) {
      if (event.pos > pos) break;
      if (event.state_key !== undefined) state.set(stateId(event.type, event.state_key), event);
    }
    return state;
  }

  /** Rooms where the user has ever had a membership event. */
  public roomsOf(userId: string): RoomRecord[] {
    return this.all().filter((room) => room.state.has(stateId("m.room.member", userId)));
  }

  public createRoom(spec: CreateRoomSpec): string {
    const version = spec.roomVersion ?? DEFAULT_ROOM_VERSION;
    if (!SUPPORTED_ROOM_VERSIONS.includes(version)) {
      throw badRequest(
        "Your homeserver does not support the features required to join this room",
        "M_UNSUPPORTED_ROOM_VERSION",
      );
    }
    const roomId = this.ids.roomId();
    this.rooms.set(roomId, { roomId, version, events: [], state: new Map() });
    const creator = spec.creator;
    const preset = spec.preset ?? "private_chat";
    const seed = (type: string, content: JsonObject, stateKey = ""): void => {
      this.persist(this.rooms.get(roomId) as RoomRecord, {
        roomId,
        sender: creator,
        type,
        content,
        stateKey,
      });
    };
    const createContent: JsonObject = { room_version: version, ...(spec.creationContent ?? {}) };
    if (Number(version) < 11) createContent.creator = creator;
    seed("m.room.create", createContent);
    seed("m.room.member", joinContent(creator), creator);
    const users: Record<string, number> = { [creator]: 100 };
    if (preset === "trusted_private_chat") for (const invitee of spec.invite ?? []) users[invitee] = 100;
    // Synapse's default power levels for the private/public presets.
    const powerLevels: JsonObject = {
      users,
      users_default: 0,
      events: {
        "m.room.name": 50,
        "m.room.power_levels": 100,
        "m.room.history_visibility": 100,
        "m.room.canonical_alias": 50,
        "m.room.avatar": 50,
        "m.room.tombstone": 100,
        "m.room.server_acl": 100,
        "m.room.encryption": 100,
      },
      events_default: 0,
      state_default: 50,
      ban: 50,
      kick: 50,
      redact: 50,
      invite: 0,
      historical: 100,
    };
    const override = spec.powerLevelContentOverride ?? {};
    for (const [key, value] of Object.entries(override)) {
      const current = powerLevels[key];
      powerLevels[key] =
        current && typeof current === "object" && value && typeof value === "object" && !Array.isArray(value)
          ? { ...(current as JsonObject), ...(value as JsonObject) }
          : value;
    }
    seed("m.room.power_levels", powerLevels);
    seed("m.room.join_rules", { join_rule: preset === "public_chat" ? "public" : "invite" });
    seed("m.room.history_visibility", { history_visibility: "shared" });
    if (preset !== "public_chat") seed("m.room.guest_access", { guest_access: "can_join" });
    for (const initial of spec.initialState ?? [])
      seed(initial.type, initial.content, initial.state_key ?? "");
    if (spec.name !== undefined) seed("m.room.name", { name: spec.name });
    if (spec.topic !== undefined) seed("m.room.topic", { topic: spec.topic });
    for (const invitee of spec.invite ?? []) seed("m.room.member", { membership: "invite" }, invitee);
    return roomId;
  }

  /**
   * Sends an event through the same checks as a client request: room exists (403 "Unknown room", as
   * Synapse's event creation says), event size, shape, dedup of identical state, auth rules.
   */
  public send(req: SendRequest): SendResult {
    const room = this.rooms.get(req.roomId);
    if (!room) throw forbidden("Unknown room");
    this.validateShape(req);
    checkTopLevelIntegers(room.version, req.topLevel);
    if (req.stateKey !== undefined) {
      const current = room.state.get(stateId(req.type, req.stateKey));
      if (
        current &&
        current.sender === req.sender &&
        canonicalJson(current.content) === canonicalJson(req.content)
      ) {
        return { event: current, deduplicated: true };
      }
    }
    const failure = authFailure(this.lookup(req.roomId), { ...req }, req.roomId);
    if (failure !== undefined) throw forbidden(failure);
    return { event: this.persist(room, req), deduplicated: false };
  }

  /**
   * Synapse's EventValidator.validate_builder plus the 64 KiB event size limit. Scheduling a delayed
   * event runs only validate_builder (`checkSize: false`): real Synapse accepts an oversized delayed
   * event and fails only when it fires (seen on 1.116.0–1.163.2 by the differential suite).
   */
  public validateShape(
    req: Pick<SendRequest, "type" | "content" | "stateKey" | "roomId" | "sender">,
    opts: { checkSize?: boolean } = {},
  ): void {
    const size = Buffer.byteLength(
      JSON.stringify({
        type: req.type,
        content: req.content,
        state_key: req.stateKey,
        room_id: req.roomId,
        sender: req.sender,
      }),
    );
    // Signatures, hashes and prev/auth events add roughly 500 bytes to what the client sent.
    if (opts.checkSize !== false && size + 500 > this.maxEventBytes()) throw tooLarge("event too large");
    const ensureStrings = (keys: string[]): void => {
      for (const key of keys) {
        if (!(key in req.content)) throw badRequest(`'${key}' not in content`);
        if (typeof req.content[key] !== "string") throw badRequest(`'${key}' not a string type`);
      }
    };
    const ensureState = (): void => {
      if (req.stateKey === undefined) throw badRequest(`'${req.type}' must be state events`);
    };
    switch (req.type) {
      case "m.room.message":
        ensureStrings(["body", "msgtype"]);
        break;
      case "m.room.topic":
        ensureStrings(["topic"]);
        ensureState();
        break;
      case "m.room.name":
        ensureStrings(["name"]);
        ensureState();
        break;
      case "m.room.member":
        if (!("membership" in req.content)) throw badRequest("Content has not membership key");
        if (!["invite", "join", "leave", "ban", "knock"].includes(req.content.membership as string)) {
          throw badRequest("Invalid membership key");
        }
        ensureState();
        break;
      case "m.room.power_levels": {
        const failure = powerLevelsShapeFailure(req.content);
        if (failure !== undefined) throw badRequest(failure, "M_BAD_JSON");
        break;
      }
    }
  }

  private persist(room: RoomRecord, req: SendRequest): StoredEvent {
    this.pos += 1;
    const event: StoredEvent = {
      event_id: this.ids.eventId(),
      room_id: room.roomId,
      type: req.type,
      sender: req.sender,
      content: req.content,
      origin_server_ts: req.originServerTs ?? this.now(),
      pos: this.pos,
      ...(req.stateKey !== undefined ? { state_key: req.stateKey } : {}),
      ...(req.deviceId !== undefined ? { deviceId: req.deviceId } : {}),
      ...(req.txnId !== undefined ? { txnId: req.txnId } : {}),
      ...(req.delayId !== undefined ? { delayId: req.delayId } : {}),
      ...(req.topLevel !== undefined ? { topLevel: req.topLevel } : {}),
    };
    room.events.push(event);
    if (req.stateKey !== undefined) {
      const key = stateId(req.type, req.stateKey);
      const previous = room.state.get(key);
      if (previous) event.replaces = previous;
      room.state.set(key, event);
      this.hooks.onStateChanged(event);
    }
    this.hooks.onNewEvent(event);
    return event;
  }
}
