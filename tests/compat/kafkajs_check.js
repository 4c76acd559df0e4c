// A Node user's day one with kafkajs against Rivulet: the admin client,
// an idempotent producer and a consumer group, as kafkajs users call them.
// Usage: node kafkajs_check.js BOOTSTRAP TOPIC GROUP
//
// TOPIC gets 3 partitions and retention.ms, then grows to 4; TOPIC-side (1
// partition) takes sendBatch's second topic and the seek/pause/resume and
// fromBeginning:false checks; TOPIC-time a send mixing explicit and implicit
// timestamps, looked up by time. GROUP's two members (eachMessage and
// eachBatch) read every record of TOPIC exactly once between them, commit
// and leave; a new member resumes at the commits. Then the group's offsets
// are read, reset, set and deleted through the admin client.
// Exits non-zero on any mismatch; prints "kafkajs ok: ..." on success.
'use strict';
const { kafkajs, client, assertions, sleep } = require('./kafkajs_common');

const { CompressionTypes, ConfigResourceTypes, AssignerProtocol } = kafkajs;
const [bootstrap, topic, group] = process.argv.slice(2);
if (!group) {
  console.error('usage: kafkajs_check.js BOOTSTRAP TOPIC GROUP');
  process.exit(2);
}
const side = `${topic}-side`;
const timed = `${topic}-time`;
const RETENTION = '3600000';
const ALTERED_RETENTION = '7200000';

const kafka = client('rivulet-kafkajs-check', bootstrap);
const { fail, assertEq, check } = assertions('kafkajs');

async function until(cond, what, ms = 20000) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const byPartition = (rows) => rows.slice().sort((a, b) => a.partition - b.partition);

async function topicConfig(admin, name) {
  const { resources } = await admin.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name }],
    includeSynonyms: false,
  });
  assertEq(resources.length, 1, 'describeConfigs resources');
  assertEq(resources[0].errorCode, 0, 'describeConfigs error code');
  return Object.fromEntries(resources[0].configEntries.map((e) => [e.configName, e]));
}

// createTopics, listTopics, fetchTopicMetadata, describe/alterConfigs,
// createPartitions.
async function adminTopics(admin) {
  const created = await admin.createTopics({
    topics: [
      { topic, numPartitions: 3, configEntries: [{ name: 'retention.ms', value: RETENTION }] },
      { topic: side, numPartitions: 1 },
      { topic: timed, numPartitions: 1 },
    ],
    waitForLeaders: true,
  });
  assertEq(created, true, 'createTopics of new topics');
  // Against Kafka, kafkajs turns an all-TOPIC_ALREADY_EXISTS answer into `false`.
  const again = await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] });
  assertEq(again, false, 'createTopics of an existing topic');

  const listed = await admin.listTopics();
  for (const t of [topic, side, timed]) check(listed.includes(t), `listTopics ${listed} lacks ${t}`);

  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  assertEq(meta.topics.map((t) => t.name), [topic], 'fetchTopicMetadata topics');
  const parts = byPartition(meta.topics[0].partitions);
  assertEq(parts.map((p) => p.partitionId), [0, 1, 2], 'fetchTopicMetadata partitions');
  for (const p of parts) {
    assertEq(p.partitionErrorCode, 0, `partition ${p.partitionId} error`);
    check(p.leader >= 0 && p.replicas.includes(p.leader) && p.isr.includes(p.leader),
      `partition ${p.partitionId} leader ${p.leader} replicas ${p.replicas} isr ${p.isr}`);
  }

  let config = await topicConfig(admin, topic);
  check(config['retention.ms'], 'describeConfigs lacks retention.ms');
  assertEq(config['retention.ms'].configValue, RETENTION, 'retention.ms as created');
  assertEq(config['retention.ms'].isDefault, false, 'retention.ms isDefault');
  check(config['cleanup.policy'], 'describeConfigs lacks cleanup.policy');
  assertEq(config['cleanup.policy'].configValue, 'delete', 'cleanup.policy default');

  await admin.alterConfigs({
    resources: [{
      type: ConfigResourceTypes.TOPIC,
      name: topic,
      configEntries: [{ name: 'retention.ms', value: ALTERED_RETENTION }],
    }],
  });
  config = await topicConfig(admin, topic);
  assertEq(config['retention.ms'].configValue, ALTERED_RETENTION, 'retention.ms after alterConfigs');

  await admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] });
  await until(async () => {
    const m = await admin.fetchTopicMetadata({ topics: [topic] });
    return m.topics[0].partitions.length === 4;
  }, 'the topic to show 4 partitions');
}

