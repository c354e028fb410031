import {
  MatrixCapabilities,
  WidgetApiFromWidgetAction,
  type ClientWidgetApi,
  type IWidgetApiRequest,
} from "matrix-widget-api";
import { guardClientWidgetApi } from "./frameGuard.js";

/** Element Call's widget actions (Element Web's names); each goes both ways unless noted. */
export const CallWidgetAction = {
  /** From the widget: it joined. To the widget: join now (a preloaded widget). */
  Join: "io.element.join",
  /** From the widget: the user hung up. To the widget: hang up. */
  Hangup: "im.vector.hangup",
  /** From the widget: please close me (remove the iframe). */
  Close: "io.element.close",
  /** From the widget: its mute state. To the widget: set (or read back) the mute state. */
  DeviceMute: "io.element.device_mute",
} as const;

/** The mute state Element Call reports and the host may set (an absent field: unchanged). */
export interface DeviceMuteState {
  /** true: the microphone is on (unmuted). */
  audio_enabled?: boolean;
  /** true: the camera is on. */
  video_enabled?: boolean;
}

/** What the host hears from a call widget. Every hook is optional; every request is answered. */
export interface CallWidgetHooks {
  /** The widget joined the call (`io.element.join`); `data` is the request's data, as sent. */
  onJoin?(data: Record<string, unknown>): void;
  /** The widget left the call (`im.vector.hangup`): the user hung up, or the host asked it to. */
  onHangup?(data: Record<string, unknown>): void;
  /** The widget asks to be closed; the host removes the iframe (and calls `api.stop()`). */
  onClose?(data: Record<string, unknown>): void;
  /** The widget reports its mute state (`io.element.device_mute`). */
  onDeviceMute?(state: DeviceMuteState): void;
  /**
   * The widget asks to stay on screen (or no longer). Return false to refuse. Requires the
   * `m.always_on_screen` capability. Default: accepted.
   */
  onAlwaysOnScreen?(value: boolean): boolean | void;
}

/** What the host can ask of a call widget, and how to stop listening. */
export interface CallWidgetControls {
  /** `im.vector.hangup` to the widget: it leaves the call (and tells its own hangup back). */
  hangup(): Promise<void>;
  /** `io.element.join` to a preloaded widget, with the devices to use (null: the widget's choice). */
  join(devices?: { audioInput?: string | null; videoInput?: string | null }): Promise<void>;
  /** `io.element.device_mute` to the widget; resolves to the mute state it then has. */
  setDeviceMute(state: DeviceMuteState): Promise<DeviceMuteState>;
  /** Removes the action hooks. */
  dispose(): void;
}

function record(v: unknown): Record<string, unknown> {
  return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : {};
}

/**
 * Answers Element Call's own widget actions on `api` (`ClientWidgetApi` otherwise replies "unknown
 * action" to all of them, and Element Call logs and retries) and passes them to `hooks`; returns the
 * controls for the other direction. Also restricts `api` to its widget's window and origin
 * (`guardClientWidgetApi`).
 */
export function attachCallWidgetActions(
  api: ClientWidgetApi,
  hooks: CallWidgetHooks = {},
): CallWidgetControls {
  guardClientWidgetApi(api);
  const listeners: [string, (ev: CustomEvent<IWidgetApiRequest>) => void][] = [];
  const on = (action: string, handle: (request: IWidgetApiRequest) => object): void => {
    const listener = (ev: CustomEvent<IWidgetApiRequest>): void => {
      ev.preventDefault();
      let reply: object;
      try {
        reply = handle(ev.detail);
      } catch (e) {
        reply = { error: { message: e instanceof Error ? e.message : String(e) } };
      }
      api.transport.reply(ev.detail, reply as never);
    };
    api.on(`action:${action}`, listener);
    listeners.push([`action:${action}`, listener]);
  };

  on(CallWidgetAction.Join, (r) => (hooks.onJoin?.(record(r.data)), {}));
  on(CallWidgetAction.Hangup, (r) => (hooks.onHangup?.(record(r.data)), {}));
  on(CallWidgetAction.Close, (r) => (hooks.onClose?.(record(r.data)), {}));
  on(CallWidgetAction.DeviceMute, (r) => (hooks.onDeviceMute?.(record(r.data) as DeviceMuteState), {}));
  on(WidgetApiFromWidgetAction.UpdateAlwaysOnScreen, (r) => {
    if (!api.hasCapability(MatrixCapabilities.AlwaysOnScreen))
      return { error: { message: "Missing capability" } };
    const value = record(r.data).value === true;
    return { success: hooks.onAlwaysOnScreen?.(value) !== false };
  });

  return {
    async hangup() {
      await api.transport.send(CallWidgetAction.Hangup, {});
    },
    async join(devices = {}) {
      await api.transport.send(CallWidgetAction.Join, {
        audioInput: devices.audioInput ?? null,
        videoInput: devices.videoInput ?? null,
      });
    },
    async setDeviceMute(state) {
      return (await api.transport.send(CallWidgetAction.DeviceMute, { ...state })) as DeviceMuteState;
    },
    dispose() {
      for (const [event, listener] of listeners.splice(0)) api.off(event, listener);
    },
  };
}
