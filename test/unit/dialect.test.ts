/**
 * Discovery of the server's MSC4140 shape (backends/dialect.ts): one `/versions` at a time shared by
 * every caller, bounded by the caller that started it; js-sdk's cached answer only for the very first
 * one; fresh answers where a schedule could overwrite our membership; asked beside a request, not
 * before it, once answers suggest the server changed.
 */
import { describe, expect, it } from "@jest/globals";
import {
  DialectDetector,
  MERGED_FEATURE_FLAG,
  monotonicNow,
  UNSTABLE_FEATURE_FLAG,
} from "../../src/backends/dialect.js";

interface Pending {
  resolve(body: unknown): void;
  reject(e: unknown): void;
  signal?: AbortSignal;
}

/** A client whose `/versions` requests stay open until the test answers them. */
function fakeClient(cached?: Promise<unknown>) {
  const requests: Pending[] = [];
  const client = {
    serverVersionsPromise: cached,
    http: {
      request<T>(
        _method: string,
        _path: string,
        _q?: unknown,
        _b?: unknown,
        opts?: { abortSignal?: AbortSignal },
      ): Promise<T> {
        return new Promise<T>((resolve, reject) => {
          const p: Pending = { resolve: resolve as (b: unknown) => void, reject, signal: opts?.abortSignal };
          opts?.abortSignal?.addEventListener("abort", () => reject(opts.abortSignal!.reason));
          requests.push(p);
        });
      },
    },
  };
  return { client, requests };
}

const body = (flags: Record<string, boolean>) => ({ versions: ["v1.11"], unstable_features: flags });
const tick = () => new Promise((r) => setImmediate(r));

