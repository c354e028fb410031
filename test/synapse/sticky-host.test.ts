/**
 * matrix-js-sdk 43's sticky MatrixRTCSession as a widget through our host driver, on real Synapse 1.163.2
 * with MSC4354 on: the suite the test homeserver also passes (test/integration/widget/sticky-host-suite.ts).
 */
import { startSynapse } from "../../src/testing/index.js";
import { stickyHostSuite } from "../integration/widget/sticky-host-suite.js";

stickyHostSuite(
  "widget mode, sticky memberships: js-sdk 43 through our host driver on Synapse 1.163.2",
  () => startSynapse({ version: "1.163.2", stickyEvents: true }),
  // Long enough that js-sdk's local restart timeout (delay / 4) holds on a loaded machine's Synapse.
  { delayMs: 4000 },
);
