"""Security overhead, through librdkafka (confluent-kafka's wheel, built with
SSL and SASL): produce and consume throughput of 1 KiB records over
SASL_SSL with SCRAM-SHA-512 against PLAINTEXT on the same broker in the
same run, and the rate of new SASL_SSL (TLS handshake + SCRAM exchange)
connections. Run by scripts/bench_security.sh, which starts the broker.

Usage: security_bench.py PLAINTEXT_ADDR SASL_SSL_ADDR CA_FILE [RECORDS] [CONNECTIONS]
SECURITY_BENCH_FETCH_DEFAULTS=1: the consumer keeps librdkafka's fetch sizes
(1 MiB per partition) instead of 10 MiB per partition.
SECURITY_BENCH_PRODUCER="key=value,key=value": more producer settings (both
kinds), e.g. message.max.bytes=2000000; SECURITY_BENCH_CONSUMER the same for
the consumer.
Prints one line per measure and the ratios. With RIVULET_BENCH_BROKER_PID
(bench_security.sh sets it) each line also gives the CPU seconds per GB of
the broker and of this client process (all librdkafka threads): on a machine
shared with other work, throughput swings from run to run while CPU per GB
stays put, and on 2 busy cores the throughput ratio follows the ratio of
total CPU per GB.
"""
import os
import resource
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

plain, sasl_ssl, ca = sys.argv[1:4]
records = int(sys.argv[4]) if len(sys.argv) > 4 else 200_000
connections = int(sys.argv[5]) if len(sys.argv) > 5 else 200
VALUE = b"x" * 1024

