#!/usr/bin/env bash
# What building the workspace needs beyond the Rust toolchain and a C
# compiler: OpenSSL's headers and pkg-config, for librdkafka's SSL and SASL
# (the rdkafka crate's `ssl` feature, used by the `rivulet` client commands,
# librdkafka stream jobs and the tests). Debian's machine image has them;
# installed here when missing. Idempotent.
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! pkg-config --exists openssl 2>/dev/null; then
  echo "== installing libssl-dev and pkg-config (librdkafka's SSL)"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -q libssl-dev pkg-config >/dev/null 2>&1 || {
    as_root apt-get update -q >/dev/null
    as_root apt-get install -y -q libssl-dev pkg-config >/dev/null
  }
fi
echo "openssl $(pkg-config --modversion openssl) (headers for librdkafka)"
