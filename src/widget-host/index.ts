/**
 * `matrixrtc-membership/widget-host`: the client side of MSC4157 for apps that host widgets (and for
 * tests): a matrix-widget-api `WidgetDriver` backed by a matrix-js-sdk `MatrixClient`.
 */
export { DelayedEventWidgetDriver, matrixApiErrorOf } from "./DelayedEventWidgetDriver.js";
export type {
  CapabilityAllowList,
  CapabilityValidator,
  DelayedEventWidgetDriverOptions,
  DriverClient,
  UpdateDelayedEventActionName,
} from "./DelayedEventWidgetDriver.js";
export { acceptRefreshAction, createClientWidgetApi } from "./clientWidgetApi.js";
