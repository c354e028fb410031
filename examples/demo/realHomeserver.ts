import log from "loglevel";
import { createClient } from "matrix-js-sdk";
import { ClientBackend, MembershipManager } from "../../src/index.js";
import { CallRecorder, quietMatrixSdkLogs } from "../../src/testing/index.js";

/** Join a real homeserver's room call and stay until Ctrl-C, which leaves cleanly. */
export async function runRealHomeserver(
  baseUrl: string,
  accessToken: string,
  roomId: string,
): Promise<number> {
  quietMatrixSdkLogs();
  let me: { user_id: string; device_id?: string };
  try {
    me = await createClient({ baseUrl, accessToken }).whoami();
  } catch (e) {
    console.error(`cannot use this homeserver and token (whoami failed): ${(e as Error).message}`);
    return 1;
  }
  if (!me.device_id) {
    console.error("whoami returned no device_id; use an access token bound to a device");
    return 1;
  }
  const rec = new CallRecorder({ print: (line) => console.log(line), delayMs: 10_000 });
  rec.addDevice({ name: "me", mode: "standalone", userId: me.user_id, deviceId: me.device_id }, "");
  const client = createClient({ baseUrl, accessToken, userId: me.user_id, deviceId: me.device_id });
  const quiet = log.getLogger("matrixrtc-membership-demo");
  quiet.setLevel("silent");
  const manager = new MembershipManager({
    backend: rec.traceBackend("me", undefined, new ClientBackend(client)),
    roomId,
    userId: me.user_id,
    deviceId: me.device_id,
    logger: quiet,
  });
  rec.say("me", `${me.user_id} (${me.device_id}) joins the call in ${roomId} on ${baseUrl}; Ctrl-C leaves`);
  rec.watchManager("me", manager);
  manager.support$.subscribe((s) => rec.say("me", `support ${JSON.stringify(s)}`));
  manager.errors$.subscribe((e) => rec.say("me", `error ${e.code}: ${e.message}`));
  manager.join();
  // Stay until Ctrl-C, unless the manager gives up first (a room that does not exist, no permission):
  // then there is nothing to wait for.
  const failure = await new Promise<string | undefined>((resolve) => {
    const onSigint = () => {
      sub.unsubscribe();
      resolve(undefined);
    };
    const sub = manager.state$.subscribe((state) => {
      if (state.kind !== "failed") return;
      process.off("SIGINT", onSigint);
      queueMicrotask(() => sub.unsubscribe());
      resolve(`${state.error.code}: ${state.error.message}`);
    });
    process.once("SIGINT", onSigint);
  });
  rec.say("me", failure ? `failed (${failure}): leaving` : "Ctrl-C: leaving");
  const result = await manager.leave({ timeoutMs: 5000 });
  rec.say("me", `leave() → ${JSON.stringify(result)}`);
  manager.dispose();
  rec.stop();
  return result.status === "left" && !failure ? 0 : 1;
}
