/**
 * One Synapse process: spawned from the venv's python, waited on until it answers, stopped with SIGTERM
 * (SIGKILL if it hangs). A crashed or failed start throws with the tail of Synapse's own log.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

const LOG_TAIL_LINES = 40;

// Started with -c so the child exits when its parent dies (a jest worker killed with SIGKILL runs no
// exit hooks): a daemon thread polls the parent pid. Then Synapse's own entry point runs as __main__.
const BOOTSTRAP = `
import os, runpy, sys, threading, time
parent = os.getppid()
def watch():
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)
threading.Thread(target=watch, daemon=True).start()
sys.argv = ["synapse.app.homeserver", "-c", sys.argv[1]]
runpy.run_module("synapse.app.homeserver", run_name="__main__", alter_sys=True)
`;

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Synchronous by necessity: nothing async runs in an 'exit' handler.
  process.on("exit", () => {
    for (const child of live) child.kill("SIGKILL");
  });
}

/** A TCP port nobody listens on right now (Synapse binds it a moment later; a lost race is retried). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export function logTail(path: string, lines = LOG_TAIL_LINES): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log written)";
  }
}

export interface RunningSynapse {
  readonly child: ChildProcess;
  /** Resolves when the process has exited (immediately if it already has). */
  stop(): Promise<void>;
}

export class SynapseStartError extends Error {
  public constructor(
    message: string,
    /** True when the port was taken between choosing and binding it: start again on another. */
    public readonly portInUse: boolean,
  ) {
    super(message);
  }
}

export async function launchSynapse(opts: {
  python: string;
  configPath: string;
  logPath: string;
  baseUrl: string;
  cwd: string;
  timeoutMs: number;
}): Promise<RunningSynapse> {
  installExitHook();
  const child = spawn(opts.python, ["-c", BOOTSTRAP, opts.configPath], {
    cwd: opts.cwd,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PYTHONUNBUFFERED: "1" },
  });
  live.add(child);
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-10_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exitCode = code ?? (signal ? -1 : null);
      live.delete(child);
      resolve();
    });
    child.once("error", (e) => {
      output += String(e);
      exitCode = -1;
      live.delete(child);
      resolve();
    });
  });

  const stop = async () => {
    if (exitCode !== undefined) return;
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(killer);
  };

  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    if (exitCode !== undefined) break;
    try {
      const res = await fetch(`${opts.baseUrl}/health`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return { child, stop };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  const tail = logTail(opts.logPath);
  const why =
    exitCode === undefined
      ? `did not answer on ${opts.baseUrl} within ${opts.timeoutMs} ms`
      : `exited with ${exitCode} before answering`;
  const text = `${tail}\n${output}`;
  throw new SynapseStartError(
    `startSynapse: Synapse ${why}.\n--- stdout/stderr ---\n${output.trim().slice(-3000)}\n` +
      `--- log tail (${opts.logPath}) ---\n${tail}`,
    /Address already in use|EADDRINUSE|CannotListenError/.test(text),
  );
}
