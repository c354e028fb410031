/**
 * The subset of the Matrix room authorization rules a call test can run into: membership (join rules,
 * invites, kicks, bans), power levels per event type, and "state keys starting with @ belong to that user".
 * Pure functions over the room's current state so the same check runs for direct sends and for delayed
 * events at the moment they fire (Synapse checks delayed events only then).
 */
import type { JsonObject } from "./errors.js";

export interface ProposedEvent {
  type: string;
  sender: string;
  stateKey?: string;
  content: JsonObject;
}

export type StateLookup = (
  type: string,
  stateKey: string,
) => { content: JsonObject; sender: string } | undefined;

interface PowerLevels {
  users: Record<string, number>;
  usersDefault: number;
  events: Record<string, number>;
  eventsDefault: number;
  stateDefault: number;
  invite: number;
  kick: number;
  ban: number;
}

const int = (value: unknown, fallback: number): number =>
  typeof value === "number" && Number.isInteger(value) ? value : fallback;

const intMap = (value: unknown): Record<string, number> => {
  const out: Record<string, number> = {};
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) if (typeof v === "number") out[k] = v;
  }
  return out;
};

function powerLevels(state: StateLookup): PowerLevels {
  const pl = state("m.room.power_levels", "");
  if (!pl) {
    // No power levels event yet: the creator is 100, everyone else 0, and everything needs 0.
    const creator = state("m.room.create", "")?.sender;
    return {
      users: creator ? { [creator]: 100 } : {},
      usersDefault: 0,
      events: {},
      eventsDefault: 0,
      stateDefault: 0,
      invite: 0,
      kick: 50,
      ban: 50,
    };
  }
  const c = pl.content;
  return {
    users: intMap(c.users),
    usersDefault: int(c.users_default, 0),
    events: intMap(c.events),
    eventsDefault: int(c.events_default, 0),
    stateDefault: int(c.state_default, 50),
    invite: int(c.invite, 0),
    kick: int(c.kick, 50),
    ban: int(c.ban, 50),
  };
}

const userLevel = (pl: PowerLevels, userId: string): number => pl.users[userId] ?? pl.usersDefault;

export function membershipOf(state: StateLookup, userId: string): string | undefined {
  const m = state("m.room.member", userId)?.content.membership;
  return typeof m === "string" ? m : undefined;
}

/** Returns the reason the event is not allowed (a Synapse-like 403 message), or undefined if it is. */
export function authFailure(state: StateLookup, event: ProposedEvent, roomId: string): string | undefined {
  if (event.type === "m.room.create") return "Create event already exists";
  const pl = powerLevels(state);
  const senderLevel = userLevel(pl, event.sender);
  const senderMembership = membershipOf(state, event.sender);

  if (event.type === "m.room.member" && event.stateKey !== undefined) {
    return memberFailure(state, pl, event, senderMembership, roomId);
  }
  if (senderMembership !== "join") {
    return `User ${event.sender} not in room ${roomId} (${senderMembership === undefined ? "None" : `'${senderMembership}'`})`;
  }
  const required =
    pl.events[event.type] ?? (event.stateKey !== undefined ? pl.stateDefault : pl.eventsDefault);
  if (senderLevel < required) {
    return `You don't have permission to post that to the room. user_level (${senderLevel}) < send_level (${required})`;
  }
  if (event.stateKey?.startsWith("@") && event.stateKey !== event.sender) {
    return "You are not allowed to set others state";
  }
  if (event.type === "m.room.power_levels") return powerLevelsChangeFailure(pl, senderLevel, event);
  return undefined;
}

