/**
 * `npm run demo`: alice (standalone, ClientBackend) and bob (widget mode, WidgetBackend in an in-process
 * host with DelayedEventWidgetDriver) join a call on the embedded test homeserver; alice's network is
 * cut, the server fires her delayed leave, bob sees her go; the network returns and she rejoins; then
 * both leave cleanly. One line per event; a timeline picture in out/demo-timeline.svg. Exits 0 when
 * everything happened as expected, 1 (with what did not) otherwise, 2 on bad arguments.
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
  const { homeserver, token, room } = values;
  if (homeserver !== undefined || token !== undefined || room !== undefined) {
    const missing = Object.entries({ homeserver, token, room })
      .filter(([, v]) => !v)
      .map(([k]) => `--${k}`);
    if (missing.length > 0) {
      console.error(
        `missing ${missing.join(" and ")} (--homeserver, --token and --room go together)\n${USAGE}`,
      );
      return 2;
    }
    if (!/^https?:\/\/[^/]/.test(homeserver!)) {
      console.error(`--homeserver must be an http(s) URL, got ${homeserver}\n${USAGE}`);
      return 2;
    }
    if (!/^!.+:.+/.test(room!)) {
      console.error(`--room must be a room ID like !abc:example.org, got ${room}\n${USAGE}`);
      return 2;
    }
    return runRealHomeserver(homeserver!, token!, room!);
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
