/**
 * ClientBackend's sticky membership format (src/backends/clientSticky.ts) against a client double: what
 * goes on the wire, what is refused before anything is sent (no MSC4354; an encrypted room the client
 * cannot encrypt for), bad answers, the listing's sticky keys. The real requests are checked against
 * the test homeserver and Synapse (test/integration/interop/sticky-*.test.ts, test/synapse/sticky-interop*).
 */
import { describe, expect, it } from "@jest/globals";
import {
  DelayIgnoredError,
  EncryptionUnavailableError,
  StickyEventsUnsupportedError,
} from "../../src/errors.js";
import { ClientBackend, classifyError, MalformedResponseError, type ClientLike } from "../../src/index.js";

type Call = [string, ...unknown[]];
type Answer = (method: string, path: string) => unknown;

interface Double {
  backend: ClientBackend;
  calls: Call[];
  pending: { getTxnId(): string; status: string }[];
  cancelled: unknown[];
}

function double(opts: {
  sticky?: boolean;
  answer?: Answer;
  room?: "none" | "plain" | "encrypted";
  crypto?: boolean;
  jsSend?: (...args: unknown[]) => Promise<unknown>;
}): Double {
  const calls: Call[] = [];
  const pending: Double["pending"] = [];
  const cancelled: unknown[] = [];
  const answer: Answer = opts.answer ?? (() => ({ event_id: "$e" }));
  const room = opts.room ?? "plain";
  const client = {
    _unstable_sendDelayedStateEvent: () => Promise.reject(new Error("not used")),
    _unstable_restartScheduledDelayedEvent: () => Promise.resolve({}),
    _unstable_sendScheduledDelayedEvent: () => Promise.resolve({}),
    _unstable_cancelScheduledDelayedEvent: () => Promise.resolve({}),
    sendStateEvent: () => Promise.reject(new Error("not used")),
    getCapabilities: () => Promise.resolve({}),
    getStateEvent: () => Promise.resolve({}),
    _unstable_getDelayedEvents: () => Promise.resolve({ delayed_events: [] }),
    doesServerSupportUnstableFeature: (f: string) => {
      calls.push(["flag", f]);
      return Promise.resolve(f === "org.matrix.msc4354" ? (opts.sticky ?? true) : true);
    },
    makeTxnId: () => "txn1",
    http: {
      authedRequest: (method: string, path: string, query: unknown, body: unknown) => {
        calls.push([method, path, query, body]);
        try {
          return Promise.resolve(answer(method, path));
        } catch (e) {
          return Promise.reject(e);
        }
      },
    },
    ...(room === "none"
      ? {}
      : {
          getRoom: () => ({
            hasEncryptionStateEvent: () => room === "encrypted",
            getPendingEvents: () => pending,
          }),
        }),
    getCrypto: () => (opts.crypto ? {} : undefined),
    _unstable_sendStickyEvent: (...args: unknown[]) => {
      calls.push(["js-sdk send", ...args]);
      return opts.jsSend ? opts.jsSend(...args) : Promise.resolve({ event_id: "$enc" });
    },
    cancelPendingEvent: (e: unknown) => cancelled.push(e),
  } as unknown as ClientLike;
  return { backend: new ClientBackend(client), calls, pending, cancelled };
}

const REQ = {
  roomId: "!r:hs",
  eventType: "org.matrix.msc4143.rtc.member",
  stickyKey: "m1",
  content: { slot_id: "m.call#ROOM", msc4354_sticky_key: "m1", member: { id: "m1" } },
  durationMs: 3_600_000,
};
const sends = (calls: Call[]) => calls.filter((c) => c[0] === "PUT" || c[0] === "js-sdk send");

