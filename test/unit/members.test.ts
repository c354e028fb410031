/**
 * The call's members without RxJS (issue 23 item 7): `currentCallMembers`, `watchCallMembers`,
 * `waitForCallMembers` and `includesDevice`, on virtual time, from plain events, a fake js-sdk client
 * and a widget source.
 */
import { describe, expect, it } from "@jest/globals";
import { EventEmitter } from "node:events";
import { BehaviorSubject, VirtualAction, VirtualTimeScheduler } from "rxjs";
import {
  CallMembersSourceEndedError,
  LocalTimeoutError,
  WidgetStateSource,
  currentCallMembers,
  eventsStateSource,
  includesDevice,
  waitForCallMembers,
  watchCallMembers,
  type WidgetStateApi,
} from "../../src/index.js";
import { FakeSyncClient, ROOM, ServerRoom, idsOf } from "../helpers/observerWorld.js";

const scheduler = () => new VirtualTimeScheduler(VirtualAction, Infinity);

describe("currentCallMembers", () => {
  it("answers at once from a synced source, undefined before", () => {
    const server = new ServerRoom();
    server.join("@a:hs");
    server.call("@a:hs", "A");
    // Virtual time: the fake server's timestamps start near 0.
    const options = { roomId: ROOM, scheduler: scheduler() };
    expect(idsOf(currentCallMembers(eventsStateSource(server.events()), options)!)).toEqual(["@a:hs|A"]);
    const client = new FakeSyncClient();
    expect(currentCallMembers(client, options)).toBeUndefined();
    client.sync(server.events());
    expect(idsOf(currentCallMembers(client, options)!)).toEqual(["@a:hs|A"]);
  });
});

describe("watchCallMembers", () => {
  it("holds the latest list, calls listeners on changes, stops on close", () => {
    const server = new ServerRoom();
    const client = new FakeSyncClient();
    const watch = watchCallMembers(client, { roomId: ROOM, scheduler: scheduler() });
    expect(watch.members).toBeUndefined();
    const seen: string[][] = [];
    const off = watch.onChange((m) => seen.push(idsOf(m)));
    client.sync([server.join("@a:hs")]);
    client.sync([server.call("@a:hs", "A")]);
    expect(idsOf(watch.members!)).toEqual(["@a:hs|A"]);
    off();
    client.sync([server.join("@b:hs"), server.call("@b:hs", "B")]);
    expect(seen).toEqual([[], ["@a:hs|A"]]);
    expect(idsOf(watch.members!)).toEqual(["@a:hs|A", "@b:hs|B"]);
    watch.close();
    client.sync([server.hangUp("@a:hs", "A")]);
    expect(idsOf(watch.members!)).toEqual(["@a:hs|A", "@b:hs|B"]);
    expect(client.listenerCount("sync")).toBe(0);
  });
});

describe("waitForCallMembers", () => {
  it("resolves with the first list that satisfies the predicate (the current one included)", async () => {
    const server = new ServerRoom();
    const client = new FakeSyncClient();
    const s = scheduler();
    client.sync([server.join("@a:hs"), server.join("@b:hs"), server.call("@a:hs", "A")]);
    const now = await waitForCallMembers(client, undefined, { roomId: ROOM, scheduler: s });
    expect(idsOf(now)).toEqual(["@a:hs|A"]);
    const bob = waitForCallMembers(client, includesDevice("@b:hs", "B"), { roomId: ROOM, scheduler: s });
    client.sync([server.call("@b:hs", "B")]);
    expect(idsOf(await bob)).toEqual(["@a:hs|A", "@b:hs|B"]);
    expect(client.listenerCount("sync")).toBe(0);
  });

  it("rejects after timeoutMs (LocalTimeoutError), on abort (its reason), when the source ends", async () => {
    const s = scheduler();
    const state = new BehaviorSubject<Iterable<unknown>>([]);
    const never = () => false;
    const timedOut = waitForCallMembers(eventsStateSource(state), never, { timeoutMs: 5000, scheduler: s });
    s.flush();
    await expect(timedOut).rejects.toBeInstanceOf(LocalTimeoutError);

    const controller = new AbortController();
    const aborted = waitForCallMembers(eventsStateSource(state), never, {
      signal: controller.signal,
      scheduler: s,
    });
    controller.abort(new Error("user went away"));
    await expect(aborted).rejects.toThrow("user went away");

    const emitter = new EventEmitter();
    const api = Object.assign(emitter, {
      getClientVersions: async () => [],
      readStateEvents: async () => [],
      transport: { reply: () => undefined },
    }) as unknown as WidgetStateApi;
    const widget = new WidgetStateSource(api, ROOM, { backfill: "never" });
    const ended = waitForCallMembers(widget, never, { scheduler: s });
    widget.close();
    await expect(ended).rejects.toBeInstanceOf(CallMembersSourceEndedError);

    await expect(waitForCallMembers(eventsStateSource([]), never, { timeoutMs: -1 })).rejects.toBeInstanceOf(
      RangeError,
    );
    // Every timer was cleared: nothing left on the scheduler.
    expect(s.actions).toHaveLength(0);
  });
});
