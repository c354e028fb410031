/**
 * `matrixrtc-membership/widget-host`: the client side of MSC4157 for apps that host widgets (and for
 * tests): a matrix-widget-api `WidgetDriver` backed by a matrix-js-sdk `MatrixClient`, the capability
 * policy, and what a call widget such as Element Call needs besides (transports, OpenID, its actions).
 */
export { DelayedEventWidgetDriver, matrixApiErrorOf } from "./DelayedEventWidgetDriver.js";
export type {
  DelayedEventWidgetDriverOptions,
  DriverClient,
  RequestAbortOptions,
  RtcTransportsOption,
  UpdateDelayedEventActionName,
  WidgetClosedOptions,
  WidgetClosedResult,
} from "./DelayedEventWidgetDriver.js";
export { callWidgetCapabilities, toCapabilityValidator } from "./capabilities.js";
export type {
  CapabilityAllowList,
  CapabilityValidator,
  CallWidgetCapabilityOptions,
} from "./capabilities.js";
export type { OpenIdPolicy, OpenIdToken } from "./openId.js";
export type { ToDeviceClient } from "./toDevice.js";
export { attachCallWidgetActions, CallWidgetAction } from "./callWidgetActions.js";
export type { CallWidgetControls, CallWidgetHooks, DeviceMuteState } from "./callWidgetActions.js";
export { acceptRefreshAction, createClientWidgetApi } from "./clientWidgetApi.js";
export { guardClientWidgetApi, widgetOrigin } from "./frameGuard.js";
export { HostRefusalError, WidgetHostSetupError } from "./errors.js";
export { DEFAULT_WIDGET_LIMITS } from "./limits.js";
export type { RateLimit, WidgetLimits } from "./limits.js";
export type { HostRefusalBody } from "./errors.js";