// Records of the group phase: keys, two header keys (one repeated), values.
function record(i) {
  return {
    key: `key-${i}`,
    value: `value-${i}`,
    headers: { trace: `t-${i}`, tag: ['a', `b-${i}`] },
  };
}

function checkRecord(partition, m, what) {
  const i = Number(m.key.toString().slice('key-'.length));
  assertEq(m.value.toString(), `value-${i}`, `${what} value of ${m.key}`);
  assertEq(m.headers.trace.toString(), `t-${i}`, `${what} header trace of ${m.key}`);
  check(Array.isArray(m.headers.tag), `${what}: repeated header tag of ${m.key} came back once`);
  assertEq(m.headers.tag.map(String), ['a', `b-${i}`], `${what} header tag of ${m.key}`);
  return i;
}

// A group member that records what it reads; eachBatch or eachMessage.
async function member(name, mode, seen, joined) {
  const consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 100, heartbeatInterval: 500 });
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    joined[name] = e.payload.memberAssignment[topic] || [];
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const note = (partition, m) => {
    checkRecord(partition, m, name);
    seen.push({ who: name, partition, offset: m.offset, key: m.key.toString() });
  };
  if (mode === 'eachMessage') {
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => note(partition, message),
    });
  } else {
    await consumer.run({
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary }) => {
        for (const m of batch.messages) {
          note(batch.partition, m);
          resolveOffset(m.offset);
        }
        await commitOffsetsIfNecessary();
        await heartbeat();
      },
    });
  }
  return consumer;
}

// Produce with the idempotent producer: records 0..n-1 in two sends with a
// pause between (for fetchTopicOffsetsByTimestamp), then a sendBatch over
// both topics; returns the timestamp between the two sends.
async function produce(producer, n) {
  const half = Math.floor(n / 2);
  const first = [];
  for (let i = 0; i < half; i += 1) first.push(record(i));
  await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages: first });
  await sleep(20);
  const between = Date.now();
  await sleep(20);
  const second = [];
  for (let i = half; i < n; i += 1) second.push(record(i));
  await producer.sendBatch({
    acks: -1,
    compression: CompressionTypes.GZIP,
    topicMessages: [
      { topic, messages: second },
      { topic: side, messages: [0, 1, 2, 3, 4, 5].map((j) => ({ key: 'side', value: `side-${j}` })) },
    ],
  });
  return between;
}

async function offsetsOf(admin, t) {
  return byPartition(await admin.fetchTopicOffsets(t));
}

async function groupOffsets(admin, t) {
  const [res] = await admin.fetchOffsets({ groupId: group, topics: [t] });
  assertEq(res.topic, t, 'fetchOffsets topic');
  return byPartition(res.partitions).map((p) => p.offset);
}

async function groupPhase(admin, producer, n) {
  const seen = [];
  const joined = {};
  const c1 = await member('c1', 'eachMessage', seen, joined);
  const c2 = await member('c2', 'eachBatch', seen, joined);
  // Produce once both members hold 2 partitions each, so no rebalance
  // happens while they read.
  await until(() => joined.c1 && joined.c2 && joined.c1.length === 2 && joined.c2.length === 2,
    'two members with 2 partitions each');
  const assigned = [...joined.c1, ...joined.c2].sort();
  assertEq(assigned, [0, 1, 2, 3], 'partitions assigned between the members');

  const between = await produce(producer, n);
  await until(() => seen.length >= n, `${n} records read by the group`);
  await sleep(500); // anything more would be a duplicate
  assertEq(seen.length, n, 'records read by the group');
  const distinct = new Set(seen.map((s) => `${s.partition}/${s.offset}`));
  assertEq(distinct.size, n, 'distinct (partition, offset) read');
  assertEq(new Set(seen.map((s) => s.key)).size, n, 'distinct keys read');
  const perMember = { c1: 0, c2: 0 };
  for (const s of seen) {
    check(joined[s.who].includes(s.partition), `${s.who} read partition ${s.partition} it was not assigned`);
    perMember[s.who] += 1;
  }
  check(perMember.c1 > 0 && perMember.c2 > 0, `both members read: ${JSON.stringify(perMember)}`);

  const high = await offsetsOf(admin, topic);
  assertEq(high.map((p) => p.low), ['0', '0', '0', '0'], 'low offsets');
  assertEq(high.reduce((s, p) => s + Number(p.high), 0), n, 'sum of high offsets');
  for (const p of high) {
    const last = Math.max(-1, ...seen.filter((s) => s.partition === p.partition).map((s) => Number(s.offset)));
    assertEq(String(last + 1), p.high, `partition ${p.partition} high vs last read`);
  }

  // The first send ended before `between`: offsets by timestamp are the
  // first offsets of the second send, per partition.
  const firstHalf = new Set([...Array(Math.floor(n / 2)).keys()].map((i) => `key-${i}`));
  const wantByTime = high.map((p) => String(
    seen.filter((s) => s.partition === p.partition && firstHalf.has(s.key)).length));
  const byTime = byPartition(await admin.fetchTopicOffsetsByTimestamp(topic, between));
  assertEq(byTime.map((p) => p.offset), wantByTime, 'fetchTopicOffsetsByTimestamp');
  const future = byPartition(await admin.fetchTopicOffsetsByTimestamp(topic, Date.now() + 3600000));
  assertEq(future.map((p) => p.offset), high.map((p) => p.high), 'fetchTopicOffsetsByTimestamp of the future');

  // Commit: c1 by hand, c2 through commitOffsetsIfNecessary (and on stop).
  await c1.commitOffsets(joined.c1.map((partition) => ({
    topic, partition, offset: high.find((p) => p.partition === partition).high,
  })));
  await c1.disconnect();
  await c2.disconnect();
  assertEq(await groupOffsets(admin, topic), high.map((p) => p.high), 'committed offsets after the members left');
  return { high, perMember, byTime };
}

