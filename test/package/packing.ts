/**
 * Packing the package as a consumer gets it, shared by the pack test and the consumer checks: one
 * `npm pack` (which builds through `prepack`) per state of the sources, reused by every test file of a
 * run that asks for it (a lock directory makes the second one wait for the first one's pack).
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const repo = process.cwd();

/** Child npm processes must not inherit the npm settings of the `npm test` that runs jest. */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith("npm_")),
  );
  return { ...env, ...extra };
}

/**
 * Packing, installing and type-checking are CPU-heavy while the other jest worker runs timing-sensitive
 * tests on real time: such children run at low priority (`nice`) so they take the idle CPU.
 */
const NICE = existsSync("/usr/bin/nice") ? ["/usr/bin/nice", "-n", "15"] : [];
export function niced(cmd: string, args: string[]): [string, string[]] {
  return NICE.length ? [NICE[0], [...NICE.slice(1), cmd, ...args]] : [cmd, args];
}

export interface RunResult {
  code: number;
  out: string;
  stdout: string;
}

export function run(cmd: string, args: string[], cwd: string, timeout = 120_000): RunResult {
  const res = spawnSync(...niced(cmd, args), { cwd, env: childEnv(), encoding: "utf8", timeout });
  return { code: res.status ?? -1, out: `${res.stdout ?? ""}${res.stderr ?? ""}`, stdout: res.stdout ?? "" };
}

/** As `run`, without blocking. */
export function runAsync(
  cmd: string,
  args: string[],
  cwd: string,
  opts: { timeout?: number; env?: NodeJS.ProcessEnv; nice?: boolean; lastLine?: RegExp } = {},
): Promise<RunResult & { ms: number; exitAfterLastLineMs?: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const [c, a] = opts.nice === false ? [cmd, args] : niced(cmd, args);
    const child = spawn(c, a, { cwd, env: opts.env ?? childEnv(), timeout: opts.timeout ?? 120_000 });
    let out = "";
    let stdout = "";
    // When the output's last line (`lastLine`) appeared: the work is over, the process should exit.
    let lastLineAt: number | undefined;
    const seen = () => {
      if (lastLineAt === undefined && opts.lastLine?.test(out)) lastLineAt = Date.now();
    };
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      stdout += d.toString();
      seen();
    });
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString();
      seen();
    });
    child.on("close", (code, signal) => {
      const now = Date.now();
      resolve({
        code: code ?? (signal ? -1 : -2),
        out,
        stdout,
        ms: now - started,
        exitAfterLastLineMs: lastLineAt === undefined ? undefined : now - lastLineAt,
      });
    });
  });
}

export interface Packed {
  /** The .tgz. */
  tarball: string;
  /** The paths inside it (package/ stripped). */
  files: string[];
}

/** What the package is made of right now: the commit, and every change on top of it. */
function sourceState(): string {
  const git = (...args: string[]) =>
    execFileSync("git", args, { cwd: repo, encoding: "utf8", maxBuffer: 64 << 20 });
  const hash = createHash("sha256");
  hash.update(git("rev-parse", "HEAD"));
  hash.update(git("diff", "HEAD"));
  for (const file of git("ls-files", "--others", "--exclude-standard").split("\n").filter(Boolean))
    if (existsSync(join(repo, file)) && statSync(join(repo, file)).isFile())
      hash.update(file).update(readFileSync(join(repo, file)));
  return hash.digest("hex").slice(0, 16);
}

const CACHE = join(tmpdir(), "matrixrtc-membership-pack");
const STALE_MS = 60 * 60 * 1000;

/**
 * The tarball of the sources as they are now, packed once (the first caller packs, the others wait
 * for it and reuse it). Kept outside the repository, in the OS's temporary directory; packs older than
 * an hour are removed.
 */
export async function sharedPack(): Promise<Packed> {
  mkdirSync(CACHE, { recursive: true });
  for (const name of readdirSync(CACHE)) {
    const path = join(CACHE, name);
    if (Date.now() - statSync(path).mtimeMs > STALE_MS) rmSync(path, { recursive: true, force: true });
  }
  const dir = join(CACHE, sourceState());
  const lock = `${dir}.lock`;
  const done = join(dir, "packed.json");
  const deadline = Date.now() + 240_000;
  for (;;) {
    if (existsSync(done)) return JSON.parse(readFileSync(done, "utf8")) as Packed;
    try {
      mkdirSync(lock);
      break; // ours to pack
    } catch {
      if (Date.now() > deadline) throw new Error(`sharedPack: ${lock} held for 4 min`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    // No build by hand: prepack builds. --json names the tarball and lists its files.
    const res = run("npm", ["pack", "--json", "--pack-destination", dir], repo, 240_000);
    if (res.code !== 0) throw new Error(`npm pack failed:\n${res.out}`);
    const json = res.stdout.slice(res.stdout.indexOf("[\n"));
    const [info] = JSON.parse(json) as { filename: string; files: { path: string }[] }[];
    const packed: Packed = { tarball: join(dir, info.filename), files: info.files.map((f) => f.path) };
    writeFileSync(done, JSON.stringify(packed));
    return packed;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** The version of a package in this repository's node_modules (so installs hit npm's cache). */
export function repoVersion(name: string): string {
  return (
    JSON.parse(readFileSync(join(repo, "node_modules", name, "package.json"), "utf8")) as { version: string }
  ).version;
}
