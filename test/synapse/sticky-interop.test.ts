/**
 * Sticky memberships and matrix-js-sdk 43's MatrixRTCSession on real Synapse 1.163.2 with
 * `msc4354_enabled` (`startSynapse({ stickyEvents: true })`): the suite the test homeserver also passes
 * (test/integration/interop/sticky-suite.ts).
 */
import { startTestCall } from "../../src/testing/index.js";
import { stickyInteropSuite } from "../integration/interop/sticky-suite.js";

stickyInteropSuite("sticky memberships and matrix-js-sdk on real Synapse 1.163.2", {
  start: (delayMs) =>
    startTestCall({ server: "synapse", delayMs, synapse: { version: "1.163.2", stickyEvents: true } }),
  startWithoutSticky: (delayMs) =>
    startTestCall({ server: "synapse", delayMs, synapse: { version: "1.163.2", stickyEvents: false } }),
  // Long enough that the manager's local request timeout (delay / 5) holds on a loaded machine's Synapse.
  delayMs: 4000,
  seeMs: 10_000,
});
