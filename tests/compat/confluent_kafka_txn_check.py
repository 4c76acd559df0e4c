"""Issue 11 through confluent-kafka (librdkafka in its wheel): commit/abort
on a 2-partition topic read back by read_committed and read_uncommitted
consumers, an open transaction holding read_committed readers at the LSO,
then read-process-write with send_offsets_to_transaction and the
consumer's group metadata (flows in txn_plan.py).

Usage: confluent_kafka_txn_check.py BOOTSTRAP TXN_TOPIC IN_TOPIC OUT_TOPIC GROUP
"""
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import txn_plan as plan

bootstrap, txn_topic, in_topic, out_topic, group = sys.argv[1:6]
CLIENT = "confluent-kafka"
TIMEOUT_S = 30

admin = AdminClient({"bootstrap.servers": bootstrap})
futures = admin.create_topics([
    NewTopic(txn_topic, num_partitions=2, replication_factor=1),
    NewTopic(in_topic, num_partitions=1, replication_factor=1),
    NewTopic(out_topic, num_partitions=1, replication_factor=1),
], operation_timeout=20)
for topic, f in futures.items():
    f.result(timeout=TIMEOUT_S)


def txn_producer(txn_id):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id,
                  "linger.ms": 5, "message.timeout.ms": 20000})
    p.init_transactions(TIMEOUT_S)
    return p


def read_all(topic, partitions, isolation, want):
    """Every (partition, offset, value) of `topic` from the start, once
    `want` records arrived and nothing more came for SETTLE_S."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-{isolation}-reader",
                  "enable.auto.commit": False, "isolation.level": isolation})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got = []
    deadline = time.monotonic() + plan.READ_DEADLINE_S
    settle_until = None
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None:
            assert m.error() is None, f"{isolation} reader of {topic}: {m.error()}"
            got.append((m.partition(), m.offset(), m.value().decode()))
        if len(got) >= want and settle_until is None:
            settle_until = time.monotonic() + plan.SETTLE_S
        if settle_until is not None and time.monotonic() >= settle_until:
            break
    c.close()
    return got


# Flow 1: commit, abort, commit on two partitions.
producer = txn_producer(f"{txn_topic}-producer")
for outcome, records in plan.TXNS:
    producer.begin_transaction()
    for partition, value in records:
        producer.produce(txn_topic, value=value.encode(), partition=partition)
    if outcome == "commit":
        producer.commit_transaction(TIMEOUT_S)
    else:
        # librdkafka's abort purges records not yet sent: flush so the
        # aborted records reach the log (read_uncommitted must see them).
        assert producer.flush(TIMEOUT_S) == 0, "aborted records not delivered"
        producer.abort_transaction(TIMEOUT_S)

committed_n = plan.check_read(
    "read_committed", read_all(txn_topic, 2, "read_committed", len(plan.committed_records())),
    plan.committed_records())
uncommitted_n = plan.check_read(
    "read_uncommitted", read_all(txn_topic, 2, "read_uncommitted", len(plan.all_records())),
    plan.all_records())

# Flow 1b: an open transaction holds read_committed readers at its first
# offset (the LSO), in ListOffsets and in Fetch.
end_readers = {i: Consumer({"bootstrap.servers": bootstrap, "group.id": f"{txn_topic}-{i}-ends",
                            "isolation.level": i})
               for i in ("read_committed", "read_uncommitted")}


def end_offset(isolation):
    _, high = end_readers[isolation].get_watermark_offsets(
        TopicPartition(txn_topic, 0), timeout=TIMEOUT_S, cached=False)
    return high


producer.begin_transaction()
for partition, value in plan.OPEN:
    producer.produce(txn_topic, value=value.encode(), partition=partition)
assert producer.flush(TIMEOUT_S) == 0, "open transaction's records not delivered"
lso, hw = end_offset("read_committed"), end_offset("read_uncommitted")
plan.check_open(lso, hw)
plan.check_read(
    "read_committed during an open transaction",
    read_all(txn_topic, 2, "read_committed", len(plan.committed_records())),
    plan.committed_records())
producer.commit_transaction(TIMEOUT_S)
end_after = plan.becomes(lambda: end_offset("read_committed"), hw + 1)
assert end_after == hw + 1, f"read_committed end after the commit: {end_after}, want {hw + 1}"
for c in end_readers.values():
    c.close()

# Flow 2: read-process-write.
plain = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
for value in plan.INPUT:
    plain.produce(in_topic, value=value.encode(), partition=0)
assert plain.flush(TIMEOUT_S) == 0, "plain records not delivered"

consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "isolation.level": "read_committed"})
consumer.subscribe([in_topic])
inputs = []
deadline = time.monotonic() + plan.READ_DEADLINE_S
while len(inputs) < len(plan.INPUT) and time.monotonic() < deadline:
    m = consumer.poll(0.5)
    if m is not None:
        assert m.error() is None, f"group consumer: {m.error()}"
        inputs.append((m.offset(), m.value().decode()))
assert [v for _, v in inputs] == plan.INPUT, f"input read {inputs}, want {plan.INPUT}"

rpw = txn_producer(f"{out_topic}-producer")


def committed_offset():
    [tp] = consumer.committed([TopicPartition(in_topic, 0)], timeout=TIMEOUT_S)
    assert tp.error is None, f"committed(): {tp.error}"
    return tp.offset


def process(batch, outcome):
    """One read-process-write transaction over `batch`, committed or aborted."""
    rpw.begin_transaction()
    for _, value in batch:
        rpw.produce(out_topic, value=plan.transform(value).encode(), partition=0)
    next_offset = batch[-1][0] + 1
    rpw.send_offsets_to_transaction([TopicPartition(in_topic, 0, next_offset)],
                                    consumer.consumer_group_metadata(), TIMEOUT_S)
    if outcome == "commit":
        rpw.commit_transaction(TIMEOUT_S)
    else:
        assert rpw.flush(TIMEOUT_S) == 0, "aborted records not delivered"  # as above
        rpw.abort_transaction(TIMEOUT_S)


process(inputs[:plan.RPW_BATCH], "commit")
after_commit = plan.becomes(committed_offset, plan.RPW_BATCH)
assert after_commit == plan.RPW_BATCH, f"group offset after commit: {after_commit}, want {plan.RPW_BATCH}"
process(inputs[plan.RPW_BATCH:], "abort")
after_abort = plan.committed_stays(committed_offset, plan.RPW_BATCH)
consumer.close()

outputs = [(0, plan.transform(v)) for v in plan.INPUT]
plan.check_read("output read_committed",
                read_all(out_topic, 1, "read_committed", plan.RPW_BATCH), outputs[:plan.RPW_BATCH])
plan.check_read("output read_uncommitted",
                read_all(out_topic, 1, "read_uncommitted", len(outputs)), outputs)
print(plan.summary(CLIENT, committed_n, uncommitted_n, lso, hw, after_commit, after_abort))
