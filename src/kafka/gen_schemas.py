#!/usr/bin/env python3
"""gen_schemas.py - generate src/kafka/schemas_gen.c from Apache Kafka's message JSON.

Usage:
  gen_schemas.py [SOURCE [OUT_C]]     generate (defaults: the pinned kafka-clients jar,
                                      src/kafka/schemas_gen.c)
  gen_schemas.py --extract DIR [SOURCE]  write the release's message JSON files into DIR
  gen_schemas.py --print-source       print the path of the pinned kafka-clients jar

SOURCE is a kafka-clients jar (its common/message/*.json are the message
definitions of that release) or a directory of those JSON files. Without it, the
jar of the release pinned in tests/kafka/pom.xml, as `make deps` puts it into
.cache/kafka/<version>/libs (BS_KAFKA_CACHE overrides .cache/kafka), is used.
OUT_C is committed; the build never runs this script (python3 stdlib only,
deterministic output).

It emits:
  * bs_kafka_apis[]: every API key found in the *Request.json files, with its
    name, valid version range and first flexible version of request/response;
  * field tables (bs_kafka_field / bs_kafka_struct / bs_kafka_message) for the
    messages listed in CODEC_MESSAGES, which the generic codec in
    src/kafka/kafka_schema.c decodes and re-encodes.

Every response that can hold a Host+Port struct must be classified below as
carrying broker endpoints (decoded and rewritten), as holding other endpoints
(never rewritten), or as answered by controllers only; an unclassified one
stops the generator, so a new release cannot add a leak unnoticed.
"""
import json
import os
import re
import sys
import zipfile

# Messages the generic codec needs: the responses we rewrite, the requests we
# summarise or audit. Add a name here and re-run to extend the codec.
CODEC_MESSAGES = [
    "MetadataResponse", "FindCoordinatorResponse", "DescribeClusterResponse",
    "ApiVersionsResponse", "ProduceResponse", "FetchResponse",
    "ShareFetchResponse", "ShareAcknowledgeResponse", "DescribeQuorumResponse",
    "ProduceRequest", "FetchRequest", "ApiVersionsRequest", "MetadataRequest",
]

# Per-request audit events (src/proxy/audit_hook.c) decode the request and
# the response of these APIs for their resources and error codes.
AUDIT_APIS = [
    "ListOffsets", "OffsetCommit", "OffsetFetch", "JoinGroup", "Heartbeat", "LeaveGroup",
    "SyncGroup", "DescribeGroups", "ListGroups", "CreateTopics", "DeleteTopics",
    "DeleteRecords", "InitProducerId", "OffsetForLeaderEpoch", "AddPartitionsToTxn",
    "AddOffsetsToTxn", "EndTxn", "TxnOffsetCommit", "DescribeAcls", "CreateAcls", "DeleteAcls",
    "DescribeConfigs", "AlterConfigs", "AlterReplicaLogDirs", "DescribeLogDirs",
    "CreatePartitions", "DeleteGroups", "ElectLeaders", "IncrementalAlterConfigs",
    "AlterPartitionReassignments", "ListPartitionReassignments", "OffsetDelete",
    "DescribeClientQuotas", "AlterClientQuotas", "DescribeProducers", "DescribeTransactions",
    "ListTransactions", "ConsumerGroupHeartbeat", "ConsumerGroupDescribe",
    "DescribeTopicPartitions",
]
CODEC_MESSAGES += ["FindCoordinatorRequest", "DescribeClusterRequest"]
CODEC_MESSAGES += [a + t for a in AUDIT_APIS for t in ("Request", "Response")]

# Responses whose Host/Port structs are broker (or controller) addresses: the
# codec decodes them and kafka_rewrite.c maps every endpoint (docs/kafka-protocol.md).
BROKER_ENDPOINT_RESPONSES = [
    "MetadataResponse", "FindCoordinatorResponse", "DescribeClusterResponse",
    "ProduceResponse", "FetchResponse", "ShareFetchResponse", "ShareAcknowledgeResponse",
    "DescribeQuorumResponse",
]
# Responses with Host/Port that are not broker addresses: passed through as they are.
OTHER_ENDPOINT_RESPONSES = {
    "StreamsGroupHeartbeatResponse": "Kafka Streams application endpoints (application.server)",
    "StreamsGroupDescribeResponse": "Kafka Streams application endpoints (application.server)",
}

