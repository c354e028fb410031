// `npm run build` (and `prepack`): the package twice, as ESM (dist/esm) and as CommonJS (dist/cjs),
// each with declarations and source maps that point into the shipped src/.
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");

rmSync(join(root, "dist"), { recursive: true, force: true });
// The two builds are independent: run them side by side.
const tscRun = (project) =>
  new Promise((resolve, reject) =>
    spawn(process.execPath, [tsc, "-p", project], { cwd: root, stdio: "inherit" }).on("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`tsc -p ${project} failed (${code})`)),
    ),
  );
await Promise.all([tscRun("tsconfig.build.json"), tscRun("tsconfig.build.cjs.json")]);
// dist/cjs's .js (and .d.ts) files are CommonJS although the package says "type": "module".
mkdirSync(join(root, "dist/cjs"), { recursive: true });
writeFileSync(join(root, "dist/cjs/package.json"), JSON.stringify({ type: "commonjs" }, null, 2) + "\n");
// The bins.
for (const bin of ["testing/cli.js", "testing/synapse/cli.js"]) chmodSync(join(root, "dist/esm", bin), 0o755);
