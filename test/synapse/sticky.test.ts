/**
 * MSC4354 on real Synapse 1.163.2 (`startSynapse({ stickyEvents })`): the matrix-js-sdk suite the test
 * homeserver also passes (test/integration/homeserver/sticky-js-sdk-suite.ts), so what js-sdk reads from
 * the test homeserver is what it reads from Synapse. The wire-level comparison is the differential
 * suite's `sticky-*` scenarios (differential-1.163.test.ts).
 */
import { startSynapse } from "../../src/testing/index.js";
import { stickyJsSdkSuite } from "../integration/homeserver/sticky-js-sdk-suite.js";

stickyJsSdkSuite("matrix-js-sdk 43 and Synapse 1.163.2's sticky events", (stickyEvents) =>
  startSynapse({ version: "1.163.2", stickyEvents }),
);
