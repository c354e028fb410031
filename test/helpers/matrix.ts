import { ClientEvent, createClient, type MatrixClient } from "matrix-js-sdk";
import log from "loglevel";
import { logger as sdkLogger } from "matrix-js-sdk/lib/logger.js";

// matrix-js-sdk forces every prefixed logger (MatrixRTCSession, sync, ...) to DEBUG when it creates it,
// so levels cannot quieten it; a no-op method factory can, for loggers made now and later.
// Set MATRIX_SDK_LOGS=1 to see them.
if (!process.env.MATRIX_SDK_LOGS) {
  const quiet: log.MethodFactory = () => () => undefined;
  log.methodFactory = quiet;
  sdkLogger.methodFactory = quiet;
  sdkLogger.rebuild();
}

export interface UserCreds {
  userId: string;
  accessToken: string;
  deviceId: string;
}

/** A bare MatrixClient (no startClient): all the manager needs. */
export function bareClient(baseUrl: string, user: UserCreds): MatrixClient {
  return createClient({
    baseUrl,
    userId: user.userId,
    accessToken: user.accessToken,
    deviceId: user.deviceId,
  });
}

/** A started, synced client whose MatrixRTC session manager is running; stop it with `client.stopClient()`. */
export async function syncedClient(baseUrl: string, user: UserCreds): Promise<MatrixClient> {
  const client = bareClient(baseUrl, user);
  const prepared = new Promise<void>((resolve) =>
    client.on(ClientEvent.Sync, (state) => {
      if (state === "PREPARED" || state === "SYNCING") resolve();
    }),
  );
  await client.startClient({ initialSyncLimit: 20 });
  await prepared;
  client.matrixRTC.start();
  return client;
}

/** Devices js-sdk's MatrixRTCSession lists as call members in a room ("@user:hs|DEVICE"). */
export function rtcMembers(client: MatrixClient, roomId: string): string[] {
  const room = client.getRoom(roomId);
  if (!room) return [];
  return client.matrixRTC.getRoomSession(room).memberships.map((m) => `${m.sender}|${m.deviceId}`);
}

/** Poll on real time until `pred` holds. */
export async function waitFor(
  pred: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = "condition",
): Promise<number> {
  const start = Date.now();
  while (!(await pred())) {
    if (Date.now() - start > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - start;
}

/** Stop a client made by `syncedClient` or `bareClient`, including its MatrixRTC session timers. */
export function stopClient(client: MatrixClient): void {
  try {
    client.matrixRTC.stop();
  } catch {
    // never started
  }
  client.stopClient();
}
