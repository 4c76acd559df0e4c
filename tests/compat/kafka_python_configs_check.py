"""Scripted kafka-python check of what Kafka's LogValidator refuses and of
dynamic broker configs, against a running broker:

- a record without a key sent to a compacted topic fails with
  InvalidRecordError and is not stored; a keyed one goes in;
- a record two hours ahead of the broker's clock fails with
  InvalidTimestampError (Kafka 4's message.timestamp.after.max.ms, 1 h);
- alter_configs of the BROKER resource "" (the cluster-wide dynamic
  defaults, as kafka-configs.sh --entity-default) sets log.retention.ms;
  describe_configs of a topic without an override then reports it with
  source DYNAMIC_DEFAULT_BROKER_CONFIG (3) and, with include_synonyms,
  the layers under it.

Usage: kafka_python_configs_check.py BOOTSTRAP TOPIC
"""
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import InvalidRecordError, InvalidTimestampError

bootstrap, topic = sys.argv[1], sys.argv[2]
compacted = topic + "-compacted"

admin = KafkaAdminClient(bootstrap_servers=bootstrap)
admin.create_topics([
    NewTopic(topic, 1, 1),
    NewTopic(compacted, 1, 1, topic_configs={"cleanup.policy": "compact"}),
])

producer = KafkaProducer(bootstrap_servers=bootstrap, retries=0, linger_ms=0)
try:
    producer.send(compacted, value=b"no key", partition=0).get(timeout=20)
    sys.exit("a keyless record was accepted by a compacted topic")
except InvalidRecordError:
    pass
producer.send(compacted, key=b"k", value=b"keyed", partition=0).get(timeout=20)
future_ms = int(time.time() * 1000) + 2 * 3600 * 1000
try:
    producer.send(topic, value=b"late", partition=0, timestamp_ms=future_ms).get(timeout=20)
    sys.exit("a record two hours ahead was accepted")
except InvalidTimestampError:
    pass
producer.close()

consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                         consumer_timeout_ms=3000)
tp = TopicPartition(compacted, 0)
consumer.assign([tp])
consumer.seek_to_beginning(tp)
stored = [(m.key, m.value) for m in consumer]
consumer.close()
if stored != [(b"k", b"keyed")]:
    sys.exit(f"compacted topic holds {stored!r}")

result = admin.alter_configs([
    ConfigResource(ConfigResourceType.BROKER, "", configs={"log.retention.ms": "3600000"})
])
errors = [r[0] for r in result.resources]
if errors != [0]:
    sys.exit(f"alter_configs of the cluster-wide defaults: {result!r}")

described = admin.describe_configs(
    [ConfigResource(ConfigResourceType.TOPIC, topic)], include_synonyms=True)
entry = None
for response in described:
    for resource in response.resources:
        for config in resource[4]:
            if config[0] == "retention.ms":
                entry = config
if entry is None:
    sys.exit(f"retention.ms not described: {described!r}")
name, value, read_only, source, sensitive, synonyms = entry
synonyms = [(s[0], s[1], s[2]) for s in synonyms]
if (value, source) != ("3600000", 3):
    sys.exit(f"retention.ms: {entry!r}")
if synonyms[0] != ("log.retention.ms", "3600000", 3):
    sys.exit(f"synonyms: {synonyms!r}")
print(f"kafka-python configs ok: retention.ms={value} source={source} synonyms={synonyms}")
