// segmentio/kafka-go as Debian packages it (golang-github-segmentio-kafka-go-dev,
// 0.2.1 of 2018) against a Rivulet broker. Built in GOPATH mode by
// tests/compat_clients.rs:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o kafka_go_check tests/compat/kafka_go_check.go
//	kafka_go_check BOOTSTRAP TOPIC GROUP
//
// kafka-go 0.2.1 writes message format v1 with Produce v2, reads with Fetch
// v2 and creates topics with CreateTopics v0: versions Kafka 4.0 removed
// (KIP-896), whose frames a 4.x broker answers by closing the connection.
// Rivulet does the same, so this client cannot move data against Rivulet or
// Kafka 4.x; the check covers what does work against Kafka 4.x (Metadata v1
// with topic auto-creation, ListOffsets v1, a consumer group's join, sync
// and OffsetCommit v2) and that the removed versions fail at once instead
// of hanging the client.
//
// Exits non-zero with a message on any mismatch; prints "kafka-go ok: ..." on
// success. Set KAFKA_GO_LOG=1 for the client's own log on stderr.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/snappy"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kafka-go check FAILED: "+format+"\n", args...)
	os.Exit(1)
}

func check(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

// refusedFast runs a request of a version Kafka 4.0 removed and checks it
// fails with the connection closed (EOF) within a few seconds.
func refusedFast(what string, f func() error) {
	start := time.Now()
	err := f()
	if err == nil {
		fail("%s succeeded; kafka-go 0.2.1 uses a version Kafka 4.0 removed, expected a closed connection", what)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		fail("%s: %v, want the connection closed (EOF) as Kafka 4.x does", what, err)
	}
	if took := time.Since(start); took > 10*time.Second {
		fail("%s took %s to fail", what, took)
	}
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: kafka_go_check BOOTSTRAP TOPIC GROUP")
	}
	addr, topic, group := os.Args[1], os.Args[2], os.Args[3]
	var logger, errLogger *log.Logger
	if os.Getenv("KAFKA_GO_LOG") == "1" {
		logger = log.New(os.Stderr, "[kafka-go] ", log.Lmicroseconds)
		errLogger = log.New(os.Stderr, "[kafka-go error] ", log.Lmicroseconds)
	}
	host, portText, err := net.SplitHostPort(addr)
	check(err, "bootstrap address")
	port, err := strconv.Atoi(portText)
	check(err, "bootstrap port")

	// CreateTopics v0: removed in Kafka 4.0.
	conn, err := kafka.Dial("tcp", addr)
	check(err, "Dial")
	refusedFast("Conn.CreateTopics (v0)", func() error {
		return conn.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 3, ReplicationFactor: 1})
	})
	conn.Close()

	// Metadata v1 creates the topic (auto.create.topics.enable, Kafka's
	// default) and describes it.
	conn, err = kafka.Dial("tcp", addr)
	check(err, "Dial")
	defer conn.Close()
	var parts []kafka.Partition
	deadline := time.Now().Add(15 * time.Second)
	for {
		parts, err = conn.ReadPartitions(topic)
		if err == nil && len(parts) > 0 && parts[0].Leader.Port != 0 {
			break
		}
		if time.Now().After(deadline) {
			fail("ReadPartitions %s: %v %+v", topic, err, parts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p := parts[0]
	if len(parts) != 1 || p.Topic != topic || p.ID != 0 || p.Leader.Host != host || p.Leader.Port != port ||
		len(p.Replicas) != 1 || len(p.Isr) != 1 || p.Replicas[0].ID != p.Leader.ID {
		fail("ReadPartitions %s: %+v, want one partition led by %s", topic, parts, addr)
	}

	// ListOffsets v1 on the partition leader.
	leader, err := kafka.DialLeader(context.Background(), "tcp", addr, topic, 0)
	check(err, "DialLeader")
	first, last, err := leader.ReadOffsets()
	check(err, "ReadOffsets")
	if first != 0 || last != 0 {
		fail("ReadOffsets of the empty partition: %d..%d, want 0..0", first, last)
	}

	// Produce v2 (message format v1), the Writer's only version: removed.
	refusedFast("Writer.WriteMessages (Produce v2)", func() error {
		w := kafka.NewWriter(kafka.WriterConfig{
			Brokers:          []string{addr},
			Topic:            topic,
			RequiredAcks:     -1,
			CompressionCodec: snappy.NewCompressionCodec(),
			MaxAttempts:      1,
			Logger:           logger,
			ErrorLogger:      errLogger,
		})
		defer w.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		return w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("v")})
	})
	refusedFast("Conn.ReadMessage (Fetch v2)", func() error {
		check(leader.SetReadDeadline(time.Now().Add(15*time.Second)), "SetReadDeadline")
		_, err := leader.ReadMessage(1 << 20)
		return err
	})
	leader.Close()

	// A group reader joins (FindCoordinator v0, JoinGroup v1, SyncGroup v0)
	// and commits (OffsetCommit v2); its fetches then fail as above.
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:           []string{addr},
		Topic:             topic,
		GroupID:           group,
		HeartbeatInterval: 500 * time.Millisecond,
		Logger:            logger,
		ErrorLogger:       errLogger,
	})
	deadline = time.Now().Add(20 * time.Second)
	for r.Stats().Fetches < 1 {
		if time.Now().After(deadline) {
			fail("the group reader never got a partition: %+v", r.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err = r.CommitMessages(ctx, kafka.Message{Topic: topic, Partition: 0, Offset: 0})
	cancel()
	check(err, "Reader.CommitMessages (OffsetCommit v2)")
	check(r.Close(), "Reader.Close")

	fmt.Printf("kafka-go ok: metadata (1 partition, leader %s), offsets 0..0, group joined and committed; "+
		"CreateTopics v0, Produce v2, Fetch v2 refused as by Kafka 4.x\n", addr)
}
