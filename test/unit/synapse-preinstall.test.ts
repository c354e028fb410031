/**
 * The pre-install step (installSynapse, `npx matrixrtc-install-synapse`) without touching PyPI: a cached
 * venv is found at once and reported as such; a cold install says what it is doing and how to do it
 * before tests start, and fails with what to install when Python cannot build a venv.
 */
import { afterEach, beforeEach, describe, expect, it } from "@jest/globals";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  DEFAULT_SYNAPSE_VERSION,
  defaultSynapseVersions,
  ensureSynapse,
  installSynapse,
} from "../../src/testing/synapse/index.js";

let cache: string;
const saved = { ...process.env };

beforeEach(() => {
  cache = mkdtempSync(join(tmpdir(), "synapse-cache-"));
  process.env.MATRIXRTC_SYNAPSE_CACHE_DIR = cache;
  delete process.env.MATRIXRTC_SYNAPSE_VERSIONS;
});
afterEach(() => {
  process.env = { ...saved };
  rmSync(cache, { recursive: true, force: true });
});

/** A venv the way a finished install leaves it (marker last), with its template database. */
function fakeInstalled(version: string): string {
  const dir = join(cache, version);
  mkdirSync(join(dir, "bin"), { recursive: true });
  writeFileSync(join(dir, "template-homeserver.db"), "");
  writeFileSync(join(dir, ".matrixrtc-installed"), `matrix-synapse==${version}\n`);
  return dir;
}

describe("installSynapse", () => {
  it("finds cached versions at once, in order, without a progress line", async () => {
    const a = fakeInstalled("1.999.0");
    const b = fakeInstalled("1.998.0");
    const lines: string[] = [];
    const done = await installSynapse({ versions: ["1.999.0", "1.998.0"], onProgress: (l) => lines.push(l) });
    expect(done.map((d) => [d.version, d.venvDir, d.installedNow, d.templateDb])).toEqual([
      ["1.999.0", a, false, join(a, "template-homeserver.db")],
      ["1.998.0", b, false, join(b, "template-homeserver.db")],
    ]);
    expect(lines).toEqual([]);
  });

  it("takes its versions from $MATRIXRTC_SYNAPSE_VERSIONS, else the default", () => {
    expect(defaultSynapseVersions()).toEqual([DEFAULT_SYNAPSE_VERSION]);
    process.env.MATRIXRTC_SYNAPSE_VERSIONS = "1.163.2, 1.127.1,,1.163.2";
    expect(defaultSynapseVersions()).toEqual(["1.163.2", "1.127.1"]);
  });

  it("a cold install says so and how to do it beforehand, then fails with what to install", async () => {
    process.env.MATRIXRTC_SYNAPSE_PYTHON = "/nonexistent/python3";
    const lines: string[] = [];
    await expect(installSynapse({ versions: ["1.999.1"], onProgress: (l) => lines.push(l) })).rejects.toThrow(
      /python3 \(>= 3\.10\) with the venv and pip modules/,
    );
    expect(lines[0]).toMatch(/synapse 1\.999\.1: not installed yet; installing into .*about 230 MB/);
    expect(lines[0]).toContain("npx matrixrtc-install-synapse 1.999.1");
    expect(lines[0]).toContain("installSynapse() from matrixrtc-membership/testing/synapse");
  });

  it("startSynapse's install (no onProgress) warns on the console instead of staying silent", async () => {
    process.env.MATRIXRTC_SYNAPSE_PYTHON = "/nonexistent/python3";
    const warned: unknown[] = [];
    const warn = console.warn;
    console.warn = (...args: unknown[]) => void warned.push(args.join(" "));
    try {
      await expect(ensureSynapse("1.999.2")).rejects.toThrow(/python3/);
    } finally {
      console.warn = warn;
    }
    expect(warned).toEqual([
      expect.stringMatching(/^matrixrtc-membership: synapse 1\.999\.2: not installed yet/),
    ]);
  });
});

describe("matrixrtc-install-synapse", () => {
  it("reports cached versions and exits 0; --help prints the cache and its cost", async () => {
    fakeInstalled("1.999.3");
    const run = promisify(execFile);
    const cli = join(process.cwd(), "src/testing/synapse/cli.ts");
    const tsx = join(process.cwd(), "node_modules/.bin/tsx");
    const env = { ...process.env, MATRIXRTC_SYNAPSE_CACHE_DIR: cache };
    const ok = await run(tsx, [cli, "1.999.3"], { env });
    expect(ok.stdout).toMatch(/synapse 1\.999\.3: ready in .*1\.999\.3 \(cached, \d+ ms\)/);
    const help = await run(tsx, [cli, "--help"], { env });
    expect(help.stdout).toContain(cache);
    expect(help.stdout).toContain("about 230 MB per version");
  }, 20_000);
});
