import log from "loglevel";
import { createClient } from "matrix-js-sdk";
import { logger as sdkLogger } from "matrix-js-sdk/lib/logger.js";
import { ClientBackend, MembershipManager } from "../../src/index.js";

/** Join a real homeserver's room call and stay until Ctrl-C, which leaves cleanly. */
export async function runRealHomeserver(
  baseUrl: string,
  accessToken: string,
  roomId: string,
): Promise<number> {
  (sdkLogger as unknown as log.Logger).setLevel("warn");
  const probe = createClient({ baseUrl, accessToken });
  const me = await probe.whoami();
  if (!me.device_id) {
    console.error("whoami returned no device_id; use a token bound to a device");
    return 2;
  }
  const client = createClient({ baseUrl, accessToken, userId: me.user_id, deviceId: me.device_id });
  const manager = new MembershipManager({
    backend: new ClientBackend(client),
    roomId,
    userId: me.user_id,
    deviceId: me.device_id,
    logger: log.getLogger("demo"),
  });
  const t0 = Date.now();
  const say = (what: string) => console.log(`${((Date.now() - t0) / 1000).toFixed(3).padStart(7)}s  ${what}`);
  manager.state$.subscribe((s) => say(`state ${JSON.stringify(s)}`));
  manager.support$.subscribe((s) => say(`support ${JSON.stringify(s)}`));
  manager.errors$.subscribe((e) => say(`error ${e.code}: ${e.message}`));
  manager.join();
  await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
  say("Ctrl-C: leaving");
  const result = await manager.leave({ timeoutMs: 5000 });
  say(`leave: ${JSON.stringify(result)}`);
  manager.dispose();
  return result.status === "left" ? 0 : 1;
}
