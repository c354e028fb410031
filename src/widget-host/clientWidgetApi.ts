import { ClientWidgetApi, type IWidgetApiRequest, type Widget } from "matrix-widget-api";
import type { DelayedEventWidgetDriver } from "./DelayedEventWidgetDriver.js";
import { bindDriver } from "./driverBinding.js";
import { guardClientWidgetApi } from "./frameGuard.js";

const UPDATE_ACTION = "org.matrix.msc4157.update_delayed_event";
const UPDATE_CAPABILITY = "org.matrix.msc4157.update_delayed_event";

/**
 * matrix-widget-api answers `update_delayed_event` with `action: "refresh"` (the MSC4157 text's spelling)
 * with "Invalid request - unsupported action" before the driver sees it. This intercepts exactly those
 * requests and runs them as `restart`, with the library's own checks and error shape; every other
 * request keeps the library's handling. Returns a function that removes the hook. Also restricts `api`
 * to its widget's window and origin (`guardClientWidgetApi`), and binds `driver` to it: a driver serves
 * one live api, and `api.stop()` calls `driver.widgetClosed()`.
 */
export function acceptRefreshAction(api: ClientWidgetApi, driver: DelayedEventWidgetDriver): () => void {
  guardClientWidgetApi(api);
  bindDriver(api, driver);
  const onAction = (ev: CustomEvent<IWidgetApiRequest>): void => {
    const request = ev.detail;
    const data = request.data as { delay_id?: unknown; action?: unknown };
    if (data.action !== "refresh") return;
    ev.preventDefault();
    if (typeof data.delay_id !== "string" || data.delay_id === "")
      return api.transport.reply(request, { error: { message: "Invalid request - missing delay_id" } });
    if (!api.hasCapability(UPDATE_CAPABILITY))
      return api.transport.reply(request, { error: { message: "Missing capability" } });
    driver.updateDelayedEvent(data.delay_id, "refresh").then(
      () => api.transport.reply(request, {}),
      (e: unknown) =>
        api.transport.reply(request, {
          error: { message: "Error updating delayed event", ...driver.processError(e) },
        }),
    );
  };
  const event = `action:${UPDATE_ACTION}`;
  api.on(event, onAction);
  return () => {
    api.off(event, onAction);
  };
}

const READ_EVENTS_ACTION = "org.matrix.msc2876.read_events";

/**
 * A widget's read of room state (`read_events` with a `state_key`) answered from the driver's
 * `readRoomState`, with the library's own checks. matrix-widget-api 1.19 neither catches a failing read
 * (an unhandled rejection, and the widget's request hangs until its transport times out) nor, on hosts
 * that push state, asks the driver for state at all (it reads the timeline, which a client that does
 * not sync does not have: an "empty room"). Here a failed read is an error reply. Returns the unhook.
 */
export function answerStateReads(api: ClientWidgetApi, driver: DelayedEventWidgetDriver): () => void {
  const onRead = (ev: CustomEvent<IWidgetApiRequest>): void => {
    const request = ev.detail;
    const data = request.data as {
      type?: unknown;
      state_key?: unknown;
      room_ids?: unknown;
      limit?: unknown;
    };
    if (data.state_key === undefined) return; // timeline reads: the library's
    ev.preventDefault();
    const fail = (message: string) => api.transport.reply(request, { error: { message } });
    if (typeof data.type !== "string") return fail("Invalid request - missing event type");
    const stateKey = data.state_key === true ? undefined : String(data.state_key);
    if (!api.canReceiveStateEvent(data.type, stateKey ?? null))
      return fail("Cannot read state events of this type");
    let rooms: string[];
    if (data.room_ids === undefined) rooms = [driver.roomId];
    else if (data.room_ids === "*") rooms = driver.getKnownRooms().filter((r) => api.canUseRoomTimeline(r));
    else if (Array.isArray(data.room_ids) && data.room_ids.every((r) => typeof r === "string")) {
      rooms = data.room_ids as string[];
      const denied = rooms.find((r) => !api.canUseRoomTimeline(r));
      if (denied !== undefined) return fail(`Unable to access room timeline: ${denied}`);
    } else return fail("Invalid request - room_ids");
    const type = data.type;
    Promise.all(rooms.map((room) => driver.readRoomState(room, type, stateKey))).then(
      (events) => api.transport.reply(request, { events: events.flat() }),
      (e: unknown) =>
        api.transport.reply(request, {
          error: { message: "Error reading room state", ...driver.processError(e) },
        }),
    );
  };
  const event = `action:${READ_EVENTS_ACTION}`;
  api.on(event, onRead);
  return () => {
    api.off(event, onRead);
  };
}

/**
 * A `ClientWidgetApi` for one widget iframe, driven by `driver`, that listens only to that iframe's
 * window and the widget's origin (`guardClientWidgetApi`) and also accepts the `refresh` spelling.
 * Listen for its `"ready"` event; call `stop()` when the iframe goes away: that also sends the delayed
 * leaves the widget scheduled and did not send (`driver.widgetClosed()`), so it leaves its call at once.
 * A driver serves one widget: binding one that serves another live api throws a WidgetHostSetupError. Create it right after
 * appending the iframe (it needs `iframe.contentWindow`), before the widget can load.
 */
export function createClientWidgetApi(
  widget: Widget,
  iframe: HTMLIFrameElement,
  driver: DelayedEventWidgetDriver,
): ClientWidgetApi {
  const api = new ClientWidgetApi(widget, iframe, driver);
  try {
    guardClientWidgetApi(api);
    bindDriver(api, driver);
  } catch (e) {
    api.stop();
    throw e;
  }
  acceptRefreshAction(api, driver);
  answerStateReads(api, driver);
  // The widget's room is the one it is shown for: without this, matrix-widget-api answers a widget's
  // state reads that name no room with nothing (an "empty room"), and pushes it no state.
  api.setViewedRoomId(driver.roomId);
  return api;
}
