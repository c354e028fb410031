/**
 * The manager's membership-format options (`membershipFormat`, `memberId`, `stickyDurationMs`,
 * `stickyFallback`), checked at construction, and the sticky format's fresh member ids. The format
 * itself is a seam in the machine (src/core/machine/format.ts).
 */
import type { MembershipBackend } from "../backends/types.js";
import { MembershipConfigError } from "../errors.js";
import { MAX_STICKY_DURATION_MS } from "../membership/rtcMember.js";

/** The shortest stickiness the options allow (a refresh goes out before half of it has passed). */
export const MIN_STICKY_DURATION_MS = 2000;

export interface FormatOptions {
  backend: MembershipBackend;
  membershipFormat?: unknown;
  memberId?: unknown;
  stickyDurationMs?: unknown;
  stickyFallback?: unknown;
}

/** Checks the format options; true when the sticky format is asked for. Throws MembershipConfigError. */
export function validateFormatOptions(options: FormatOptions): boolean {
  const format = options.membershipFormat ?? "state";
  if (format !== "state" && format !== "sticky")
    throw new MembershipConfigError(`membershipFormat must be "state" or "sticky", got ${String(format)}`);
  const sticky = format === "sticky";
  for (const key of ["memberId", "stickyDurationMs", "stickyFallback"] as const)
    if (!sticky && options[key] !== undefined)
      throw new MembershipConfigError(`${key} is an option of membershipFormat "sticky"`);
  if (!sticky) return false;
  const b = options.backend;
  if (typeof b.sendStickyEvent !== "function" || typeof b.sendDelayedStickyEvent !== "function")
    throw new MembershipConfigError(
      'membershipFormat "sticky" needs a backend that sends sticky events (sendStickyEvent, sendDelayedStickyEvent)',
    );
  const { memberId, stickyDurationMs, stickyFallback } = options;
  if (
    memberId !== undefined &&
    (typeof memberId !== "string" ||
      memberId.length === 0 ||
      new TextEncoder().encode(memberId).length > 255 ||
      // eslint-disable-next-line no-control-regex -- control characters are what this rejects
      /[\u0000-\u001f\u007f]/.test(memberId))
  )
    throw new MembershipConfigError(
      "memberId must be a non-empty string of at most 255 bytes without control characters",
    );
  if (
    stickyDurationMs !== undefined &&
    (typeof stickyDurationMs !== "number" ||
      !Number.isInteger(stickyDurationMs) ||
      stickyDurationMs < MIN_STICKY_DURATION_MS ||
      stickyDurationMs > MAX_STICKY_DURATION_MS)
  )
    throw new MembershipConfigError(
      `stickyDurationMs must be a whole number between ${MIN_STICKY_DURATION_MS} and ${MAX_STICKY_DURATION_MS} ms, got ${String(stickyDurationMs)}`,
    );
  if (stickyFallback !== undefined && stickyFallback !== "state" && stickyFallback !== "none")
    throw new MembershipConfigError(
      `stickyFallback must be "state" or "none", got ${String(stickyFallback)}`,
    );
  return true;
}

/**
 * A fresh, unguessable member id (MSC4143): a random UUID from the platform's cryptographic random
 * source (Web Crypto, in browsers and Node), never `Math.random`.
 */
export function freshMemberId(): string {
  const webCrypto = (globalThis as { crypto?: Crypto }).crypto;
  if (typeof webCrypto?.randomUUID === "function") return webCrypto.randomUUID();
  if (typeof webCrypto?.getRandomValues === "function") {
    const bytes = webCrypto.getRandomValues(new Uint8Array(16));
    return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  }
  throw new MembershipConfigError(
    'membershipFormat "sticky" needs Web Crypto (globalThis.crypto) for fresh member ids, or a memberId option',
  );
}
