/**
 * Shared by the browser suites: Debian's Chromium through playwright-core (never a downloaded browser).
 * Without Chromium a suite is skipped with a message; with REQUIRE_BROWSER_TESTS=1 (CI) it fails.
 */
import { describe, expect, it } from "@jest/globals";
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
export const REQUIRED = process.env.REQUIRE_BROWSER_TESTS === "1";
export const HAVE_CHROMIUM = existsSync(CHROMIUM);

/** `describe` when Chromium is there, `describe.skip` otherwise; plus a test that fails when it is required. */
export function browserDescribe(name: string): typeof describe | typeof describe.skip {
  describe(`${name}: Chromium is available when required`, () => {
    it(`finds Chromium at ${CHROMIUM} (REQUIRE_BROWSER_TESTS=${REQUIRED ? "1" : "unset"})`, () => {
      if (REQUIRED && !HAVE_CHROMIUM)
        throw new Error(
          `REQUIRE_BROWSER_TESTS=1 but there is no Chromium at ${CHROMIUM} (set CHROMIUM_PATH)`,
        );
      if (!HAVE_CHROMIUM) console.warn(`Skipping ${name}: no Chromium at ${CHROMIUM}`);
      expect(true).toBe(true);
    });
  });
  return HAVE_CHROMIUM ? describe : describe.skip;
}

/** Launches Chromium headless with what a loopback-only test needs. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
  });
}