function memberFailure(
  state: StateLookup,
  pl: PowerLevels,
  event: ProposedEvent,
  senderMembership: string | undefined,
  roomId: string,
): string | undefined {
  const target = event.stateKey as string;
  const membership = event.content.membership;
  const targetMembership = membershipOf(state, target);
  const senderLevel = userLevel(pl, event.sender);
  const targetLevel = userLevel(pl, target);
  switch (membership) {
    case "join": {
      if (event.sender !== target) return "Cannot force another user to join.";
      if (targetMembership === "ban") return "You are banned from this room";
      if (targetMembership === "join" || targetMembership === "invite") return undefined;
      const joinRule = state("m.room.join_rules", "")?.content.join_rule;
      if (joinRule === "public") return undefined;
      return "You are not invited to this room.";
    }
    case "invite":
      if (senderMembership !== "join") return `User ${event.sender} not in room ${roomId}`;
      if (targetMembership === "ban") return `${target} is banned from the room`;
      if (targetMembership === "join") return `${target} is already in the room.`;
      if (senderLevel < pl.invite) return "You don't have permission to invite users";
      return undefined;
    case "leave":
      if (event.sender === target) {
        return targetMembership === "join" || targetMembership === "invite" || targetMembership === "knock"
          ? undefined
          : `User ${target} is not in the room.`;
      }
      if (senderMembership !== "join") return `User ${event.sender} not in room ${roomId}`;
      if (targetMembership === "ban" && senderLevel < pl.ban) return "You cannot unban user";
      if (senderLevel < pl.kick || targetLevel >= senderLevel) return "You cannot kick user";
      return undefined;
    case "ban":
      if (senderMembership !== "join") return `User ${event.sender} not in room ${roomId}`;
      if (senderLevel < pl.ban || targetLevel >= senderLevel) return "You don't have permission to ban";
      return undefined;
    default:
      return "Unknown membership";
  }
}

/** You may not grant or revoke levels above your own, nor demote peers at your level. */
function powerLevelsChangeFailure(
  pl: PowerLevels,
  senderLevel: number,
  event: ProposedEvent,
): string | undefined {
  const next = event.content;
  const scalar: [keyof PowerLevels, string][] = [
    ["usersDefault", "users_default"],
    ["eventsDefault", "events_default"],
    ["stateDefault", "state_default"],
    ["invite", "invite"],
    ["kick", "kick"],
    ["ban", "ban"],
  ];
  for (const [key, wire] of scalar) {
    const before = pl[key] as number;
    const after = int(next[wire], before);
    if (before !== after && (before > senderLevel || after > senderLevel)) {
      return "You don't have permission to add ops level greater than your own";
    }
  }
  const nextEvents = intMap(next.events);
  for (const type of new Set([...Object.keys(pl.events), ...Object.keys(nextEvents)])) {
    const before = pl.events[type];
    const after = nextEvents[type];
    if (before !== after && ((before ?? 0) > senderLevel || (after ?? 0) > senderLevel)) {
      return "You don't have permission to add ops level greater than your own";
    }
  }
  const nextUsers = intMap(next.users);
  for (const user of new Set([...Object.keys(pl.users), ...Object.keys(nextUsers)])) {
    const before = pl.users[user];
    const after = nextUsers[user];
    if (before === after) continue;
    if ((after ?? 0) > senderLevel) return "You don't have permission to add ops level greater than your own";
    if (user !== event.sender && before !== undefined && before >= senderLevel) {
      return "You don't have permission to remove ops level equal to your own";
    }
  }
  return undefined;
}

/** Synapse's POWER_LEVELS_SCHEMA: every level an integer, maps of integers. Returns a 400 message or undefined. */
export function powerLevelsShapeFailure(content: JsonObject): string | undefined {
  for (const key of ["ban", "events_default", "invite", "kick", "redact", "state_default", "users_default"]) {
    if (key in content && !(typeof content[key] === "number" && Number.isInteger(content[key]))) {
      return `"${key}": ${JSON.stringify(content[key])} is not of type 'integer'`;
    }
  }
  for (const key of ["events", "notifications", "users"]) {
    if (!(key in content)) continue;
    const value = content[key];
    if (!value || typeof value !== "object" || Array.isArray(value)) {
      return `"${key}": ${JSON.stringify(value)} is not of type 'object'`;
    }
    for (const [k, v] of Object.entries(value)) {
      if (!(typeof v === "number" && Number.isInteger(v)))
        return `"${k}": ${JSON.stringify(v)} is not of type 'integer'`;
    }
  }
  return undefined;
}
