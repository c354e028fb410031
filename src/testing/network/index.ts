// Client-side network faults: a real-TCP proxy between one client and a homeserver.
export { startFaultyLink } from "./faultyLink.js";
export type {
  FaultyLink,
  FaultyLinkOptions,
  LinkLogEntry,
  LinkStats,
  RequestFate,
  RestoreOptions,
} from "./types.js";