// A consumer of `t` in group `groupId` pushing `map(partition, message)`
// into `got`; `state.fetched` turns true after its first fetch.
async function reader(groupId, t, fromBeginning, map) {
  const got = [];
  const state = { fetched: false };
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
  consumer.on(consumer.events.FETCH, () => { state.fetched = true; });
  await consumer.connect();
  await consumer.subscribe({ topic: t, fromBeginning });
  await consumer.run({
    eachMessage: async ({ partition, message }) => { got.push(map(partition, message)); },
  });
  return { consumer, got, state };
}

// A new member of the group resumes at the committed offsets; the admin
// client describes and lists the group meanwhile.
async function resumePhase(admin, producer, n, more) {
  const { consumer, got } = await reader(group, topic, true, (p, m) => checkRecord(p, m, 'resumed'));
  const extra = [];
  for (let i = n; i < n + more; i += 1) extra.push(record(i));
  await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages: extra });
  await until(() => got.length >= more, `${more} new records read after the resume`);
  await sleep(500);
  assertEq(got.sort((a, b) => a - b), extra.map((_, j) => n + j), 'records read after the resume');

  const { groups } = await admin.describeGroups([group]);
  assertEq(groups.length, 1, 'describeGroups groups');
  const g = groups[0];
  assertEq([g.groupId, g.errorCode, g.state, g.protocolType], [group, 0, 'Stable', 'consumer'], 'describeGroups');
  assertEq(g.protocol, 'RoundRobinAssigner', 'describeGroups protocol');
  assertEq(g.members.length, 1, 'describeGroups members');
  assertEq(g.members[0].clientId, 'rivulet-kafkajs-check', 'describeGroups member client id');
  const assignment = AssignerProtocol.MemberAssignment.decode(g.members[0].memberAssignment);
  assertEq(assignment.assignment[topic].slice().sort(), [0, 1, 2, 3], 'describeGroups member assignment');
  const listed = (await admin.listGroups()).groups.find((x) => x.groupId === group);
  check(listed, `listGroups lacks ${group}`);
  assertEq(listed.protocolType, 'consumer', 'listGroups protocol type');

  await consumer.disconnect();
  const after = (await admin.describeGroups([group])).groups[0];
  assertEq([after.state, after.members.length], ['Empty', 0], 'describeGroups after the member left');
  return got.length;
}

// resetOffsets / setOffsets / deleteGroups as kafkajs users call them.
async function offsetsAdminPhase(admin) {
  const ends = (await offsetsOf(admin, topic)).map((p) => p.high);
  assertEq(await groupOffsets(admin, topic), ends, 'committed offsets before resetOffsets');
  await admin.resetOffsets({ groupId: group, topic, earliest: true });
  // As against Kafka (kafkajs' own resetOffsets test): the group holds the
  // earliest marker -2 until fetchOffsets resolves it.
  assertEq(await groupOffsets(admin, topic), ['-2', '-2', '-2', '-2'], 'offsets after resetOffsets earliest');
  const [resolved] = await admin.fetchOffsets({ groupId: group, topics: [topic], resolveOffsets: true });
  assertEq(byPartition(resolved.partitions).map((p) => p.offset), ['0', '0', '0', '0'], 'resolved offsets');
  assertEq(await groupOffsets(admin, topic), ['0', '0', '0', '0'], 'offsets after fetchOffsets resolveOffsets');
  await admin.setOffsets({
    groupId: group,
    topic,
    partitions: [0, 1, 2, 3].map((partition) => ({ partition, offset: String(partition % 2) })),
  });
  assertEq(await groupOffsets(admin, topic), ['0', '1', '0', '1'], 'offsets after setOffsets');
  const deleted = await admin.deleteGroups([group]);
  assertEq(deleted.map((d) => [d.groupId, d.errorCode]), [[group, 0]], 'deleteGroups');
  assertEq(await groupOffsets(admin, topic), ['-1', '-1', '-1', '-1'], 'offsets after deleteGroups');
  const groups = (await admin.listGroups()).groups.map((x) => x.groupId);
  check(!groups.includes(group), `listGroups still has ${group} after deleteGroups`);
}