describe("DialectDetector", () => {
  it("callers at the same time share one /versions", async () => {
    const { client, requests } = fakeClient();
    const d = new DialectDetector(client);
    const a = d.get(new AbortController().signal);
    const b = d.get(new AbortController().signal);
    const c = d.get();
    await tick();
    expect(requests).toHaveLength(1);
    requests[0]!.resolve(body({ [UNSTABLE_FEATURE_FLAG]: true }));
    for (const r of await Promise.all([a, b, c])) expect(r).toMatchObject({ unstable: true, merged: false });
    // Known now: nothing more is asked.
    await d.get();
    expect(requests).toHaveLength(1);
  });

  it("is bounded by the caller that started it; a caller still waiting then starts the next one", async () => {
    const { client, requests } = fakeClient();
    const d = new DialectDetector(client);
    const owner = new AbortController();
    const other = new AbortController();
    const first = d.get(owner.signal);
    const second = d.get(other.signal);
    await tick();
    owner.abort(new Error("owner's timeout"));
    await expect(first).rejects.toThrow("owner's timeout");
    expect(requests[0]!.signal?.aborted).toBe(true);
    await tick();
    // The second caller's own signal still runs: it asked again, and gets that answer.
    expect(requests).toHaveLength(2);
    requests[1]!.resolve(body({ [MERGED_FEATURE_FLAG]: true }));
    await expect(second).resolves.toMatchObject({ merged: true });
  });

  it("a caller that gives up does not take the request from the others; the last one does", async () => {
    const { client, requests } = fakeClient();
    const d = new DialectDetector(client);
    const owner = new AbortController();
    const other = new AbortController();
    const first = d.get(owner.signal);
    const second = d.get(other.signal);
    await tick();
    other.abort(new Error("gave up"));
    await expect(second).rejects.toThrow("gave up");
    expect(requests[0]!.signal?.aborted).toBe(false);
    requests[0]!.resolve(body({ [UNSTABLE_FEATURE_FLAG]: true }));
    await expect(first).resolves.toMatchObject({ unstable: true });
  });

  it("takes js-sdk's cached answer for the very first discovery only", async () => {
    const { client, requests } = fakeClient(Promise.resolve(body({ [UNSTABLE_FEATURE_FLAG]: true })));
    const d = new DialectDetector(client);
    await expect(d.get()).resolves.toMatchObject({ unstable: true });
    expect(requests).toHaveLength(0);
    // The server's answers suggest it changed: our own request, never the cache again.
    d.markStale();
    const again = d.get();
    await tick();
    expect(requests).toHaveLength(1);
    requests[0]!.resolve(body({ [MERGED_FEATURE_FLAG]: true }));
    await expect(again).resolves.toMatchObject({ merged: true, unstable: false });
  });

  it("asks itself when js-sdk's cached request failed; js-sdk's hung request is raced with our signal", async () => {
    const f = fakeClient(Promise.reject(new Error("js-sdk's failed")));
    const d = new DialectDetector(f.client);
    const answer = d.get();
    await tick();
    expect(f.requests).toHaveLength(1);
    f.requests[0]!.resolve(body({ [UNSTABLE_FEATURE_FLAG]: true }));
    await expect(answer).resolves.toMatchObject({ unstable: true });

    const hung = new DialectDetector(fakeClient(new Promise(() => undefined)).client);
    const timeout = new AbortController();
    const waiting = hung.get(timeout.signal);
    timeout.abort(new Error("timeout"));
    await expect(waiting).rejects.toThrow("timeout");
  });

  it("a schedule that could overwrite our membership needs an answer asked after the last management request", async () => {
    const { client, requests } = fakeClient(Promise.resolve(body({ [UNSTABLE_FEATURE_FLAG]: true })));
    const d = new DialectDetector(client);
    await d.get();
    const restartSentAt = monotonicNow();
    // js-sdk's cached answer counts as asked at an unknown time: asked again.
    const verified = d.get(undefined, Infinity, restartSentAt);
    await tick();
    expect(requests).toHaveLength(1);
    requests[0]!.resolve(body({ [UNSTABLE_FEATURE_FLAG]: true }));
    await verified;
    // Asked after that request: good enough for the next one.
    await d.get(undefined, Infinity, restartSentAt);
    expect(requests).toHaveLength(1);
  });

  it("refreshBeside: only when stale, one at a time, bounded by the request beside which it goes and the gate", async () => {
    const { client, requests } = fakeClient(Promise.resolve(body({ [UNSTABLE_FEATURE_FLAG]: true })));
    const d = new DialectDetector(client);
    await d.get();
    d.refreshBeside();
    await tick();
    expect(requests).toHaveLength(0); // not stale
    d.noteFailure(Object.assign(new Error("no answer"), { name: "ConnectionError" }));
    expect(d.isStale).toBe(true);
    const restart = new AbortController();
    const gate = new AbortController();
    d.refreshBeside(restart.signal, gate.signal);
    d.refreshBeside(restart.signal, gate.signal);
    await tick();
    expect(requests).toHaveLength(1);
    // The restart beside which it went timed out (a dead network): the /versions goes with it.
    restart.abort(new Error("local timeout"));
    await tick();
    expect(requests[0]!.signal?.aborted).toBe(true);
    expect(d.isStale).toBe(true);
    // The next request brings the next one; the gate (dispose) bounds it too.
    d.refreshBeside(new AbortController().signal, gate.signal);
    await tick();
    expect(requests).toHaveLength(2);
    gate.abort(new Error("disposed"));
    await tick();
    expect(requests[1]!.signal?.aborted).toBe(true);
    // The last answer is still usable where the wrong shape is harmless.
    expect(d.lastKnown).toMatchObject({ unstable: true });
  });

  it("a failure noted while /versions was asked keeps the decision stale", async () => {
    const { client, requests } = fakeClient();
    const d = new DialectDetector(client);
    const answer = d.get();
    await tick();
    d.markStale();
    requests[0]!.resolve(body({ [UNSTABLE_FEATURE_FLAG]: true }));
    await answer;
    expect(d.isStale).toBe(true);
  });
});
