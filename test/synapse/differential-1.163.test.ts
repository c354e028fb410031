// Real Synapse 1.163.2 judges the test homeserver's "1.163" preset (see differential.ts).
import { differentialSuite } from "./differential.js";

differentialSuite("1.163", "1.163.2");
