import http from "node:http";

import { afterEach, beforeEach, describe, expect, it, jest } from "@jest/globals";

import { startFaultyLink, type FaultyLink } from "../../../src/testing/network/index.js";
import { startTargetServer, type TargetServer } from "./targetServer.js";

type Outcome = { kind: "ok"; status: number; body: string } | { kind: "timeout" } | { kind: "network-error" };

/** Real fetch (undici) with a client-side timeout, reduced to what the client could observe. */
async function attempt(url: string, init: RequestInit = {}, timeoutMs = 2000): Promise<Outcome> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    return { kind: "ok", status: res.status, body: await res.text() };
  } catch (error) {
    // Compare names, not classes: fetch's errors come from Node's realm, not jest's sandbox.
    const name = (error as Error).name;
    if (name === "TimeoutError") return { kind: "timeout" };
    if (name === "TypeError" && (error as Error).message === "fetch failed") return { kind: "network-error" };
    throw error;
  }
}

async function waitFor(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("waitFor: condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe("FaultyLink", () => {
  let target: TargetServer;
  let link: FaultyLink;

  beforeEach(async () => {
    target = await startTargetServer();
    link = await startFaultyLink({ target: target.url });
  });

  afterEach(async () => {
    await link.close();
    await target.close();
  });

  describe("without faults", () => {
    it("passes GET and PUT through with bodies and headers, and never logs tokens", async () => {
      const get = await attempt(`${link.url}/echo?access_token=secret-in-query`, {
        headers: { Authorization: "Bearer secret-in-header", "X-Custom": "kept" },
      });
      expect(get).toMatchObject({ kind: "ok", status: 200 });
      const getEcho = JSON.parse((get as { body: string }).body);
      expect(getEcho.method).toBe("GET");
      expect(getEcho.url).toBe("/echo?access_token=secret-in-query");
      expect(getEcho.headers.authorization).toBe("Bearer secret-in-header");
      expect(getEcho.headers["x-custom"]).toBe("kept");

      const body = JSON.stringify({ membership: "join", ü: "ünïcode" });
      const put = await attempt(`${link.url}/echo`, {
        method: "PUT",
        headers: { "Content-Type": "application/json", Authorization: "Bearer secret-in-header" },
        body,
      });
      const putEcho = JSON.parse((put as { body: string }).body);
      expect(putEcho.method).toBe("PUT");
      expect(putEcho.body).toBe(body);
      expect(putEcho.headers["content-type"]).toBe("application/json");

      expect(link.log.map((e) => [e.method, e.path, e.fate, e.upstreamStatus])).toEqual([
        ["GET", "/echo", "ok", 200],
        ["PUT", "/echo", "ok", 200],
      ]);
      expect(JSON.stringify(link.log)).not.toContain("secret");
      expect(link.stats).toMatchObject({ forwarded: 2, held: 0, lostResponses: 0, resets: 0 });
    });

    it("passes chunked answers and long polls through unharmed", async () => {
      expect(await attempt(`${link.url}/chunked`)).toEqual({
        kind: "ok",
        status: 200,
        body: "one,two,three",
      });
      const started = Date.now();
      expect(await attempt(`${link.url}/slow?ms=800`)).toMatchObject({ kind: "ok", status: 200 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(790);
    });

    it("keeps bodiless answers bodiless (204, HEAD)", async () => {
      expect(await attempt(`${link.url}/empty`, { method: "DELETE" })).toEqual({
        kind: "ok",
        status: 204,
        body: "",
      });
      const head = await fetch(`${link.url}/echo`, { method: "HEAD", signal: AbortSignal.timeout(2000) });
      expect(head.status).toBe(200);
      expect(await head.text()).toBe("");
      expect(await attempt(`${link.url}/count`)).toMatchObject({ kind: "ok", status: 200 });
    });
  });

  describe("cut and restore", () => {
    it("hangs in-flight requests and leaves new connections unanswered, then works again", async () => {
      link.cut();
      expect(link.isCut).toBe(true);
      expect(await attempt(`${link.url}/count`, {}, 300)).toEqual({ kind: "timeout" });

      // A brand-new TCP connection is accepted but nothing answers on it.
      const fresh = http.get(`${link.url}/count`, { agent: false });
      fresh.on("error", () => {});
      const connected = new Promise<boolean>((resolve) =>
        fresh.on("socket", (s) => s.on("connect", () => resolve(true))),
      );
      const answered = new Promise<string>((resolve) => fresh.on("response", () => resolve("answered")));
      expect(await connected).toBe(true);
      expect(await Promise.race([answered, sleep(300).then(() => "silence")])).toBe("silence");
      fresh.destroy();

      expect(target.arrived).toHaveLength(0);
      link.restore();
      expect(link.isCut).toBe(false);
      expect(await attempt(`${link.url}/count`)).toMatchObject({ kind: "ok", status: 200 });
    });

    it('restore({ held: "deliver" }) forwards a held request once and its client gets the answer', async () => {
      link.cut();
      const pending = attempt(`${link.url}/count`, { method: "POST", body: "x" }, 3000);
      await waitFor(() => link.heldNow === 1);
      expect(target.arrived).toHaveLength(0);
      link.restore({ held: "deliver" });
      expect(await pending).toEqual({ kind: "ok", status: 200, body: JSON.stringify({ count: 1 }) });
      expect(target.seen).toHaveLength(1);
      expect(link.log[0]).toMatchObject({ fate: "ok", wasHeld: true });
    });

    it("holds the answer of a request already at the target when the cut starts", async () => {
      const pending = attempt(`${link.url}/slow?ms=150`, {}, 3000);
      await waitFor(() => target.arrived.length === 1);
      link.cut();
      await waitFor(() => target.seen.length === 1 && link.heldNow === 1);
      const race = await Promise.race([pending, sleep(100).then(() => "still hanging")]);
      expect(race).toBe("still hanging");
      link.restore({ held: "deliver" });
      expect(await pending).toMatchObject({ kind: "ok", status: 200 });
    });

    it("restore() drops held requests: the client sees a network error, the target never saw them", async () => {
      link.cut();
      const first = attempt(`${link.url}/count`, { method: "PUT", body: "1" }, 3000);
      const second = attempt(`${link.url}/count`, { method: "PUT", body: "2" }, 3000);
      await waitFor(() => link.heldNow === 2);
      link.restore();
      expect(await first).toEqual({ kind: "network-error" });
      expect(await second).toEqual({ kind: "network-error" });
      expect(target.arrived).toHaveLength(0);
      expect(link.stats).toMatchObject({ held: 2, dropped: 2, forwarded: 0 });
      expect(link.log.map((e) => e.fate)).toEqual(["dropped", "dropped"]);
      expect(await attempt(`${link.url}/count`)).toMatchObject({ kind: "ok" });
    });

    it("a held request whose client gave up still reaches the target on deliver", async () => {
      link.cut();
      expect(await attempt(`${link.url}/count`, { method: "POST" }, 200)).toEqual({ kind: "timeout" });
      expect(link.heldNow).toBe(1);
      await sleep(50); // let the link notice the client's close, which the cut keeps from the target
      link.restore({ held: "deliver" });
      await waitFor(() => target.seen.length === 1);
      await waitFor(() => link.log[0].fate === "aborted");
      expect(link.log[0]).toMatchObject({ upstreamStatus: 200, wasHeld: true });
    });
  });

  it("reset() fails in-flight requests with a network error; new ones work", async () => {
    const pending = attempt(`${link.url}/slow?ms=1000`, {}, 3000);
    await waitFor(() => target.arrived.length === 1);
    link.reset();
    expect(await pending).toEqual({ kind: "network-error" });
    expect(link.stats.resets).toBeGreaterThanOrEqual(1);
    expect(link.log[0].fate).toBe("reset");
    expect(await attempt(`${link.url}/count`)).toMatchObject({ kind: "ok", status: 200 });
  });

  describe("latency", () => {
    it("adds at least the configured delay, half of it before the target sees the request", async () => {
      await attempt(`${link.url}/count`); // warm the connections so the measurement is only latency
      link.setLatency(200);
      const started = Date.now();
      expect(await attempt(`${link.url}/count`)).toMatchObject({ kind: "ok" });
      const elapsed = Date.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(195);
      expect(elapsed).toBeLessThan(600);
      expect(target.arrived[1].ts - started).toBeGreaterThanOrEqual(95);
      link.setLatency(0);
      const fast = Date.now();
      await attempt(`${link.url}/count`);
      expect(Date.now() - fast).toBeLessThan(100);
    });

    it("adds jitter drawn from the injected random source", async () => {
      await link.close();
      link = await startFaultyLink({ target: target.url, random: () => 0.999 });
      link.setLatency(100, 100);
      const started = Date.now();
      await attempt(`${link.url}/count`);
      expect(Date.now() - started).toBeGreaterThanOrEqual(195);
      expect(() => link.setLatency(-1)).toThrow(RangeError);
    });
  });

  describe("lost responses", () => {
    it("loseResponses(1): the target processes the request, the client gets a network error, then all is well", async () => {
      link.loseResponses();
      expect(await attempt(`${link.url}/count`, { method: "POST" })).toEqual({ kind: "network-error" });
      expect(target.seen).toHaveLength(1);
      expect(link.log[0]).toMatchObject({ fate: "lost-response", upstreamStatus: 200 });
      expect(await attempt(`${link.url}/count`, { method: "POST" })).toEqual({
        kind: "ok",
        status: 200,
        body: JSON.stringify({ count: 2 }),
      });
      expect(link.stats.lostResponses).toBe(1);
    });

    it('loseResponses("all") loses every answer until deliverResponses()', async () => {
      link.loseResponses("all");
      for (let i = 0; i < 3; i++) {
        expect(await attempt(`${link.url}/count`, { method: "POST" })).toEqual({ kind: "network-error" });
      }
      link.deliverResponses();
      expect(await attempt(`${link.url}/count`)).toEqual({
        kind: "ok",
        status: 200,
        body: JSON.stringify({ count: 4 }),
      });
      expect(link.stats.lostResponses).toBe(3);
    });
  });

  it("an unreachable target looks like a reset connection to the client", async () => {
    const gone = await startTargetServer();
    await gone.close();
    const orphan = await startFaultyLink({ target: gone.url });
    try {
      expect(await attempt(`${orphan.url}/count`)).toEqual({ kind: "network-error" });
      expect(orphan.log[0].fate).toBe("error");
    } finally {
      await orphan.close();
    }
  });

  it("close() clears pending latency timers", async () => {
    const setSpy = jest.spyOn(globalThis, "setTimeout");
    const clearSpy = jest.spyOn(globalThis, "clearTimeout");
    try {
      link.setLatency(4000);
      const pending = attempt(`${link.url}/count`, {}, 3000);
      await waitFor(() => link.log.length === 1);
      const latencyTimers = setSpy.mock.calls
        .map((call, i) => [call[1], setSpy.mock.results[i].value] as const)
        .filter(([ms]) => ms === 2000)
        .map(([, timer]) => timer);
      expect(latencyTimers).toHaveLength(1);
      await link.close();
      expect(clearSpy.mock.calls.map((call) => call[0])).toContain(latencyTimers[0]);
      expect(await pending).toEqual({ kind: "network-error" });
      expect(target.arrived).toHaveLength(0);
    } finally {
      setSpy.mockRestore();
      clearSpy.mockRestore();
    }
  });

  it("close() ends held and idle connections and resolves", async () => {
    await attempt(`${link.url}/count`); // leaves an idle keep-alive connection
    link.setLatency(50, 50);
    link.cut();
    const pending = attempt(`${link.url}/count`, {}, 3000);
    await waitFor(() => link.heldNow === 1);
    await link.close();
    expect(await pending).toEqual({ kind: "network-error" });
    expect(link.log[1].fate).toBe("closed");
    await link.close(); // idempotent
  });
});
