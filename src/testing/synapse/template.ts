/**
 * A pristine SQLite database per installed version, copied into each new server's directory: a first
 * start spends about a third of its time creating Synapse's schema, which is the same every time. Made
 * once, by starting Synapse on an empty database and stopping it cleanly (no users, no rooms, so it
 * suits any test); written beside the venv under a temporary name and renamed, like the venv itself.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { InstalledSynapse } from "./install.js";
import { loggingConfig, synapseConfig } from "./options.js";
import { freePort, launchSynapse } from "./process.js";
import { signingKey } from "./signingKey.js";

export const TEMPLATE_SERVER_NAME = "localhost";

export function templatePath(installed: InstalledSynapse): string {
  return join(installed.venvDir, "template-homeserver.db");
}

/** The template's path, making it first if needed; undefined if it cannot be made (starts still work). */
export async function ensureTemplateDb(
  installed: InstalledSynapse,
  timeoutMs: number,
): Promise<string | undefined> {
  const target = templatePath(installed);
  if (existsSync(target)) return target;
  const dir = await mkdtemp(join(tmpdir(), "matrixrtc-synapse-template-"));
  try {
    const port = await freePort();
    const paths = {
      dataDir: dir,
      port,
      logConfigPath: join(dir, "log.yaml"),
      signingKeyPath: join(dir, "signing.key"),
      registrationSecret: randomBytes(16).toString("hex"),
    };
    await writeFile(paths.logConfigPath, JSON.stringify(loggingConfig(join(dir, "homeserver.log"))));
    await writeFile(paths.signingKeyPath, signingKey());
    const configPath = join(dir, "homeserver.yaml");
    await writeFile(configPath, JSON.stringify(synapseConfig({ serverName: TEMPLATE_SERVER_NAME }, paths)));
    const running = await launchSynapse({
      python: installed.python,
      configPath,
      logPath: join(dir, "homeserver.log"),
      baseUrl: `http://127.0.0.1:${port}`,
      cwd: dir,
      timeoutMs,
    });
    await running.stop();
    const partial = `${target}.${process.pid}-${randomBytes(4).toString("hex")}`;
    await copyFile(join(dir, "homeserver.db"), partial);
    await rename(partial, target);
    return target;
  } catch {
    return undefined;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
