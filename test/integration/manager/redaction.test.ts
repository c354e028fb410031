/**
 * Issue 11 item 7, over real HTTP: a client made with `useAuthorizationHeader: false` puts its access
 * token in every URL, and matrix-js-sdk puts the URL in every error message. Nothing we log (at any
 * level) or put on `errors$` may carry the token, nor a delay id above debug level.
 */
import { afterAll, beforeAll, expect, it } from "@jest/globals";
import log from "loglevel";
import { createClient, type MatrixClient } from "matrix-js-sdk";
import { ClientBackend, MembershipManager, type MembershipError } from "../../../src/index.js";
import { startTestHomeserver, type TestHomeserver } from "../../../src/testing/index.js";
import { stopClient, waitFor, type UserCreds } from "../../helpers/matrix.js";

const DELAY = 1000;

let hs: TestHomeserver;
let roomId: string;
let alice: UserCreds;
const clients: MatrixClient[] = [];

beforeAll(async () => {
  hs = await startTestHomeserver({ rateLimits: { message: null, delayedEventMgmt: null } });
  alice = await hs.createUser("alice");
  roomId = await hs.createRoom(alice.accessToken);
});
afterAll(async () => {
  for (const c of clients) stopClient(c);
  await hs.close();
});

/** A loglevel logger that records every line it is given, at every level. */
function capturingLogger(): { logger: log.Logger; lines: { level: string; text: string }[] } {
  const lines: { level: string; text: string }[] = [];
  const logger = log.getLogger(`capture-${Math.random()}`);
  logger.methodFactory =
    (level) =>
    (...args: unknown[]) =>
      lines.push({
        level,
        text: args
          .map((a) =>
            a instanceof Error ? `${a.stack ?? a.message}` : typeof a === "string" ? a : JSON.stringify(a),
          )
          .join(" "),
      });
  logger.setLevel("trace");
  return { logger, lines };
}

it("a 403 on the membership and a 502 on the heartbeat: no token anywhere, no delay id above debug", async () => {
  const client = createClient({
    baseUrl: hs.baseUrl,
    userId: alice.userId,
    accessToken: alice.accessToken,
    deviceId: alice.deviceId,
    useAuthorizationHeader: false,
  });
  clients.push(client);
  const { logger, lines } = capturingLogger();
  const manager = new MembershipManager({
    backend: new ClientBackend(client),
    roomId,
    userId: alice.userId,
    deviceId: alice.deviceId,
    delayedLeaveDelayMs: DELAY,
    logger,
  });
  const errors: MembershipError[] = [];
  manager.errors$.subscribe((e) => errors.push(e));
  const delayIds = new Set<string>();
  manager.delayId$.subscribe((id) => id && delayIds.add(id));

  try {
    manager.join();
    await waitFor(() => manager.status === "connected", 5000, "connected");
    // A transient failure on the heartbeat: its error message carries the restart URL (delay id + token).
    hs.faults.add({
      route: "delayed.restart",
      userId: alice.userId,
      times: 2,
      respond: { status: 502, body: { errcode: "M_UNKNOWN", error: "Bad gateway" } },
    });
    await waitFor(() => errors.some((e) => e.operation === "restart"), 5000, "a failed heartbeat on errors$");
    // Then the server refuses the membership: the call fails and says so at error level.
    hs.faults.add({
      route: "state.put",
      userId: alice.userId,
      respond: { status: 403, body: { errcode: "M_FORBIDDEN", error: "You are not allowed" } },
    });
    void manager.update({ callIntent: "audio" }).catch(() => undefined);
    await waitFor(() => manager.state.kind === "failed", 5000, "failed");
  } finally {
    manager.dispose();
  }
  for (const d of hs.pendingDelayedEvents()) delayIds.add(d.delayId);

  // The server saw the token in the query string (so the test can fail), and the 403 and 502 happened.
  expect(hs.requests.some((e) => e.route === "state.put" && e.status === 403)).toBe(true);
  expect(hs.requests.some((e) => e.route === "delayed.restart" && e.status === 502)).toBe(true);
  expect(delayIds.size).toBeGreaterThan(0);
  expect(lines.some((l) => l.level === "error" && /membership failed/.test(l.text))).toBe(true);

  const token = alice.accessToken;
  for (const l of lines) {
    expect(l.text).not.toContain(token);
    expect(l.text).not.toContain(encodeURIComponent(token));
    if (l.level !== "debug" && l.level !== "trace")
      for (const id of delayIds) expect(l.text).not.toContain(id);
  }
  expect(errors.length).toBeGreaterThan(0);
  for (const e of errors) {
    const cause = e.cause as { message?: string; stack?: string; url?: string } | undefined;
    const texts = [e.message, e.stack ?? "", JSON.stringify(e.errorClass ?? {})];
    for (const text of [...texts, cause?.message ?? "", cause?.stack ?? "", cause?.url ?? ""]) {
      expect(text).not.toContain(token);
      for (const id of delayIds) expect(text).not.toContain(id);
    }
  }
});
