package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/shmkit/shmkit/internal/baseline"
	"github.com/shmkit/shmkit/internal/sysv"
)

// Baselines: the mechanisms every Unix programmer already has.
//
// Throughput over a pipe, a Unix socket pair and a SysV message queue is
// internal/baseline's measurement (one write(2)/msgsnd(2) per message).
// internal/baseline times ping-pong only as a mean, so the ping-pong rows
// here run their own echo loop over the same kinds of channel, timed by
// timeRoundTrips like every ping-pong row. POSIX message queues and Go
// channels are measured here too.

func baselineThroughput(tr baseline.Transport, size int) func(runConfig, int) (outcome, error) {
	return func(_ runConfig, n int) (outcome, error) {
		r, err := baseline.Throughput(tr, n, size)
		return outcome{elapsed: r.Elapsed}, err
	}
}

// baselineSpinRing is internal/baseline's bare per-item ring (the floor
// of a Ring row: see baseline.SpinRing).
func baselineSpinRing(size int) func(runConfig, int) (outcome, error) {
	return func(_ runConfig, n int) (outcome, error) {
		r, err := baseline.SpinRing(n, size)
		return outcome{elapsed: r.Elapsed}, err
	}
}

func baselineWordPingPong(f func(int) (baseline.Result, error)) func(runConfig, int) (outcome, error) {
	return func(_ runConfig, n int) (outcome, error) {
		r, err := f(n)
		return outcome{elapsed: r.Elapsed, best: r.Best, meanOnly: true,
			note: "internal/baseline: mean and best chunk only"}, err
	}
}

// ---- message endpoints for the echo and sink peers ----

// endpoint is one side of a bidirectional message channel.
type endpoint struct {
	send func(msg []byte) error
	recv func(buf []byte) error // fills buf with one message of len(buf) bytes
}

// channelKit is a channel between the parent and one child: the parent's
// endpoint, the files and arguments that let the child build its own, and
// what to release afterwards.
type channelKit struct {
	parent      endpoint
	childFiles  []*os.File
	childArgs   []string
	closeChild  func() // the parent's copies of the child's files, after start
	closeParent func()
}

func newChannelKit(kind string, size int) (*channelKit, error) {
	switch kind {
	case "pipe":
		pr, pw, cr, cw, err := baseline.PipePair()
		if err != nil {
			return nil, err
		}
		return &channelKit{
			parent:      streamEndpoint(pr, pw),
			childFiles:  []*os.File{cr, cw},
			closeChild:  func() { cr.Close(); cw.Close() },
			closeParent: func() { pr.Close(); pw.Close() },
		}, nil
	case "unix":
		a, b, err := baseline.SocketPair()
		if err != nil {
			return nil, err
		}
		return &channelKit{
			parent:      streamEndpoint(a, a),
			childFiles:  []*os.File{b, b},
			closeChild:  func() { b.Close() },
			closeParent: func() { a.Close() },
		}, nil
	case "msgq":
		id, err := sysv.Msgget(sysv.IPC_PRIVATE, sysv.IPC_CREAT|0o600)
		if err != nil {
			return nil, fmt.Errorf("msgget: %w", err)
		}
		rm := onCleanup(func() { _ = sysv.MsgctlRmid(id) })
		return &channelKit{
			parent:      msgqEndpoint(id, size, typeToChild, typeToParent),
			childArgs:   []string{itoa(id)},
			closeChild:  func() {},
			closeParent: rm,
		}, nil
	case "posix-mq":
		toChild, toParent := uniqueName("mq-c"), uniqueName("mq-p")
		qc, err := mqOpen(toChild, mqMaxMsg(), size)
		if err != nil {
			if errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
				return nil, fmt.Errorf("POSIX message queues unavailable (%v): %w", err, errSkip)
			}
			return nil, err
		}
		_ = mqUnlink(toChild) // the descriptors keep it alive
		qp, err := mqOpen(toParent, mqMaxMsg(), size)
		if err != nil {
			qc.Close()
			return nil, err
		}
		_ = mqUnlink(toParent)
		return &channelKit{
			parent:      mqEndpoint(qp, qc, size),
			childFiles:  []*os.File{qc, qp},
			closeChild:  func() {},
			closeParent: func() { qc.Close(); qp.Close() },
		}, nil
	}
	return nil, fmt.Errorf("unknown channel kind %q", kind)
}

// childEndpoint builds the child's side from its files (fd 5, 6) and args.
func childEndpoint(m member, kind string, size int, args []string) (endpoint, error) {
	switch kind {
	case "pipe":
		return streamEndpoint(m.file(0), m.file(1)), nil
	case "unix":
		f := m.file(0)
		return streamEndpoint(f, f), nil
	case "msgq":
		if len(args) < 1 {
			return endpoint{}, errors.New("msgq: missing id")
		}
		return msgqEndpoint(atoi(args[0]), size, typeToParent, typeToChild), nil
	case "posix-mq":
		return mqEndpoint(m.file(0), m.file(1), size), nil
	}
	return endpoint{}, fmt.Errorf("unknown channel kind %q", kind)
}

func streamEndpoint(r, w *os.File) endpoint {
	return endpoint{
		send: func(msg []byte) error { _, err := w.Write(msg); return err },
		recv: func(buf []byte) error { _, err := io.ReadFull(r, buf); return err },
	}
}

// SysV message types: parent -> child 1, child -> parent 2.
const (
	typeToChild  = 1
	typeToParent = 2
)

