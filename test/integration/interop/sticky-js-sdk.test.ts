/**
 * Sticky memberships and matrix-js-sdk 43's MatrixRTCSession on the test homeserver with MSC4354
 * (`stickyEvents: true`): the suite in sticky-suite.ts (also run on real Synapse,
 * test/synapse/sticky-interop.test.ts).
 */
import { startTestCall } from "../../../src/testing/index.js";
import { NO_LIMITS } from "./helpers.js";
import { stickyInteropSuite } from "./sticky-suite.js";

stickyInteropSuite("sticky memberships and matrix-js-sdk on the test homeserver", {
  start: (delayMs) => startTestCall({ delayMs, homeserver: { ...NO_LIMITS, stickyEvents: true } }),
  startWithoutSticky: (delayMs) =>
    startTestCall({ delayMs, homeserver: { ...NO_LIMITS, stickyEvents: false } }),
  delayMs: 1000,
  seeMs: 5000,
});
