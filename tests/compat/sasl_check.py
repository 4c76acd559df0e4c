"""SASL through confluent-kafka (librdkafka in its wheel): SCRAM users
managed with the AdminClient (AlterUserScramCredentials,
DescribeUserScramCredentials) over SASL_SSL as the bootstrap admin, then
used: SCRAM-SHA-256 and PLAIN over SASL_PLAINTEXT (produce, a consumer group
that commits), SCRAM-SHA-512 over SASL_SSL; a wrong password and an unknown
user refused with Kafka's message; a deleted credential refused.

Usage: sasl_check.py SASL_SSL_BOOTSTRAP SASL_PLAINTEXT_BOOTSTRAP CA_FILE TOPIC
Prints "sasl ok: ..." on success.
"""
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, NewTopic, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)

ssl_bootstrap, plain_bootstrap, ca, topic = sys.argv[1:5]
TIMEOUT_S = 30
FAILED = "Authentication failed during authentication due to invalid credentials with SASL mechanism"


def settings(bootstrap, protocol, mechanism, user, password):
    s = {"bootstrap.servers": bootstrap, "security.protocol": protocol,
         "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password}
    if protocol == "SASL_SSL":
        s["ssl.ca.location"] = ca
    return s


ADMIN = settings(ssl_bootstrap, "SASL_SSL", "SCRAM-SHA-512", "admin", "admin-secret")
admin = AdminClient(ADMIN)

# Users, as kafka-configs.sh --alter --add-config 'SCRAM-SHA-256=[...]' does.
futures = admin.alter_user_scram_credentials([
    UserScramCredentialUpsertion("alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192),
                                 b"alice-secret"),
    UserScramCredentialUpsertion("bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                                 b"bob-secret"),
], request_timeout=TIMEOUT_S)
for user, f in futures.items():
    f.result()
described = admin.describe_user_scram_credentials(["alice", "bob"], request_timeout=TIMEOUT_S)
alice = described["alice"].result()
infos = [(i.mechanism, i.iterations) for i in alice.scram_credential_infos]
assert infos == [(ScramMechanism.SCRAM_SHA_256, 8192)], infos
bob = described["bob"].result()
assert [(i.mechanism, i.iterations) for i in bob.scram_credential_infos] == \
    [(ScramMechanism.SCRAM_SHA_512, 4096)]
everyone = admin.describe_user_scram_credentials(request_timeout=TIMEOUT_S).result()
assert {"admin", "alice", "bob"} <= set(everyone), everyone
try:
    admin.describe_user_scram_credentials(["nobody"], request_timeout=TIMEOUT_S)["nobody"].result()
    raise AssertionError("describing a user without credentials succeeded")
except KafkaException as e:
    assert "RESOURCE_NOT_FOUND" in str(e) or "does not exist" in str(e), e
# Deleting a credential that does not exist: RESOURCE_NOT_FOUND.
try:
    admin.alter_user_scram_credentials([
        UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_256)],
        request_timeout=TIMEOUT_S)["bob"].result()
    raise AssertionError("deleting a missing credential succeeded")
except KafkaException as e:
    assert "RESOURCE_NOT_FOUND" in str(e) or "does not exist" in str(e), e

admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result()

# alice: SCRAM-SHA-256 over SASL_PLAINTEXT, then PLAIN against the same store.
N = 20
for mechanism in ("SCRAM-SHA-256", "PLAIN"):
    p = Producer({**settings(plain_bootstrap, "SASL_PLAINTEXT", mechanism, "alice", "alice-secret"),
                  "linger.ms": 5})
    for i in range(N // 2):
        p.produce(topic, value=f"{mechanism}-{i}".encode())
    assert p.flush(TIMEOUT_S) == 0, f"{mechanism}: records not delivered"

# bob consumes over SASL_SSL with SCRAM-SHA-512 in a group and commits.
group = f"{topic}-group"
c = Consumer({**settings(ssl_bootstrap, "SASL_SSL", "SCRAM-SHA-512", "bob", "bob-secret"),
              "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.subscribe([topic])
got = []
deadline = time.monotonic() + TIMEOUT_S
while len(got) < N and time.monotonic() < deadline:
    m = c.poll(0.5)
    if m is None:
        continue
    assert m.error() is None, m.error()
    got.append(m.value().decode())
assert len(got) == N, got
c.commit(asynchronous=False)
committed = c.committed([TopicPartition(topic, 0)], timeout=TIMEOUT_S)
assert committed[0].offset == N, committed
c.close()


def refused(conf):
    """The errors librdkafka reports (error_cb) for a client that cannot
    authenticate: it connects to the bootstrap server when created."""
    errors = []
    p = Producer({**conf, "error_cb": lambda e: errors.append(str(e))})
    deadline = time.monotonic() + 15
    while not any("Authentication failed" in e for e in errors) and time.monotonic() < deadline:
        p.poll(0.1)
    return "\n".join(errors)


wrong = refused(settings(ssl_bootstrap, "SASL_SSL", "SCRAM-SHA-512", "bob", "not-bobs"))
assert f"{FAILED} SCRAM-SHA-512" in wrong, wrong
unknown = refused(settings(ssl_bootstrap, "SASL_SSL", "SCRAM-SHA-512", "mallory", "x"))
assert f"{FAILED} SCRAM-SHA-512" in unknown, unknown
plain_wrong = refused(settings(plain_bootstrap, "SASL_PLAINTEXT", "PLAIN", "alice", "nope"))
assert "Invalid username or password" in plain_wrong, plain_wrong

# Delete alice's credential: she is refused from then on.
admin.alter_user_scram_credentials([
    UserScramCredentialDeletion("alice", ScramMechanism.SCRAM_SHA_256)],
    request_timeout=TIMEOUT_S)["alice"].result()
gone = refused(settings(plain_bootstrap, "SASL_PLAINTEXT", "SCRAM-SHA-256", "alice", "alice-secret"))
assert f"{FAILED} SCRAM-SHA-256" in gone, gone

print(f"sasl ok: {N} records produced by alice (SCRAM-SHA-256, PLAIN), consumed and committed by bob "
      f"(SCRAM-SHA-512 over SASL_SSL); wrong password, unknown user and deleted user refused")
