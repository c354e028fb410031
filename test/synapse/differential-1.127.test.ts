// Real Synapse 1.127.1 judges the test homeserver's "1.127" preset (see differential.ts).
import { differentialSuite } from "./differential.js";

differentialSuite("1.127", "1.127.1");
