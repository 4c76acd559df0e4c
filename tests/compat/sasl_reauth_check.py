"""KIP-368 re-authentication through confluent-kafka (librdkafka 2.16 in
its wheel): a producer over SASL_PLAINTEXT with SCRAM-SHA-512 keeps
producing for several session lifetimes of a broker with a short
connections.max.reauth.ms, and never reconnects (librdkafka's statistics:
each broker's `connects` stays 1), so it re-authenticated on its
connections instead of being closed.

Usage: sasl_reauth_check.py BOOTSTRAP TOPIC SECONDS
"""
import json
import sys
import time

from confluent_kafka import Producer

bootstrap, topic, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
stats = []
p = Producer({"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
              "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin",
              "sasl.password": "admin-secret", "linger.ms": 0,
              "statistics.interval.ms": 500, "stats_cb": stats.append})
sent = 0
delivered = []
end = time.monotonic() + seconds
while time.monotonic() < end:
    p.produce(topic, value=f"r{sent}".encode(),
              on_delivery=lambda err, m: delivered.append(err))
    sent += 1
    p.poll(0.1)
assert p.flush(30) == 0, "records not delivered"
assert len(delivered) == sent and all(e is None for e in delivered), delivered[:5]
last = json.loads(stats[-1])
connects = {name: b.get("connects", 0) for name, b in last["brokers"].items() if b.get("nodeid", -1) >= 0}
assert connects and all(n == 1 for n in connects.values()), connects
print(f"reauth ok: {sent} records over {seconds}s, connects {connects}")
