#!/usr/bin/env bash
# Installs what the end-to-end tests need beyond the Rust toolchain:
#   - OpenSSL's headers for librdkafka's SSL (scripts/build-deps.sh);
#   - kafkajs (npm registry) under target/js for the kafkajs checks (day one
#     and transactions);
#   - kcat (Debian package) for the scripted kcat check;
#   - Go with Sarama and kafka-go (Debian packages) for the Go checks;
#   - PostgreSQL (Debian's postgresql package): the stream tests start their own
#     throwaway server from its binaries (rivulet_testkit::postgres);
#   - a Python virtualenv at target/py with the pinned test clients
#     (kafka-python, confluent-kafka, aiokafka: scripts/requirements-test.txt).
# Idempotent: safe to run on every CI run and on a developer machine.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

bash scripts/build-deps.sh

if ! command -v kcat >/dev/null 2>&1; then
  echo "== installing kcat"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -q kcat >/dev/null 2>&1 || {
    as_root apt-get update -q >/dev/null
    as_root apt-get install -y -q kcat >/dev/null
  }
fi
kcat -V | head -1

# Go and two Go Kafka clients as Debian packages them (source under
# /usr/share/gocode, built in GOPATH mode by tests/compat_clients.rs: there
# is no Go module proxy on the CI machines).
GO_PKGS="golang-go golang-github-shopify-sarama-dev golang-github-segmentio-kafka-go-dev"
if ! command -v go >/dev/null 2>&1 \
  || [ ! -d /usr/share/gocode/src/github.com/Shopify/sarama ] \
  || [ ! -d /usr/share/gocode/src/github.com/segmentio/kafka-go ]; then
  echo "== installing Go and the Debian Go Kafka clients"
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086
  as_root apt-get install -y -q $GO_PKGS >/dev/null 2>&1 || {
    as_root apt-get update -q >/dev/null
    # shellcheck disable=SC2086
    as_root apt-get install -y -q $GO_PKGS >/dev/null
  }
fi
go version
dpkg-query -W -f '${Package} ${Version}\n' golang-github-shopify-sarama-dev golang-github-segmentio-kafka-go-dev

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "== installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -q postgresql >/dev/null 2>&1 || {
    as_root apt-get update -q >/dev/null
    as_root apt-get install -y -q postgresql >/dev/null
  }
fi
ls -d /usr/lib/postgresql/*/bin | tail -1

VENV=target/py
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating Python virtualenv at $VENV"
  mkdir -p target
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check -r scripts/requirements-test.txt
"$VENV/bin/python" - <<'PY'
import aiokafka
import confluent_kafka
import kafka

print("kafka-python", kafka.__version__)
print("confluent-kafka", confluent_kafka.__version__, "(librdkafka", confluent_kafka.libversion()[0] + ")")
print("aiokafka", aiokafka.__version__)
PY

# kafkajs (npm registry) for the kafkajs checks, with the
# machine's Node.js.
JS=target/js
if [ ! -f "$JS/node_modules/kafkajs/package.json" ]; then
  echo "== installing kafkajs under $JS"
  mkdir -p "$JS"
  npm install --prefix "$JS" --no-audit --no-fund --silent kafkajs@2.2.4
fi
node -e "console.log('kafkajs', require('./$JS/node_modules/kafkajs/package.json').version)"
