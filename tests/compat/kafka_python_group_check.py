"""Scripted kafka-python consumer-group check against a running broker: two
KafkaConsumers in one group (each on its own thread, auto-commit off) split
a 4-partition topic 2/2 and consume all 40 records between them, commit and
close; a third consumer in the same group then gets exactly the 10 records
produced afterwards (it resumes at the committed offsets, no earlier).

Usage: kafka_python_group_check.py BOOTSTRAP TOPIC GROUP
"""
import sys
import threading
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

bootstrap, topic, group = sys.argv[1], sys.argv[2], sys.argv[3]
PARTITIONS = 4
FIRST, MORE = 40, 10
DEADLINE_S = 60

admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
admin.create_topics([NewTopic(name=topic, num_partitions=PARTITIONS, replication_factor=1)])
admin.close()

producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)


def produce(tag, n):
    """n records round-robin over the partitions; returns {(partition, offset, value)}."""
    sent = set()
    for i in range(n):
        value = f"{tag}-{i}".encode()
        md = producer.send(topic, value=value, partition=i % PARTITIONS).get(timeout=20)
        sent.add((md.partition, md.offset, value))
    producer.flush()
    return sent


def new_consumer(name):
    return KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                         client_id=name, enable_auto_commit=False,
                         auto_offset_reset="earliest", session_timeout_ms=10000,
                         heartbeat_interval_ms=500, request_timeout_ms=30000)


first = produce("first", FIRST)
assert len(first) == FIRST, first

lock = threading.Lock()
done = threading.Event()
# name -> {"records": [...], "assigned": [...], "positions": {p: pos},
#          "committed": {p: offset}, "error": str}
state = {}


def member(name):
    s = {"records": [], "assigned": [], "positions": {}, "committed": {}, "error": None}
    with lock:
        state[name] = s
    try:
        c = new_consumer(name)
        while not done.is_set():
            batch = c.poll(timeout_ms=200)
            got = [(tp.partition, r.offset, r.value) for tp, rs in batch.items() for r in rs]
            assigned = sorted(tp.partition for tp in c.assignment())
            positions = {tp.partition: c.position(tp) for tp in c.assignment()}
            with lock:
                s["records"].extend(got)
                s["assigned"] = assigned
                s["positions"] = positions
        # Commit the positions of the final assignment, synchronously.
        c.commit()
        committed = {p: c.committed(TopicPartition(topic, p)) for p in s["assigned"]}
        with lock:
            s["committed"] = committed
        c.close()
    except Exception as e:  # reported by the main thread
        with lock:
            s["error"] = repr(e)


def settled():
    """Both members hold 2 disjoint partitions each, read to the end, and
    together received every record."""
    with lock:
        if len(state) != 2 or any(s["error"] for s in state.values()):
            return False
        a, b = (state[n] for n in ("member-a", "member-b"))
        split = (len(a["assigned"]) == 2 and len(b["assigned"]) == 2
                 and set(a["assigned"]) | set(b["assigned"]) == set(range(PARTITIONS)))
        at_end = all(pos == FIRST // PARTITIONS
                     for s in (a, b) for pos in s["positions"].values())
        union = set(a["records"]) | set(b["records"])
        return split and at_end and union == first


threads = [threading.Thread(target=member, args=(n,)) for n in ("member-a", "member-b")]
for t in threads:
    t.start()
deadline = time.time() + DEADLINE_S
while not settled():
    with lock:
        errors = [s["error"] for s in state.values() if s["error"]]
    if errors or time.time() > deadline:
        done.set()
        for t in threads:
            t.join(timeout=30)
        with lock:
            summary = {n: {k: (v if k != "records" else len(v)) for k, v in s.items()}
                       for n, s in state.items()}
        sys.exit(f"group never settled: {summary}")
    time.sleep(0.1)
done.set()
for t in threads:
    t.join(timeout=30)
    assert not t.is_alive(), "a member did not close"

a, b = state["member-a"], state["member-b"]
assert not a["error"] and not b["error"], (a["error"], b["error"])
assert not set(a["assigned"]) & set(b["assigned"]), (a["assigned"], b["assigned"])
union = set(a["records"]) | set(b["records"])
assert union == first, f"mismatch:\n{sorted(union)}\n{sorted(first)}"
for s in (a, b):
    assert s["committed"] == {p: FIRST // PARTITIONS for p in s["assigned"]}, s["committed"]
split = f"{len(a['assigned'])}/{len(b['assigned'])}"
duplicates = len(a["records"]) + len(b["records"]) - len(union)

# Resume: a new member of the same group starts at the committed offsets.
more = produce("more", MORE)
c = new_consumer("member-c")
got = []
deadline = time.time() + DEADLINE_S
while len(got) < MORE and time.time() < deadline:
    for tp, rs in c.poll(timeout_ms=500).items():
        got.extend((tp.partition, r.offset, r.value) for r in rs)
# Anything beyond the 10 (a re-read of committed records) would show up now.
settle = time.time() + 1.5
while time.time() < settle:
    for tp, rs in c.poll(timeout_ms=200).items():
        got.extend((tp.partition, r.offset, r.value) for r in rs)
c.close(autocommit=False)
assert len(got) == MORE and set(got) == more, f"resumed wrong:\n{sorted(got)}\n{sorted(more)}"
producer.close()
print(f"kafka-python group ok: {len(union)} records split {split} "
      f"({duplicates} re-read), resumed with exactly {len(got)} new")
