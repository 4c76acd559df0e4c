#!/usr/bin/env bash
# Coverage-guided fuzzing of the request path, the record-batch codecs and
# the SASL exchanges (cargo-fuzz / libFuzzer on the nightly toolchain; the
# crate is fuzz/, outside the workspace and the default build).
#
#   scripts/fuzz.sh build                 # build every target (the CI check)
#   scripts/fuzz.sh seeds                 # regenerate fuzz/corpus/<target>/
#   scripts/fuzz.sh request 10000000      # run a target for N executions
#   scripts/fuzz.sh records 30m           # ... or for a duration (s, m, h)
#   scripts/fuzz.sh sasl 10m              # SASL parsers, SCRAM both sides
#   scripts/fuzz.sh sasl_session 10m      # a SASL listener's connection
#   scripts/fuzz.sh records 1000000 -max_len=65536   # extra libFuzzer flags
#
# A run starts from the committed seeds (fuzz/corpus/<target>/) and the
# regressions (fuzz/regressions/<target>/) and keeps what it learns in
# fuzz/target-corpus/<target>/ (not committed). A crash is written to
# fuzz/artifacts/<target>/; minimise it with `cargo +nightly fuzz tmin`, copy
# it to fuzz/regressions/<target>/ and fix it: `cargo test --workspace` then
# replays it (broker/tests/fuzz_corpus.rs, protocol/tests/fuzz_corpus.rs).
#
# Installs cargo-fuzz from crates.io on first use (never in the default
# test path). Prints executions, exec/s and libFuzzer's final cov/ft.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
TARGETS=(request records sasl sasl_session)
# No sanitizer by default: the code under test is safe Rust, and the request
# target runs a whole broker, where AddressSanitizer halves the exec rate.
# FUZZ_SANITIZER=address instruments the Rust code (the cc crate would
# instrument the C libraries too, which breaks librdkafka's configure step,
# so CFLAGS turns that off again). Debug assertions and overflow checks are
# on (-a): an overflow on input from the network is a finding.
SANITIZER="${FUZZ_SANITIZER:-none}"
FUZZ_FLAGS=(-s "$SANITIZER" -a)
if [ "$SANITIZER" = address ]; then
  export CFLAGS="${CFLAGS:-} -fno-sanitize=address"
  export CXXFLAGS="${CXXFLAGS:-} -fno-sanitize=address"
fi

usage() {
  sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

ensure_cargo_fuzz() {
  if ! cargo +"$TOOLCHAIN" fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
  fi
}

# Seconds for a duration like 90, 90s, 40m, 2h; empty if $1 is not one.
duration_secs() {
  case "$1" in
    *h) echo $((${1%h} * 3600)) ;;
    *m) echo $((${1%m} * 60)) ;;
    *s) echo "${1%s}" ;;
    *) ;;
  esac
}

cmd="${1:-}"
[ -n "$cmd" ] || usage
shift

case "$cmd" in
  -h | --help | help) usage ;;
  build)
    ensure_cargo_fuzz
    start=$(date +%s)
    (cd fuzz && cargo +"$TOOLCHAIN" fuzz build "${FUZZ_FLAGS[@]}" "$@")
    echo "fuzz targets built in $(($(date +%s) - start)) s: ${TARGETS[*]}"
    ;;
  seeds)
    # The seeds come from the harnesses (fuzz/src/), written by ignored
    # tests of the smoke-test files, so stable and the main build suffice.
    cargo test -p rivulet-protocol --test fuzz_corpus -- --ignored write_records_seeds
    cargo test -p rivulet-protocol --test fuzz_corpus -- --ignored write_sasl_seeds
    cargo test -p rivulet-broker --test fuzz_corpus -- --ignored write_request_seeds
    cargo test -p rivulet-broker --test fuzz_corpus -- --ignored write_sasl_session_seeds
    du -sh fuzz/corpus/*
    ;;
  request | records | sasl | sasl_session)
    target="$cmd"
    amount="${1:-1000000}"
    shift || true
    ensure_cargo_fuzz
    limit_flag="-runs=$amount"
    secs=$(duration_secs "$amount")
    if [ -n "$secs" ]; then
      limit_flag="-max_total_time=$secs"
    fi
    work="fuzz/target-corpus/$target"
    mkdir -p "$work" "fuzz/artifacts/$target" "fuzz/regressions/$target"
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    # One process, one job: without -jobs, libFuzzer fuzzes in this process
    # (-jobs=1 would run a worker writing to fuzz-0.log instead).
    echo "== fuzz $target ($limit_flag, one job)"
    start=$(date +%s)
    set +e
    # Paths are relative to fuzz/, where cargo fuzz runs. The first corpus
    # directory receives new inputs; the others are read only.
    (cd fuzz && cargo +"$TOOLCHAIN" fuzz run "${FUZZ_FLAGS[@]}" "$target" \
      "target-corpus/$target" "corpus/$target" "regressions/$target" -- \
      "$limit_flag" -print_final_stats=1 \
      -artifact_prefix="artifacts/$target/" "$@") 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    set -e
    elapsed=$(($(date +%s) - start))
    echo "== summary: $target"
    execs=$(awk '/stat::number_of_executed_units:/ { print $2 }' "$log" | tail -1)
    if [ -z "$execs" ]; then
      # A run that died early prints no final stats: its last status line.
      execs="$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#') (last status line)"
    fi
    rate=$(awk '/stat::average_exec_per_sec:/ { print $2 }' "$log" | tail -1)
    # The last status line libFuzzer printed carries cov: and ft:.
    last=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: ' | tail -1 || true)
    cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.*ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(sed -nE 's/.*corp: ([0-9]+\/[0-9a-zA-Z]+).*/\1/p' <<<"$last")
    echo "executions:  ${execs:-?}"
    echo "exec/s:      ${rate:-?} (wall ${elapsed} s)"
    echo "cov / ft:    ${cov:-?} / ${ft:-?}"
    echo "corpus:      ${corp:-?}"
    # Slow units (-report_slow_units, 10 s) are noted, not failures.
    slow=$(grep -c 'Test unit written to .*/slow-unit-' "$log" || true)
    echo "slow units:  ${slow:-0} (fuzz/artifacts/$target/slow-unit-*)"
    crashes=$(grep -E 'Test unit written to' "$log" | grep -v '/slow-unit-' || true)
    if [ "$status" -ne 0 ] || [ -n "$crashes" ]; then
      echo "crash (exit $status):"
      grep -E 'Test unit written to|^==[0-9]+==|panicked at|SUMMARY|exiting' "$log" |
        grep -v '/slow-unit-' || true
      exit 1
    fi
    echo "crashes:     none"
    ;;
  *) usage ;;
esac
