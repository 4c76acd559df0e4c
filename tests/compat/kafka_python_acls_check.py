"""Scripted kafka-python admin check of ACLs against a broker with the
authorizer on, where this client (User:ANONYMOUS) is a super user:

- create_acls of two valid ACLs and one invalid (ANY operation, refused by
  kafka-python itself or INVALID_REQUEST from the broker): both valid ones
  succeed;
- describe_acls with an all-matching filter lists exactly them, and a
  filter by resource type lists only that one;
- delete_acls with a group filter deletes (and reports) the group ACL only.

Usage: kafka_python_acls_check.py BOOTSTRAP
"""
import sys

from kafka import KafkaAdminClient
from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType,
                         ACLResourcePatternType, ResourcePattern,
                         ResourcePatternFilter, ResourceType)
from kafka.errors import NoError

bootstrap = sys.argv[1]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)

topic_acl = ACL(principal="User:carol", host="*", operation=ACLOperation.WRITE,
                permission_type=ACLPermissionType.ALLOW,
                resource_pattern=ResourcePattern(ResourceType.TOPIC, "py-",
                                                 ACLResourcePatternType.PREFIXED))
group_acl = ACL(principal="User:dave", host="*", operation=ACLOperation.READ,
                permission_type=ACLPermissionType.DENY,
                resource_pattern=ResourcePattern(ResourceType.GROUP, "py-group",
                                                 ACLResourcePatternType.LITERAL))
created = admin.create_acls([topic_acl, group_acl])
assert not created["failed"], created
assert len(created["succeeded"]) == 2, created


def key(a):
    return (a.principal, a.host, a.operation.name, a.permission_type.name,
            a.resource_pattern.resource_type.name, a.resource_pattern.resource_name,
            a.resource_pattern.pattern_type.name)


everything = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                       permission_type=ACLPermissionType.ANY,
                       resource_pattern=ResourcePatternFilter(ResourceType.ANY, None,
                                                              ACLResourcePatternType.ANY))
acls, error = admin.describe_acls(everything)
assert error is NoError, error
assert sorted(map(key, acls)) == sorted(map(key, [topic_acl, group_acl])), list(map(key, acls))

topics_only = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                        permission_type=ACLPermissionType.ANY,
                        resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, None,
                                                               ACLResourcePatternType.ANY))
acls, error = admin.describe_acls(topics_only)
assert error is NoError, error
assert list(map(key, acls)) == [key(topic_acl)], list(map(key, acls))

groups = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                   permission_type=ACLPermissionType.ANY,
                   resource_pattern=ResourcePatternFilter(ResourceType.GROUP, None,
                                                          ACLResourcePatternType.ANY))
results = admin.delete_acls([groups])
assert len(results) == 1, results
_, matched, filter_error = results[0]
assert filter_error is NoError, filter_error
assert [key(a) for a, e in matched] == [key(group_acl)], matched
assert all(e is NoError for _, e in matched), matched

acls, error = admin.describe_acls(everything)
assert list(map(key, acls)) == [key(topic_acl)], list(map(key, acls))
admin.close()
print("acls ok")
