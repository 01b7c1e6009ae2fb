package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shmkit/shmkit/examples/internal/extest"
	"github.com/shmkit/shmkit/shmqueue"
)

// These tests run the producer and consumer binaries against each other.

func TestMain(m *testing.M) {
	code := m.Run()
	extest.Cleanup()
	os.Exit(code)
}

const (
	producerPkg = "github.com/shmkit/shmkit/examples/producer"
	consumerPkg = "github.com/shmkit/shmkit/examples/consumer"
)

var seq atomic.Int64

// spec returns a fresh posix segment spec, removed at cleanup whatever
// happens.
func spec(t *testing.T) string {
	s := fmt.Sprintf("posix:/shmkit-extest-orders-%d-%d", os.Getpid(), seq.Add(1))
	t.Cleanup(func() { _ = shmqueue.Remove(s) })
	return s
}

func bins(t *testing.T) (producer, consumer string) {
	return extest.Build(t, producerPkg), extest.Build(t, consumerPkg)
}

var receivedRE = regexp.MustCompile(`received (\d+) orders from (\d+) producer`)

// received parses a consumer's final line.
func received(t *testing.T, p *extest.Proc) (orders, producers int) {
	t.Helper()
	m := receivedRE.FindStringSubmatch(p.Stdout())
	if m == nil {
		t.Fatalf("no final line from consumer:\n%s\n%s", p.Stdout(), p.Stderr())
	}
	o, _ := strconv.Atoi(m[1])
	n, _ := strconv.Atoi(m[2])
	return o, n
}

func wantExit(t *testing.T, p *extest.Proc, name string, want int) {
	t.Helper()
	if code := p.Wait(t, 30*time.Second); code != want {
		t.Fatalf("%s: exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", name, code, want, p.Stdout(), p.Stderr())
	}
}

func wantOutput(t *testing.T, p *extest.Proc, name, s string) {
	t.Helper()
	if !p.WaitOutput(s, 30*time.Second) {
		t.Fatalf("%s never printed %q\nstdout:\n%s\nstderr:\n%s", name, s, p.Stdout(), p.Stderr())
	}
}

// The consumer starts first and waits for the segment; the producer creates
// it, pushes, closes; the consumer drains and stops; nothing is left.
func TestConsumerFirst(t *testing.T) {
	prod, cons := bins(t)
	for _, c := range []struct{ name, spec, backend string }{
		{"posix", spec(t), "futex"},
		{"sysv-semaphores", spec(t), "sysv"},
		{"file", "file:" + filepath.Join(t.TempDir(), "orders.shm"), "futex"},
	} {
		t.Run(c.name, func(t *testing.T) {
			consumer := extest.Start(t, cons, "-segment", c.spec)
			wantOutput(t, consumer, "consumer", "waiting for")
			producer := extest.Start(t, prod, "-segment", c.spec, "-n", "2000", "-rate", "0", "-backend", c.backend)
			wantExit(t, producer, "producer", 0)
			wantExit(t, consumer, "consumer", 0)
			if n, _ := received(t, consumer); n != 2000 {
				t.Errorf("consumer received %d orders, want 2000", n)
			}
			if !strings.Contains(consumer.Stdout(), "closed and drained") || !strings.Contains(producer.Stdout(), "removed") {
				t.Errorf("unexpected ending\nproducer:\n%s\nconsumer:\n%s", producer.Stdout(), consumer.Stdout())
			}
			if name, ok := strings.CutPrefix(c.spec, "posix:/"); ok && len(extest.ShmNames(name)) > 0 {
				t.Errorf("segment %s left behind", c.spec)
			}
		})
	}
}

