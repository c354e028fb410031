/** How each scenario configuration looks on the emulator and on real Synapse, and which versions judge which preset. */
import type { SynapseOptions, SynapsePreset, TestHomeserverOptions } from "../../src/testing/index.js";
import type { ServerConfig } from "./types.js";

/** Limits of the `limited` configuration: a 429 on the 4th request, ~10 s until the next one fits. */
export const LIMITED_RATE = { perSecond: 0.1, burstCount: 3 };
export const MAX_DELAY_MS = 24 * 3_600_000;
export const PENDING_LIMIT = 5;

export function emulatorOptions(config: ServerConfig): TestHomeserverOptions {
  const base: TestHomeserverOptions = { maxDelayMs: MAX_DELAY_MS, maxScheduledPerUser: PENDING_LIMIT };
  if (config === "relaxed") return { ...base, rateLimits: { message: null, delayedEventMgmt: null } };
  if (config === "sticky")
    return { ...base, stickyEvents: true, rateLimits: { message: null, delayedEventMgmt: null } };
  if (config === "limited")
    return { ...base, rateLimits: { message: LIMITED_RATE, delayedEventMgmt: LIMITED_RATE } };
  return { ...base, delayedEvents: false, rateLimits: { message: null, delayedEventMgmt: null } };
}

/**
 * The same configuration on real Synapse (`startSynapse()` options). Sticky events are off unless asked
 * for, as on the emulator (`startSynapse()` alone turns them on).
 */
export function synapseOptions(config: ServerConfig): SynapseOptions {
  const base: SynapseOptions = {
    maxDelayMs: MAX_DELAY_MS,
    maxScheduledPerUser: PENDING_LIMIT,
    stickyEvents: config === "sticky",
  };
  if (config === "relaxed" || config === "sticky") return { ...base, rateLimits: "relaxed" };
  if (config === "limited")
    return { ...base, rateLimits: { message: LIMITED_RATE, delayedEventMgmt: LIMITED_RATE } };
  return { ...base, delayedEvents: false, rateLimits: "relaxed" };
}

/**
 * Each preset and the real release it is verified against (the latest patch of that minor on PyPI).
 * The differential suite runs every scenario on both and requires identical records.
 */
export const PRESET_VERSIONS: readonly { preset: SynapsePreset; version: string }[] = [
  { preset: "1.116", version: "1.116.0" },
  { preset: "1.127", version: "1.127.1" },
  { preset: "1.143", version: "1.143.0" },
  { preset: "1.156", version: "1.156.0" },
  { preset: "1.157", version: "1.157.2" },
  { preset: "1.163", version: "1.163.2" },
];
