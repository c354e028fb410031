#!/usr/bin/env bash
# The long randomized invariant run of issue 5: many more schedules than CI, a fresh seed each time,
# and strict (the properties of invariants with a known counterexample run too; CI skips them).
#
#   scripts/invariants-long.sh                 # 10,000 schedules, fresh seed
#   scripts/invariants-long.sh 50000           # more
#   INVARIANT_SEED=123 scripts/invariants-long.sh 2000   # replay a seed the output printed
#   INVARIANT_STRICT=0 scripts/invariants-long.sh        # skip known-broken invariants, as CI does
#
# A failure prints the seed, fast-check's path and the shrunk schedule with a trace of the server's
# records; replay it with INVARIANT_SEED=<seed> INVARIANT_PATH=<path>.
set -euo pipefail
cd "$(dirname "$0")/.."
export INVARIANT_RUNS="${1:-${INVARIANT_RUNS:-10000}}"
export INVARIANT_SEED="${INVARIANT_SEED:-random}"
export INVARIANT_STRICT="${INVARIANT_STRICT:-1}"
if [ "$INVARIANT_RUNS" -lt 1000 ]; then
  echo "invariants-long: at least 1,000 schedules (got $INVARIANT_RUNS)" >&2
  exit 2
fi
exec npm run test:jest -- test/unit/invariants.test.ts -t "invariants under random faults"