describe("ClientBackend: the sticky membership format", () => {
  it("sends the join as a sticky event on /send with Synapse's unstable parameter; resolves to its event id", async () => {
    const d = double({});
    await expect(d.backend.sendStickyEvent(REQ)).resolves.toBe("$e");
    expect(sends(d.calls)).toEqual([
      [
        "PUT",
        "/rooms/!r%3Ahs/send/org.matrix.msc4143.rtc.member/txn1",
        { "org.matrix.msc4354.sticky_duration_ms": "3600000" },
        REQ.content,
      ],
    ]);
  });

  it("schedules the delayed leave with both the delay and the sticky parameter; resolves to the delay id", async () => {
    const d = double({ answer: () => ({ delay_id: "syd_1" }) });
    await expect(d.backend.sendDelayedStickyEvent({ ...REQ, delayMs: 8000 })).resolves.toBe("syd_1");
    expect(sends(d.calls)).toEqual([
      [
        "PUT",
        "/rooms/!r%3Ahs/send/org.matrix.msc4143.rtc.member/txn1",
        { "org.matrix.msc4140.delay": "8000", "org.matrix.msc4354.sticky_duration_ms": "3600000" },
        REQ.content,
      ],
    ]);
  });

  it("a server without org.matrix.msc4354 gets nothing: sticky-events-unsupported", async () => {
    const d = double({ sticky: false });
    const join = d.backend.sendStickyEvent(REQ);
    await expect(join).rejects.toBeInstanceOf(StickyEventsUnsupportedError);
    await expect(d.backend.sendDelayedStickyEvent({ ...REQ, delayMs: 8000 })).rejects.toBeInstanceOf(
      StickyEventsUnsupportedError,
    );
    expect(sends(d.calls)).toEqual([]);
    const error = await join.catch((e: unknown) => e);
    expect(classifyError(error, "send-state").kind).toBe("sticky-unsupported");
  });

  it("an event id where the delay id belongs (the delay ignored) is DelayIgnoredError; junk is malformed", async () => {
    const ignored = double({ answer: () => ({ event_id: "$now" }) });
    await expect(ignored.backend.sendDelayedStickyEvent({ ...REQ, delayMs: 8000 })).rejects.toBeInstanceOf(
      DelayIgnoredError,
    );
    const junk = double({ answer: () => ({ delay_id: 5 }) });
    await expect(junk.backend.sendDelayedStickyEvent({ ...REQ, delayMs: 8000 })).rejects.toBeInstanceOf(
      MalformedResponseError,
    );
    const noId = double({ answer: () => ({}) });
    await expect(noId.backend.sendStickyEvent(REQ)).rejects.toBeInstanceOf(MalformedResponseError);
  });

  it("an encrypted room: through js-sdk's send (which encrypts) with the stickiness, never our plain PUT", async () => {
    const d = double({ room: "encrypted", crypto: true });
    await expect(d.backend.sendStickyEvent(REQ)).resolves.toBe("$enc");
    expect(sends(d.calls)).toEqual([
      ["js-sdk send", "!r:hs", 3_600_000, null, "org.matrix.msc4143.rtc.member", REQ.content, "txn1"],
    ]);
  });

  it("an encrypted room without crypto, or one the client has not synced: refused, nothing sent", async () => {
    const noCrypto = double({ room: "encrypted", crypto: false });
    const refused = noCrypto.backend.sendStickyEvent(REQ);
    await expect(refused).rejects.toBeInstanceOf(EncryptionUnavailableError);
    expect(classifyError(await refused.catch((e: unknown) => e), "send-state").kind).toBe("unencryptable");
    expect(sends(noCrypto.calls)).toEqual([]);
    // A client that does not know the room asks the server; m.room.encryption is there.
    const unsynced = double({
      room: "none",
      crypto: true,
      answer: (m, p) => (p.includes("m.room.encryption") ? { algorithm: "m.megolm.v1.aes-sha2" } : {}),
    });
    await expect(unsynced.backend.sendStickyEvent(REQ)).rejects.toBeInstanceOf(EncryptionUnavailableError);
    expect(sends(unsynced.calls)).toEqual([]);
  });

  it("a room the client has not synced and without m.room.encryption (404) is sent plain", async () => {
    const d = double({
      room: "none",
      answer: (m, p) => {
        if (p.includes("m.room.encryption")) throw Object.assign(new Error("nf"), { errcode: "M_NOT_FOUND" });
        return { event_id: "$p" };
      },
    });
    await expect(d.backend.sendStickyEvent(REQ)).resolves.toBe("$p");
    expect(sends(d.calls)).toHaveLength(1);
  });

  it("a failed encrypted send drops its NOT_SENT local echo (else js-sdk holds back the room's later sends)", async () => {
    let fail: ((e: Error) => void) | undefined;
    const d = double({
      room: "encrypted",
      crypto: true,
      jsSend: () => new Promise((_, reject) => (fail = reject)),
    });
    const sent = d.backend.sendStickyEvent(REQ);
    while (!fail) await new Promise((r) => setTimeout(r, 0));
    const echo = { getTxnId: () => "txn1", status: "not_sent" };
    d.pending.push(echo, { getTxnId: () => "other", status: "not_sent" });
    fail(new Error("network"));
    await expect(sent).rejects.toThrow("network");
    await new Promise((r) => setTimeout(r, 0));
    expect(d.cancelled).toEqual([echo]);
  });

  it("reads an event back by id (404: none)", async () => {
    const d = double({
      answer: (m, p) => {
        if (p.endsWith("/gone")) throw Object.assign(new Error("nf"), { errcode: "M_NOT_FOUND" });
        return { event_id: "$x", sender: "@a:hs", origin_server_ts: 5, content: {} };
      },
    });
    await expect(d.backend.readEvent("!r:hs", "$x")).resolves.toEqual({
      content: {},
      eventId: "$x",
      sender: "@a:hs",
      originServerTs: 5,
    });
    expect(d.calls.at(-1)?.slice(0, 2)).toEqual(["GET", "/rooms/!r%3Ahs/event/%24x"]);
    await expect(d.backend.readEvent("!r:hs", "gone")).resolves.toBeUndefined();
  });

  it("the listing names sticky delayed leaves by their sticky key; state ones keep their state key", async () => {
    const d = double({});
    const client = (d.backend as unknown as { client: ClientLike }).client;
    (client as { http: unknown }).http = {
      authedRequest: () =>
        Promise.resolve({
          delayed_events: [
            {
              delay_id: "syd_s",
              room_id: "!r:hs",
              type: "org.matrix.msc4143.rtc.member",
              content: { slot_id: "m.call#ROOM", msc4354_sticky_key: "m1" },
              delay: 8000,
              running_since: 1,
            },
            { delay_id: "syd_t", room_id: "!r:hs", type: "x", state_key: "_k", content: {}, delay: 8000 },
          ],
        }),
      request: () => Promise.resolve({ unstable_features: { "org.matrix.msc4140": true } }),
    };
    const listed = await d.backend.listDelayedEvents();
    expect(listed).toEqual([
      {
        delayId: "syd_s",
        roomId: "!r:hs",
        stateKey: undefined,
        delayedSinceTs: 1,
        type: "org.matrix.msc4143.rtc.member",
        stickyKey: "m1",
      },
      { delayId: "syd_t", roomId: "!r:hs", stateKey: "_k" },
    ]);
  });
});
