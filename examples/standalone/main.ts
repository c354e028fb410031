/**
 * The smallest complete program using ClientBackend: join the room's call, stay 6 s, leave.
 *   npx tsx examples/standalone/main.ts                                   (embedded test homeserver)
 *   HOMESERVER=https://matrix.example TOKEN=syt_... ROOM='!id:example' npx tsx examples/standalone/main.ts
 */
import { createClient } from "matrix-js-sdk";
import { ClientBackend, MembershipManager } from "../../src/index.js"; // in your app: "matrixrtc-membership"
import { quietMatrixSdkLogs, startTestHomeserver } from "../../src/testing/index.js";

quietMatrixSdkLogs();
let { HOMESERVER: baseUrl = "", TOKEN: accessToken = "", ROOM: roomId = "" } = process.env;
const hs = baseUrl ? undefined : await startTestHomeserver();
if (hs) {
  const alice = await hs.createUser("alice");
  [baseUrl, accessToken] = [hs.baseUrl, alice.accessToken];
  roomId = await hs.createRoom(accessToken);
}

const { user_id: userId, device_id: deviceId } = await createClient({ baseUrl, accessToken }).whoami();
if (!deviceId) throw new Error("this access token has no device");
const client = createClient({ baseUrl, accessToken, userId, deviceId });

const manager = new MembershipManager({
  backend: new ClientBackend(client),
  roomId,
  userId,
  deviceId,
  delayedLeaveDelayMs: 4000, // the server removes us 4 s after our last heartbeat (every 2 s)
});
manager.status$.subscribe((status) => console.log(`status: ${status}`));
manager.probablyLeft$.subscribe((gone) => gone && console.log("others probably see us gone"));
manager.errors$.subscribe((e) => console.log(`error ${e.code}: ${e.message}`));

manager.join();
await new Promise((resolve) => setTimeout(resolve, 6000));
if (hs) console.log(`pending delayed leaves on the server: ${hs.pendingDelayedEvents().length}`);
console.log("leave:", await manager.leave({ timeoutMs: 5000 }));
manager.dispose();
await hs?.close();
