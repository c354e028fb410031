// Real Synapse 1.143.0 judges the test homeserver's "1.143" preset (see differential.ts).
import { differentialSuite } from "./differential.js";

differentialSuite("1.143", "1.143.0");
