/** What the ghost pages share: the handle each exposes, and Element Call's settings for js-sdk's manager. */
import type { Transport } from "../../../src/index.js";

/** The call page's (or widget's) handle on `window`. */
export interface CallPageHandle {
  ready: boolean;
  impl: string;
  /** Page lifecycle events seen, in order (`pagehide persisted=false`, ...). */
  events: string[];
  join(): void;
  connected(): boolean;
  state(): string;
}

/** The SFU transport Element Call advertises (multi_sfu, `livekit_alias` = the room id). */
export function ecTransport(roomId: string): Transport {
  return { type: "livekit", livekit_service_url: "https://livekit.ghost.test", livekit_alias: roomId };
}

/** Element Call's join settings for js-sdk's MembershipManager (bench/lib.ts EC_JOIN_CONFIG). */
export function ecJoinConfig(delayMs: number) {
  return {
    delayedLeaveEventDelayMs: delayMs,
    networkErrorRetryMs: 1000,
    maximumNetworkErrorRetryCount: 11,
    manageMediaKeys: false,
    unstableSendStickyEvents: false,
    useLegacyMemberEvents: false,
  } as const;
}
