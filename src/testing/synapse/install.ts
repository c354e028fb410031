/**
 * Installs `matrix-synapse==<version>` once into a virtualenv cached outside the checkout, so later runs
 * start in seconds. Concurrent installs of one version cannot corrupt each other: each builds in its own
 * temporary directory and renames it into place when complete (a rename is atomic; the loser discards
 * its copy). A venv works after the rename because we always run `<venv>/bin/python -m ...`, never the
 * console scripts whose shebangs name the build directory.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { findUpFromHere } from "./packageDir.js";

/** Written last into a finished venv; its absence means "not installed". */
const MARKER = ".matrixrtc-installed";
/** Build directories older than this are leftovers of a killed install. */
const STALE_BUILD_MS = 60 * 60 * 1000;
const MIN_PYTHON = [3, 10] as const;
/** Measured: 223-244 MB per version's venv (1.116.0-1.163.2), plus a 2 MB template database. */
export const INSTALL_SIZE_MB = 230;

export const INSTALL_HINT =
  "startSynapse needs python3 (>= 3.10) with the venv and pip modules. On Debian/Ubuntu: " +
  "`apt-get install python3 python3-venv python3-pip`; elsewhere install Python 3.10+ from python.org. " +
  "Set MATRIXRTC_SYNAPSE_PYTHON to use another interpreter.";

/** `$MATRIXRTC_SYNAPSE_CACHE_DIR`, else `${XDG_CACHE_HOME:-~/.cache}/matrixrtc-membership/synapse`. */
export function synapseCacheDir(): string {
  const explicit = process.env.MATRIXRTC_SYNAPSE_CACHE_DIR;
  if (explicit) return explicit;
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(cache, "matrixrtc-membership", "synapse");
}

/**
 * Pinned dependency constraints for a version that does not install with today's PyPI, if the repo has
 * them: `$MATRIXRTC_SYNAPSE_CONSTRAINTS_DIR/<version>.txt`, else `synapse-constraints/<version>.txt`
 * at the package root (found upwards from this module, in a checkout and in the package alike).
 */
export function constraintsFile(version: string): string | undefined {
  const dir = process.env.MATRIXRTC_SYNAPSE_CONSTRAINTS_DIR || findUpFromHere("synapse-constraints");
  if (!dir) return undefined;
  const file = join(dir, `${version}.txt`);
  return existsSync(file) ? file : undefined;
}

/** A Synapse installed in its cached venv, ready to run (from `ensureSynapse`). */
export interface InstalledSynapse {
  /** The `matrix-synapse` version installed. */
  version: string;
  /** The venv directory under `synapseCacheDir()`. */
  venvDir: string;
  /** The venv's Python, which runs `synapse.app.homeserver`. */
  python: string;
}

interface RunResult {
  code: number | null;
  output: string;
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    let output = "";
    let child;
    try {
      child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs });
    } catch (e) {
      resolve({ code: null, output: String(e) });
      return;
    }
    const keep = (chunk: Buffer) => {
      // Only the tail matters for an error message.
      output = (output + chunk.toString()).slice(-20_000);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    child.on("error", (e) => resolve({ code: null, output: `${output}${String(e)}` }));
    child.on("close", (code) => resolve({ code, output }));
  });
}

/** The interpreter to build venvs with, checked for version, venv and pip (ensurepip) once. */
async function findPython(): Promise<string> {
  const python = process.env.MATRIXRTC_SYNAPSE_PYTHON || "python3";
  const probe = await run(
    python,
    ["-c", "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"],
    30_000,
  );
  if (probe.code !== 0) {
    throw new Error(`${INSTALL_HINT}\n(\`${python}\` failed: ${probe.output.trim().slice(-500)})`);
  }
  const [major, minor] = probe.output.trim().split(".").map(Number);
  if (major < MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor < MIN_PYTHON[1])) {
    throw new Error(`${INSTALL_HINT}\n(\`${python}\` is Python ${probe.output.trim()})`);
  }
  return python;
}

