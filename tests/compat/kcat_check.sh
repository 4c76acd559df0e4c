#!/usr/bin/env bash
# Scripted kcat check against a running broker: list metadata, produce keyed
# lines, consume them back from the beginning and compare exactly.
# Usage: kcat_check.sh BOOTSTRAP TOPIC
set -euo pipefail
BS="$1"
TOPIC="$2"
kcat -b "$BS" -L -t "$TOPIC" >/dev/null 2>&1 || true   # auto-creates the topic
expected=$(printf 'k1:v1\nk2:v2 with spaces\nk3:\xc3\xa9t\xc3\xa9\n')
printf '%s\n' "$expected" | kcat -b "$BS" -P -t "$TOPIC" -p 0 -K: -z snappy
got=$(kcat -b "$BS" -C -t "$TOPIC" -p 0 -o beginning -e -q -f '%k:%s\n')
if [ "$got" != "$expected" ]; then
  echo "kcat round trip mismatch" >&2
  echo "expected: $expected" >&2
  echo "got:      $got" >&2
  exit 1
fi
kcat -b "$BS" -L -t "$TOPIC" | grep -q "topic \"$TOPIC\" with 1 partitions"
echo "kcat ok: $(printf '%s\n' "$got" | wc -l) records"
