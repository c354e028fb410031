import { it } from "@jest/globals";
import { readFileSync, writeFileSync } from "node:fs";
import { formatFailure, runSchedule, type Schedule } from "../helpers/invariants.js";

it("replay", async () => {
  const s = JSON.parse(readFileSync(process.env.REPLAY!, "utf8")) as Schedule;
  const { cmds, jitterSeed, ...world } = s;
  const r = await runSchedule(cmds, jitterSeed, world);
  writeFileSync(process.env.REPLAY + ".out", formatFailure(cmds, r));
}, 60_000);
