"""Scripted kafka-python check against a running broker: admin create and
list, produce with acks=all, consume the exact records back from the
beginning (manual assignment, no group), and look up offsets by time.

Usage: kafka_python_check.py BOOTSTRAP TOPIC
"""
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

bootstrap, topic = sys.argv[1], sys.argv[2]
# Recent timestamps: old ones would be removed by time retention.
BASE = int(time.time() * 1000) - 60_000

admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
admin.create_topics([NewTopic(name=topic, num_partitions=2, replication_factor=1)])
assert topic in admin.list_topics(), "created topic not listed"

producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
sent = []
for i in range(20):
    value = f"py-{i}".encode()
    md = producer.send(topic, key=f"k{i % 2}".encode(), value=value, partition=i % 2,
                       timestamp_ms=BASE + i).get(timeout=20)
    sent.append((md.partition, md.offset, value))
producer.flush()

consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                         enable_auto_commit=False, consumer_timeout_ms=5000)
parts = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
consumer.assign(parts)
consumer.seek_to_beginning(*parts)
got = []
while len(got) < len(sent):
    batch = consumer.poll(timeout_ms=5000)
    if not batch:
        break
    for tp, records in batch.items():
        for r in records:
            got.append((tp.partition, r.offset, r.value))
assert sorted(got) == sorted(sent), f"mismatch:\n{sorted(got)}\n{sorted(sent)}"

found = consumer.offsets_for_times({TopicPartition(topic, 0): BASE + 5})
assert found[TopicPartition(topic, 0)].offset == 3, found  # records 6, 8, ... are on partition 0
end = consumer.end_offsets(parts)
assert end == {parts[0]: 10, parts[1]: 10}, end
print(f"kafka-python ok: {len(got)} records")
