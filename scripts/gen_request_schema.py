#!/usr/bin/env python3
"""Generate protocol/src/request_bounds/schema.rs from Apache Kafka's request
message definitions (clients/src/main/resources/common/message/*Request.json).

The output is a table of the wire layout of every request body: for each
field the versions it is present in, its type and, for tagged fields, its
tag. `rivulet_protocol::request_bounds` walks a frame with this table before
`kafka-protocol` decodes it, so that no count read from the wire can size an
allocation the frame's own bytes cannot back. Nullability and defaults are
not needed (the walk accepts null everywhere), nor are names beyond comments.

Usage: scripts/gen_request_schema.py KAFKA_MESSAGE_DIR > protocol/src/request_bounds/schema.rs

LATER_VERSIONS lists request versions added after the definitions this table
was generated from, whose body is the same as an earlier version's.
"""
import json
import os
import re
import sys

# (message name, new max version, comment): body unchanged from the prior version.
LATER_VERSIONS = {
    "ProduceRequest": (12, "v12 (KIP-890 part 2) has the body of v11"),
}

MAX = 0x7FFF


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
    msgs = []
    for fn in sorted(os.listdir(d)):
        if not fn.endswith("Request.json"):
            continue
        m = load(os.path.join(d, fn))
        if m.get("type") != "request":
            continue
        msgs.append(m)
    msgs.sort(key=lambda m: m["apiKey"])
    g = Gen()
    entries = []
    for m in msgs:
        name = m["name"]
        common = {c["name"]: c["fields"] for c in m.get("commonStructs", [])}
        owner = {"prefix": snake(name[: -len("Request")]), "common": common}
        root = g.struct(snake(name), m["fields"], owner)
        valid = versions(m["validVersions"])
        note = ""
        if name in LATER_VERSIONS:
            new_max, why = LATER_VERSIONS[name]
            valid = (valid[0], max(valid[1], new_max))
            note = ": " + why
        flex = versions(m.get("flexibleVersions", "none"))
        flex_from = MAX if flex is None else flex[0]
        entries.append("    // %s%s" % (name, note))
        entries.append("    MessageSchema { api_key: %d, valid: V(%d, %d), flexible_from: %d, fields: %s },"
                       % (m["apiKey"], valid[0], valid[1], flex_from, root))
    out = []
    out.append("// @generated by scripts/gen_request_schema.py from Apache Kafka's request")
    out.append("// message definitions (clients/src/main/resources/common/message). Do not edit.")
    out.append("//! The wire layout of every Kafka request body, as data (see `super`).")
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
    out.append("")
    out.append("/// Every request message, by API key.")
    out.append("pub(super) static MESSAGES: &[MessageSchema] = &[")
    out.extend(entries)
    out.append("];")
    print("\n".join(out))


if __name__ == "__main__":
    main()
