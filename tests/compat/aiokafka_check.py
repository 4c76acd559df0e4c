"""An asyncio user's day one with aiokafka against Rivulet.

An idempotent AIOKafkaProducer (acks all, gzip) sends keyed records with
headers (one key repeated) to a 3-partition topic; two AIOKafkaConsumers of
one group split the partitions and read every record exactly once between
them, commit and stop; a new member resumes at the commits and reads exactly
the records produced since. An assigned consumer then checks end_offsets,
offsets_for_times (a time between two sends, and one in the future) and
seek_to_beginning.

Usage: aiokafka_check.py BOOTSTRAP TOPIC GROUP
Exits non-zero on any mismatch; prints "aiokafka ok: ..." on success.
"""
import asyncio
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

bootstrap, topic, group = sys.argv[1:4]
PARTITIONS = 3
FIRST, MORE = 30, 6
DEADLINE_S = 30
TPS = [TopicPartition(topic, p) for p in range(PARTITIONS)]


def fail(msg):
    print(f"aiokafka FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def check_eq(got, want, what):
    if got != want:
        fail(f"{what}: got {got!r}, want {want!r}")


async def until(cond, what):
    deadline = time.monotonic() + DEADLINE_S
    while not cond():
        if time.monotonic() > deadline:
            fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def headers_of(i):
    # "tag" twice: repeated header keys must come back as sent, in order.
    return [("trace", f"t-{i}".encode()), ("tag", b"a"), ("tag", f"b-{i}".encode())]


def check_record(r, what):
    i = int(r.key.decode().removeprefix("key-"))
    check_eq(r.value, f"value-{i}".encode(), f"{what}: value of {r.key!r}")
    check_eq(list(r.headers), headers_of(i), f"{what}: headers of {r.key!r}")
    return i


async def produce(producer, start, n):
    """Records start..start+n-1; returns {(partition, offset): i}."""
    sent = {}
    for i in range(start, start + n):
        md = await producer.send_and_wait(topic, key=f"key-{i}".encode(),
                                          value=f"value-{i}".encode(), headers=headers_of(i))
        sent[(md.partition, md.offset)] = i
    return sent


def member(name):
    return AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, client_id=name,
                            enable_auto_commit=False, auto_offset_reset="earliest",
                            session_timeout_ms=10000, heartbeat_interval_ms=500,
                            fetch_max_wait_ms=100)


async def drain(consumer, seen, name, stop):
    while not stop.is_set():
        for tp, records in (await consumer.getmany(timeout_ms=100)).items():
            for r in records:
                check_record(r, name)
                seen.append((name, tp.partition, r.offset))


async def group_phase(producer):
    c1, c2 = member("c1"), member("c2")
    await c1.start()
    await c2.start()
    seen, stop = [], asyncio.Event()
    tasks = [asyncio.create_task(drain(c, seen, n, stop)) for c, n in ((c1, "c1"), (c2, "c2"))]
    # Produce once both members hold partitions, so nothing is read twice
    # across a rebalance.
    await until(lambda: c1.assignment() and c2.assignment()
                and len(c1.assignment() | c2.assignment()) == PARTITIONS,
                "both members to be assigned")
    check_eq(c1.assignment() & c2.assignment(), set(), "partitions assigned twice")
    half = FIRST // 2
    sent = await produce(producer, 0, half)
    await asyncio.sleep(0.05)
    between = int(time.time() * 1000)
    await asyncio.sleep(0.05)
    sent.update(await produce(producer, half, FIRST - half))
    await until(lambda: len(seen) >= FIRST, f"{FIRST} records read by the group")
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*tasks)
    check_eq(sorted((p, o) for _, p, o in seen), sorted(sent), "records read by the group")
    per_member = {n: sum(1 for w, _, _ in seen if w == n) for n in ("c1", "c2")}
    if not all(per_member.values()):
        fail(f"a member read nothing: {per_member}")
    for c in (c1, c2):
        await c.commit()
    ends = {tp: 1 + max([o for p, o in sent if p == tp.partition], default=-1) for tp in TPS}
    for c in (c1, c2):
        for tp in c.assignment():
            check_eq(await c.committed(tp), ends[tp], f"committed offset of {tp}")
        await c.stop()
    return sent, between, per_member


async def resume_phase(producer):
    c = member("c3")
    await c.start()
    try:
        extra = await produce(producer, FIRST, MORE)
        got = []
        deadline = time.monotonic() + DEADLINE_S
        while len(got) < MORE and time.monotonic() < deadline:
            for tp, records in (await c.getmany(timeout_ms=200)).items():
                got.extend((tp.partition, r.offset, check_record(r, "resumed")) for r in records)
        more = await c.getmany(timeout_ms=500)
        got.extend((tp.partition, r.offset, 0) for tp, rs in more.items() for r in rs)
        check_eq(sorted(got), sorted((p, o, i) for (p, o), i in extra.items()),
                 "records read after the resume")
        await c.commit()
    finally:
        await c.stop()
    return extra


async def offsets_phase(sent, between):
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                         fetch_max_wait_ms=100)
    await c.start()
    try:
        c.assign(TPS)
        ends = await c.end_offsets(TPS)
        want_ends = {tp: 1 + max(o for p, o in sent if p == tp.partition) for tp in TPS}
        check_eq(ends, want_ends, "end_offsets")
        # The first record of each partition at or after `between`.
        by_time = await c.offsets_for_times({tp: between for tp in TPS})
        want = {}
        for tp in TPS:
            later = sorted(o for (p, o), i in sent.items() if p == tp.partition and i >= FIRST // 2)
            want[tp] = later[0] if later else None
        check_eq({tp: (v.offset if v else None) for tp, v in by_time.items()}, want,
                 "offsets_for_times between the sends")
        future = await c.offsets_for_times({tp: int(time.time() * 1000) + 3_600_000 for tp in TPS})
        check_eq(future, {tp: None for tp in TPS}, "offsets_for_times in the future")
        await c.seek_to_beginning(*TPS)
        for tp in TPS:
            check_eq(await c.position(tp), 0, f"position of {tp} after seek_to_beginning")
        read = 0
        deadline = time.monotonic() + DEADLINE_S
        while read < len(sent) and time.monotonic() < deadline:
            for records in (await c.getmany(timeout_ms=200)).values():
                read += len(records)
        check_eq(read, len(sent), "records read after seek_to_beginning")
    finally:
        await c.stop()
    return read


async def main():
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name=topic, num_partitions=PARTITIONS,
                                            replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                compression_type="gzip", request_timeout_ms=20000)
    await producer.start()
    try:
        sent, between, per_member = await group_phase(producer)
        extra = await resume_phase(producer)
    finally:
        await producer.stop()
    # Every record so far: the resumed ones are the newest.
    read = await offsets_phase(sent | extra, between)
    print(f"aiokafka ok: {FIRST} records split {per_member['c1']}/{per_member['c2']}, "
          f"resumed with exactly {len(extra)} new; offsets_for_times, end_offsets and "
          f"seek_to_beginning over {read} records")


asyncio.run(main())
