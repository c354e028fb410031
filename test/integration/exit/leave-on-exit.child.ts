/**
 * A bot as the Node helper's tests run it (`node --import tsx`, a child process): joins the call on the
 * homeserver given in the environment with `leaveOnExit(manager, { timeoutMs })`, prints `connected`
 * once the server holds its membership, and then only waits for a signal. Environment: HS (base URL),
 * USER (JSON of userId, deviceId, accessToken), ROOM, TIMEOUT_MS, OWN_SIGTERM_LISTENER=1 (the app
 * handles SIGTERM itself: prints `app-sigterm` and exits 7 a little later).
 */
import { createClient } from "matrix-js-sdk";
import { ClientBackend, leaveOnExit, MembershipManager } from "../../../src/index.js";
import { quietMatrixSdkLogs } from "../../../src/testing/index.js";

quietMatrixSdkLogs();
const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`missing ${name}`);
  return value;
};
const user = JSON.parse(env("USER")) as { userId: string; deviceId: string; accessToken: string };
const client = createClient({ baseUrl: env("HS"), ...user });
const manager = new MembershipManager({
  backend: new ClientBackend(client),
  roomId: env("ROOM"),
  userId: user.userId,
  deviceId: user.deviceId,
  delayedLeaveDelayMs: 10_000,
});
leaveOnExit(manager, { timeoutMs: Number(env("TIMEOUT_MS")) });
if (process.env.OWN_SIGTERM_LISTENER === "1")
  process.on("SIGTERM", () => {
    process.stdout.write("app-sigterm\n");
    setTimeout(() => process.exit(7), 1500);
  });
manager.status$.subscribe((status) => {
  if (status === "connected") process.stdout.write("connected\n");
});
manager.state$.subscribe((state) => process.stdout.write(`state ${state.kind}\n`));
manager.join();
