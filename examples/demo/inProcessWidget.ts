/**
 * The demo's widget-mode device: a matrix-widget-api `WidgetApi` (what Element Call runs in its iframe)
 * and its host, a `ClientWidgetApi` driven by this package's `DelayedEventWidgetDriver` on a matrix-js-sdk
 * client (what Element Web does), in one process through the testing kit's `connectWidget`.
 */
import type { MatrixClient } from "matrix-js-sdk";
import type { WidgetApi } from "matrix-widget-api";
import { widgetCapabilities, type WidgetMembershipKey } from "../../src/index.js";
import { connectWidget } from "../../src/testing/index.js";
import { DelayedEventWidgetDriver } from "../../src/widget-host/index.js";

export { quietWidgetLogs } from "../../src/testing/index.js";

export interface InProcessWidget {
  /** The widget side: give it to `new WidgetBackend(widgetApi, { membership })`. */
  widgetApi: WidgetApi;
  /** Stops both ends (what removing the iframe does). */
  close(): void;
}

/** Host a widget for `client`'s user in `roomId` that asks for exactly `widgetCapabilities(key)`. */
export async function hostWidget(
  client: MatrixClient,
  roomId: string,
  key: WidgetMembershipKey,
): Promise<InProcessWidget> {
  const capabilities = widgetCapabilities(key);
  const pair = await connectWidget({
    // The host's policy: exactly the membership capabilities for this device.
    driver: new DelayedEventWidgetDriver(client, { roomId, validateCapabilities: capabilities }),
    capabilities,
    creatorUserId: key.userId,
  });
  return { widgetApi: pair.widgetApi, close: () => pair.close() };
}
