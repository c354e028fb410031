/**
 * A client-mode call page (browser) for the ghost tests and bench: one device joins the room call on
 * a MatrixClient, either with our MembershipManager (`impl=ours`: a bare client, leaveOnPageHide on by
 * default) or with matrix-js-sdk's own (`impl=js-sdk`: a started client's MatrixRTCSession with Element
 * Call's join settings). Query string: `impl`, `hs`, `user`, `device`, `token`, `room`, `delay`.
 */
import { ClientEvent, createClient, SyncState } from "matrix-js-sdk";
import { Status as SdkStatus } from "matrix-js-sdk/lib/matrixrtc/index.js";
import { ClientBackend, MembershipManager } from "../../../src/index.js";
import { ecJoinConfig, ecTransport, type CallPageHandle } from "./shared.js";

declare global {
  interface Window {
    ghostCall?: CallPageHandle;
  }
}

const q = new URLSearchParams(location.search);
const param = (name: string): string => {
  const value = q.get(name);
  if (!value) throw new Error(`call page: missing ${name}`);
  return value;
};
const impl = param("impl");
const roomId = param("room");
const userId = param("user");
const deviceId = param("device");
const delayMs = Number(param("delay"));
const client = createClient({ baseUrl: param("hs"), userId, deviceId, accessToken: param("token") });
const events: string[] = [];
addEventListener("pagehide", (e) => events.push(`pagehide persisted=${e.persisted}`));
addEventListener("pageshow", (e) => events.push(`pageshow persisted=${e.persisted}`));

if (impl === "ours") {
  // As an app does it: /versions is long known by the time a call starts.
  await client.doesServerSupportUnstableFeature("org.matrix.msc4140");
  const manager = new MembershipManager({
    backend: new ClientBackend(client),
    roomId,
    userId,
    deviceId,
    delayedLeaveDelayMs: delayMs,
    focusActive: { type: "livekit", focus_selection: "multi_sfu" },
    fociPreferred: [ecTransport(roomId)],
  });
  window.ghostCall = {
    ready: true,
    impl,
    events,
    join: () => manager.join(),
    connected: () => manager.status === "connected",
    state: () => JSON.stringify(manager.state),
  };
} else {
  const synced = new Promise<void>((resolve) =>
    client.on(ClientEvent.Sync, (state) => {
      if (state === SyncState.Prepared || state === SyncState.Syncing) resolve();
    }),
  );
  await client.startClient({ initialSyncLimit: 1 });
  await synced;
  client.matrixRTC.start();
  while (!client.getRoom(roomId)) await new Promise((r) => setTimeout(r, 20));
  const session = client.matrixRTC.getRoomSession(client.getRoom(roomId)!);
  window.ghostCall = {
    ready: true,
    impl,
    events,
    join: () =>
      session.joinRTCSession(
        { userId, deviceId, memberId: crypto.randomUUID() },
        [],
        ecTransport(roomId) as never,
        ecJoinConfig(delayMs),
      ),
    connected: () => session.membershipStatus === SdkStatus.Connected,
    state: () => String(session.membershipStatus),
  };
}
