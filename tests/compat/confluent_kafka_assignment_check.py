"""Manual replica assignment through confluent-kafka's AdminClient (issue
14): a topic created with replica_assignment is placed as asked and takes
records; bad assignments (a broker twice, an unregistered broker) fail with
INVALID_REPLICA_ASSIGNMENT; create_partitions with an assignment grows it.

Usage: confluent_kafka_assignment_check.py BOOTSTRAP TOPIC
"""
import sys

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

bootstrap, topic = sys.argv[1:3]
TIMEOUT_S = 30
admin = AdminClient({"bootstrap.servers": bootstrap})


def create(name, assignment):
    fs = admin.create_topics([NewTopic(name, num_partitions=len(assignment),
                                      replica_assignment=assignment)],
                             operation_timeout=20)
    try:
        fs[name].result(timeout=TIMEOUT_S)
        return None
    except KafkaException as e:
        return e.args[0].code()


assert create(topic, [[1], [1]]) is None
for bad in ([[1, 1]], [[2]]):
    code = create(topic + "-bad", bad)
    assert code == KafkaError.INVALID_REPLICA_ASSIGNMENT, (bad, code)

fs = admin.create_partitions([NewPartitions(topic, 3, replica_assignment=[[1]])],
                             operation_timeout=20)
fs[topic].result(timeout=TIMEOUT_S)
md = admin.list_topics(topic, timeout=TIMEOUT_S)
parts = md.topics[topic].partitions
assert sorted(parts) == [0, 1, 2], parts
assert all(p.replicas == [1] and p.leader == 1 for p in parts.values()), parts
assert topic + "-bad" not in admin.list_topics(timeout=TIMEOUT_S).topics

p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
for part in range(3):
    p.produce(topic, value=b"v", partition=part)
assert p.flush(TIMEOUT_S) == 0, "undelivered records"
print(f"confluent-kafka assignment ok: {len(parts)} partitions on broker 1")
