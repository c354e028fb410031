import { describe, expect, it } from "@jest/globals";
import { LocalTimeoutError, MembershipError } from "../../src/errors.js";
import { whenConnected } from "../../src/manager/whenConnected.js";
import { matrixError } from "../helpers/fakeServer.js";
import { harness, isJoinedOnServer } from "../helpers/managerHarness.js";

/** Where a promise stands after the virtual time so far, without awaiting it. */
function track(p: Promise<void>) {
  const out: { status: "pending" | "resolved" | "rejected"; error?: unknown } = { status: "pending" };
  p.then(
    () => (out.status = "resolved"),
    (e: unknown) => Object.assign(out, { status: "rejected", error: e }),
  );
  return out;
}

describe("whenConnected", () => {
  it("resolves once the membership is on the server, not before", async () => {
    const h = harness({ delayedLeaveDelayMs: 2000 });
    h.server.latencyMs = 100;
    const wait = track(whenConnected(h.manager, { scheduler: h.time.scheduler }));
    await h.time.advance(50);
    expect(wait.status).toBe("pending");
    h.manager.join();
    await h.time.until(() => wait.status !== "pending", 5000);
    expect(wait.status).toBe("resolved");
    // What the server holds, not only what the manager says.
    expect(isJoinedOnServer(h)).toBe(true);
    expect(h.server.pendingFor(h.key)).toHaveLength(1);
    h.manager.dispose();
  });

  it("resolves at once when already connected", async () => {
    const h = harness();
    h.manager.join();
    await h.time.until(() => h.manager.status === "connected", 5000);
    const wait = track(whenConnected(h.manager, { scheduler: h.time.scheduler }));
    await h.time.advance(0);
    expect(wait.status).toBe("resolved");
    h.manager.dispose();
  });

  it("rejects with the manager's MembershipError when the join fails", async () => {
    const h = harness();
    h.server.inject("state", {
      kind: "error",
      error: () => matrixError(403, "M_FORBIDDEN", { error: "power levels" }),
    });
    h.manager.join();
    const wait = track(whenConnected(h.manager, { scheduler: h.time.scheduler }));
    await h.time.until(() => wait.status !== "pending", 5000);
    expect(wait.error).toBeInstanceOf(MembershipError);
    expect((wait.error as MembershipError).code).toBe("forbidden");
    expect(isJoinedOnServer(h)).toBe(false);
    h.manager.dispose();
  });

  it("rejects with a LocalTimeoutError after timeoutMs of virtual time while the server is down", async () => {
    const h = harness();
    h.server.down = true;
    h.manager.join();
    const wait = track(whenConnected(h.manager, { timeoutMs: 3000, scheduler: h.time.scheduler }));
    await h.time.advance(2999);
    expect(wait.status).toBe("pending");
    await h.time.advance(1);
    expect(wait.status).toBe("rejected");
    expect(wait.error).toBeInstanceOf(LocalTimeoutError);
    // Only the wait ended: the manager still tries, and its timer is gone.
    expect(h.manager.status).not.toBe("disconnected");
    h.manager.dispose();
    // A schedule still open at dispose() is aborted one request timeout later (issue 11, item 5).
    await h.time.advance(h.manager.effectiveTiming.requestTimeoutMs + 10);
    expect(h.manager.pendingTimers).toBe(0);
  });

  it("rejects with the signal's reason on abort, and on dispose or a leave before connecting", async () => {
    const h = harness();
    h.server.down = true;
    h.manager.join();
    const controller = new AbortController();
    const aborted = track(
      whenConnected(h.manager, { signal: controller.signal, scheduler: h.time.scheduler }),
    );
    const disposed = track(whenConnected(h.manager, { scheduler: h.time.scheduler }));
    await h.time.advance(100);
    controller.abort(new Error("user closed the call screen"));
    await h.time.advance(0);
    expect(aborted.error).toEqual(new Error("user closed the call screen"));
    expect(disposed.status).toBe("pending");
    h.manager.dispose();
    await h.time.advance(0);
    expect((disposed.error as MembershipError).code).toBe("gave-up");

    const h2 = harness();
    h2.server.down = true;
    h2.manager.join();
    const left = track(whenConnected(h2.manager, { scheduler: h2.time.scheduler }));
    void h2.manager.leave({ timeoutMs: 1000 });
    await h2.time.advance(0);
    expect(left.status).toBe("rejected");
    expect((left.error as MembershipError).message).toMatch(/leave/);
    h2.manager.dispose();
  });

  it("refuses a timeout no timer can hold", async () => {
    const h = harness();
    await expect(whenConnected(h.manager, { timeoutMs: 2 ** 31 })).rejects.toBeInstanceOf(RangeError);
    h.manager.dispose();
  });
});

describe("whenConnected judges the join it was asked about (issue 20 item 14)", () => {
  it("after a failed call: whenConnected() then join() waits for the new join, not the old error", async () => {
    const h = harness();
    h.server.inject("state", { kind: "error", error: () => matrixError(403, "M_FORBIDDEN") });
    h.manager.join();
    await h.time.until(() => h.manager.state.kind === "failed", 5000);
    const wait = track(whenConnected(h.manager, { scheduler: h.time.scheduler }));
    h.manager.join();
    await h.time.until(() => wait.status !== "pending", 5000);
    expect(wait.status).toBe("resolved");
    expect(isJoinedOnServer(h)).toBe(true);
    h.manager.dispose();
  });

  it("leave(); join(); whenConnected(): waits through the leave for the new join", async () => {
    const h = harness();
    h.manager.join();
    await h.time.until(() => h.manager.status === "connected", 5000);
    void h.manager.leave();
    h.manager.join();
    const wait = track(whenConnected(h.manager, { scheduler: h.time.scheduler }));
    await h.time.until(() => wait.status !== "pending", 5000);
    expect(wait.status).toBe("resolved");
    expect(isJoinedOnServer(h)).toBe(true);
    expect(h.manager.status).toBe("connected");
    h.manager.dispose();
  });

  it("a failed join with no join after it: rejects with its error one tick later", async () => {
    const h = harness();
    h.server.inject("state", { kind: "error", error: () => matrixError(403, "M_FORBIDDEN") });
    h.manager.join();
    await h.time.until(() => h.manager.state.kind === "failed", 5000);
    const wait = track(whenConnected(h.manager, { scheduler: h.time.scheduler }));
    await h.time.advance(1);
    expect(wait.status).toBe("rejected");
    expect((wait.error as MembershipError).code).toBe("forbidden");
    h.manager.dispose();
  });
});
