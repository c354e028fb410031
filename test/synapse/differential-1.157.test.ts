// Real Synapse 1.157.2 judges the test homeserver's "1.157" preset (see differential.ts).
import { differentialSuite } from "./differential.js";

differentialSuite("1.157", "1.157.2");