NEVER = (1, 0)          # an empty version range
MAXV = 0x7FFF

PRIMS = {
    "bool": "BS_KT_BOOL", "int8": "BS_KT_INT8", "int16": "BS_KT_INT16",
    "uint16": "BS_KT_UINT16", "int32": "BS_KT_INT32", "uint32": "BS_KT_UINT32",
    "int64": "BS_KT_INT64", "float64": "BS_KT_FLOAT64", "uuid": "BS_KT_UUID",
    "string": "BS_KT_STRING", "bytes": "BS_KT_BYTES", "records": "BS_KT_RECORDS",
}


def load(path):
    """One message definition file (see parse)."""
    with open(path, encoding="utf-8") as f:
        return parse(f.read())


def parse(text):
    """Kafka's JSON files carry // comments; strip them (never inside strings here)."""
    lines = []
    for line in text.splitlines():
        out, in_str, i = [], False, 0
        while i < len(line):
            ch = line[i]
            if ch == '"' and (i == 0 or line[i - 1] != "\\"):
                in_str = not in_str
            if not in_str and line.startswith("//", i):
                break
            out.append(ch)
            i += 1
        lines.append("".join(out))
    return json.loads("\n".join(lines))


def vrange(s):
    """'0+' / '3-5' / '7' / 'none' / None -> (min, max)."""
    if s is None or s == "none" or s == "":
        return NEVER
    s = s.strip()
    if s.endswith("+"):
        return (int(s[:-1]), MAXV)
    if "-" in s:
        a, b = s.split("-")
        return (int(a), int(b))
    return (int(s), int(s))


def cname(s):
    return re.sub(r"[^A-Za-z0-9_]", "_", s)


def in_range(r, v):
    return r[0] <= v <= r[1]


def sub_fields(f, common):
    """The fields of a struct-typed field (inline or a commonStruct), or None."""
    base = f["type"][2:] if f["type"].startswith("[]") else f["type"]
    if base in PRIMS:
        return None
    return f.get("fields") if f.get("fields") is not None else common[base]


def names(fields):
    return [f["name"] for f in fields]


def has_endpoint_at(fields, common, v):
    """Mirror of the C rule (kafka_rewrite.c): a struct with Host and Port, Host
    present at v; or any struct-typed field present at v leading to one."""
    n = names(fields)
    if "Host" in n and "Port" in n and in_range(vrange(fields[n.index("Host")].get("versions")), v):
        return True
    for f in fields:
        sf = sub_fields(f, common)
        if sf is not None and in_range(vrange(f.get("versions")), v) and has_endpoint_at(sf, common, v):
            return True
    return False


def endpoints_below(fields, common):
    """Version-independent: can this struct or a descendant hold Host and Port?"""
    n = names(fields)
    if "Host" in n and "Port" in n:
        return True
    return any(endpoints_below(sf, common) for sf in (sub_fields(f, common) for f in fields) if sf is not None)


class Gen:
    def __init__(self):
        self.out = []
        self.done = set()

    def struct(self, msg, sname, fields, common):
        """Emit the field table of one struct (children first); return its C symbol."""
        sym = f"bs_ks_{cname(msg)}_{cname(sname)}"
        if sym in self.done:  # a common struct used by several fields
            return sym
        self.done.add(sym)
        rows = []
        for f in fields:
            t = f["type"]
            is_array = t.startswith("[]")
            base = t[2:] if is_array else t
            sub = "NULL"
            if base in PRIMS:
                kind = PRIMS[base]
            else:
                kind = "BS_KT_STRUCT"
                sub_fields = f.get("fields")
                if sub_fields is None:
                    if base not in common:
                        raise SystemExit(f"{msg}: unknown type {t}")
                    sub_fields = common[base]
                sub = "&" + self.struct(msg, base, sub_fields, common)
            vmin, vmax = vrange(f.get("versions"))
            nmin, nmax = vrange(f.get("nullableVersions"))
            tag = f.get("tag", -1)
            tmin, tmax = vrange(f.get("taggedVersions")) if "tag" in f else NEVER
            if is_array:
                typ, elem = "BS_KT_ARRAY", kind
            else:
                typ, elem = kind, "BS_KT_NONE"
            rows.append(f'    {{"{f["name"]}", {typ}, {elem}, {vmin}, {vmax}, {nmin}, {nmax}, '
                        f'{tmin}, {tmax}, {tag}, {sub}}},')
        self.out.append(f"static const bs_kafka_field {sym}_fields[] = {{")
        self.out.extend(rows if rows else ['    {"", BS_KT_NONE, BS_KT_NONE, 1, 0, 1, 0, 1, 0, -1, NULL},'])
        self.out.append("};")
        n = names(fields)

        def idx(*cands):
            for c in cands:
                if c in n:
                    return n.index(c)
            return -1
        below = "true" if endpoints_below(fields, common) else "false"
        self.out.append(f'static const bs_kafka_struct {sym} = {{"{sname}", {sym}_fields, {len(rows)}, '
                        f'{idx("NodeId", "BrokerId")}, {idx("Host")}, {idx("Port")}, {idx("ErrorCode")}, {below}}};')
        self.out.append("")
        return sym


ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MESSAGE_PREFIX = "common/message/"