func msgqEndpoint(id, size int, sendType, recvType int64) endpoint {
	out := make([]byte, 8+size)
	in := make([]byte, 8+size)
	for i := range 8 {
		out[i] = byte(uint64(sendType) >> (8 * i))
	}
	return endpoint{
		send: func(msg []byte) error {
			copy(out[8:], msg)
			for {
				err := sysv.Msgsnd(id, out, 0)
				if err != syscall.EINTR {
					return err
				}
			}
		},
		recv: func(buf []byte) error {
			for {
				_, err := sysv.Msgrcv(id, in, recvType, 0)
				if err == syscall.EINTR {
					continue
				}
				copy(buf, in[8:])
				return err
			}
		},
	}
}

func mqEndpoint(in, out *os.File, size int) endpoint {
	rbuf := make([]byte, size) // mq_receive wants room for the queue's message size
	return endpoint{
		send: func(msg []byte) error { return mqSend(out.Fd(), msg) },
		recv: func(buf []byte) error {
			n, err := mqReceive(in.Fd(), rbuf)
			if err == nil && n != len(buf) {
				return fmt.Errorf("mq message of %d bytes, want %d", n, len(buf))
			}
			copy(buf, rbuf)
			return err
		},
	}
}

// ---- throughput through an endpoint (POSIX mq) ----

// sinkPeer receives count messages and reports done. Args: kind size count [extra...].
var _ = registerPeer("shmbench-sink", func(m member, args []string) error {
	kind, size, count := args[0], atoi(args[1]), atoi(args[2])
	ep, err := childEndpoint(m, kind, size, args[3:])
	if err != nil {
		return err
	}
	if err := m.ready(); err != nil {
		return err
	}
	buf := make([]byte, size)
	for i := range count {
		if err := ep.recv(buf); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
	}
	return m.report(tagDone, uint64(count))
})

func endpointThroughput(kind string, size int) func(runConfig, int) (outcome, error) {
	return func(cfg runConfig, n int) (outcome, error) {
		kit, err := newChannelKit(kind, size)
		if err != nil {
			return outcome{}, err
		}
		defer kit.closeParent()
		t, err := startTeam(cfg, "shmbench-sink", kit.childFiles, append([]string{kind, itoa(size), itoa(n)}, kit.childArgs...))
		kit.closeChild()
		if err != nil {
			return outcome{}, err
		}
		msg := make([]byte, size)
		start, err := t.launch()
		if err != nil {
			return outcome{}, err
		}
		for i := range n {
			msg[0] = byte(i)
			if err := kit.parent.send(msg); err != nil {
				return outcome{}, t.fail(err)
			}
		}
		if _, err := t.expect(tagDone, 1); err != nil {
			return outcome{}, t.fail(err)
		}
		elapsed := time.Since(start)
		return outcome{elapsed: elapsed}, t.wait()
	}
}

// ---- ping-pong through an endpoint ----

// echoPeer returns count messages to the parent. Args: kind size count [extra...].
var _ = registerPeer("shmbench-echo", func(m member, args []string) error {
	kind, size, count := args[0], atoi(args[1]), atoi(args[2])
	ep, err := childEndpoint(m, kind, size, args[3:])
	if err != nil {
		return err
	}
	if err := m.ready(); err != nil {
		return err
	}
	buf := make([]byte, size)
	for i := range count {
		if err := ep.recv(buf); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		if err := ep.send(buf); err != nil {
			return err
		}
	}
	return nil
})

func endpointPingPong(kind string) func(runConfig, int) (outcome, error) {
	const size = 8
	return func(cfg runConfig, n int) (outcome, error) {
		kit, err := newChannelKit(kind, size)
		if err != nil {
			return outcome{}, err
		}
		defer kit.closeParent()
		t, err := startTeam(cfg, "shmbench-echo", kit.childFiles, append([]string{kind, itoa(size), itoa(n)}, kit.childArgs...))
		kit.closeChild()
		if err != nil {
			return outcome{}, err
		}
		if _, err := t.launch(); err != nil {
			return outcome{}, err
		}
		msg := make([]byte, size)
		out, err := timeRoundTrips(n, func(i uint64) error {
			msg[0] = byte(i)
			if err := kit.parent.send(msg); err != nil {
				return err
			}
			if err := kit.parent.recv(msg); err != nil {
				return err
			}
			if msg[0] != byte(i) {
				return fmt.Errorf("echo %d came back as %d", byte(i), msg[0])
			}
			return nil
		})
		if err != nil {
			return outcome{}, t.fail(err)
		}
		return out, t.wait()
	}
}

// ---- Go channels between goroutines: the in-process bound ----

func chanThroughput[T any](_ runConfig, n int) (outcome, error) {
	ch := make(chan T, 4096) // the same depth as the rings
	done := make(chan struct{})
	go func() {
		for range n {
			<-ch
		}
		close(done)
	}()
	var v T
	start := time.Now()
	for range n {
		ch <- v
	}
	<-done
	return outcome{elapsed: time.Since(start)}, nil
}

func chanPingPong(_ runConfig, n int) (outcome, error) {
	ping, pong := make(chan uint64, 1), make(chan uint64, 1)
	go func() {
		for range n {
			pong <- <-ping
		}
	}()
	return timeRoundTrips(n, func(i uint64) error {
		ping <- i
		if v := <-pong; v != i {
			return fmt.Errorf("echo %d came back as %d", i, v)
		}
		return nil
	})
}
