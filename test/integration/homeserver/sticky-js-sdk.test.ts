/** matrix-js-sdk 43 reads the test homeserver's sticky events (the suite also runs on real Synapse). */
import { startTestHomeserver } from "../../../src/testing/index.js";
import { NO_LIMITS } from "./helpers.js";
import { stickyJsSdkSuite } from "./sticky-js-sdk-suite.js";

stickyJsSdkSuite("matrix-js-sdk 43 and the test homeserver's sticky events", (stickyEvents) =>
  startTestHomeserver({ ...NO_LIMITS, stickyEvents }),
);
