"""kafka-python (pure Python: Python's ssl module, its own SCRAM) against one
broker whose SSL listener requires client certificates (ssl.client.auth =
required, broker-wide) and whose SASL_SSL listener takes SCRAM-SHA-512:

- over SSL with the client certificate: 20 records produced acks=all, read
  back by a group member that commits; without a certificate the
  connection is refused;
- over SASL_SSL without any certificate (Kafka ignores the broker-wide
  ssl.client.auth on SASL_SSL listeners, KIP-684): the same round trip; a
  wrong password is refused.

Usage: kafka_python_secure_check.py SSL_BOOTSTRAP SASL_SSL_BOOTSTRAP CA CERT KEY TOPIC
Prints "kafka-python secure ok: ..." on success.
"""
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

ssl_bootstrap, sasl_bootstrap, ca, cert, key, topic = sys.argv[1:7]
N = 20
TIMEOUT_S = 30
QUICK = {"api_version_auto_timeout_ms": 5000, "request_timeout_ms": 10000}


def round_trip(name, bootstrap, security):
    t = f"{topic}-{name}"
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **security)
    sent = [f"{name}-{i}" for i in range(N)]
    for v in sent:
        p.send(t, v.encode()).get(timeout=TIMEOUT_S)
    p.close()
    c = KafkaConsumer(t, bootstrap_servers=bootstrap, group_id=f"g-{name}",
                      auto_offset_reset="earliest", enable_auto_commit=False, **security)
    got = []
    deadline = time.time() + TIMEOUT_S
    while len(got) < N and time.time() < deadline:
        for msgs in c.poll(timeout_ms=500).values():
            got += [m.value.decode() for m in msgs]
    assert sorted(got) == sorted(sent), (name, got)
    c.commit()
    committed = sum(c.committed(TopicPartition(t, part)) or 0
                    for part in c.partitions_for_topic(t))
    assert committed == N, (name, committed)
    c.close()
    return f"{name}: {len(got)} read, {committed} committed"


def refused(bootstrap, security):
    """A producer with `security` writes nothing: its construction fails (a
    refused handshake), or its first record does (kafka-python's version
    probe speaks ApiVersions, which a SASL listener answers before
    authentication)."""
    started = time.time()
    try:
        p = KafkaProducer(bootstrap_servers=bootstrap, max_block_ms=10000, **QUICK, **security)
        try:
            p.send(f"{topic}-refused", b"x").get(timeout=15)
        finally:
            p.close(timeout=5)
    except Exception as e:  # NoBrokersAvailable, KafkaTimeoutError, an auth error
        return f"{type(e).__name__} after {time.time() - started:.1f}s"
    raise AssertionError(f"wrote a record with {security}")


SSL = {"security_protocol": "SSL", "ssl_cafile": ca, "ssl_certfile": cert, "ssl_keyfile": key}
SCRAM = {"security_protocol": "SASL_SSL", "ssl_cafile": ca, "sasl_mechanism": "SCRAM-SHA-512",
         "sasl_plain_username": "admin", "sasl_plain_password": "admin-secret"}

report = [
    round_trip("ssl", ssl_bootstrap, SSL),
    "ssl without a certificate: " + refused(ssl_bootstrap, {"security_protocol": "SSL",
                                                            "ssl_cafile": ca}),
    round_trip("sasl", sasl_bootstrap, SCRAM),
    "wrong password: " + refused(sasl_bootstrap, {**SCRAM, "sasl_plain_password": "wrong"}),
]
print("kafka-python secure ok: " + "; ".join(report))
