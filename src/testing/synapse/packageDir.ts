import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The file this module was loaded from, in the ESM and the CommonJS build alike: `import.meta` does
 * not compile to CommonJS and `__dirname` does not exist in ESM, but V8's structured stack trace names
 * the file either way (a `file:` URL in ESM, a path in CommonJS).
 */
function thisModuleFile(): string | undefined {
  const original = Error.prepareStackTrace;
  try {
    Error.prepareStackTrace = (_error, frames) => frames;
    const frames = new Error().stack as unknown as NodeJS.CallSite[] | undefined;
    const name = frames?.[0]?.getFileName();
    if (!name) return undefined;
    return name.startsWith("file:") ? fileURLToPath(name) : name;
  } finally {
    Error.prepareStackTrace = original;
  }
}

/**
 * The nearest directory at or above this module that holds `entry` (the package root, seen from
 * src/testing/synapse in a checkout and from dist/{esm,cjs}/testing/synapse in the package).
 */
export function findUpFromHere(entry: string): string | undefined {
  const file = thisModuleFile();
  if (!file) return undefined;
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    if (existsSync(join(dir, entry))) return join(dir, entry);
    if (dirname(dir) === dir) return undefined;
  }
}
