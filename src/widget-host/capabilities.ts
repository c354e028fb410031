import {
  EventDirection,
  MatrixCapabilities,
  WidgetEventCapability,
  type Capability,
} from "matrix-widget-api";

/** Decides which of the requested capabilities to approve. */
export type CapabilityValidator = (
  requested: ReadonlySet<Capability>,
) => Iterable<Capability> | Promise<Iterable<Capability>>;

/** Exact capability strings, or patterns a capability must match in full. */
export type CapabilityAllowList = Iterable<Capability | RegExp>;

/**
 * The host's capability policy as one function. No policy approves nothing: a host that embeds a widget
 * it did not write must say what that widget may do, never get "everything" by leaving an option out.
 */
export function toCapabilityValidator(
  policy: CapabilityValidator | CapabilityAllowList | undefined,
): CapabilityValidator {
  if (policy === undefined) return () => [];
  if (typeof policy === "function") return policy;
  const allowed = [...policy];
  const exact = new Set(allowed.filter((a): a is string => typeof a === "string"));
  const patterns = allowed.filter((a): a is RegExp => a instanceof RegExp);
  return (requested) =>
    [...requested].filter(
      (cap) =>
        exact.has(cap) ||
        patterns.some((p) => {
          const m = cap.match(p);
          return m !== null && m.index === 0 && m[0].length === cap.length;
        }),
    );
}

/** Which call, user and device `callWidgetCapabilities()` grants a call widget. */
export interface CallWidgetCapabilityOptions {
  /** The call's room (the widget's timeline capability is for this room only). */
  roomId: string;
  /** The user and device the widget joins as: it may write only this device's membership. */
  userId: string;
  /** The widget's device id (part of the one membership state key it may write). */
  deviceId: string;
  /** The MatrixRTC application in the membership state key. Default `m.call`. */
  application?: string;
}

const CALL_MEMBER = "org.matrix.msc3401.call.member";
/** Room events a call widget sends and receives: media keys, ring/notify, decline, reactions. */
const CALL_ROOM_EVENTS = [
  "io.element.call.encryption_keys",
  "org.matrix.msc4075.rtc.notification",
  "org.matrix.msc4075.call.notify",
  "org.matrix.msc4310.rtc.decline",
  "org.matrix.msc4143.rtc.member",
  "io.element.call.reaction",
  "m.reaction",
  "m.room.redaction",
];
/** Room state a call widget reads: who is in the room and in the call, and whether it is encrypted. */
const CALL_STATE_READ = ["m.room.create", "m.room.name", "m.room.member", "m.room.encryption", CALL_MEMBER];

/**
 * The capabilities a MatrixRTC call widget such as Element Call needs to join a call as one device, for
 * `validateCapabilities`: the room's timeline; this device's membership state (both state-key
 * spellings) with MSC4157 delayed events; reading the room and call state; the call's room and
 * to-device events (media keys); the sticky membership (`org.matrix.msc4143.rtc.member`, sent and
 * received as MSC4407 sticky events, delayed leave included: Element Call's `matrix_2_0` mode,
 * matrix-js-sdk's `unstableSendStickyEvents`); MSC4515 RTC transports; always-on-screen. Not included (a
 * host adds them if it wants): other users' or devices' membership state, TURN servers, file
 * upload/download, room messages.
 */
export function callWidgetCapabilities(options: CallWidgetCapabilityOptions): Capability[] {
  const { roomId, userId, deviceId } = options;
  const app = options.application ?? "m.call";
  const raw = (c: WidgetEventCapability): Capability => c.raw;
  return [
    `org.matrix.msc2762.timeline:${roomId}`,
    raw(
      WidgetEventCapability.forStateEvent(EventDirection.Send, CALL_MEMBER, `_${userId}_${deviceId}_${app}`),
    ),
    raw(
      WidgetEventCapability.forStateEvent(EventDirection.Send, CALL_MEMBER, `${userId}_${deviceId}_${app}`),
    ),
    ...CALL_STATE_READ.map((t) => raw(WidgetEventCapability.forStateEvent(EventDirection.Receive, t))),
    ...CALL_ROOM_EVENTS.flatMap((t) => [
      raw(WidgetEventCapability.forRoomEvent(EventDirection.Send, t)),
      raw(WidgetEventCapability.forRoomEvent(EventDirection.Receive, t)),
    ]),
    raw(WidgetEventCapability.forToDeviceEvent(EventDirection.Send, "io.element.call.encryption_keys")),
    raw(WidgetEventCapability.forToDeviceEvent(EventDirection.Receive, "io.element.call.encryption_keys")),
    MatrixCapabilities.MSC4157SendDelayedEvent,
    MatrixCapabilities.MSC4157UpdateDelayedEvent,
    MatrixCapabilities.MSC4515RtcTransports,
    MatrixCapabilities.MSC4407SendStickyEvent,
    MatrixCapabilities.MSC4407ReceiveStickyEvent,
    MatrixCapabilities.AlwaysOnScreen,
  ];
}
