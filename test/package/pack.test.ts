/**
 * The package as a call app gets it: `npm pack` (which builds through `prepack`), then temporary
 * consumer projects that load every entry with `require()` and `import`, type-check strictly without
 * `skipLibCheck`, and install without matrix-js-sdk. The full consumers borrow this repository's
 * node_modules through symlinks; only the widget-only one runs `npm install` (from npm's cache).
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { execFileSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { build } from "esbuild";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, normalize, posix } from "node:path";
import { repo, run, runAsync, sharedPack } from "./packing.js";

const repoModules = join(repo, "node_modules");
const tsc = createRequire(join(repo, "package.json")).resolve("typescript/bin/tsc");
const PKG = "matrixrtc-membership";
const ENTRIES = ["", "/testing", "/widget-host", "/node", "/testing/synapse"] as const;
/** What the runtime consumers print: one line per entry with its export count, in ENTRIES order. */
const loaded = (kind: "esm" | "cjs", last: string) =>
  new RegExp(`^${ENTRIES.map((e) => `${kind}${e.replace(/\//g, "\\/")} \\d+`).join("\\n")}\\n${last}`, "m");

function node(args: string[], cwd: string) {
  return run(process.execPath, args, cwd);
}

function typecheck(cwd: string) {
  return node([tsc, "-p", "tsconfig.json"], cwd);
}

function writeFiles(dir: string, files: Record<string, string | object>): void {
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), typeof body === "string" ? body : JSON.stringify(body, null, 2));
  }
}

const STRICT = {
  target: "ES2022",
  strict: true,
  skipLibCheck: false,
  noEmit: true,
  noUncheckedIndexedAccess: true,
  exactOptionalPropertyTypes: true,
};

let work: string;
let tarball: string;
let packed: string[];
let unpacked: string;
let testingKitCheck: Promise<{ code: number; out: string }>;
let widgetInstall: Promise<{ code: number; out: string }>;

/** A consumer project with the unpacked package and the repository's copies of its dependencies. */
function consumer(name: string, pkg: object, files: Record<string, string | object>, deps: string[]): string {
  const dir = join(work, name);
  cpSync(unpacked, join(dir, "node_modules", PKG), { recursive: true });
  for (const dep of deps) {
    mkdirSync(dirname(join(dir, "node_modules", dep)), { recursive: true });
    symlinkSync(join(repoModules, dep), join(dir, "node_modules", dep), "dir");
  }
  writeFiles(dir, { "package.json": { name, private: true, ...pkg }, ...files });
  return dir;
}

const FULL_DEPS = ["rxjs", "loglevel", "matrix-js-sdk", "matrix-widget-api", "@types/node", "@types/events"];

// What a consumer uses from the main and widget-host entries (the testing kit is checked apart).
const USE_MAIN = `
import { ClientBackend, MembershipManager, WidgetBackend, widgetCapabilities, type ClientLike } from "${PKG}";
import { DelayedEventWidgetDriver, type DriverClient } from "${PKG}/widget-host";
export function make(client: ClientLike & DriverClient, widgetApi: ConstructorParameters<typeof WidgetBackend>[0]) {
  const standalone = new MembershipManager({
    backend: new ClientBackend(client),
    roomId: "!r:x", userId: "@a:x", deviceId: "D",
  });
  const widget = new WidgetBackend(widgetApi);
  const caps: string[] = widgetCapabilities({ userId: "@a:x", deviceId: "D" });
  return { standalone, widget, caps, driver: new DelayedEventWidgetDriver(client, { roomId: "!r:x" }) };
}
`;
const USE_TESTING = `
import { startTestHomeserver, startFaultyLink, type TestHomeserver } from "${PKG}/testing";
export const kit: [typeof startTestHomeserver, typeof startFaultyLink] = [startTestHomeserver, startFaultyLink];
export type Hs = TestHomeserver;
`;

