"""Issue 11 through aiokafka's transactional producer
(AIOKafkaProducer(transactional_id=...)): commit/abort on a 2-partition
topic read back by read_committed and read_uncommitted consumers, an open
transaction holding read_committed readers at the LSO, then
read-process-write with send_offsets_to_transaction (flows in txn_plan.py).

Usage: aiokafka_txn_check.py BOOTSTRAP TXN_TOPIC IN_TOPIC OUT_TOPIC GROUP
"""
import asyncio
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

import txn_plan as plan

bootstrap, txn_topic, in_topic, out_topic, group = sys.argv[1:6]
CLIENT = "aiokafka"


async def create_topics():
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
    await admin.start()
    try:
        await admin.create_topics([
            NewTopic(name=txn_topic, num_partitions=2, replication_factor=1),
            NewTopic(name=in_topic, num_partitions=1, replication_factor=1),
            NewTopic(name=out_topic, num_partitions=1, replication_factor=1),
        ])
    finally:
        await admin.close()


async def txn_producer(txn_id):
    # start() runs InitProducerId for the transactional id.
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id,
                         linger_ms=5, request_timeout_ms=20000)
    await p.start()
    return p


async def read_all(topic, partitions, isolation, want):
    """Every (partition, offset, value) of `topic` from the start, once
    `want` records arrived and nothing more came for SETTLE_S."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                         isolation_level=isolation)
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        got = []
        deadline = time.monotonic() + plan.READ_DEADLINE_S
        settle_until = None
        while time.monotonic() < deadline:
            for tp, records in (await c.getmany(timeout_ms=200)).items():
                got.extend((tp.partition, r.offset, r.value.decode()) for r in records)
            if len(got) >= want and settle_until is None:
                settle_until = time.monotonic() + plan.SETTLE_S
            if settle_until is not None and time.monotonic() >= settle_until:
                break
        return got
    finally:
        await c.stop()


async def commit_abort_flow():
    producer = await txn_producer(f"{txn_topic}-producer")
    try:
        for outcome, records in plan.TXNS:
            await producer.begin_transaction()
            for partition, value in records:
                await producer.send(txn_topic, value=value.encode(), partition=partition)
            if outcome == "commit":
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
        committed_n = plan.check_read(
            "read_committed",
            await read_all(txn_topic, 2, "read_committed", len(plan.committed_records())),
            plan.committed_records())
        uncommitted_n = plan.check_read(
            "read_uncommitted",
            await read_all(txn_topic, 2, "read_uncommitted", len(plan.all_records())),
            plan.all_records())
        lso, hw = await open_transaction_flow(producer)
    finally:
        await producer.stop()
    return committed_n, uncommitted_n, lso, hw


async def open_transaction_flow(producer):
    """Flow 1b: an open transaction holds read_committed readers at its
    first offset (the LSO), in ListOffsets and in Fetch."""
    p0 = TopicPartition(txn_topic, 0)
    end_readers = {i: AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level=i)
                   for i in ("read_committed", "read_uncommitted")}
    for c in end_readers.values():
        await c.start()
    try:
        async def end_offset(isolation):
            return (await end_readers[isolation].end_offsets([p0]))[p0]

        await producer.begin_transaction()
        sent = [await producer.send(txn_topic, value=value.encode(), partition=partition)
                for partition, value in plan.OPEN]
        await asyncio.gather(*sent)
        lso, hw = await end_offset("read_committed"), await end_offset("read_uncommitted")
        plan.check_open(lso, hw)
        plan.check_read(
            "read_committed during an open transaction",
            await read_all(txn_topic, 2, "read_committed", len(plan.committed_records())),
            plan.committed_records())
        await producer.commit_transaction()
        end_after = await becomes(lambda: end_offset("read_committed"), hw + 1)
        assert end_after == hw + 1, \
            f"read_committed end after the commit: {end_after}, want {hw + 1}"
        return lso, hw
    finally:
        for c in end_readers.values():
            await c.stop()


async def becomes(read, want):
    """txn_plan.becomes for an async `read`."""
    deadline = time.monotonic() + plan.READ_DEADLINE_S
    got = await read()
    while got != want and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        got = await read()
    return got


async def committed_stays(consumer, tp, want):
    """txn_plan.committed_stays for an async consumer."""
    until = time.monotonic() + plan.SETTLE_S
    while True:
        got = await consumer.committed(tp)
        assert got == want, f"group offset {got} after an abort, want it to stay {want}"
        if time.monotonic() >= until:
            return got
        await asyncio.sleep(0.1)


async def read_process_write_flow():
    plain = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await plain.start()
    try:
        for value in plan.INPUT:
            await plain.send_and_wait(in_topic, value=value.encode(), partition=0)
    finally:
        await plain.stop()

    in_tp = TopicPartition(in_topic, 0)
    consumer = AIOKafkaConsumer(in_topic, bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                isolation_level="read_committed", session_timeout_ms=10000,
                                heartbeat_interval_ms=500)
    await consumer.start()
    rpw = await txn_producer(f"{out_topic}-producer")
    try:
        inputs = []
        deadline = time.monotonic() + plan.READ_DEADLINE_S
        while len(inputs) < len(plan.INPUT) and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                inputs.extend((r.offset, r.value.decode()) for r in records)
        assert [v for _, v in inputs] == plan.INPUT, f"input read {inputs}, want {plan.INPUT}"

        async def process(batch, outcome):
            await rpw.begin_transaction()
            for _, value in batch:
                await rpw.send(out_topic, value=plan.transform(value).encode(), partition=0)
            next_offset = batch[-1][0] + 1
            await rpw.send_offsets_to_transaction({in_tp: next_offset}, group)
            if outcome == "commit":
                await rpw.commit_transaction()
            else:
                await rpw.abort_transaction()

        await process(inputs[:plan.RPW_BATCH], "commit")
        after_commit = await becomes(lambda: consumer.committed(in_tp), plan.RPW_BATCH)
        assert after_commit == plan.RPW_BATCH, \
            f"group offset after commit: {after_commit}, want {plan.RPW_BATCH}"
        await process(inputs[plan.RPW_BATCH:], "abort")
        after_abort = await committed_stays(consumer, in_tp, plan.RPW_BATCH)
    finally:
        await rpw.stop()
        await consumer.stop()

    outputs = [(0, plan.transform(v)) for v in plan.INPUT]
    plan.check_read("output read_committed",
                    await read_all(out_topic, 1, "read_committed", plan.RPW_BATCH),
                    outputs[:plan.RPW_BATCH])
    plan.check_read("output read_uncommitted",
                    await read_all(out_topic, 1, "read_uncommitted", len(outputs)), outputs)
    return after_commit, after_abort


async def main():
    await create_topics()
    committed_n, uncommitted_n, lso, hw = await commit_abort_flow()
    after_commit, after_abort = await read_process_write_flow()
    print(plan.summary(CLIENT, committed_n, uncommitted_n, lso, hw, after_commit, after_abort))


asyncio.run(main())
