/**
 * The server side of the observer bench, in its own process so that its CPU is not counted with the
 * observers': a test homeserver with one room of N members, each writing its own call membership, and
 * a FaultyLink in front of it for the observing client (cut while many memberships are written, so that
 * they all arrive in the client's next sync, once it is restored). Driven over IPC by
 * bench/observer.ts:
 *
 *   setup {n}            -> {url, roomId, owner, userIds, stateKeys, writeMs}
 *   write {from, count, intent} -> {ms}            (memberships of users from..from+count-1 rewritten)
 *   chat                 -> {}                     (a chat message from the owner)
 *   hold                 -> {}                     (the link is cut: what the client sends or would
 *                                                   receive waits there)
 *   held                 -> number                 (requests or answers the link holds now)
 *   release              -> {}                     (the link is back; what it held goes through)
 *   close                -> exits
 */
import { CALL_MEMBER_EVENT_TYPE } from "../src/membership/content.js";
import { startFaultyLink, startTestHomeserver, type UserCreds } from "../src/testing/index.js";

interface Command {
  id: number;
  cmd: "setup" | "write" | "chat" | "hold" | "held" | "release" | "close";
  n?: number;
  from?: number;
  count?: number;
  intent?: string;
}

const hs = await startTestHomeserver({ rateLimits: { message: null, delayedEventMgmt: null } });
const link = await startFaultyLink({ target: hs.baseUrl });
let roomId = "";
let owner: UserCreds | undefined;
const users: UserCreds[] = [];
let txn = 0;

function membership(user: UserCreds, intent: string): Record<string, unknown> {
  return {
    application: "m.call",
    call_id: "",
    scope: "m.room",
    device_id: user.deviceId,
    focus_active: { type: "livekit", focus_selection: "oldest_membership" },
    foci_preferred: [
      { type: "livekit", livekit_service_url: "https://lk.bench.test", livekit_alias: roomId },
    ],
    "m.call.intent": intent,
  };
}

async function put(path: string, token: string, body: unknown): Promise<void> {
  const res = await fetch(`${hs.baseUrl}/_matrix/client/v3${path}`, {
    method: "PUT",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
    // Bounded: a request that never answers fails the bench's step instead of hanging it.
    signal: AbortSignal.timeout(30_000),
  });
  if (res.status !== 200) throw new Error(`PUT ${path}: ${res.status} ${await res.text()}`);
}

async function writeMemberships(from: number, count: number, intent: string): Promise<void> {
  const todo = users.slice(from, from + count);
  const room = encodeURIComponent(roomId);
  // 32 at a time: what a busy server sees, without opening thousands of sockets.
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(32, todo.length) }, async () => {
      while (next < todo.length) {
        const user = todo[next++];
        const key = encodeURIComponent(`_${user.userId}_${user.deviceId}_m.call`);
        await put(
          `/rooms/${room}/state/${CALL_MEMBER_EVENT_TYPE}/${key}`,
          user.accessToken,
          membership(user, intent),
        );
      }
    }),
  );
}

async function handle(c: Command): Promise<unknown> {
  switch (c.cmd) {
    case "setup": {
      owner = await hs.createUser("owner");
      roomId = await hs.createRoom(owner.accessToken);
      for (let i = 0; i < c.n!; i++) {
        const user = await hs.createUser(`u${i}`);
        await hs.joinRoom(user.accessToken, roomId);
        users.push(user);
      }
      const t0 = performance.now();
      await writeMemberships(0, users.length, "video");
      return {
        writeMs: performance.now() - t0,
        url: link.url,
        roomId,
        owner,
        userIds: users.map((u) => u.userId),
        stateKeys: users.map((u) => `_${u.userId}_${u.deviceId}_m.call`),
      };
    }
    case "write": {
      const t0 = performance.now();
      await writeMemberships(c.from!, c.count!, c.intent!);
      return { ms: performance.now() - t0 };
    }
    case "chat":
      await put(`/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t${++txn}`, owner!.accessToken, {
        msgtype: "m.text",
        body: `chat ${txn}`,
      });
      return {};
    case "hold":
      link.cut();
      return {};
    case "held":
      return link.heldNow;
    case "release":
      link.restore({ held: "deliver" });
      return {};
    case "close":
      await link.close();
      await hs.close();
      process.exit(0);
  }
}

process.on("message", (c: Command) => {
  handle(c).then(
    (result) => process.send!({ id: c.id, result }),
    (error: unknown) => process.send!({ id: c.id, error: String(error) }),
  );
});
// The bench died: do not outlive it.
process.on("disconnect", () => process.exit(0));
process.send!({ ready: true });
