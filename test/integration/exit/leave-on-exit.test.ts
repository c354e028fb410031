/**
 * `leaveOnExit` in a real Node process (issue 22 part 1): a child process joins the call on the test
 * homeserver with the helper installed, then gets a signal. What must hold, on the homeserver's records
 * and in another user's synced js-sdk `MatrixRTCSession`: the delayed leave is sent before the process
 * ends, the process ends by the same signal (as Node would have ended it), within the bound when the
 * server hangs, and not at all (the app decides) when the app listens to the signal itself.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import {
  rtcMembers,
  startTestHomeserver,
  stopClient,
  syncedClient,
  type TestHomeserver,
} from "../../../src/testing/index.js";
import { waitFor } from "../../helpers/matrix.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const CHILD = "test/integration/exit/leave-on-exit.child.ts";
const NO_LIMITS = { rateLimits: { message: null, delayedEventMgmt: null } };

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Bot {
  child: ChildProcess;
  out: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

function startBot(env: Record<string, string>): Bot {
  const child = spawn(process.execPath, ["--import", "tsx", CHILD], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out: string[] = [];
  let buffered = "";
  child.stdout!.on("data", (d: Buffer) => {
    buffered += d.toString();
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    out.push(...lines);
  });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
    if (process.env.DEBUG_CHILD) console.log(out.join("\n"), err);
  });
  return { child, out, exited };
}

async function world() {
  const hs: TestHomeserver = await startTestHomeserver({ ...NO_LIMITS, requestLogLimit: 10_000 });
  cleanups.push(() => hs.close());
  const owner = await hs.createUser("owner");
  const roomId = await hs.createRoom(owner.accessToken);
  const alice = await hs.createUser("alice");
  const bob = await hs.createUser("bob");
  await hs.joinRoom(alice.accessToken, roomId);
  await hs.joinRoom(bob.accessToken, roomId);
  const observer = await syncedClient(hs.baseUrl, bob);
  cleanups.push(() => stopClient(observer));
  await waitFor(() => observer.getRoom(roomId) !== null, 5000, "bob to know the room");
  const key = `_${alice.userId}_${alice.deviceId}_m.call`;
  return {
    hs,
    roomId,
    alice,
    sees: () => rtcMembers(observer, roomId).includes(`${alice.userId}|${alice.deviceId}`),
    membership: () => hs.stateContent(roomId, "org.matrix.msc3401.call.member", key),
    pending: () => hs.pendingDelayedEvents().filter((d) => d.roomId === roomId && d.stateKey === key),
    sends: () => hs.requests.filter((r) => r.userId === alice.userId && r.route.startsWith("delayed.send")),
    env: (timeoutMs: number, extra: Record<string, string> = {}) => ({
      HS: hs.baseUrl,
      USER: JSON.stringify({
        userId: alice.userId,
        deviceId: alice.deviceId,
        accessToken: alice.accessToken,
      }),
      ROOM: roomId,
      TIMEOUT_MS: String(timeoutMs),
      ...extra,
    }),
  };
}

async function joined(w: Awaited<ReturnType<typeof world>>, bot: Bot): Promise<void> {
  await waitFor(() => bot.out.includes("connected"), 20_000, "the bot to join");
  await waitFor(w.sees, 5000, "bob to see the bot");
  expect(w.pending()).toHaveLength(1);
}

describe("leaveOnExit in a child process", () => {
  it("SIGTERM: the leave reaches the server before the process ends, which ends by SIGTERM", async () => {
    const w = await world();
    const bot = startBot(w.env(5000));
    await joined(w, bot);
    const signalledAt = Date.now();
    bot.child.kill("SIGTERM");
    const exit = await bot.exited;
    expect(exit).toMatchObject({ code: null, signal: "SIGTERM" });
    const sends = w.sends();
    expect(sends).toHaveLength(1);
    expect(sends[0].status).toBe(200);
    // The server had the send before the process was gone (its clock is this process's Date.now()).
    expect(sends[0].ts).toBeLessThanOrEqual(exit.at);
    expect(sends[0].ts).toBeGreaterThanOrEqual(signalledAt);
    expect(w.membership()).toEqual({});
    expect(w.pending()).toEqual([]);
    await waitFor(() => !w.sees(), 2000, "bob to see the bot leave");
    // The leave took one request, not the 5 s bound.
    expect(exit.at - signalledAt).toBeLessThan(2000);
    expect(bot.out).toContain("state left");
  }, 40_000);

  it("a hanging server: SIGINT still ends the process within the bound; the delayed leave is left to fire", async () => {
    const w = await world();
    const bot = startBot(w.env(800));
    await joined(w, bot);
    w.hs.faults.add({ route: "delayed.send", userId: w.alice.userId, respond: "hang" });
    const signalledAt = Date.now();
    bot.child.kill("SIGINT");
    const exit = await bot.exited;
    expect(exit).toMatchObject({ code: null, signal: "SIGINT" });
    const took = exit.at - signalledAt;
    expect(took).toBeGreaterThanOrEqual(700);
    expect(took).toBeLessThan(3000);
    expect(w.sends().map((r) => r.fault)).toEqual(["hang"]);
    // Nothing was written: the server's own timer still takes the device out, one delay after the
    // last heartbeat.
    expect(w.pending()).toHaveLength(1);
  }, 40_000);

  it("an app listening to SIGTERM itself: the helper leaves but does not end the process", async () => {
    const w = await world();
    const bot = startBot(w.env(5000, { OWN_SIGTERM_LISTENER: "1" }));
    await joined(w, bot);
    bot.child.kill("SIGTERM");
    await waitFor(
      () => w.membership() !== undefined && Object.keys(w.membership()!).length === 0,
      3000,
      "{}",
    );
    expect(w.sends().map((r) => r.status)).toEqual([200]);
    const exit = await bot.exited;
    // The app's own listener ended it, its own way.
    expect(exit).toMatchObject({ code: 7, signal: null });
    expect(bot.out).toContain("app-sigterm");
  }, 40_000);
});
