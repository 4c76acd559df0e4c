#!/usr/bin/env bash
# Installs what the end-to-end tests need beyond the Rust toolchain:
#   - kafkajs (npm registry) under target/js for the kafkajs checks (day one
#     and transactions);
#   - kcat (Debian package) for the scripted kcat check;
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

if ! command -v kcat >/dev/null 2>&1; then
  echo "== installing kcat"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -q kcat >/dev/null 2>&1 || {
    as_root apt-get update -q >/dev/null
    as_root apt-get install -y -q kcat >/dev/null
  }
fi
kcat -V | head -1

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