/**
 * The testing kit's types name matrix-js-sdk's `MatrixClient` (bareClient, syncedClient,
 * CallObserver.client), and js-sdk 43's declarations import a file it does not ship. Without
 * skipLibCheck that one error is expected; anything else is ours.
 */
function errorsBesideJsSdkCrypto(out: string): string[] {
  return out
    .split("\n")
    .filter((l) => /error TS\d+/.test(l))
    .filter(
      (l) => !/matrix-js-sdk\/lib\/crypto-api\/index\.d\.ts.*TS2307.*matrix-sdk-crypto-wasm\.d\.ts/.test(l),
    );
}

/** The widget-only consumer: its own npm install of the tarball and matrix-widget-api, nothing else. */
function startWidgetOnlyInstall(): Promise<{ code: number; out: string }> {
  const dir = join(work, "widget-only");
  const widgetApiVersion = (
    JSON.parse(readFileSync(join(repoModules, "matrix-widget-api/package.json"), "utf8")) as {
      version: string;
    }
  ).version;
  writeFiles(dir, {
    "package.json": { name: "widget-only", private: true, type: "module" },
    "tsconfig.json": {
      compilerOptions: {
        ...STRICT,
        module: "preserve",
        moduleResolution: "bundler",
        lib: ["ES2022", "DOM"],
        types: [],
      },
      files: ["widget.ts"],
    },
    "widget.ts": `
        import type { WidgetApi } from "matrix-widget-api";
        import { MembershipManager, WidgetBackend, widgetCapabilities, widgetStateSource } from "${PKG}";
        export function start(api: WidgetApi) {
          const caps = widgetCapabilities({ userId: "@a:x", deviceId: "D", roomId: "!r:x", readState: true });
          api.requestCapabilities(caps);
          const source = widgetStateSource(api, "!r:x");
          const manager = new MembershipManager({
            backend: new WidgetBackend(api), roomId: "!r:x", userId: "@a:x", deviceId: "D",
          });
          return { manager, source };
        }`,
    "run.mjs": `const m = await import("${PKG}"); console.log("esm", typeof m.WidgetBackend);`,
    "run.cjs": `const m = require("${PKG}"); console.log("cjs", typeof m.WidgetBackend);`,
  });
  // From npm's cache when it has them (npm ci filled it); the registry otherwise.
  return runAsync(
    "npm",
    [
      "install",
      "--prefer-offline",
      "--no-audit",
      "--no-fund",
      "--ignore-scripts",
      "--no-package-lock",
      tarball,
      `matrix-widget-api@${widgetApiVersion}`,
    ],
    dir,
  );
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "mrtc-pack-"));
  // One pack per run, shared with the consumer checks (packing.ts).
  ({ tarball, files: packed } = await sharedPack());
  unpacked = join(work, "unpacked");
  mkdirSync(unpacked);
  execFileSync("tar", ["-xzf", tarball, "-C", unpacked, "--strip-components=1"]);
  widgetInstall = startWidgetOnlyInstall();
  const kit = consumer(
    "testing-kit",
    { type: "module" },
    {
      "tsconfig.json": {
        compilerOptions: { ...STRICT, module: "nodenext", moduleResolution: "nodenext", types: ["node"] },
        files: ["testing.ts", "testing.cts"],
      },
      "testing.ts": USE_TESTING,
      "testing.cts": USE_TESTING,
    },
    FULL_DEPS,
  );
  testingKitCheck = runAsync(process.execPath, [tsc, "-p", "tsconfig.json"], kit);
}, 180_000);

