// Real Synapse 1.156.0 judges the test homeserver's "1.156" preset (see differential.ts).
import { differentialSuite } from "./differential.js";

differentialSuite("1.156", "1.156.0");