SASL = {"security.protocol": "SASL_SSL", "ssl.ca.location": ca, "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "admin", "sasl.password": "admin-secret"}


def conf(kind):
    if kind == "PLAINTEXT":
        return {"bootstrap.servers": plain}
    return {"bootstrap.servers": sasl_ssl, **SASL}


BROKER_PID = os.environ.get("RIVULET_BENCH_BROKER_PID")


def cpu_seconds():
    """(broker, client) CPU seconds so far: the broker's from /proc (None
    without its pid), this process's user + system time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    client = usage.ru_utime + usage.ru_stime
    if not BROKER_PID:
        return None, client
    with open(f"/proc/{BROKER_PID}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), client


def measured(run):
    """Run `run` (which returns records/s) and return (records/s, broker
    CPU s/GB, client CPU s/GB)."""
    b0, c0 = cpu_seconds()
    rate = run()
    b1, c1 = cpu_seconds()
    gb = records * len(VALUE) / 1e9
    return rate, (b1 - b0) / gb if b0 is not None else None, (c1 - c0) / gb


def extra(var):
    return dict(kv.split("=", 1) for kv in os.environ.get(var, "").split(",") if kv)


PRODUCER_EXTRA = extra("SECURITY_BENCH_PRODUCER")
CONSUMER_EXTRA = extra("SECURITY_BENCH_CONSUMER")


def produce(kind, topic):
    p = Producer({**conf(kind), "linger.ms": 5, "batch.size": 1_000_000, "acks": 1,
                  "queue.buffering.max.messages": 1_000_000, "compression.type": "none",
                  **PRODUCER_EXTRA})
    start = time.monotonic()
    for i in range(records):
        while True:
            try:
                p.produce(topic, VALUE)
                break
            except BufferError:
                p.poll(0.01)
        if i % 10_000 == 0:
            p.poll(0)
    assert p.flush(120) == 0
    return records / (time.monotonic() - start)


def consume(kind, topic):
    fetch = {} if os.environ.get("SECURITY_BENCH_FETCH_DEFAULTS") == "1" else {
        "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760}
    # fetch.queue.backoff.ms (librdkafka >= 2.3, default 1000): a consumer whose
    # local queue is full stops fetching for that long, far longer than this
    # loop takes to drain the queue, so the faster the broker delivers, the
    # longer the consumer sits idle (PLAINTEXT read 170-1000 MB/s from run to
    # run). 10 ms measures the delivery, not that back-off.
    c = Consumer({**conf(kind), "group.id": f"bench-{kind}-{time.time()}", "enable.auto.commit": False,
                  "fetch.queue.backoff.ms": 10, **fetch, **CONSUMER_EXTRA})
    c.assign([TopicPartition(topic, 0, 0)])
    n = 0
    start = time.monotonic()
    while n < records:
        batch = c.consume(10_000, 5.0)
        if not batch:
            break
        n += sum(1 for m in batch if m.error() is None)
    elapsed = time.monotonic() - start
    c.close()
    assert n == records, f"{kind}: consumed {n} of {records}"
    return n / elapsed


def connect_rate(kind):
    """New connections per second: each a fresh client that completes a
    Metadata request (TCP, for SASL_SSL a TLS handshake and a SCRAM
    exchange, then Metadata). PLAINTEXT shows the client's own cost."""
    start = time.monotonic()
    for _ in range(connections):
        p = Producer(conf(kind))
        p.list_topics(timeout=10)
    return connections / (time.monotonic() - start)


admin = AdminClient(conf("PLAINTEXT"))
topics = {kind: f"bench-{kind.lower()}-{int(time.time())}" for kind in ("PLAINTEXT", "SASL_SSL")}
for f in admin.create_topics([NewTopic(t, 1, 1) for t in topics.values()]).values():
    f.result()

RUNS = 3
results = {}
# Interleaved runs, the median of each: the same broker, the same run.
cpu = {}
# SECURITY_BENCH_MEASURES=produce (or consume): only that one, and no
# connection rates; SECURITY_BENCH_KINDS=SASL_SSL: one side only (to
# profile the broker), no ratios.
MEASURES = os.environ.get("SECURITY_BENCH_MEASURES", "produce,consume").split(",")
KINDS = os.environ.get("SECURITY_BENCH_KINDS", "PLAINTEXT,SASL_SSL").split(",")
if "produce" not in MEASURES:
    for kind in KINDS:  # consume reads what produce wrote: write it, unmeasured
        produce(kind, topics[kind])
for what, run in (("produce", produce), ("consume", consume)):
    if what not in MEASURES:
        continue
    for _ in range(RUNS):
        for kind in KINDS:
            r, broker_cpu, client_cpu = measured(lambda: run(kind, topics[kind]))
            results.setdefault((kind, what), []).append(r)
            cpu.setdefault((kind, what), []).append((broker_cpu, client_cpu))


def median(rs):
    return sorted(rs)[len(rs) // 2]


def cpu_medians(kind, what):
    """Median broker and client CPU s/GB of a measure (broker None without its pid)."""
    runs = cpu[(kind, what)]
    broker = [b for b, _ in runs if b is not None]
    return (median(broker) if broker else None), median([c for _, c in runs])


for (kind, what), rs in sorted(results.items()):
    best = median(rs)
    broker_cpu, client_cpu = cpu_medians(kind, what)
    broker_text = f"broker {broker_cpu:.2f} / " if broker_cpu is not None else ""
    print(f"{what:8} {kind:10} {best:10.0f} records/s  {best * 1024 / 1e6:7.1f} MB/s  median of "
          f"{[round(r) for r in rs]}  CPU s/GB {broker_text}client {client_cpu:.2f}")
for what in MEASURES if len(KINDS) == 2 else ():
    ratio = median(results[("SASL_SSL", what)]) / median(results[("PLAINTEXT", what)])
    line = f"ratio {what} SASL_SSL/PLAINTEXT = {ratio:.2f}"
    plain_b, plain_c = cpu_medians("PLAINTEXT", what)
    sasl_b, sasl_c = cpu_medians("SASL_SSL", what)
    if plain_b is not None and sasl_b is not None:
        line += (f"; CPU per GB, broker + client: {plain_b + plain_c:.2f} -> {sasl_b + sasl_c:.2f} s"
                 f" (ratio {(plain_b + plain_c) / (sasl_b + sasl_c):.2f}; broker +{sasl_b - plain_b:.2f},"
                 f" client +{sasl_c - plain_c:.2f})")
    print(line)
def raw_connect_rate(threads=4):
    """Server-side capacity for new TLS + SCRAM-SHA-512 connections: raw
    sockets (Python's ssl, TLS 1.3) each doing TCP, the TLS handshake,
    SaslHandshake v1 and the two SaslAuthenticate rounds, then closing.
    The client's PBKDF2 is computed once per salt (a server does none)."""
    import base64
    import hashlib
    import hmac
    import socket
    import ssl
    import struct
    import threading

    host, port = sasl_ssl.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=ca)
    salted_cache = {}

    def request(sock, key, version, corr, body):
        header = struct.pack(">hhih", key, version, corr, 5) + b"bench"
        msg = header + body
        sock.sendall(struct.pack(">i", len(msg)) + msg)
        size = struct.unpack(">i", recv(sock, 4))[0]
        return recv(sock, size)[4:]

    def recv(sock, n):
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out

    def authenticate(sock, token, corr):
        r = request(sock, 36, 1, corr, struct.pack(">i", len(token)) + token)
        err = struct.unpack(">h", r[:2])[0]
        assert err == 0, f"SaslAuthenticate error {err}"
        mlen = struct.unpack(">h", r[2:4])[0]
        off = 4 + max(mlen, 0)
        blen = struct.unpack(">i", r[off:off + 4])[0]
        return r[off + 4:off + 4 + blen]

    def one():
        with socket.create_connection((host, int(port))) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as sock:
                mech = b"SCRAM-SHA-512"
                r = request(sock, 17, 1, 1, struct.pack(">h", len(mech)) + mech)
                assert struct.unpack(">h", r[:2])[0] == 0
                cnonce = base64.b64encode(os.urandom(18)).decode()
                first_bare = f"n=admin,r={cnonce}"
                server_first = authenticate(sock, ("n,," + first_bare).encode(), 2).decode()
                attrs = dict(a.split("=", 1) for a in server_first.split(","))
                salt, iters = base64.b64decode(attrs["s"]), int(attrs["i"])
                key = (salt, iters)
                if key not in salted_cache:
                    salted_cache[key] = hashlib.pbkdf2_hmac("sha512", b"admin-secret", salt, iters)
                salted = salted_cache[key]
                client_key = hmac.new(salted, b"Client Key", hashlib.sha512).digest()
                stored = hashlib.sha512(client_key).digest()
                without_proof = f"c=biws,r={attrs['r']}"
                auth = f"{first_bare},{server_first},{without_proof}".encode()
                sig = hmac.new(stored, auth, hashlib.sha512).digest()
                proof = bytes(a ^ b for a, b in zip(client_key, sig))
                final = f"{without_proof},p={base64.b64encode(proof).decode()}".encode()
                server_final = authenticate(sock, final, 3)
                assert server_final.startswith(b"v="), server_final

    per_thread = connections
    errors = []

    def worker():
        try:
            for _ in range(per_thread):
                one()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    one()  # warm the PBKDF2 cache
    start = time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:3]
    return threads * per_thread / (time.monotonic() - start), threads * per_thread


if MEASURES != ["produce", "consume"] or len(KINDS) != 2:
    sys.exit(0)
raw_rate, raw_n = raw_connect_rate()
print(f"new TLS + SCRAM-SHA-512 connections, raw clients (4 threads): {raw_rate:.0f}/s over {raw_n}")
plain_rate = connect_rate("PLAINTEXT")
rate = connect_rate("SASL_SSL")
print(f"new connections (client + Metadata): PLAINTEXT {plain_rate:.0f}/s, "
      f"SASL_SSL (TLS + SCRAM-SHA-512) {rate:.0f}/s over {connections} each")
