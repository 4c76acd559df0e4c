#!/usr/bin/env bash
# Security benchmark (issue 13): produce/consume throughput of 1 KiB records
# over SASL_SSL (SCRAM-SHA-512) vs PLAINTEXT on one broker in the same run,
# and the new-connection rate with TLS + SCRAM, through librdkafka
# (confluent-kafka from target/py; scripts/ci-setup.sh installs it). Not part
# of the test run.
#
# Usage: scripts/bench_security.sh [RECORDS] [CONNECTIONS]
#   RIVULET_BIN (default target/release/rivulet; `cargo build --release -p rivulet-cli`)
#   RIVULET_BENCH_PIN=1: the broker on CPU 0, the clients on CPU 1 (as on separate
#   machines: TLS on the client side then does not take the broker's CPU)
#   RIVULET_BENCH_PORT (default 29500): the broker's four ports from there (the fourth: metrics)
#   RIVULET_BENCH_DIR (default /tmp): where the broker's data goes; /dev/shm keeps
#   the disk's writeback of one run's gigabyte out of the next run's figures
#   (each produce run appends RECORDS KiB: 6 runs in all)
# Each measure also prints the broker's and the client's CPU seconds per GB:
# compare those when the machine runs other work (throughput then swings).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${RIVULET_BIN:-target/release/rivulet}
PY=target/py/bin/python
[ -x "$BIN" ] || { echo "build $BIN first: cargo build --release -p rivulet-cli" >&2; exit 1; }
[ -x "$PY" ] || { echo "run scripts/ci-setup.sh first (target/py)" >&2; exit 1; }
DIR=$(mktemp -d -p "${RIVULET_BENCH_DIR:-/tmp}")
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$DIR"' EXIT
"$BIN" certs generate --dir "$DIR/certs" >/dev/null 2>&1
BASE=${RIVULET_BENCH_PORT:-29500}
PLAIN=127.0.0.1:$BASE
SASL=127.0.0.1:$((BASE + 1))
BROKER_PIN=()
CLIENT_PIN=()
if [ "${RIVULET_BENCH_PIN:-0}" = 1 ]; then
  BROKER_PIN=(taskset -c 0)
  CLIENT_PIN=(taskset -c 1)
fi
"${BROKER_PIN[@]}" "$BIN" --set "listeners=PLAINTEXT://$PLAIN,SASL_SSL://$SASL" \
  --set inter.broker.listener.name=PLAINTEXT \
  --set "controller.listener=127.0.0.1:$((BASE + 2))" \
  --set "data.dir=$DIR/data" \
  --set "ssl.certificate.location=$DIR/certs/node.pem" \
  --set "ssl.key.location=$DIR/certs/node.key" \
  --set "ssl.ca.location=$DIR/certs/ca.pem" \
  --set 'sasl.scram.bootstrap.users=SCRAM-SHA-512=[name=admin,password=admin-secret]' \
  --set offsets.topic.replication.factor=1 \
  --set "metrics.listener=127.0.0.1:$((BASE + 3))" \
  >"$DIR/broker.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
  if "$PY" - "$PLAIN" <<'PY' 2>/dev/null; then break; fi
import sys
from confluent_kafka.admin import AdminClient
AdminClient({"bootstrap.servers": sys.argv[1]}).list_topics(timeout=1)
PY
  sleep 0.2
done
RIVULET_BENCH_BROKER_PID=$PID "${CLIENT_PIN[@]}" "$PY" benches/security/security_bench.py "$PLAIN" "$SASL" "$DIR/certs/ca.pem" "${1:-200000}" "${2:-200}"
