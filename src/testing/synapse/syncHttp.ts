/**
 * Synchronous HTTP for the handle's read helpers (`roomState`, `pendingDelayedEvents`...), so a test
 * written against the in-process test homeserver, whose helpers are synchronous, runs unchanged on a real
 * Synapse. One worker thread does the fetch; the caller blocks on Atomics.wait until the answer is posted
 * back and reads it with receiveMessageOnPort. Blocking is safe: Synapse is another process, and the
 * requests go to it directly, never through anything living on this thread (e.g. a FaultyLink).
 */
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from "node:worker_threads";

export interface SyncRequest {
  method: "GET" | "POST" | "PUT";
  url: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs: number;
}

export interface SyncResponse {
  status: number;
  headers: Record<string, string>;
  text: string;
}

// Plain JavaScript: the worker is started from source text, outside any TypeScript transform.
const WORKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const { port, flag } = workerData;
const done = new Int32Array(flag);
port.on("message", async (req) => {
  let reply;
  try {
    const res = await fetch(req.url, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      signal: AbortSignal.timeout(req.timeoutMs),
    });
    reply = { status: res.status, headers: Object.fromEntries(res.headers), text: await res.text() };
  } catch (e) {
    reply = { error: String(e && e.message ? e.message : e) };
  }
  port.postMessage(reply);
  Atomics.store(done, 0, 1);
  Atomics.notify(done, 0);
});
`;

export class SyncHttp {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly done = new Int32Array(new SharedArrayBuffer(4));

  public constructor() {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { port: port2, flag: this.done.buffer },
      transferList: [port2],
    });
    // Never keeps a test process alive.
    this.worker.unref();
  }

  public request(req: SyncRequest): SyncResponse {
    Atomics.store(this.done, 0, 0);
    this.port.postMessage(req);
    // The worker aborts the fetch at timeoutMs; the extra second covers a worker still starting.
    const waited = Atomics.wait(this.done, 0, 0, req.timeoutMs + 5000);
    const message = receiveMessageOnPort(this.port)?.message as
      (SyncResponse & { error?: undefined }) | { error: string } | undefined;
    if (waited === "timed-out" || !message) throw new Error(`${req.method} ${req.url}: no answer`);
    if (message.error !== undefined) throw new Error(`${req.method} ${req.url}: ${message.error}`);
    return message;
  }

  public async close(): Promise<void> {
    this.port.close();
    await this.worker.terminate();
  }
}

/** Blocks this thread for `ms` (a bounded wait between synchronous retries). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
