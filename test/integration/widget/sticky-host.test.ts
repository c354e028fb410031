/** matrix-js-sdk 43's sticky MatrixRTCSession as a widget through our host, on the test homeserver (the suite also runs on real Synapse). */
import { startTestHomeserver } from "../../../src/testing/index.js";
import { stickyHostSuite } from "./sticky-host-suite.js";

stickyHostSuite(
  "widget mode, sticky memberships: js-sdk 43 through our host driver on the test homeserver",
  () => startTestHomeserver({ rateLimits: { message: null, delayedEventMgmt: null }, stickyEvents: true }),
  { delayMs: 2000 },
);
