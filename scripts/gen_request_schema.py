#!/usr/bin/env python3
"""Generate protocol/src/request_bounds/schema.rs from Apache Kafka's message
definitions (clients/src/main/resources/common/message/*Request.json and
*Response.json).

The output is a table of the wire layout of every request body: for each
field the versions it is present in, its type and, for tagged fields, its
tag. `rivulet_protocol::request_bounds` walks a frame with this table before
`kafka-protocol` decodes it, so that no count read from the wire can size an
allocation the frame's own bytes cannot back. Nullability and defaults are
not needed (the walk accepts null everywhere), nor are names beyond comments.

Usage: scripts/gen_request_schema.py KAFKA_MESSAGE_DIR > protocol/src/request_bounds/schema.rs

LATER_VERSIONS lists request versions added after the definitions this table
was generated from, whose body is the same as an earlier version's;
BY_TOPIC_ID those whose later version addresses topics by id instead of name
(KIP-516).
"""
import json
import os
import re
import sys

# (message name, new max version, comment): body unchanged from the prior version.
LATER_VERSIONS = {
    "ProduceRequest": (12, "v12 (KIP-890 part 2) has the body of v11"),
    "ProduceResponse": (12, "v12 (KIP-890 part 2) has the body of v11"),
    "ConsumerGroupDescribeRequest": (1, "v1 (KIP-1099, MemberType in the response) has the body of v0"),
}

# (message name, version, array field): from `version` on, the named array's
# elements carry the topic's id (uuid) instead of its name (KIP-516; Produce
# v13 is Kafka 4.1's).
BY_TOPIC_ID = {
    "ProduceRequest": (13, "TopicData", "v13 (KIP-516) names topics by id"),
    "ProduceResponse": (13, "Responses", "v13 (KIP-516) names topics by id"),
}

MAX = 0x7FFF


def by_topic_id(m, version, array):
    """Name stops at `version` - 1 in the elements of `array`; TopicId follows it."""
    for f in m["fields"]:
        if f["name"] != array:
            continue
        fields = f["fields"]
        i = next(i for i, e in enumerate(fields) if e["name"] == "Name")
        lo = versions(fields[i]["versions"])[0]
        fields[i] = dict(fields[i], versions="%d-%d" % (lo, version - 1))
        fields.insert(i + 1, {"name": "TopicId", "type": "uuid", "versions": "%d+" % version})
        v = versions(m["validVersions"])
        m["validVersions"] = "%d-%d" % (v[0], max(v[1], version))
        return
    sys.exit("%s has no array %s" % (m["name"], array))


def load(path):
    with open(path) as f:
        text = "\n".join(l for l in f if not l.lstrip().startswith("//"))
    return json.loads(text)


def versions(s, default=None):
    if s is None:
        return default
    s = str(s).strip()
    if s == "none":
        return None
    if s.endswith("+"):
        return (int(s[:-1]), MAX)
    if "-" in s:
        a, b = s.split("-")
        return (int(a), int(b))
    return (int(s), int(s))


FIXED = {"bool": 1, "int8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
         "int64": 8, "float64": 8, "uuid": 16}


