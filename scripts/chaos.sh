#!/usr/bin/env bash
# Longer chaos than the default test run (`cargo test --workspace` does 3
# kills per failover test and the default simulation seeds):
#   - the 3-process SIGKILL failover tests (cli/tests/failover/) with
#     ROUNDS kills each, REPEAT times;
#   - the replication simulation (broker/tests/replication_sim/) and the
#     controller simulation (controller/tests/simulation/) with more seeds.
# A failing failover run keeps its nodes' data dirs and logs (the path is
# printed) for inspection.
#
#   scripts/chaos.sh                       # ROUNDS=12 REPEAT=3 SEEDS=3000
#   ROUNDS=30 REPEAT=10 scripts/chaos.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-12}
REPEAT=${REPEAT:-3}
SEEDS=${SEEDS:-3000}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}

for i in $(seq 1 "$REPEAT"); do
  echo "== failover run $i of $REPEAT: $ROUNDS kills per test"
  RIVULET_CHAOS_ROUNDS=$ROUNDS RIVULET_KEEP_FAILED=1 \
    cargo test -p rivulet-cli --test failover -- --test-threads 1 --nocapture 2>&1 |
    grep -E '^(round|sent|whole|new coordinator|test |kept|thread|partition)|panicked|test result'
done
echo "== replication simulation: $SEEDS seeds"
REPL_SIM_SEEDS=$SEEDS cargo test -p rivulet-broker --test replication_sim
echo "== controller simulation: $((SEEDS / 10)) seeds"
SIM_SEEDS=$((SEEDS / 10)) cargo test -p rivulet-controller --test simulation
