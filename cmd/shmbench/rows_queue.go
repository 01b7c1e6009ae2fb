package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/shmqueue"
)

// shmqueue rows: P producer and C consumer children on one Queue[item64].
// The parent only coordinates: it starts everyone at once, and when every
// producer has reported it closes the queue for writes, so consumers drain
// it and report how many items they saw (which must add up).
//
// Queues live in posix:/ segments (not memfds) because shmqueue.Remove,
// which also removes a SysV backend's semaphore set, works by spec.

const queueCap = 4096

var backends = map[string]shmqueue.Backend{"futex": shmqueue.BackendFutex, "sysv": shmqueue.BackendSysV}

// args: role spec n
var _ = registerPeer("shmbench-queue", func(m member, a []string) error {
	role, spec, n := a[0], a[1], atoi(a[2])
	q, err := shmqueue.Open[item64](spec)
	if err != nil {
		return err
	}
	defer q.Close()
	if err := m.ready(); err != nil {
		return err
	}
	ctx := context.Background()
	if role == "producer" {
		for i := range uint64(n) {
			if err := q.Push(ctx, item64{Seq: i}); err != nil {
				return err
			}
		}
		return m.report(tagProduced, uint64(n))
	}
	var got uint64
	for {
		_, err := q.Pop(ctx)
		if errors.Is(err, shmqueue.ErrClosed) {
			break
		}
		if err != nil {
			return err
		}
		got++
	}
	return m.report(tagDone, got)
})

func queueThroughput(backend string, producers, consumers int) func(runConfig, int) (outcome, error) {
	return func(cfg runConfig, n int) (outcome, error) {
		spec := "posix:/" + uniqueName("queue")
		q, err := shmqueue.Create[item64](spec, queueCap, shmqueue.WithBackend(backends[backend]), shmqueue.WithPopulate())
		if err != nil {
			return outcome{}, err
		}
		rm := onCleanup(func() { _ = shmqueue.Remove(spec); _ = segment.Remove(spec) })
		defer rm()
		defer q.Close()
		var args [][]string
		for i := range consumers {
			_ = i
			args = append(args, []string{"consumer", spec, "0"})
		}
		for i := range producers {
			share := n / producers
			if i == 0 {
				share += n % producers
			}
			args = append(args, []string{"producer", spec, itoa(share)})
		}
		t, start, err := launchTeam(cfg, "shmbench-queue", nil, args...)
		if err != nil {
			return outcome{}, err
		}
		var pushed, popped uint64
		for pDone, cDone := 0, 0; cDone < consumers; {
			tag, v, err := t.next()
			if err != nil {
				return outcome{}, t.fail(err)
			}
			switch tag {
			case tagProduced:
				pushed += v
				if pDone++; pDone == producers {
					if err := q.CloseWrites(); err != nil {
						return outcome{}, t.fail(err)
					}
				}
			case tagDone:
				popped += v
				cDone++
			default:
				return outcome{}, t.fail(fmt.Errorf("peer status %q", tag))
			}
		}
		elapsed := time.Since(start)
		if err := t.wait(); err != nil {
			return outcome{}, err
		}
		if pushed != uint64(n) || popped != uint64(n) {
			return outcome{}, fmt.Errorf("pushed %d, popped %d, want %d", pushed, popped, n)
		}
		return outcome{elapsed: elapsed}, nil
	}
}

// ---- Queue ping-pong: two queues, the child pops from one and pushes back ----

// args: pingSpec pongSpec n
var _ = registerPeer("shmbench-queue-echo", func(m member, a []string) error {
	ping, err := shmqueue.Open[item8](a[0])
	if err != nil {
		return err
	}
	defer ping.Close()
	pong, err := shmqueue.Open[item8](a[1])
	if err != nil {
		return err
	}
	defer pong.Close()
	if err := m.ready(); err != nil {
		return err
	}
	ctx := context.Background()
	for range atoi(a[2]) {
		v, err := ping.Pop(ctx)
		if err != nil {
			return err
		}
		if err := pong.Push(ctx, v); err != nil {
			return err
		}
	}
	return nil
})

func queuePingPong(backend string) func(runConfig, int) (outcome, error) {
	return func(cfg runConfig, n int) (outcome, error) {
		var qs [2]*shmqueue.Queue[item8]
		var specs [2]string
		for i := range qs {
			specs[i] = "posix:/" + uniqueName("queue-pp")
			q, err := shmqueue.Create[item8](specs[i], 16, shmqueue.WithBackend(backends[backend]))
			if err != nil {
				return outcome{}, err
			}
			spec := specs[i]
			defer onCleanup(func() { _ = shmqueue.Remove(spec) })()
			defer q.Close()
			qs[i] = q
		}
		ping, pong := qs[0], qs[1]
		t, err := startTeam(cfg, "shmbench-queue-echo", nil, []string{specs[0], specs[1], itoa(n)})
		if err != nil {
			return outcome{}, err
		}
		return timePingPong(t, n, ping, pong)
	}
}

// ---- Queue, natural use: one producer child, the consumer is the parent ----

// args: spec n
var _ = registerPeer("shmbench-queue-natural", func(m member, a []string) error {
	q, err := shmqueue.Open[item8](a[0])
	if err != nil {
		return err
	}
	defer q.Close()
	if err := m.ready(); err != nil {
		return err
	}
	ctx := context.Background()
	n := uint64(atoi(a[1]))
	for i := range n {
		if err := q.Push(ctx, item8{Seq: i}); err != nil {
			return err
		}
	}
	return m.report(tagProduced, n)
})

// queueNatural is the queue as most users first write it: a worker
// process pushes 8-byte items one Push at a time and this process pops
// them one Pop at a time, checking each. The time runs from the start
// signal to the last item popped.
func queueNatural(backend string) func(runConfig, int) (outcome, error) {
	return func(cfg runConfig, n int) (outcome, error) {
		spec := "posix:/" + uniqueName("queue-nat")
		q, err := shmqueue.Create[item8](spec, queueCap, shmqueue.WithBackend(backends[backend]), shmqueue.WithPopulate())
		if err != nil {
			return outcome{}, err
		}
		rm := onCleanup(func() { _ = shmqueue.Remove(spec); _ = segment.Remove(spec) })
		defer rm()
		defer q.Close()
		if _, err := q.TryPop(); !errors.Is(err, shmqueue.ErrEmpty) { // attach the consumer before the clock
			return outcome{}, fmt.Errorf("empty queue: TryPop: %v", err)
		}
		ctx := context.Background()
		t, start, err := launchTeam(cfg, "shmbench-queue-natural", nil, []string{spec, itoa(n)})
		if err != nil {
			return outcome{}, err
		}
		for i := range uint64(n) {
			v, err := q.Pop(ctx)
			if err != nil {
				return outcome{}, t.fail(err)
			}
			if v.Seq != i {
				return outcome{}, t.fail(fmt.Errorf("popped item %d, want %d", v.Seq, i))
			}
		}
		elapsed := time.Since(start)
		if _, err := t.expect(tagProduced, 1); err != nil {
			return outcome{}, t.fail(err)
		}
		if err := t.wait(); err != nil {
			return outcome{}, err
		}
		return outcome{elapsed: elapsed}, nil
	}
}
