/**
 * `npm run demo`: two devices in a call on the embedded test homeserver; one loses its network,
 * the server fires its delayed leave, the other sees it go; the network returns and it rejoins;
 * then both leave cleanly. One line per event. Exits 0 when everything happened as expected.
 *
 * `npm run demo -- --homeserver URL --token TOKEN --room ROOM_ID` joins a real homeserver instead and
 * stays in the call until Ctrl-C, which leaves cleanly.
 */
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runLocalDemo } from "./localDemo.js";
import { runRealHomeserver } from "./realHomeserver.js";

const USAGE = `usage:
  npm run demo                                   run the scripted demo on the embedded test homeserver
  npm run demo -- --homeserver URL --token TOKEN --room ROOM_ID
                                                 join a real homeserver's call until Ctrl-C`;

async function main(): Promise<number> {
  let values: { homeserver?: string; token?: string; room?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        homeserver: { type: "string" },
        token: { type: "string" },
        room: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const real = [values.homeserver, values.token, values.room];
  if (real.some((v) => v !== undefined)) {
    if (real.some((v) => !v)) {
      console.error(`--homeserver, --token and --room go together\n${USAGE}`);
      return 2;
    }
    return runRealHomeserver(values.homeserver!, values.token!, values.room!);
  }
  const timelinePath = fileURLToPath(new URL("../../out/demo-timeline.svg", import.meta.url));
  const report = await runLocalDemo({ print: (line) => console.log(line), timelinePath });
  const picture = relative(process.cwd(), timelinePath) || timelinePath;
  if (!report.ok) {
    console.error(`\ndemo FAILED:\n  ${report.failures.join("\n  ")}\ntimeline of this run: ${picture}`);
    return 1;
  }
  const took = ((report.trace.tEnd - report.trace.t0) / 1000).toFixed(1);
  console.log(`\ndemo passed in ${took} s: every step happened as expected`);
  console.log(`timeline picture: ${picture}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error("demo crashed:", e);
    process.exit(1);
  },
);
