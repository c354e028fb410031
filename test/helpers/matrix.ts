import { ClientEvent, createClient, type MatrixClient } from "matrix-js-sdk";
import { logger as sdkLogger } from "matrix-js-sdk/lib/logger.js";

sdkLogger.setLevel("silent");

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
