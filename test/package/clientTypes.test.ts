/**
 * Our public declarations type the narrow client and widget surfaces themselves (so they never pull in
 * matrix-js-sdk's declarations). This checks, at compile time (`npm run typecheck`), that the real
 * matrix-js-sdk and matrix-widget-api objects still fit them.
 */
import { expect, it } from "@jest/globals";
import type { MatrixClient, MatrixEvent, Room } from "matrix-js-sdk";
import type { WidgetApi } from "matrix-widget-api";
import type { ClientLike, RoomStateClient, WidgetApiLike, WidgetStateApi } from "../../src/index.js";
import type { MatrixEventLike, RoomLike } from "../../src/membership/observer.js";
import type { DriverClient } from "../../src/widget-host/index.js";

type Fits<Narrow, Real extends Narrow> = Real;

export type Checks = [
  Fits<ClientLike, MatrixClient>,
  Fits<RoomStateClient, MatrixClient>,
  Fits<DriverClient, MatrixClient>,
  Fits<RoomLike, Room>,
  Fits<MatrixEventLike, MatrixEvent>,
  Fits<WidgetApiLike, WidgetApi>,
  Fits<WidgetStateApi, WidgetApi>,
];

it("matrix-js-sdk's and matrix-widget-api's objects fit our narrow types (checked by tsc)", () => {
  expect(true).toBe(true);
});
