// kafkajs transactions against Rivulet (issue 11: kafkajs failed with
// "Failed to find group coordinator" before FindCoordinator key type 1 was
// served). Usage: node kafkajs_txn_check.js BOOTSTRAP TOPIC IN_TOPIC OUT_TOPIC GROUP
//
// Flow 1: on a 2-partition topic one transactional producer commits,
// aborts, commits; a read_committed consumer (kafkajs' default) sees exactly
// the committed records, a read_uncommitted one the aborted ones too.
// Flow 2, read-process-write: a consumed batch is transformed to OUT_TOPIC
// with the group's offset sent to the transaction (sendOffsets) and
// committed; a second one aborted. The group's committed offset is the
// first batch's end; read_committed readers of OUT_TOPIC see only it.
// Exits non-zero on any mismatch; prints "kafkajs txn ok: ..." on success.
'use strict';
const { client, assertions } = require('./kafkajs_common');

const [bootstrap, topic, inTopic, outTopic, group] = process.argv.slice(2);
if (!group) {
  console.error('usage: kafkajs_txn_check.js BOOTSTRAP TOPIC IN_TOPIC OUT_TOPIC GROUP');
  process.exit(2);
}
const kafka = client('rivulet-kafkajs-txn', bootstrap);
const { fail, assertEq } = assertions('kafkajs txn');

const TXNS = [
  ['commit', [[0, 't1-a'], [1, 't1-b'], [0, 't1-c']]],
  ['abort', [[0, 't2-a'], [1, 't2-b']]],
  ['commit', [[1, 't3-a'], [0, 't3-b']]],
];

function expected(keep) {
  const out = { 0: [], 1: [] };
  for (const [outcome, recs] of TXNS) {
    if (!keep(outcome)) continue;
    for (const [p, v] of recs) out[p].push(v);
  }
  return out;
}

// Every value of `t` from the beginning, per partition, once `want` records
// arrived and nothing more came for a while.
async function readAll(t, readUncommitted, want) {
  const consumer = kafka.consumer({
    groupId: `reader-${t}-${readUncommitted}-${Date.now()}`,
    readUncommitted,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  await consumer.subscribe({ topic: t, fromBeginning: true });
  const got = { 0: [], 1: [] };
  let n = 0;
  let last = Date.now();
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      got[partition].push(message.value.toString());
      n += 1;
      last = Date.now();
    },
  });
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline && (n < want || Date.now() - last < 1500)) {
    await new Promise((r) => setTimeout(r, 100));
  }
  await consumer.disconnect();
  return got;
}

async function committedOffset(admin) {
  const offsets = await admin.fetchOffsets({ groupId: group, topics: [inTopic] });
  return offsets[0].partitions.find((p) => p.partition === 0).offset;
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    topics: [
      { topic, numPartitions: 2 },
      { topic: inTopic, numPartitions: 1 },
      { topic: outTopic, numPartitions: 1 },
    ],
    waitForLeaders: true,
  });

  const producer = kafka.producer({
    transactionalId: 'kafkajs-txn-check',
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  for (const [outcome, recs] of TXNS) {
    const txn = await producer.transaction();
    for (const [p, v] of recs) {
      await txn.send({ topic, messages: [{ partition: p, value: v }] });
    }
    if (outcome === 'commit') await txn.commit();
    else await txn.abort();
  }
  const committed = await readAll(topic, false, 5);
  assertEq(committed, expected((o) => o === 'commit'), 'read_committed');
  const all = await readAll(topic, true, 7);
  assertEq(all, expected(() => true), 'read_uncommitted');

  // Read-process-write.
  const plain = kafka.producer();
  await plain.connect();
  await plain.send({
    topic: inTopic,
    messages: [0, 1, 2, 3, 4, 5].map((i) => ({ partition: 0, value: `in-${i}` })),
  });
  await plain.disconnect();
  const inputs = [0, 1, 2, 3, 4, 5].map((i) => `in-${i}`);
  for (const [batch, upto, outcome] of [[inputs.slice(0, 3), 3, 'commit'], [inputs.slice(3), 6, 'abort']]) {
    const txn = await producer.transaction();
    await txn.send({
      topic: outTopic,
      messages: batch.map((v) => ({ partition: 0, value: 'out-' + v })),
    });
    await txn.sendOffsets({
      consumerGroupId: group,
      topics: [{ topic: inTopic, partitions: [{ partition: 0, offset: String(upto) }] }],
    });
    if (outcome === 'commit') await txn.commit();
    else await txn.abort();
  }
  // EndTxn answers before the markers land: poll for the commit.
  let offset = await committedOffset(admin);
  const deadline = Date.now() + 30000;
  while (offset !== '3' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    offset = await committedOffset(admin);
  }
  assertEq(offset, '3', 'group offset after the committed transaction');
  await new Promise((r) => setTimeout(r, 1500));
  assertEq(await committedOffset(admin), '3', 'group offset after the aborted transaction');
  const out = await readAll(outTopic, false, 3);
  assertEq(out[0], ['out-in-0', 'out-in-1', 'out-in-2'], 'read_committed output');

  await producer.disconnect();
  await admin.disconnect();
  console.log(
    `kafkajs txn ok: read_committed ${committed[0].length + committed[1].length} of ` +
      `${all[0].length + all[1].length}; read-process-write group offset ${offset}`,
  );
}

main().catch((e) => fail(e.stack || String(e)));
