"""Scripted kafka-python admin check of consumer groups against a running
broker. kafka-python's admin client sends DescribeGroups v3 with
include_authorized_operations=True always and decodes the bitfield into
ACLOperation names (INT32_MIN there, bit 31, raises ValueError); it asks
Metadata v8 for topic and cluster authorized operations the same way.

- describe_consumer_groups of a group with one member: Stable, the member
  with its assignment, authorized operations READ, DESCRIBE, DELETE (Kafka's
  supported group operations without an authorizer);
- delete_consumer_groups while the member is in: NON_EMPTY_GROUP, nothing
  deleted; once it left: deleted, with its committed offsets; a second
  delete: GROUP_ID_NOT_FOUND;
- describe_topics / describe_cluster carry Kafka's topic and cluster
  operations.

Usage: kafka_python_admin_groups_check.py BOOTSTRAP TOPIC GROUP
"""
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import GroupIdNotFoundError, NoError, NonEmptyGroupError
from kafka.structs import OffsetAndMetadata

bootstrap, topic, group = sys.argv[1], sys.argv[2], sys.argv[3]
PARTITIONS = 2
DEADLINE_S = 60

GROUP_OPS = {"READ", "DESCRIBE", "DELETE"}
TOPIC_OPS = {"READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE",
             "DESCRIBE_CONFIGS", "ALTER_CONFIGS"}
CLUSTER_OPS = {"CREATE", "ALTER", "DESCRIBE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS",
               "ALTER_CONFIGS", "IDEMPOTENT_WRITE"}

admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
admin.create_topics([NewTopic(name=topic, num_partitions=PARTITIONS, replication_factor=1)])

[described_topic] = admin.describe_topics([topic])
assert described_topic["error_code"] == 0, described_topic
assert set(described_topic["authorized_operations"]) == TOPIC_OPS, described_topic
cluster = admin.describe_cluster()
assert set(cluster["authorized_operations"]) == CLUSTER_OPS, cluster

consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                         client_id="admin-check-member", enable_auto_commit=False,
                         session_timeout_ms=10000, heartbeat_interval_ms=500)
deadline = time.time() + DEADLINE_S
while len(consumer.assignment()) < PARTITIONS:
    assert time.time() < deadline, f"never assigned: {consumer.assignment()}"
    consumer.poll(timeout_ms=200)
parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
consumer.commit({tp: OffsetAndMetadata(0, "", -1) for tp in parts})

[g] = admin.describe_consumer_groups([group])
assert g.error_code == 0 and g.group == group, g
assert g.state == "Stable" and g.protocol_type == "consumer", g
assert len(g.members) == 1, g.members
member = g.members[0]
assert member.client_id == "admin-check-member", member
assert sorted(member.member_assignment.partitions()) == parts, member.member_assignment
assert set(g.authorized_operations) == GROUP_OPS, g.authorized_operations

[(gid, err)] = admin.delete_consumer_groups([group])
assert gid == group and err is NonEmptyGroupError, (gid, err)
assert set(admin.list_consumer_group_offsets(group)) == set(parts), "offsets went"

consumer.close(autocommit=False)  # LeaveGroup: the group turns Empty
deadline = time.time() + DEADLINE_S
while True:
    [g] = admin.describe_consumer_groups([group])
    if g.state == "Empty" and not g.members:
        break
    assert time.time() < deadline, f"never empty: {g}"
    time.sleep(0.1)
[(gid, err)] = admin.delete_consumer_groups([group])
assert gid == group and err is NoError, (gid, err)
assert admin.list_consumer_group_offsets(group) == {}, "offsets survived the delete"
[g] = admin.describe_consumer_groups([group])
assert g.state == "Dead" and not g.members, g
assert group not in [gid for gid, _ in admin.list_consumer_groups()], "still listed"
[(gid, err)] = admin.delete_consumer_groups([group])
assert err is GroupIdNotFoundError, (gid, err)
admin.close()
print(f"kafka-python admin groups ok: described {sorted(g.authorized_operations)}, "
      "deleted once empty")
