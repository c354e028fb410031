// Real Synapse 1.116.0 judges the test homeserver's "1.116" preset (see differential.ts).
import { differentialSuite } from "./differential.js";

differentialSuite("1.116", "1.116.0");
