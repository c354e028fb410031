/**
 * ClientBackend's send on page exit (`keepAlive`), against minimal client doubles: what reaches the
 * client's methods, with js-sdk's HTTP API and without it. The real requests are checked in
 * test/integration/manager/page-exit.test.ts and in Chromium (test/browser/ghost.browser.test.ts).
 */
import { describe, expect, it } from "@jest/globals";
import { ClientBackend, type ClientLike } from "../../src/index.js";

type Call = [string, ...unknown[]];

function fakeClient(withHttp: boolean): { client: ClientLike; calls: Call[] } {
  const calls: Call[] = [];
  const record =
    (name: string) =>
    (...args: unknown[]) => {
      calls.push([name, ...args]);
      return Promise.resolve({});
    };
  const client = {
    _unstable_sendDelayedStateEvent: record("schedule"),
    _unstable_restartScheduledDelayedEvent: record("restart"),
    _unstable_sendScheduledDelayedEvent: record("send"),
    _unstable_cancelScheduledDelayedEvent: record("cancel"),
    sendStateEvent: record("state"),
    doesServerSupportUnstableFeature: () => Promise.resolve(true),
    getCapabilities: () => Promise.resolve({}),
    getStateEvent: () => Promise.resolve({}),
    _unstable_getDelayedEvents: () => Promise.resolve({ delayed_events: [] }),
    // With js-sdk's HTTP API but no makeTxnId: the backend speaks the unstable shape.
    ...(withHttp ? { http: { request: record("http.request"), authedRequest: record("http.authed") } } : {}),
  } as unknown as ClientLike;
  return { client, calls };
}

describe("ClientBackend: the send on page exit", () => {
  it("passes keepAlive to js-sdk, and sends once more without the token (no CORS preflight)", async () => {
    const { client, calls } = fakeClient(true);
    const signal = new AbortController().signal;
    await new ClientBackend(client).updateDelayedEvent("syd_abc", "send", { keepAlive: true, signal });
    expect(calls).toEqual([
      [
        "http.request",
        "POST",
        "/delayed_events/syd_abc/send",
        undefined,
        undefined,
        { prefix: "/_matrix/client/unstable/org.matrix.msc4140", keepAlive: true, abortSignal: signal },
      ],
      ["send", "syd_abc", { abortSignal: signal, keepAlive: true }],
    ]);
  });

  it("a minimal client without js-sdk's HTTP API: just the send, with keepAlive", async () => {
    const { client, calls } = fakeClient(false);
    await new ClientBackend(client).updateDelayedEvent("syd_abc", "send", { keepAlive: true });
    expect(calls).toEqual([["send", "syd_abc", { abortSignal: undefined, keepAlive: true }]]);
  });

  it("without keepAlive the options are as they always were, and nothing else is sent", async () => {
    const { client, calls } = fakeClient(true);
    const backend = new ClientBackend(client);
    await backend.updateDelayedEvent("syd_abc", "send");
    await backend.updateDelayedEvent("syd_abc", "restart", { keepAlive: true });
    expect(calls).toEqual([
      ["send", "syd_abc", { abortSignal: undefined }],
      ["restart", "syd_abc", { abortSignal: undefined, keepAlive: true }],
    ]);
  });
});
