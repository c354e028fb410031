/**
 * One driver, one widget. `createClientWidgetApi` and `acceptRefreshAction` bind their driver to the api:
 * a driver that already serves a live api is refused (its record of which delayed events belong to its
 * widget would otherwise mix two widgets, and either could manage the other's), and stopping the api
 * tells the driver its widget is gone (`widgetClosed`: the widget's pending delayed leaves are sent). A
 * driver whose client syncs feeds the api every live room-state change, and every sticky event that
 * becomes current in its rooms, until it stops.
 */
import type { ClientWidgetApi } from "matrix-widget-api";
import type { DelayedEventWidgetDriver } from "./DelayedEventWidgetDriver.js";
import { WidgetHostSetupError } from "./errors.js";
import { driverClients, feedStateUpdates } from "./stateFeed.js";
import { feedStickyEvents } from "./stickyFeed.js";

/** The live api each driver serves. */
const servedBy = new WeakMap<DelayedEventWidgetDriver, ClientWidgetApi>();
/** Apis already bound (binding twice changes nothing). */
const bound = new WeakSet<ClientWidgetApi>();

/**
 * Binds `driver` to `api`. Throws a WidgetHostSetupError when the driver serves another api that has not
 * been stopped.
 */
export function bindDriver(api: ClientWidgetApi, driver: DelayedEventWidgetDriver): void {
  if (bound.has(api)) return;
  const holder = servedBy.get(driver);
  if (holder !== undefined && holder !== api)
    throw new WidgetHostSetupError(
      "this DelayedEventWidgetDriver already serves another widget; create one driver per widget " +
        "(or stop the other ClientWidgetApi first)",
    );
  servedBy.set(driver, api);
  bound.add(api);
  const client = driverClients.get(driver);
  const stopFeed = client ? feedStateUpdates(api, client) : () => undefined;
  const stopStickyFeed = client ? feedStickyEvents(api, client, driver.getKnownRooms()) : () => undefined;
  const stop = api.stop.bind(api);
  let stopped = false;
  api.stop = () => {
    stop();
    if (stopped) return;
    stopped = true;
    stopFeed();
    stopStickyFeed();
    if (servedBy.get(driver) === api) servedBy.delete(driver);
    void driver.widgetClosed();
  };
}
