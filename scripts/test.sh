#!/usr/bin/env bash
# The test command of the README: installs what the tests need (kcat, the
# Python test clients; scripts/ci-setup.sh), then runs every test of the
# workspace. Extra arguments go to `cargo test` (e.g. `-p rivulet-broker`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ci-setup.sh
# --no-fail-fast: one failing test binary does not hide the results of the others.
cargo test --workspace --no-fail-fast "$@"
