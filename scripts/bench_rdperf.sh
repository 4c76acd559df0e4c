#!/usr/bin/env bash
# Replicated produce throughput measured as a new user would (issue 15): librdkafka's own
# rdkafka_performance, one producer on one partition, 1 KiB records, acks=all, linger.ms 5,
# against one node (RF 1) and against the local 3-node cluster (RF 3, min.insync.replicas 2),
# runs alternated, each node with its defaults (fsync before an acks=all answer).
#
#   scripts/bench_rdperf.sh [RECORDS per run, default 1000000] [PAIRS, default 3]
#
# Needs the release build (`cargo build --release -p rivulet-cli`, which also builds librdkafka
# through rdkafka-sys): rdkafka_performance is compiled once from librdkafka's bundled example
# into target/rdkafka_performance. Ports: RIVULET_BENCH_PORT (default 38000) and up.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
PAIRS=${2:-3}
BASE=${RIVULET_BENCH_PORT:-38000}
R=${RIVULET_BIN:-target/release/rivulet}
P=target/rdkafka_performance
[ -x "$R" ] || { echo "no $R: cargo build --release -p rivulet-cli" >&2; exit 1; }
if [ ! -x "$P" ]; then
  src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/rdkafka-sys-*/librdkafka | tail -1)
  out=$(dirname "$(ls -t target/release/build/rdkafka-sys-*/out/src/librdkafka.a | head -1)")
  zstd=$(ls -t target/release/build/zstd-sys-*/out/libzstd.a | head -1)
  lz4=$(ls -t target/release/build/lz4-sys-*/out/liblz4.a | head -1)
  cc -O2 -w -I"$src/src" -I"$out" "$src/examples/rdkafka_performance.c" -o "$P" \
    "$out/librdkafka.a" "$zstd" "$lz4" -lpthread -lz -lssl -lcrypto -lm -ldl
fi
work=$(mktemp -d "${RIVULET_BENCH_DIR:-/tmp}/rdperf.XXXXXX")
single_pid=""
cleanup() {
  [ -n "$single_pid" ] && kill "$single_pid" 2>/dev/null || true
  "$R" cluster down --dir "$work/cluster" >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
"$R" --set data.dir="$work/single" --set listeners=127.0.0.1:$BASE \
  --set metrics.listener=127.0.0.1:$((BASE + 1)) > "$work/single.log" 2>&1 &
single_pid=$!
"$R" cluster up --dir "$work/cluster" --base-port $((BASE + 10)) > /dev/null 2>&1
one_boot=127.0.0.1:$BASE
three_boot=127.0.0.1:$((BASE + 10)),127.0.0.1:$((BASE + 11)),127.0.0.1:$((BASE + 12))
for _ in $(seq 50); do "$R" -b $one_boot topic list >/dev/null 2>&1 && break; sleep 0.2; done
"$R" -b $one_boot topic create t1 --partitions 1 --replication-factor 1 >/dev/null
"$R" -b $three_boot topic create t3 --partitions 1 --replication-factor 3 \
  --config min.insync.replicas=2 >/dev/null
sleep 2
# MB/s of one run: rdkafka_performance's last summary line.
run() {
  "$P" -P -t "$2" -p 0 -b "$1" -s 1024 -c "$N" -a -1 -X linger.ms=5 2>&1 |
    grep "messages produced" | tail -1 | sed -E 's/.* and ([0-9.]+) MB\/s.*/\1/'
}
echo "rdkafka_performance -P -s 1024 -c $N -a -1 -X linger.ms=5, $PAIRS alternated pairs; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
# Warm-up (connections, metadata, first segment files), not measured.
N_RUN=$N
N=$(( N / 10 > 1000 ? N / 10 : 1000 ))
run $one_boot t1 > /dev/null
run $three_boot t3 > /dev/null
N=$N_RUN
for i in $(seq "$PAIRS"); do
  one=$(run $one_boot t1)
  three=$(run $three_boot t3)
  echo "pair $i: 1 node acks=all $one MB/s, 3 nodes acks=all $three MB/s, ratio $(awk -v a="$three" -v b="$one" 'BEGIN { printf "%.2f", a / b }')"
done
