// Sarama (Debian's golang-github-shopify-sarama-dev, 1.22.1) against a
// Rivulet broker: what a Go user does on day one. Built in GOPATH mode by
// tests/compat_clients.rs:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o sarama_check tests/compat/sarama_check.go
//	sarama_check BOOTSTRAP TOPIC GROUP
//
// Steps: ClusterAdmin CreateTopic (3 partitions), Client.Topics, DescribeTopics;
// a consumer group of two members over the empty topic; an idempotent
// SyncProducer (acks=all) writing keyed records with headers and explicit
// timestamps to explicit partitions; the group reads every record exactly
// once and commits (MarkMessage); ClusterAdmin ListConsumerGroups,
// DescribeConsumerGroups, ListConsumerGroupOffsets; a partition consumer per
// partition from OffsetOldest reads back exactly what was sent;
// Client.GetOffset newest/oldest/by timestamp; a restarted group member
// resumes at the committed offsets (the new records from a plain acks=all
// producer, snappy-compressed, found by time too); DeleteTopic.
//
// Exits non-zero with a message on any mismatch; prints "sarama ok: ..." on
// success. Set SARAMA_LOG=1 for the client's own log on stderr.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

const (
	partitions   = 3
	perPartition = 10
	laterPer     = 3
)

// The newest version constant of Sarama 1.22 that Rivulet's ApiVersions
// serves every request of.
var version = sarama.V2_2_0_0

// A fixed base for the records' timestamps (ms), so lookups by time are exact.
var baseTime = time.Unix(1_700_000_000, 0)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "sarama check FAILED: "+format+"\n", args...)
	os.Exit(1)
}

func check(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = version
	c.ClientID = "rivulet-sarama-check"
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	return c
}

type sent struct {
	key, value, header string
	ts                 time.Time
}

func recordFor(p int32, i int) sent {
	return sent{
		key:    fmt.Sprintf("k-%d-%d", p, i),
		value:  fmt.Sprintf("v-%d-%d", p, i),
		header: fmt.Sprintf("h-%d-%d", p, i),
		ts:     baseTime.Add(time.Duration(int(p)*1000+i) * time.Second),
	}
}

// produce writes records [from, to) to every partition with an acks=all
// SyncProducer (idempotent or not) compressing with codec and checks the
// offsets it is given back.
func produce(bootstrap []string, topic string, from, to int, codec sarama.CompressionCodec, idempotent bool) {
	c := config()
	c.Producer.Compression = codec
	c.Producer.RequiredAcks = sarama.WaitForAll
	if idempotent {
		c.Producer.Idempotent = true
		c.Net.MaxOpenRequests = 1
	}
	c.Producer.Retry.Max = 5
	c.Producer.Return.Successes = true
	c.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer(bootstrap, c)
	check(err, "NewSyncProducer (idempotent)")
	defer p.Close()
	for part := int32(0); part < partitions; part++ {
		for i := from; i < to; i++ {
			r := recordFor(part, i)
			gotPart, off, err := p.SendMessage(&sarama.ProducerMessage{
				Topic:     topic,
				Partition: part,
				Key:       sarama.StringEncoder(r.key),
				Value:     sarama.StringEncoder(r.value),
				Headers:   []sarama.RecordHeader{{Key: []byte("h"), Value: []byte(r.header)}},
				Timestamp: r.ts,
			})
			check(err, fmt.Sprintf("SendMessage %s (idempotent %v)", r.key, idempotent))
			if gotPart != part || off != int64(i) {
				fail("SendMessage %s: got partition %d offset %d, want %d/%d", r.key, gotPart, off, part, i)
			}
		}
	}
}

func header(m *sarama.ConsumerMessage) string {
	if len(m.Headers) != 1 || string(m.Headers[0].Key) != "h" {
		return fmt.Sprintf("<bad headers %d>", len(m.Headers))
	}
	return string(m.Headers[0].Value)
}

// The consumer-group side: every member's handler records what it read.
type groupLog struct {
	mu     sync.Mutex
	seen   map[string]int // "partition/offset" -> times read
	total  int
	claims map[string][]int32 // member id -> partitions of its last session
	minOff map[int32]int64    // lowest offset read per partition
}

func newGroupLog() *groupLog {
	return &groupLog{seen: map[string]int{}, claims: map[string][]int32{}, minOff: map[int32]int64{}}
}

func (g *groupLog) snapshot() (int, map[string][]int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	claims := map[string][]int32{}
	for k, v := range g.claims {
		claims[k] = append([]int32(nil), v...)
	}
	return g.total, claims
}

type handler struct{ log *groupLog }

func (h handler) Setup(s sarama.ConsumerGroupSession) error {
	h.log.mu.Lock()
	defer h.log.mu.Unlock()
	var ps []int32
	for _, p := range s.Claims() {
		ps = append(ps, p...)
	}
	h.log.claims[s.MemberID()] = ps
	return nil
}

func (h handler) Cleanup(s sarama.ConsumerGroupSession) error {
	h.log.mu.Lock()
	defer h.log.mu.Unlock()
	delete(h.log.claims, s.MemberID())
	return nil
}