async function removeStaleBuilds(root: string): Promise<void> {
  for (const name of await readdir(root).catch(() => [] as string[])) {
    if (!name.startsWith(".build-")) continue;
    const path = join(root, name);
    const info = await stat(path).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs > STALE_BUILD_MS) await rm(path, { recursive: true, force: true });
  }
}

/**
 * The cached venv for `version` (directory `<version>`, or `<version>-<hash>` when a constraints file
 * applies, so editing the pins builds a fresh venv), installing it first if needed.
 */
export async function ensureSynapse(
  version: string,
  opts: {
    timeoutMs?: number;
    onProgress?: (line: string) => void;
    /** No console warning when an install starts (the caller installed on purpose). */
    quiet?: boolean;
  } = {},
): Promise<InstalledSynapse> {
  if (!/^[0-9][0-9A-Za-z.+-]*$/.test(version)) throw new Error(`startSynapse: bad version '${version}'`);
  const root = synapseCacheDir();
  const constraints = constraintsFile(version);
  const suffix = constraints
    ? `-${createHash("sha256").update(readFileSync(constraints)).digest("hex").slice(0, 8)}`
    : "";
  const venvDir = join(root, `${version}${suffix}`);
  const installed = { version, venvDir, python: join(venvDir, "bin", "python") };
  if (existsSync(join(venvDir, MARKER))) return installed;

  // Installing inside a test (startSynapse on a cold machine) takes 30 s to minutes: say so, and how to
  // do it beforehand, instead of leaving a test runner's timeout to speak.
  const notice =
    `synapse ${version}: not installed yet; installing into ${venvDir} (once per version: 30 s to a few ` +
    `minutes, about ${INSTALL_SIZE_MB} MB). To install before tests start: \`npx matrixrtc-install-synapse ${version}\`, ` +
    "or installSynapse() from matrixrtc-membership/testing/synapse in jest's globalSetup.";
  opts.onProgress?.(notice);
  if (!opts.quiet && !opts.onProgress) console.warn(`matrixrtc-membership: ${notice}`);
  const python = await findPython();
  await mkdir(root, { recursive: true });
  await removeStaleBuilds(root);
  const build = join(root, `.build-${version}${suffix}-${process.pid}-${randomBytes(4).toString("hex")}`);
  const deadline = Date.now() + (opts.timeoutMs ?? 15 * 60_000);
  const left = () => Math.max(1000, deadline - Date.now());
  const step = async (what: string, cmd: string, args: string[]) => {
    opts.onProgress?.(`synapse ${version}: ${what}`);
    const result = await run(cmd, args, left());
    if (result.code !== 0) {
      await rm(build, { recursive: true, force: true });
      const hint = what.startsWith("creating") ? `\n${INSTALL_HINT}` : "";
      throw new Error(
        `startSynapse: ${what} failed (exit ${result.code})${hint}\n${result.output.trim().slice(-4000)}`,
      );
    }
  };
  await step(`creating virtualenv in ${build}`, python, ["-m", "venv", build]);
  const buildPython = join(build, "bin", "python");
  const pipArgs = ["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet"];
  if (constraints) pipArgs.push("--constraint", constraints);
  await step(
    `pip install matrix-synapse==${version}${constraints ? ` (constraints ${constraints})` : ""}`,
    buildPython,
    [...pipArgs, `matrix-synapse==${version}`],
  );
  await step("checking the install", buildPython, ["-c", "import synapse.app.homeserver"]);
  await writeFile(join(build, MARKER), `matrix-synapse==${version}\n`);
  try {
    await rename(build, venvDir);
  } catch (e) {
    // Another process finished first (the target exists and is not empty): use theirs.
    await rm(build, { recursive: true, force: true });
    if (!existsSync(join(venvDir, MARKER))) throw e;
  }
  opts.onProgress?.(`synapse ${version}: installed in ${venvDir}`);
  return installed;
}
