/**
 * What goes on the wire in the sticky membership format (`membershipFormat: "sticky"`): an MSC4143
 * `m.rtc.member` timeline event (unstable type `org.matrix.msc4143.rtc.member`) made sticky by MSC4354,
 * in the dialect matrix-js-sdk 43's `StickyEventMembershipManager` and Element Call 0.26's `matrix_2_0`
 * mode write and read (checked against js-sdk 43's `membershipData/rtc.ts` `checkRtcMembershipData`).
 *
 * The join: `{ slot_id, application: { type, ... }, transports: { published, can_subscribe },
 * member: { user_id, device_id, id }, versions: [], msc4354_sticky_key }`. The leave (the delayed leave
 * and the fallback leave alike): `{ slot_id, msc4354_sticky_key }`, which js-sdk reads as "left". Readers
 * key sticky events by (sender, type, sticky key): the sticky key is the member id, fresh per join.
 */
import type { MembershipFields, Transport } from "./content.js";

/** Event type of an MSC4143 membership (the unstable name every implementation speaks today). */
export const RTC_MEMBER_EVENT_TYPE = "org.matrix.msc4143.rtc.member";

/** The content key holding an MSC4354 sticky key (Synapse 1.163 and js-sdk 43's unstable name). */
export const UNSTABLE_STICKY_KEY_FIELD = "msc4354_sticky_key";

/**
 * The longest stickiness a server grants (MSC4354; Synapse's `StickyEvent.MAX_DURATION`): a sticky
 * membership is sent again before it runs out.
 */
export const MAX_STICKY_DURATION_MS = 3_600_000;

/** A slot's MSC4143 id: `{application}#{id}`, e.g. `m.call#ROOM` (js-sdk's `computeSlotId`). */
export function rtcSlotId(slot: { application: string; id: string }): string {
  return `${slot.application}#${slot.id}`;
}

/** The content of our sticky membership (js-sdk 43 dialect). */
export interface RtcMemberContent {
  /** `{application}#{id}`. */
  slot_id: string;
  /** The application and its data: `type` is the slot's application, `m.call.intent` when set. */
  application: { type: string; [key: string]: unknown };
  /** Where the member publishes, and which transport types it can subscribe to. */
  transports: { published: Transport[]; can_subscribe: string[] };
  /** Who: js-sdk 43 checks `user_id` against the sender; `id` is the member id (the LiveKit identity's seed). */
  member: { user_id: string; device_id: string; id: string };
  /** MSC4143 versions the member speaks; js-sdk 43 writes `[]`. */
  versions: string[];
  /** The sticky key: the member id. */
  msc4354_sticky_key: string;
  [key: string]: unknown;
}

/**
 * Our sticky membership's content. `fociPreferred` become `transports.published` (as given) and their
 * types `can_subscribe` (`["livekit"]` when there are none, as js-sdk writes); `applicationData` goes
 * into `application`, under the fields this package owns. `focusActive` has no place in this format.
 */
export function makeRtcMemberContent(fields: MembershipFields, memberId: string): RtcMemberContent {
  const types = [...new Set(fields.fociPreferred.map((t) => t.type))];
  const application: RtcMemberContent["application"] = {
    ...fields.applicationData,
    type: fields.slot.application,
  };
  if (fields.callIntent !== undefined) application["m.call.intent"] = fields.callIntent;
  return {
    slot_id: rtcSlotId(fields.slot),
    application,
    transports: {
      published: fields.fociPreferred,
      can_subscribe: types.length > 0 ? types : ["livekit"],
    },
    member: { user_id: fields.userId, device_id: fields.deviceId, id: memberId },
    versions: [],
    [UNSTABLE_STICKY_KEY_FIELD]: memberId,
  };
}

/** The leave of one sticky membership (the delayed leave, and the fallback when it is gone). */
export function rtcLeaveContent(
  slot: { application: string; id: string },
  memberId: string,
): Record<string, string> {
  return { slot_id: rtcSlotId(slot), [UNSTABLE_STICKY_KEY_FIELD]: memberId };
}

/** The sticky key a content names (unstable or stable field), or undefined. */
export function stickyKeyOf(content: unknown): string | undefined {
  if (typeof content !== "object" || content === null) return undefined;
  const c = content as Record<string, unknown>;
  const key = c[UNSTABLE_STICKY_KEY_FIELD] ?? c.sticky_key;
  return typeof key === "string" ? key : undefined;
}