func (h handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		want := recordFor(m.Partition, int(m.Offset))
		if string(m.Key) != want.key || string(m.Value) != want.value || header(m) != want.header {
			fail("group read %d/%d: key %q value %q header %q, want %+v", m.Partition, m.Offset, m.Key, m.Value, header(m), want)
		}
		h.log.mu.Lock()
		h.log.seen[fmt.Sprintf("%d/%d", m.Partition, m.Offset)]++
		h.log.total++
		if lo, ok := h.log.minOff[m.Partition]; !ok || m.Offset < lo {
			h.log.minOff[m.Partition] = m.Offset
		}
		h.log.mu.Unlock()
		s.MarkMessage(m, "")
	}
	return nil
}

// member runs one group member until its context is cancelled; Close on
// return commits the marked offsets.
type member struct {
	group  sarama.ConsumerGroup
	cancel context.CancelFunc
	done   chan struct{}
}

func startMember(bootstrap []string, topic, group string, g *groupLog) *member {
	c := config()
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	c.Consumer.Group.Session.Timeout = 6 * time.Second
	c.Consumer.Return.Errors = true
	// A retention makes 1.22 commit with OffsetCommit v2; its default (0)
	// sends v1, which Kafka 4.0 removed (KIP-896).
	c.Consumer.Offsets.Retention = 24 * time.Hour
	cg, err := sarama.NewConsumerGroup(bootstrap, group, c)
	check(err, "NewConsumerGroup")
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{group: cg, cancel: cancel, done: make(chan struct{})}
	go func() {
		for err := range cg.Errors() {
			fail("consumer group error: %v", err)
		}
	}()
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, handler{g}); err != nil {
				fail("Consume: %v", err)
			}
		}
	}()
	return m
}

func (m *member) stop() {
	m.cancel()
	<-m.done
	check(m.group.Close(), "ConsumerGroup.Close")
}