// Two consumers share the work: every order goes to exactly one.
func TestTwoConsumers(t *testing.T) {
	prod, cons := bins(t)
	s := spec(t)
	// Slow consumers (1000 orders take a lone one a second or more), so
	// both are surely attached before the other could take everything.
	c1 := extest.Start(t, cons, "-segment", s, "-work", "1ms")
	c2 := extest.Start(t, cons, "-segment", s, "-work", "1ms")
	wantOutput(t, c1, "consumer 1", "waiting for")
	wantOutput(t, c2, "consumer 2", "waiting for")
	producer := extest.Start(t, prod, "-segment", s, "-n", "1000", "-rate", "0")
	wantExit(t, producer, "producer", 0)
	wantExit(t, c1, "consumer 1", 0)
	wantExit(t, c2, "consumer 2", 0)
	n1, _ := received(t, c1)
	n2, _ := received(t, c2)
	if n1+n2 != 1000 || n1 == 0 || n2 == 0 {
		t.Errorf("consumers received %d + %d orders, want 1000 split between both", n1, n2)
	}
}

// Ctrl-C on the producer: it closes the queue, the consumer takes every
// order that was pushed and exits 0, the producer removes the segment.
func TestProducerInterrupted(t *testing.T) {
	prod, cons := bins(t)
	s := spec(t)
	producer := extest.Start(t, prod, "-segment", s, "-rate", "5000")
	wantOutput(t, producer, "producer", "created")
	consumer := extest.Start(t, cons, "-segment", s)
	wantOutput(t, consumer, "consumer", "received") // its first progress line
	producer.Signal(syscall.SIGINT)
	wantExit(t, producer, "producer", 0)
	wantExit(t, consumer, "consumer", 0)
	m := regexp.MustCompile(`pushed (\d+) orders in`).FindStringSubmatch(producer.Stdout())
	if m == nil {
		t.Fatalf("no final line from producer:\n%s", producer.Stdout())
	}
	pushed, _ := strconv.Atoi(m[1])
	if n, _ := received(t, consumer); n != pushed || n == 0 {
		t.Errorf("producer pushed %d, consumer received %d", pushed, n)
	}
}

// Ctrl-C on a consumer, waiting or busy: it stops promptly with status 0.
func TestConsumerInterrupted(t *testing.T) {
	prod, cons := bins(t)
	s := spec(t)
	waiting := extest.Start(t, cons, "-segment", s)
	wantOutput(t, waiting, "consumer", "waiting for")
	waiting.Signal(syscall.SIGINT)
	wantExit(t, waiting, "waiting consumer", 0)

	producer := extest.Start(t, prod, "-segment", s, "-rate", "2000", "-drain", "0")
	busy := extest.Start(t, cons, "-segment", s)
	wantOutput(t, busy, "consumer", "received")
	busy.Signal(syscall.SIGTERM)
	wantExit(t, busy, "busy consumer", 0)
	if !strings.Contains(busy.Stdout(), "interrupted: received") {
		t.Errorf("consumer did not report the interruption:\n%s", busy.Stdout())
	}
	producer.Signal(syscall.SIGTERM)
	wantExit(t, producer, "producer", 0)
}

// A SIGKILLed producer closes nothing: the consumer keeps waiting, a new
// producer joins the same queue, and the consumer gets the orders of both.
func TestProducerKilled(t *testing.T) {
	prod, cons := bins(t)
	s := spec(t)
	first := extest.Start(t, prod, "-segment", s, "-rate", "5000")
	wantOutput(t, first, "producer", "created")
	consumer := extest.Start(t, cons, "-segment", s)
	wantOutput(t, consumer, "consumer", "received")
	first.Signal(syscall.SIGKILL)
	first.Wait(t, 10*time.Second)

	second := extest.Start(t, prod, "-segment", s, "-n", "500", "-rate", "0")
	wantOutput(t, second, "producer", "joined")
	wantExit(t, second, "second producer", 0)
	wantExit(t, consumer, "consumer", 0)
	n, producers := received(t, consumer)
	if n < 500 || producers != 2 {
		t.Errorf("consumer received %d orders from %d producers, want more than 500 from 2", n, producers)
	}
}
