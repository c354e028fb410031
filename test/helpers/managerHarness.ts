import log from "loglevel";
import { MembershipManager, type MembershipManagerOptions } from "../../src/manager/MembershipManager.js";
import type { MembershipError } from "../../src/errors.js";
import type { MembershipState } from "../../src/manager/state.js";
import { FakeServer } from "./fakeServer.js";
import { VirtualTime } from "./virtualTime.js";

const quiet = log.getLogger("test-quiet");
quiet.setLevel("silent");

export interface Harness {
  time: VirtualTime;
  server: FakeServer;
  manager: MembershipManager;
  states: MembershipState[];
  errors: MembershipError[];
  probablyLeft: boolean[];
  key: string;
}

/** A manager on virtual time against a FakeServer, with everything it emits recorded. */
export function harness(
  options: Partial<MembershipManagerOptions> | ((s: FakeServer) => Partial<MembershipManagerOptions>) = {},
  setup?: (s: FakeServer) => void,
): Harness {
  const time = new VirtualTime();
  const server = new FakeServer(time.scheduler);
  setup?.(server);
  const opts = typeof options === "function" ? options(server) : options;
  const manager = new MembershipManager({
    backend: server,
    roomId: "!room:localhost",
    userId: "@alice:localhost",
    deviceId: "DEV",
    scheduler: time.scheduler,
    logger: quiet,
    random: () => 0.5,
    fociPreferred: [{ type: "livekit", livekit_service_url: "https://lk.example" }],
    ...opts,
  });
  const states: MembershipState[] = [];
  const errors: MembershipError[] = [];
  const probablyLeft: boolean[] = [];
  manager.state$.subscribe((s) => states.push(s));
  manager.errors$.subscribe((e) => errors.push(e));
  manager.probablyLeft$.subscribe((p) => probablyLeft.push(p));
  return { time, server, manager, states, errors, probablyLeft, key: manager.stateKey };
}

export function isJoinedOnServer(h: Harness): boolean {
  const c = h.server.state.get(h.key);
  return !!c && Object.keys(c).length > 0;
}
