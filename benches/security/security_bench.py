"""Security overhead, through librdkafka (confluent-kafka's wheel, built with
SSL and SASL): produce and consume throughput of 1 KiB records over
SASL_SSL with SCRAM-SHA-512 against PLAINTEXT on the same broker in the
same run, and the rate of new SASL_SSL (TLS handshake + SCRAM exchange)
connections. Run by scripts/bench_security.sh, which starts the broker.

Usage: security_bench.py PLAINTEXT_ADDR SASL_SSL_ADDR CA_FILE [RECORDS] [CONNECTIONS]
Prints one line per measure and the ratios.
"""
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

plain, sasl_ssl, ca = sys.argv[1:4]
records = int(sys.argv[4]) if len(sys.argv) > 4 else 200_000
connections = int(sys.argv[5]) if len(sys.argv) > 5 else 200
VALUE = b"x" * 1024

SASL = {"security.protocol": "SASL_SSL", "ssl.ca.location": ca, "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "admin", "sasl.password": "admin-secret"}


def conf(kind):
    if kind == "PLAINTEXT":
        return {"bootstrap.servers": plain}
    return {"bootstrap.servers": sasl_ssl, **SASL}


def produce(kind, topic):
    p = Producer({**conf(kind), "linger.ms": 5, "batch.size": 1_000_000, "acks": 1,
                  "queue.buffering.max.messages": 1_000_000, "compression.type": "none"})
    start = time.monotonic()
    for i in range(records):
        while True:
            try:
                p.produce(topic, VALUE)
                break
            except BufferError:
                p.poll(0.01)
        if i % 10_000 == 0:
            p.poll(0)
    assert p.flush(120) == 0
    return records / (time.monotonic() - start)


def consume(kind, topic):
    c = Consumer({**conf(kind), "group.id": f"bench-{kind}-{time.time()}", "enable.auto.commit": False,
                  "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760})
    c.assign([TopicPartition(topic, 0, 0)])
    n = 0
    start = time.monotonic()
    while n < records:
        batch = c.consume(10_000, 5.0)
        if not batch:
            break
        n += sum(1 for m in batch if m.error() is None)
    elapsed = time.monotonic() - start
    c.close()
    assert n == records, f"{kind}: consumed {n} of {records}"
    return n / elapsed


def connect_rate():
    """New connections per second: each a fresh client that completes a
    Metadata request over SASL_SSL (TCP, TLS handshake, SCRAM, Metadata)."""
    start = time.monotonic()
    for _ in range(connections):
        p = Producer({"bootstrap.servers": sasl_ssl, **SASL})
        p.list_topics(timeout=10)
    return connections / (time.monotonic() - start)


admin = AdminClient(conf("PLAINTEXT"))
topics = {kind: f"bench-{kind.lower()}-{int(time.time())}" for kind in ("PLAINTEXT", "SASL_SSL")}
for f in admin.create_topics([NewTopic(t, 1, 1) for t in topics.values()]).values():
    f.result()

results = {}
# Interleaved, twice, best of each: the same broker, the same run.
for _ in range(2):
    for kind in ("PLAINTEXT", "SASL_SSL"):
        r = produce(kind, topics[kind])
        results.setdefault((kind, "produce"), []).append(r)
for _ in range(2):
    for kind in ("PLAINTEXT", "SASL_SSL"):
        r = consume(kind, topics[kind])
        results.setdefault((kind, "consume"), []).append(r)
for (kind, what), rs in sorted(results.items()):
    best = max(rs)
    print(f"{what:8} {kind:10} {best:10.0f} records/s  {best * 1024 / 1e6:7.1f} MB/s  (runs {[round(r) for r in rs]})")
for what in ("produce", "consume"):
    ratio = max(results[("SASL_SSL", what)]) / max(results[("PLAINTEXT", what)])
    print(f"ratio {what} SASL_SSL/PLAINTEXT = {ratio:.2f}")
rate = connect_rate()
print(f"new SASL_SSL connections (TLS + SCRAM-SHA-512 + Metadata) {rate:.0f}/s over {connections}")