// seek and pause/resume on the side topic (6 records from sendBatch).
async function seekPausePhase(producer) {
  const { consumer, got } = await reader(`${group}-seek`, side, true, (_, m) => Number(m.offset));
  await until(() => got.length >= 6, 'the 6 side records');
  assertEq(got, [0, 1, 2, 3, 4, 5], 'side records from the beginning');
  consumer.seek({ topic: side, partition: 0, offset: '2' });
  await until(() => got.length >= 10, 'the records after the seek');
  assertEq(got.slice(6), [2, 3, 4, 5], 'side records after seek to 2');

  consumer.pause([{ topic: side }]);
  check(consumer.paused().some((p) => p.topic === side), 'paused() lacks the side topic');
  await producer.send({ topic: side, acks: -1, messages: [{ value: 'side-6' }, { value: 'side-7' }] });
  await sleep(1000);
  assertEq(got.length, 10, 'records read while paused');
  consumer.resume([{ topic: side }]);
  await until(() => got.length >= 12, 'the records produced while paused');
  assertEq(got.slice(10), [6, 7], 'side records after resume');
  await consumer.disconnect();
  return got.length;
}

// One send mixing a record with an old explicit timestamp and records
// without one: kafkajs writes the batch's max timestamp from the explicit
// ones only (1000 here); Kafka sets it from the records, so offsets by
// timestamp still find the records stamped now.
async function mixedTimestampPhase(admin, producer) {
  const before = Date.now() - 60000;
  await producer.send({
    topic: timed,
    acks: -1,
    messages: [{ value: 'now-0' }, { value: 'old', timestamp: '1000' }, { value: 'now-1' }],
  });
  const found = await admin.fetchTopicOffsetsByTimestamp(timed, before);
  assertEq(found.map((p) => p.offset), ['0'], 'fetchTopicOffsetsByTimestamp over mixed timestamps');
  const afterOld = await admin.fetchTopicOffsetsByTimestamp(timed, 1001);
  assertEq(afterOld.map((p) => p.offset), ['0'], 'fetchTopicOffsetsByTimestamp just after the old record');
  return found[0].offset;
}

// fromBeginning:false starts a new group at the end of the log.
async function latestPhase(producer) {
  const { consumer, got, state } = await reader(`${group}-latest`, side, false, (_, m) => m.value.toString());
  await until(() => state.fetched, 'the first fetch of the fromBeginning:false consumer');
  await producer.send({ topic: side, acks: -1, messages: [{ value: 'late-0' }, { value: 'late-1' }] });
  await until(() => got.length >= 2, 'the records produced after the join');
  await sleep(500);
  assertEq(got, ['late-0', 'late-1'], 'records read by a fromBeginning:false consumer');
  await consumer.disconnect();
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  await adminTopics(admin);

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const n = 40;
  const more = 8;
  const { perMember } = await groupPhase(admin, producer, n);
  const resumed = await resumePhase(admin, producer, n, more);
  await offsetsAdminPhase(admin);
  const sideRead = await seekPausePhase(producer);
  await latestPhase(producer);
  const mixedAt = await mixedTimestampPhase(admin, producer);
  await producer.disconnect();

  await admin.deleteTopics({ topics: [topic, side, timed] });
  await until(async () => {
    const listed = await admin.listTopics();
    return ![topic, side, timed].some((t) => listed.includes(t));
  }, 'the deleted topics to leave listTopics');
  await admin.disconnect();
  console.log(
    `kafkajs ok: ${n} records split ${perMember.c1}/${perMember.c2} over 4 partitions, ` +
      `resumed with exactly ${resumed} new; offsets reset, set and deleted; ` +
      `seek/pause ${sideRead} side reads; mixed timestamps found at ${mixedAt}; topics deleted`,
  );
}

main().catch((e) => fail(e.stack || String(e)));