afterAll(async () => {
  // Never leave a child running into the next test file.
  await Promise.allSettled([widgetInstall, testingKitCheck]);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("the packed package", () => {
  it("ships both builds, the sources its maps name, LICENSE and the CLI", () => {
    for (const f of [
      "LICENSE",
      "README.md",
      "package.json",
      "dist/cjs/package.json",
      "dist/esm/testing/cli.js",
    ])
      expect(packed).toContain(f);
    expect(readFileSync(join(unpacked, "LICENSE"), "utf8")).toContain("Apache License");
    expect(packed.filter((f) => f.endsWith(".test.ts"))).toEqual([]);
    const pkg = JSON.parse(readFileSync(join(unpacked, "package.json"), "utf8")) as {
      exports: Record<string, Record<string, Record<string, string>> | string>;
      bin: Record<string, string>;
    };
    for (const entry of ENTRIES) {
      const conditions = pkg.exports[`.${entry}`] as Record<string, Record<string, string>>;
      for (const target of Object.values(conditions).flatMap((c) => Object.values(c)))
        expect(packed).toContain(posix.normalize(target));
    }
    expect(Object.keys(pkg.bin).sort()).toEqual(["matrixrtc-install-synapse", "matrixrtc-test-homeserver"]);
    for (const bin of Object.values(pkg.bin)) {
      expect(packed).toContain(posix.normalize(bin));
      expect(readFileSync(join(unpacked, bin), "utf8")).toMatch(/^#!\/usr\/bin\/env node\n/);
    }
  });

  it("every relative link in the README and docs resolves inside the package; repository-only paths are URLs", () => {
    const docs = packed.filter((f) => f === "README.md" || /^docs\/[^/]+\.md$/.test(f));
    expect(docs).toEqual(expect.arrayContaining(["README.md", "docs/api.md", "docs/widget.md"]));
    const broken: string[] = [];
    const unlinked: string[] = [];
    let relative = 0;
    for (const doc of docs) {
      // Fenced code is commands and code for a clone of the repository, not links.
      const text = readFileSync(join(unpacked, doc), "utf8").replace(/^```[\s\S]*?^```/gm, "");
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1];
        if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith("#")) continue;
        relative++;
        const path = posix.normalize(posix.join(posix.dirname(doc), target.split("#")[0]));
        const isDir = packed.some((f) => f.startsWith(`${path.replace(/\/$/, "")}/`));
        if (!packed.includes(path) && !isDir) broken.push(`${doc}: ${target}`);
      }
      // A path of the repository mentioned on its own must be a link (an URL) or in the package.
      for (const m of text.matchAll(/(\[)?`((?:examples|test|bench)\/[^`\s]*)`/g))
        if (!m[1] && !packed.includes(m[2])) unlinked.push(`${doc}: ${m[2]}`);
    }
    expect(relative).toBeGreaterThan(50);
    expect(broken).toEqual([]);
    expect(unlinked).toEqual([]);
    expect(readFileSync(join(unpacked, "README.md"), "utf8")).not.toContain("../shared");
    // The package says where its repository lives (npm shows it; docs link there).
    const pkg = JSON.parse(readFileSync(join(unpacked, "package.json"), "utf8")) as { homepage?: string };
    expect(pkg.homepage).toBe("https://github.com/matrixrtc-membership/matrixrtc-membership#readme");
  });

  it("every source map resolves its sources inside the package", () => {
    const maps = packed.filter((f) => f.endsWith(".js.map") || f.endsWith(".d.ts.map"));
    expect(maps.length).toBeGreaterThan(50);
    const missing: string[] = [];
    for (const map of maps) {
      const { sources, sourceRoot } = JSON.parse(readFileSync(join(unpacked, map), "utf8")) as {
        sources: string[];
        sourceRoot?: string;
      };
      expect(sources.length).toBeGreaterThan(0);
      for (const source of sources) {
        const path = posix.normalize(posix.join(posix.dirname(map), sourceRoot ?? "", source));
        if (!packed.includes(path)) missing.push(`${map} -> ${source}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it("the main and node entries never load matrix-js-sdk or matrix-widget-api; widget-host never loads matrix-js-sdk", () => {
    // Walks the built import graph: relative specifiers are followed, bare ones collected.
    const bareImports = (start: string): Set<string> => {
      const seen = new Set<string>();
      const bare = new Set<string>();
      const visit = (file: string) => {
        if (seen.has(file)) return;
        seen.add(file);
        // Comments can quote anything ("… from \"never existed\""): only code is read.
        const text = readFileSync(file, "utf8")
          .replace(/\/\*[\s\S]*?\*\//g, "")
          .replace(/^\s*\/\/.*$/gm, "");
        for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|require\(\s*|^import\s+)"([^"]+)"/gm)) {
          const spec = m[1];
          if (spec.startsWith(".")) visit(normalize(join(dirname(file), spec)));
          else
            bare.add(
              spec
                .split("/")
                .slice(0, spec.startsWith("@") ? 2 : 1)
                .join("/"),
            );
        }
      };
      visit(join(unpacked, start));
      return bare;
    };
    for (const build of ["esm", "cjs"]) {
      expect([...bareImports(`dist/${build}/index.js`)].sort()).toEqual(["loglevel", "rxjs"]);
      expect([...bareImports(`dist/${build}/node/index.js`)].sort()).toEqual([
        "loglevel",
        "node:async_hooks",
      ]);
      // A jest globalSetup imports it: a js-sdk loaded there would clash with the tests' copy.
      expect(bareImports(`dist/${build}/testing/synapse/index.js`).has("matrix-js-sdk")).toBe(false);
      expect(bareImports(`dist/${build}/widget-host/index.js`).has("matrix-js-sdk")).toBe(false);
      expect(bareImports(`dist/${build}/testing/index.js`).has("matrix-js-sdk")).toBe(true);
    }
  });

  it("loads every entry with import and require on this Node", () => {
    const dir = consumer(
      "runtime",
      {},
      {
        "esm.mjs": `
          for (const e of ${JSON.stringify(ENTRIES)}) {
            const m = await import("${PKG}" + e);
            console.log("esm" + e, Object.keys(m).length);
          }
          const { MembershipError } = await import("${PKG}");
          console.log("esm error", typeof MembershipError);
          const keys = {};
          for (const e of ${JSON.stringify(ENTRIES)}) keys[e] = Object.keys(await import("${PKG}" + e));
          console.log("keys " + JSON.stringify(keys));`,
        "cjs.cjs": `
          for (const e of ${JSON.stringify(ENTRIES)}) {
            const m = require("${PKG}" + e);
            console.log("cjs" + e, Object.keys(m).length);
          }
          console.log("cjs manager", typeof require("${PKG}").MembershipManager);`,
      },
      FULL_DEPS,
    );
    const esm = node(["esm.mjs"], dir);
    expect(esm).toMatchObject({ code: 0 });
    expect(esm.out).toMatch(loaded("esm", "esm error function"));
    const cjs = node(["cjs.cjs"], dir);
    expect(cjs).toMatchObject({ code: 0 });
    expect(cjs.out).toMatch(loaded("cjs", "cjs manager function"));
    // The shipped API reference names every runtime export of every entry (npm run docs regenerates it).
    const keys = JSON.parse(/^keys (.*)$/m.exec(esm.out)![1]) as Record<string, string[]>;
    const reference = readFileSync(join(unpacked, "docs/api.md"), "utf8");
    const missing = Object.entries(keys).flatMap(([entry, names]) =>
      names
        .filter((n) => !reference.includes(`\`${n}`) && !reference.includes(`\`class ${n}\``))
        .map((n) => `${PKG}${entry}: ${n}`),
    );
    expect(missing).toEqual([]);
    // Same exports from both builds.
    const count = (out: string, kind: string, e: string) => new RegExp(`${kind}${e} (\\d+)`).exec(out)?.[1];
    for (const e of ENTRIES) expect(count(cjs.out, "cjs", e)).toBe(count(esm.out, "esm", e));
  });

  it("loads every entry with import and require on the machine's Node 20, when it has one (≥ 20.19)", () => {
    // The scripts run on the node@22 devDependency; the machine's own Node may be 20. Reuses the "runtime" consumer above.
    const node20 = ["/usr/bin/node", "/usr/local/bin/node"].find((bin) => {
      if (!existsSync(bin)) return false;
      const [major, minor] = run(bin, ["-p", "process.versions.node"], work)
        .stdout.trim()
        .split(".")
        .map(Number);
      return major === 20 && minor >= 19;
    });
    if (!node20) {
      console.warn("no Node 20.19+ at /usr/bin/node or /usr/local/bin/node: only Node 22 was checked");
      return;
    }
    const dir = join(work, "runtime");
    const esm = run(node20, ["esm.mjs"], dir);
    expect(esm).toMatchObject({ code: 0 });
    expect(esm.stdout).toMatch(loaded("esm", "esm error function"));
    const cjs = run(node20, ["cjs.cjs"], dir);
    expect(cjs).toMatchObject({ code: 0 });
    expect(cjs.stdout).toMatch(loaded("cjs", "cjs manager function"));
  });

  it("a strict nodenext consumer type-checks, from ESM and from CommonJS, without skipLibCheck", () => {
    const dir = consumer(
      "nodenext",
      { type: "module" },
      {
        "tsconfig.json": {
          compilerOptions: { ...STRICT, module: "nodenext", moduleResolution: "nodenext", types: [] },
          files: ["esm.ts", "cjs.cts"],
        },
        "esm.ts": USE_MAIN,
        "cjs.cts": USE_MAIN,
      },
      FULL_DEPS,
    );
    const res = typecheck(dir);
    expect(res.out).toBe("");
    expect(res.code).toBe(0);
  });

  it("the testing kit's types fail only where matrix-js-sdk's own declarations do", async () => {
    expect(errorsBesideJsSdkCrypto((await testingKitCheck).out)).toEqual([]);
  });

  it("a strict bundler consumer type-checks without skipLibCheck", () => {
    const dir = consumer(
      "bundler",
      { type: "module" },
      {
        "tsconfig.json": {
          compilerOptions: { ...STRICT, module: "preserve", moduleResolution: "bundler", types: [] },
          files: ["app.ts"],
        },
        "app.ts": USE_MAIN,
      },
      FULL_DEPS,
    );
    const res = typecheck(dir);
    expect(res.out).toBe("");
    expect(res.code).toBe(0);
  });

  it("a widget-only consumer installs without matrix-js-sdk, type-checks and runs", async () => {
    const dir = join(work, "widget-only");
    const install = await widgetInstall;
    expect(install).toMatchObject({ code: 0 });
    expect(existsSync(join(dir, "node_modules", PKG, "dist/esm/index.js"))).toBe(true);
    expect(existsSync(join(dir, "node_modules/matrix-js-sdk"))).toBe(false);
    const res = typecheck(dir);
    expect(res.out).toBe("");
    expect(res.code).toBe(0);
    expect(node(["run.mjs"], dir)).toMatchObject({ code: 0, out: "esm function\n" });
    // A browser bundle of the main entry resolves (no Node built-ins), and `sideEffects: false` lets a
    // bundler keep only what is imported.
    const bundle = async (code: string) => {
      const result = await build({
        stdin: { contents: code, resolveDir: dir, loader: "js" },
        bundle: true,
        platform: "browser",
        format: "esm",
        minify: true,
        write: false,
        logLevel: "silent",
      });
      return result.outputFiles[0].contents.length;
    };
    expect(await bundle(`export * from "${PKG}";`)).toBeGreaterThan(10_000);
    expect(await bundle(`export { widgetCapabilities } from "${PKG}";`)).toBeLessThan(2_000);
    expect(node(["run.cjs"], dir)).toMatchObject({ code: 0, out: "cjs function\n" });
  });
});
