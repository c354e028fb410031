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
  return api;
}
