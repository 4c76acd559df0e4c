"""The transaction flows of issue 11, shared by the per-client checks
(kafka_python_txn_check.py, confluent_kafka_txn_check.py,
aiokafka_txn_check.py): what each transaction writes, what each reader must
see, the checks on what was read, and polling helpers. No client here: the
scripts pass in what they read and how to read it.

Flow 1, commit/abort: on a 2-partition topic one transactional producer
commits TXNS[0], aborts TXNS[1] and commits TXNS[2]. A read_committed
reader sees exactly the committed records; a read_uncommitted reader sees
the aborted ones too (KIP-98: isolation.level), each partition in order.

Flow 1b, an open transaction: the same producer then opens a transaction
with OPEN on partition 0 and leaves it open. The read_committed end offset
(ListOffsets latest at isolation read_committed) is the LSO, the first
offset of the open transaction, len(OPEN) below the read_uncommitted end
(the high watermark), and a read_committed reader still sees only the
committed records. After the commit the read_committed end passes the
commit marker (high watermark + 1).

Flow 2, read-process-write: INPUT is written (non-transactionally) to a
1-partition input topic. A consumer in the group reads it; the first
RPW_BATCH records are transformed to the output topic in a transaction
that also sends the group's offset RPW_BATCH (send_offsets_to_transaction)
and commits; the rest are transformed in a second transaction with offset
len(INPUT) that aborts. The group's committed offset must be RPW_BATCH
after both, and the output topic must hold only the first batch for a
read_committed reader. EndTxn is answered once the decision is durable and
the markers follow (as in Kafka), so the committed offset is polled until it
moves (after the commit) or sampled for SETTLE_S (after the abort).
"""

import time

# (outcome, [(partition, value)]) in the order they are run.
TXNS = [
    ("commit", [(0, "t1-a"), (1, "t1-b"), (0, "t1-c"), (1, "t1-d")]),
    ("abort", [(0, "t2-a"), (1, "t2-b"), (0, "t2-c")]),
    ("commit", [(0, "t3-a"), (1, "t3-b")]),
]

OPEN = [(0, "t4-a"), (0, "t4-b")]
# Partition 0's end before OPEN: the committed, aborted and committed
# records of TXNS on it, plus one marker per transaction.
OPEN_LSO = sum(1 for _, recs in TXNS for p, _ in recs if p == 0) + len(TXNS)

INPUT = [f"in-{i}" for i in range(6)]
RPW_BATCH = 3

# How long a reader waits for records, and how long it goes on polling
# after it has them all, to catch any record it must not see.
READ_DEADLINE_S = 30
SETTLE_S = 1.5


def transform(value):
    return "out-" + value


def expected(records):
    """{partition: [values in order]} of [(partition, value)]."""
    by_part = {}
    for partition, value in records:
        by_part.setdefault(partition, []).append(value)
    return by_part


def committed_records():
    return [r for outcome, recs in TXNS if outcome == "commit" for r in recs]


def all_records():
    return [r for _, recs in TXNS for r in recs]


def in_order(got):
    """{partition: [values in offset order]} of [(partition, offset, value)],
    asserting offsets strictly increase per partition (no record twice)."""
    by_part = {}
    for partition, offset, value in sorted(got):
        by_part.setdefault(partition, []).append((offset, value))
    for partition, recs in by_part.items():
        offsets = [o for o, _ in recs]
        assert len(set(offsets)) == len(offsets), f"partition {partition}: a record twice: {recs}"
    return {p: [v for _, v in recs] for p, recs in by_part.items()}


def check_read(what, got, want_records):
    """Assert that `got` [(partition, offset, value)] is exactly `want_records`."""
    got_by_part = in_order(got)
    want = expected(want_records)
    assert got_by_part == want, f"{what}: got {got_by_part}, want {want}"
    return len(got)


def check_open(lso, hw):
    """Assert the read_committed end `lso` and read_uncommitted end `hw`
    seen while OPEN is in an open transaction."""
    assert (lso, hw) == (OPEN_LSO, OPEN_LSO + len(OPEN)), (
        f"open transaction: read_committed end {lso}, read_uncommitted end {hw}; "
        f"want {OPEN_LSO} (its first offset) and {OPEN_LSO + len(OPEN)}")


def summary(client, committed_n, uncommitted_n, lso, hw, offset_after_commit,
            offset_after_abort):
    return (
        f"{client} txn ok: read_committed {committed_n} of {uncommitted_n}, "
        f"read_uncommitted {uncommitted_n}; open transaction held read_committed "
        f"at LSO {lso} below end {hw}; read-process-write "
        f"group offset {offset_after_commit} after commit, still {offset_after_abort} after abort"
    )


def becomes(read, want):
    """Poll `read()` (a group's committed offset, an end offset) until it
    is `want` or READ_DEADLINE_S passed; returns the last value read."""
    deadline = time.monotonic() + READ_DEADLINE_S
    got = read()
    while got != want and time.monotonic() < deadline:
        time.sleep(0.1)
        got = read()
    return got


def committed_stays(read_committed, want):
    """Sample `read_committed()` for SETTLE_S, asserting it stays `want`;
    returns it."""
    until = time.monotonic() + SETTLE_S
    while True:
        got = read_committed()
        assert got == want, f"group offset {got} after an abort, want it to stay {want}"
        if time.monotonic() >= until:
            return got
        time.sleep(0.1)
