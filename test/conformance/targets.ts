/** How each scenario configuration looks on the emulator (the Synapse side lives in test/synapse/). */
import type { TestHomeserverOptions } from "../../src/testing/index.js";
import type { ServerConfig } from "./types.js";

/** Limits of the `limited` configuration: a 429 on the 4th request, ~10 s until the next one fits. */
export const LIMITED_RATE = { perSecond: 0.1, burstCount: 3 };
export const MAX_DELAY_MS = 24 * 3_600_000;
export const PENDING_LIMIT = 5;

export function emulatorOptions(config: ServerConfig): TestHomeserverOptions {
  const base: TestHomeserverOptions = { maxDelayMs: MAX_DELAY_MS, maxScheduledPerUser: PENDING_LIMIT };
  if (config === "relaxed") return { ...base, rateLimits: { message: null, delayedEventMgmt: null } };
  if (config === "limited")
    return { ...base, rateLimits: { message: LIMITED_RATE, delayedEventMgmt: LIMITED_RATE } };
  return { ...base, delayedEvents: false, rateLimits: { message: null, delayedEventMgmt: null } };
}
