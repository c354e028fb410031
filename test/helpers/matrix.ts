import { quietMatrixSdkLogs } from "../../src/testing/scenario.js";

// Set MATRIX_SDK_LOGS=1 to see matrix-js-sdk's logs in tests.
if (!process.env.MATRIX_SDK_LOGS) quietMatrixSdkLogs();

export {
  bareClient,
  rtcMembers,
  stopClient,
  syncedClient,
  waitFor,
  type UserCreds,
} from "../../src/testing/scenario.js";

/** `PUT` a state event over plain HTTP with someone's token (another user, or another session of ours). */
export async function putState(
  baseUrl: string,
  accessToken: string,
  roomId: string,
  type: string,
  stateKey: string,
  content: Record<string, unknown>,
): Promise<number> {
  const url =
    `${baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/` +
    `${encodeURIComponent(type)}/${encodeURIComponent(stateKey)}`;
  const res = await fetch(url, {
    method: "PUT",
    headers: { Authorization: `Bearer ${accessToken}`, "Content-Type": "application/json" },
    body: JSON.stringify(content),
  });
  return res.status;
}