def pinned_version():
    """The Apache Kafka version pinned in tests/kafka/pom.xml (<kafka.version>)."""
    with open(os.path.join(ROOT, "tests", "kafka", "pom.xml"), encoding="utf-8") as f:
        m = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", f.read())
    if not m:
        raise SystemExit("tests/kafka/pom.xml names no <kafka.version>")
    return m.group(1).strip()


def pinned_jar():
    """Path of the pinned release's kafka-clients jar in the make-deps cache."""
    v = pinned_version()
    cache = os.environ.get("BS_KAFKA_CACHE") or os.path.join(ROOT, ".cache", "kafka")
    return os.path.join(cache, v, "libs", f"kafka-clients-{v}.jar")


def read_release(source):
    """{file name: text} of the message definitions in `source` (a kafka-clients
    jar or a directory of JSON files) and the release version (None for a directory)."""
    if os.path.isdir(source):
        return {fn: open(os.path.join(source, fn), encoding="utf-8").read()
                for fn in sorted(os.listdir(source)) if fn.endswith(".json")}, None
    if not os.path.isfile(source):
        raise SystemExit(f"{source}: not found (run `make deps`, which fetches the pinned Apache Kafka)")
    texts, version = {}, None
    with zipfile.ZipFile(source) as z:
        for n in sorted(z.namelist()):
            if n.startswith(MESSAGE_PREFIX) and n.endswith(".json") and "/" not in n[len(MESSAGE_PREFIX):]:
                texts[n[len(MESSAGE_PREFIX):]] = z.read(n).decode("utf-8")
            elif n == "kafka/kafka-version.properties":
                for line in z.read(n).decode("utf-8").splitlines():
                    if line.startswith("version="):
                        version = line.split("=", 1)[1].strip()
    if not texts:
        raise SystemExit(f"{source}: no {MESSAGE_PREFIX}*.json inside (not a kafka-clients jar?)")
    return texts, version


def load_schemas(texts):
    """{message name: parsed definition}."""
    return {d["name"]: d for d in (parse(t) for _, t in sorted(texts.items()))}


def answered_by_brokers(schemas, d):
    """False for APIs that only KRaft controllers serve (their request's listeners)."""
    req = schemas.get(d["name"][: -len("Response")] + "Request", {})
    return "broker" in req.get("listeners", ["broker"])


def endpoint_responses(schemas):
    """Names of the broker-served responses that can hold a Host+Port struct at some version."""
    out = []
    for name, d in sorted(schemas.items()):
        if d.get("type") != "response" or not answered_by_brokers(schemas, d):
            continue
        common = {c["name"]: c["fields"] for c in d.get("commonStructs", [])}
        if endpoints_below(d.get("fields", []), common):
            out.append(name)
    return out


