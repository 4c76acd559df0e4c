"""KIP-848 through confluent-kafka (librdkafka in its wheel) with
group.protocol=consumer: two members of one group split a 4-partition topic
2/2 and consume 40 records once between them, committing; after both close,
10 more records are produced and a new member resumes with exactly those.

Usage: confluent_kafka_kip848_check.py BOOTSTRAP TOPIC GROUP
"""
import sys
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, topic, group = sys.argv[1:4]
TIMEOUT_S = 60

admin = AdminClient({"bootstrap.servers": bootstrap})
for f in admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)],
                             operation_timeout=20).values():
    f.result(timeout=TIMEOUT_S)


def produce(tag, per_partition):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for part in range(4):
        for i in range(per_partition):
            p.produce(topic, value=f"{tag}-p{part}-{i}".encode(), partition=part)
    assert p.flush(TIMEOUT_S) == 0, "undelivered records"


def member():
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "group.protocol": "consumer", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100})
    c.subscribe([topic])
    return c


def consume(consumers, want, got):
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < want and time.monotonic() < deadline:
        for c in consumers:
            m = c.poll(0.05)
            if m is None:
                continue
            assert m.error() is None, m.error()
            got.append(m.value().decode())
            c.commit(message=m, asynchronous=False)
    assert len(got) >= want, f"only {len(got)} of {want} records"


a, b = member(), member()
deadline = time.monotonic() + TIMEOUT_S
while time.monotonic() < deadline:
    a.poll(0.05)
    b.poll(0.05)
    sizes = sorted([len(a.assignment()), len(b.assignment())])
    if sizes == [2, 2]:
        break
assert sizes == [2, 2], f"assignment sizes {sizes}"
owned = {(tp.topic, tp.partition) for tp in a.assignment()} | {(tp.topic, tp.partition) for tp in b.assignment()}
assert len(owned) == 4, owned
produce("first", 10)
got = []
consume([a, b], 40, got)
time.sleep(0.5)
for c in (a, b):
    m = c.poll(0.2)
    assert m is None or m.error() is not None, "a record beyond the 40"
assert len(set(got)) == 40 and len(got) == 40, f"{len(got)} records, {len(set(got))} distinct"
a.close()
b.close()
print(f"confluent-kafka kip848 ok: 40 records split {sizes[0]}/{sizes[1]}")

produce("second", 3)
c = member()
again = []
consume([c], 12, again)
time.sleep(0.5)
extra = c.poll(0.5)
assert extra is None or extra.error() is not None, "more than the new records"
c.close()
assert sorted(again) == sorted(f"second-p{p}-{i}" for p in range(4) for i in range(3)), again
print("resumed with exactly 12 new")
