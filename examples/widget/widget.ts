/**
 * The widget page (browser, in an iframe on its own origin): a WidgetApi that asks for exactly the
 * capabilities of one membership, and a MembershipManager on a WidgetBackend. Query string:
 * `widgetId`, `parentOrigin`, `user`, `device`, `room`, `delay`, `autojoin`.
 */
import { WidgetApi } from "matrix-widget-api";
import {
  MembershipManager,
  WidgetBackend,
  widgetCapabilities,
  type LeaveResult,
  type MembershipState,
  type Support,
} from "../../src/index.js";

interface WidgetHandle {
  ready: boolean;
  state: MembershipState;
  support?: Support;
  stateKey: string;
  join(): void;
  leave(): Promise<LeaveResult>;
}

declare global {
  interface Window {
    widget?: WidgetHandle;
  }
}

const params = new URLSearchParams(location.search);
function param(name: string): string {
  const value = params.get(name);
  if (!value) throw new Error(`widget page: missing query parameter ${name}`);
  return value;
}

const key = { userId: param("user"), deviceId: param("device") };
const api = new WidgetApi(param("widgetId"), param("parentOrigin"));
api.requestCapabilities(widgetCapabilities(key));
const ready = new Promise<void>((resolve) => api.once("ready", () => resolve()));
api.start();
await ready;

const manager = new MembershipManager({
  backend: new WidgetBackend(api, { membership: key }),
  roomId: param("room"),
  userId: key.userId,
  deviceId: key.deviceId,
  delayedLeaveDelayMs: Number(params.get("delay") ?? 10_000),
});

const handle: WidgetHandle = {
  ready: true,
  state: manager.state,
  stateKey: manager.stateKey,
  join: () => manager.join(),
  leave: () => manager.leave({ timeoutMs: 10_000 }),
};
window.widget = handle;

manager.state$.subscribe((state) => {
  handle.state = state;
  document.getElementById("state")!.textContent = JSON.stringify(state);
});
manager.support$.subscribe((support) => {
  handle.support = support;
  document.getElementById("support")!.textContent = JSON.stringify(support);
});
document.getElementById("join")!.addEventListener("click", () => handle.join());
document.getElementById("leave")!.addEventListener("click", () => void handle.leave());
if (params.get("autojoin") === "1") manager.join();