func waitFor(what string, timeout time.Duration, cond func() bool) {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			fail("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: sarama_check BOOTSTRAP TOPIC GROUP")
	}
	bootstrap, topic, group := []string{os.Args[1]}, os.Args[2], os.Args[3]
	if os.Getenv("SARAMA_LOG") == "1" {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Lmicroseconds)
	}

	// Admin: create, list, describe.
	admin, err := sarama.NewClusterAdmin(bootstrap, config())
	check(err, "NewClusterAdmin")
	defer admin.Close()
	check(admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false), "CreateTopic")
	// Listing through Client.Topics (Metadata): ClusterAdmin.ListTopics of
	// 1.22 sends DescribeConfigs v0, which Kafka 4.0 removed (KIP-896).
	lister, err := sarama.NewClient(bootstrap, config())
	check(err, "NewClient")
	defer lister.Close()
	listed := func() bool {
		check(lister.RefreshMetadata(), "RefreshMetadata")
		names, err := lister.Topics()
		check(err, "Client.Topics")
		for _, n := range names {
			if n == topic {
				return true
			}
		}
		return false
	}
	if !listed() {
		fail("Client.Topics does not list %s", topic)
	}
	described, err := admin.DescribeTopics([]string{topic})
	check(err, "DescribeTopics")
	if len(described) != 1 || described[0].Err != sarama.ErrNoError || len(described[0].Partitions) != partitions {
		fail("DescribeTopics: %+v", described)
	}
	for _, p := range described[0].Partitions {
		if p.Err != sarama.ErrNoError || len(p.Replicas) != 1 || len(p.Isr) != 1 || p.Leader != p.Replicas[0] {
			fail("DescribeTopics partition %d: %+v", p.ID, p)
		}
	}

	// Two group members share the (still empty) topic.
	g := newGroupLog()
	a := startMember(bootstrap, topic, group, g)
	b := startMember(bootstrap, topic, group, g)
	var split []int
	waitFor("two members to share the 3 partitions", 30*time.Second, func() bool {
		_, claims := g.snapshot()
		split = split[:0]
		n := 0
		for _, ps := range claims {
			split = append(split, len(ps))
			n += len(ps)
		}
		return len(claims) == 2 && n == partitions && split[0] > 0 && split[1] > 0
	})
	sort.Ints(split)

	// Idempotent acks=all producer: keys, headers, timestamps, explicit partitions.
	produce(bootstrap, topic, 0, perPartition, sarama.CompressionNone, true)
	total := partitions * perPartition
	waitFor("the group to read every record", 30*time.Second, func() bool {
		n, _ := g.snapshot()
		return n >= total
	})

	// Admin views of the live group.
	groups, err := admin.ListConsumerGroups()
	check(err, "ListConsumerGroups")
	if groups[group] != "consumer" {
		fail("ListConsumerGroups: %v, want %s with protocol type consumer", groups, group)
	}
	descs, err := admin.DescribeConsumerGroups([]string{group})
	check(err, "DescribeConsumerGroups")
	if len(descs) != 1 || descs[0].Err != sarama.ErrNoError || descs[0].State != "Stable" ||
		descs[0].ProtocolType != "consumer" || len(descs[0].Members) != 2 {
		fail("DescribeConsumerGroups: %+v", descs)
	}
	for id, m := range descs[0].Members {
		assignment, err := m.GetMemberAssignment()
		check(err, "member assignment of "+id)
		if assignment == nil || len(assignment.Topics[topic]) == 0 {
			fail("DescribeConsumerGroups: member %s has no partitions of %s: %+v", id, topic, assignment)
		}
	}

	a.stop()
	b.stop()
	g.mu.Lock()
	for k, n := range g.seen {
		if n != 1 {
			fail("group read %s %d times", k, n)
		}
	}
	if len(g.seen) != total {
		fail("group read %d distinct records, want %d", len(g.seen), total)
	}
	g.mu.Unlock()

	all := map[string][]int32{topic: {0, 1, 2}}
	committed, err := admin.ListConsumerGroupOffsets(group, all)
	check(err, "ListConsumerGroupOffsets")
	for p := int32(0); p < partitions; p++ {
		blk := committed.GetBlock(topic, p)
		if blk == nil || blk.Err != sarama.ErrNoError || blk.Offset != perPartition {
			fail("ListConsumerGroupOffsets %d: %+v, want offset %d", p, blk, perPartition)
		}
	}

	// A partition consumer from OffsetOldest reads back exactly what was sent.
	consumer, err := sarama.NewConsumer(bootstrap, config())
	check(err, "NewConsumer")
	for p := int32(0); p < partitions; p++ {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		check(err, "ConsumePartition")
		for i := 0; i < perPartition; i++ {
			select {
			case m := <-pc.Messages():
				want := recordFor(p, i)
				if m.Offset != int64(i) || string(m.Key) != want.key || string(m.Value) != want.value ||
					header(m) != want.header || !m.Timestamp.Equal(want.ts) {
					fail("partition %d record %d: offset %d key %q value %q header %q ts %v, want %+v",
						p, i, m.Offset, m.Key, m.Value, header(m), m.Timestamp, want)
				}
			case err := <-pc.Errors():
				fail("partition consumer %d: %v", p, err)
			case <-time.After(15 * time.Second):
				fail("partition consumer %d: record %d did not arrive", p, i)
			}
		}
		check(pc.Close(), "PartitionConsumer.Close")
	}
	check(consumer.Close(), "Consumer.Close")

	// Offsets: newest, oldest, by timestamp.
	client, err := sarama.NewClient(bootstrap, config())
	check(err, "NewClient")
	for p := int32(0); p < partitions; p++ {
		newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		check(err, "GetOffset newest")
		oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		check(err, "GetOffset oldest")
		at := recordFor(p, 4).ts
		byTime, err := client.GetOffset(topic, p, at.UnixNano()/int64(time.Millisecond))
		check(err, "GetOffset by timestamp")
		between, err := client.GetOffset(topic, p, at.UnixNano()/int64(time.Millisecond)-500)
		check(err, "GetOffset between timestamps")
		if newest != perPartition || oldest != 0 || byTime != 4 || between != 4 {
			fail("GetOffset partition %d: newest %d oldest %d at-ts %d between %d, want %d 0 4 4",
				p, newest, oldest, byTime, between, perPartition)
		}
	}
	check(client.Close(), "Client.Close")

	// More records; a restarted member resumes at the committed offsets.
	produce(bootstrap, topic, perPartition, perPartition+laterPer, sarama.CompressionSnappy, false)
	resumed := newGroupLog()
	r := startMember(bootstrap, topic, group, resumed)
	waitFor("the restarted member to read the new records", 30*time.Second, func() bool {
		n, _ := resumed.snapshot()
		return n >= partitions*laterPer
	})
	time.Sleep(300 * time.Millisecond) // anything re-read would arrive with the new ones
	// The snappy batches are found by time too.
	lookup, err := sarama.NewClient(bootstrap, config())
	check(err, "NewClient")
	for p := int32(0); p < partitions; p++ {
		at := recordFor(p, perPartition+1).ts.UnixNano() / int64(time.Millisecond)
		off, err := lookup.GetOffset(topic, p, at)
		check(err, "GetOffset by timestamp (snappy)")
		if off != perPartition+1 {
			fail("GetOffset by timestamp of snappy record %d/%d: %d", p, perPartition+1, off)
		}
	}
	check(lookup.Close(), "Client.Close")
	r.stop()
	resumed.mu.Lock()
	if resumed.total != partitions*laterPer {
		fail("restarted member read %d records, want exactly %d new", resumed.total, partitions*laterPer)
	}
	for p, lo := range resumed.minOff {
		if lo != perPartition {
			fail("restarted member started partition %d at offset %d, want %d", p, lo, perPartition)
		}
	}
	resumed.mu.Unlock()

	check(admin.DeleteTopic(topic), "DeleteTopic")
	waitFor("the topic to disappear from Client.Topics", 15*time.Second, func() bool { return !listed() })

	fmt.Printf("sarama ok: %d records via idempotent producer, group split %d/%d, "+
		"resumed with exactly %d new, topic deleted\n", total, split[0], split[1], partitions*laterPer)
}