class Gen:
    def __init__(self):
        self.statics = []  # (name, body lines)
        self.names = set()

    def kind(self, ty, field, owner, element=False):
        if ty.startswith("[]"):
            inner = ty[2:]
            return "Kind::Array(&%s)" % self.kind(inner, field, owner, element=True)
        if ty in FIXED:
            return "Kind::Fixed(%d)" % FIXED[ty]
        if ty == "string":
            return "Kind::Str"
        if ty == "bytes":
            return "Kind::Bytes"
        if ty == "records":
            return "Kind::Bytes"
        # A struct: inline fields, or a common struct of the message.
        fields = field.get("fields")
        if fields is None:
            fields = owner["common"][ty]
        name = snake(ty)
        if not name.startswith(owner["prefix"]):
            name = owner["prefix"] + "_" + name
        # A nullable struct is preceded by an int8 marker: -1 null, 1 present.
        wrap = "Kind::OptStruct(%s)" if "nullableVersions" in field and not element else "Kind::Struct(%s)"
        return wrap % self.struct(name, fields, owner)

    def struct(self, name, fields, owner):
        name = name.upper()
        base, i = name, 2
        while name in self.names:
            name = "%s_%d" % (base, i)
            i += 1
        self.names.add(name)
        lines = []
        for f in fields:
            v = versions(f["versions"])
            if v is None:
                continue
            tag = "None"
            if "tag" in f:
                tv = versions(f.get("taggedVersions"))
                tag = "Some((%d, V(%d, %d)))" % (int(f["tag"]), tv[0], tv[1])
            flex = f.get("flexibleVersions")
            fl = "FlexOverride::Inherit"
            if flex is not None:
                fv = versions(flex)
                if fv is not None:
                    sys.exit("field-level flexibleVersions other than none: %s" % f["name"])
                fl = "FlexOverride::Never"
            lines.append("    Field { v: V(%d, %d), kind: %s, tag: %s, flex: %s }, // %s"
                         % (v[0], v[1], self.kind(f["type"], f, owner), tag, fl, f["name"]))
        self.statics.append((name, lines))
        return name


def snake(s):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", s).lower()


def main():
    d = sys.argv[1]
    g = Gen()
    tables = []
    for kind in ("request", "response"):
        tables.append((kind, table(g, d, kind)))
    out = []
    out.append("// @generated by scripts/gen_request_schema.py from Apache Kafka's message")
    out.append("// definitions (clients/src/main/resources/common/message). Do not edit.")
    out.append("//! The wire layout of every Kafka request and response body, as data (see `super`).")
    out.append("")
    out.append("use super::{Field, FlexOverride, Kind, MessageSchema, V};")
    out.append("")
    for name, lines in g.statics:
        if not lines:
            out.append("static %s: &[Field] = &[];" % name)
            continue
        out.append("static %s: &[Field] = &[" % name)
        out.extend(lines)
        out.append("];")
    for kind, entries in tables:
        out.append("")
        out.append("/// Every %s message, by API key." % kind)
        out.append("pub(super) static %sS: &[MessageSchema] = &[" % kind.upper())
        out.extend(entries)
        out.append("];")
    print("\n".join(out))


def table(g, d, kind):
    suffix = "Request" if kind == "request" else "Response"
    msgs = []
    for fn in sorted(os.listdir(d)):
        if not fn.endswith(suffix + ".json"):
            continue
        m = load(os.path.join(d, fn))
        if m.get("type") != kind:
            continue
        msgs.append(m)
    msgs.sort(key=lambda m: m["apiKey"])
    entries = []
    for m in msgs:
        name = m["name"]
        note = ""
        if name in BY_TOPIC_ID:
            version, array, why = BY_TOPIC_ID[name]
            by_topic_id(m, version, array)
            note = ": " + why
        common = {c["name"]: c["fields"] for c in m.get("commonStructs", [])}
        owner = {"prefix": snake(name[: -len(suffix)]), "common": common}
        root = g.struct(snake(name), m["fields"], owner)
        valid = versions(m["validVersions"])
        if name in LATER_VERSIONS:
            new_max, why = LATER_VERSIONS[name]
            valid = (valid[0], max(valid[1], new_max))
            note = (note + "; " if note else ": ") + why
        flex = versions(m.get("flexibleVersions", "none"))
        flex_from = MAX if flex is None else flex[0]
        entries.append("    // %s%s" % (name, note))
        entries.append("    MessageSchema { api_key: %d, valid: V(%d, %d), flexible_from: %d, fields: %s },"
                       % (m["apiKey"], valid[0], valid[1], flex_from, root))
    return entries


if __name__ == "__main__":
    main()