def check_classification(schemas):
    """Every broker-served response with endpoints is classified (see the lists above)."""
    for name in endpoint_responses(schemas):
        if name not in BROKER_ENDPOINT_RESPONSES and name not in OTHER_ENDPOINT_RESPONSES:
            raise SystemExit(f"{name} can carry Host/Port: classify it in BROKER_ENDPOINT_RESPONSES "
                             "(and CODEC_MESSAGES) or OTHER_ENDPOINT_RESPONSES in gen_schemas.py")
    for name in BROKER_ENDPOINT_RESPONSES:
        if name in schemas and name not in CODEC_MESSAGES:
            raise SystemExit(f"{name} carries broker endpoints but is not in CODEC_MESSAGES")


def main():
    args = sys.argv[1:]
    if args[:1] == ["--print-source"]:
        print(pinned_jar())
        return
    if args[:1] == ["--extract"]:
        if len(args) < 2:
            raise SystemExit(__doc__)
        texts, _ = read_release(args[2] if len(args) > 2 else pinned_jar())
        os.makedirs(args[1], exist_ok=True)
        for fn, t in texts.items():
            with open(os.path.join(args[1], fn), "w", encoding="utf-8") as f:
                f.write(t)
        return
    source = args[0] if args else pinned_jar()
    out_path = args[1] if len(args) > 1 else os.path.join(ROOT, "src", "kafka", "schemas_gen.c")
    texts, version = read_release(source)
    schemas = load_schemas(texts)
    check_classification(schemas)
    apis = {}
    for name, d in sorted(schemas.items()):
        if d.get("type") not in ("request", "response"):
            continue
        key = d["apiKey"]
        base = d["name"][: -len("Request")] if d["type"] == "request" else d["name"][: -len("Response")]
        a = apis.setdefault(key, {"name": base})
        vmin, vmax = vrange(d["validVersions"])
        fmin, _ = vrange(d.get("flexibleVersions"))
        if fmin > MAXV or (fmin, _) == NEVER:
            fmin = MAXV
        a[d["type"]] = (vmin, vmax, fmin)
    origin = f"Apache Kafka {version} (common/message/ in kafka-clients-{version}.jar)" \
        if version else "the message definitions in " + os.path.basename(os.path.normpath(source))

    g = Gen()
    msgs = []
    for name in CODEC_MESSAGES:
        if name in OTHER_ENDPOINT_RESPONSES:
            raise SystemExit(f"{name}: its Host/Port are not broker addresses, yet the rewriter "
                             "would map every Host/Port of a generated message")
        d = schemas[name]
        common = {c["name"]: c["fields"] for c in d.get("commonStructs", [])}
        sym = g.struct(name, name, d["fields"], common)
        vmin, vmax = vrange(d["validVersions"])
        fmin, _ = vrange(d.get("flexibleVersions"))
        if (fmin, _) == NEVER:
            fmin = MAXV
        if vmax >= 64:
            raise SystemExit(f"{name}: versions >= 64 do not fit endpoint_versions")
        mask = sum(1 << v for v in range(vmin, vmax + 1) if has_endpoint_at(d["fields"], common, v))
        msgs.append(f'    {{"{name}", {d["apiKey"]}, {"true" if d["type"] == "request" else "false"}, '
                    f'{vmin}, {vmax}, {fmin}, &{sym}, 0x{mask:x}ULL}},')

    lines = [
        "/* schemas_gen.c - GENERATED by src/kafka/gen_schemas.py from",
        f" * {origin}.",
        " * Do not edit by hand: after `make deps`, re-run `python3 src/kafka/gen_schemas.py`. */",
        '#include "brokerside/kafka_schema.h"',
        "",
        "/* clang-format off */",
        "const bs_kafka_api_info bs_kafka_apis[] = {",
    ]
    for key in sorted(apis):
        a = apis[key]
        rq = a.get("request")
        rs = a.get("response", rq)
        if rq is None:
            continue
        lines.append(f'    {{{key}, "{a["name"]}", {rq[0]}, {rq[1]}, {rq[2]}, {rs[2]}}},')
    lines.append("};")
    lines.append("const size_t bs_kafka_apis_count = sizeof bs_kafka_apis / sizeof bs_kafka_apis[0];")
    lines.append("")
    lines.extend(g.out)
    lines.append("const bs_kafka_message bs_kafka_messages[] = {")
    lines.extend(msgs)
    lines.append("};")
    lines.append("const size_t bs_kafka_messages_count = sizeof bs_kafka_messages / sizeof bs_kafka_messages[0];")
    lines.append("/* clang-format on */")
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
