"""Issue 11 through kafka-python's transactional producer (2.3.x has one:
KafkaProducer(transactional_id=...)): commit/abort on a 2-partition topic
read back by read_committed and read_uncommitted consumers, an open
transaction holding read_committed readers at the LSO, then
read-process-write with send_offsets_to_transaction (flows in txn_plan.py).

Usage: kafka_python_txn_check.py BOOTSTRAP TXN_TOPIC IN_TOPIC OUT_TOPIC GROUP
"""
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata

import txn_plan as plan

bootstrap, txn_topic, in_topic, out_topic, group = sys.argv[1:6]
CLIENT = "kafka-python"

admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
admin.create_topics([
    NewTopic(name=txn_topic, num_partitions=2, replication_factor=1),
    NewTopic(name=in_topic, num_partitions=1, replication_factor=1),
    NewTopic(name=out_topic, num_partitions=1, replication_factor=1),
])
admin.close()


def txn_producer(txn_id):
    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id,
                      linger_ms=5, request_timeout_ms=20000)
    p.init_transactions()
    return p


def read_all(topic, partitions, isolation, want):
    """Every (partition, offset, value) of `topic` from the start, once
    `want` records arrived and nothing more came for SETTLE_S."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      isolation_level=isolation)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    got = []
    deadline = time.monotonic() + plan.READ_DEADLINE_S
    settle_until = None
    while time.monotonic() < deadline:
        for tp, records in c.poll(timeout_ms=200).items():
            got.extend((tp.partition, r.offset, r.value.decode()) for r in records)
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
        producer.send(txn_topic, value=value.encode(), partition=partition)
    # An abort drops batches not yet sent: flush so the aborted records
    # reach the log (read_uncommitted must see them).
    producer.flush()
    if outcome == "commit":
        producer.commit_transaction()
    else:
        producer.abort_transaction()

committed_n = plan.check_read(
    "read_committed", read_all(txn_topic, 2, "read_committed", len(plan.committed_records())),
    plan.committed_records())
uncommitted_n = plan.check_read(
    "read_uncommitted", read_all(txn_topic, 2, "read_uncommitted", len(plan.all_records())),
    plan.all_records())

# Flow 1b: an open transaction holds read_committed readers at its first
# offset (the LSO), in ListOffsets and in Fetch.
p0 = TopicPartition(txn_topic, 0)
end_readers = {i: KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, isolation_level=i)
               for i in ("read_committed", "read_uncommitted")}


def end_offset(isolation):
    return end_readers[isolation].end_offsets([p0])[p0]


producer.begin_transaction()
for partition, value in plan.OPEN:
    producer.send(txn_topic, value=value.encode(), partition=partition)
producer.flush()
lso, hw = end_offset("read_committed"), end_offset("read_uncommitted")
plan.check_open(lso, hw)
plan.check_read(
    "read_committed during an open transaction",
    read_all(txn_topic, 2, "read_committed", len(plan.committed_records())),
    plan.committed_records())
producer.commit_transaction()
end_after = plan.becomes(lambda: end_offset("read_committed"), hw + 1)
assert end_after == hw + 1, f"read_committed end after the commit: {end_after}, want {hw + 1}"
for c in end_readers.values():
    c.close()

# Flow 2: read-process-write.
plain = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
for value in plan.INPUT:
    plain.send(in_topic, value=value.encode(), partition=0).get(timeout=20)
plain.close()

in_tp = TopicPartition(in_topic, 0)
consumer = KafkaConsumer(in_topic, bootstrap_servers=bootstrap, group_id=group,
                         enable_auto_commit=False, auto_offset_reset="earliest",
                         isolation_level="read_committed", session_timeout_ms=10000,
                         heartbeat_interval_ms=500)
inputs = []
deadline = time.monotonic() + plan.READ_DEADLINE_S
while len(inputs) < len(plan.INPUT) and time.monotonic() < deadline:
    for tp, records in consumer.poll(timeout_ms=500).items():
        inputs.extend((r.offset, r.value.decode()) for r in records)
assert [v for _, v in inputs] == plan.INPUT, f"input read {inputs}, want {plan.INPUT}"

rpw = txn_producer(f"{out_topic}-producer")


def process(batch, outcome):
    """One read-process-write transaction over `batch`, committed or aborted."""
    rpw.begin_transaction()
    for _, value in batch:
        rpw.send(out_topic, value=plan.transform(value).encode(), partition=0)
    next_offset = batch[-1][0] + 1
    rpw.send_offsets_to_transaction({in_tp: OffsetAndMetadata(next_offset, "", -1)}, group)
    if outcome == "commit":
        rpw.commit_transaction()
    else:
        # kafka-python 2.3.3 crashes its sender thread (ValueError in
        # RecordAccumulator.abort_undrained_batches, fixed upstream in
        # dpkp/kafka-python#3010) when a batch is in flight at abort, and
        # its sender only drains batches once the queued AddOffsetsToTxn
        # and TxnOffsetCommit are done: flush first so none is in flight.
        rpw.flush()
        rpw.abort_transaction()


def committed():
    return consumer.committed(in_tp)


process(inputs[:plan.RPW_BATCH], "commit")
after_commit = plan.becomes(committed, plan.RPW_BATCH)
assert after_commit == plan.RPW_BATCH, f"group offset after commit: {after_commit}, want {plan.RPW_BATCH}"
process(inputs[plan.RPW_BATCH:], "abort")
after_abort = plan.committed_stays(committed, plan.RPW_BATCH)
consumer.close()

outputs = [(0, plan.transform(v)) for v in plan.INPUT]
plan.check_read("output read_committed",
                read_all(out_topic, 1, "read_committed", plan.RPW_BATCH), outputs[:plan.RPW_BATCH])
plan.check_read("output read_uncommitted",
                read_all(out_topic, 1, "read_uncommitted", len(outputs)), outputs)
producer.close()
rpw.close()
print(plan.summary(CLIENT, committed_n, uncommitted_n, lso, hw, after_commit, after_abort))
