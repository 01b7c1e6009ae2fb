package baseline

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"
)

// channel is a bidirectional byte channel to the peer: what the parent
// writes to and reads from, and the files handed to the child.
type channel struct {
	w, r  io.Writer
	rd    io.Reader
	child []*os.File
	close func()
}

func newChannel(tr Transport) (*channel, error) {
	switch tr {
	case Pipe, PipeBuffered:
		// Parent -> child on one pipe, child -> parent on another.
		r1, w1, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		r2, w2, err := os.Pipe()
		if err != nil {
			r1.Close()
			w1.Close()
			return nil, err
		}
		return &channel{w: w1, rd: r2, child: []*os.File{r1, w2}, close: func() {
			r1.Close()
			w1.Close()
			r2.Close()
			w2.Close()
		}}, nil
	case Unix, UnixBuffered:
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("baseline: socketpair: %w", err)
		}
		a, b := os.NewFile(uintptr(fds[0]), "sock-parent"), os.NewFile(uintptr(fds[1]), "sock-child")
		// The child reads and writes the same socket: pass it twice.
		return &channel{w: a, rd: a, child: []*os.File{b, b}, close: func() {
			a.Close()
			b.Close()
		}}, nil
	}
	return nil, fmt.Errorf("baseline: unknown transport %q", tr)
}

func buffered(tr Transport) bool { return tr == PipeBuffered || tr == UnixBuffered }

func streamThroughput(tr Transport, count, size int) (time.Duration, error) {
	ch, err := newChannel(tr)
	if err != nil {
		return 0, err
	}
	defer ch.close()
	p, err := startPeer("stream-sink", ch.child, strconv.Itoa(count), strconv.Itoa(size))
	if err != nil {
		return 0, err
	}
	var b [1]byte
	if _, err := io.ReadFull(ch.rd, b[:]); err != nil {
		p.Kill()
		return 0, fmt.Errorf("baseline: peer ready: %w", err)
	}
	msg := make([]byte, size)
	w := ch.w
	var bw *bufio.Writer
	if buffered(tr) {
		bw = bufio.NewWriterSize(ch.w, 64<<10)
		w = bw
	}
	start := time.Now()
	for i := range count {
		msg[0] = byte(i)
		if _, err := w.Write(msg); err != nil {
			p.Kill()
			return 0, fmt.Errorf("baseline: write: %w", err)
		}
	}
	if bw != nil {
		if err := bw.Flush(); err != nil {
			p.Kill()
			return 0, err
		}
	}
	if _, err := io.ReadFull(ch.rd, b[:]); err != nil {
		p.Kill()
		return 0, fmt.Errorf("baseline: peer ack: %w", err)
	}
	elapsed := time.Since(start)
	return elapsed, p.wait(peerTimeout)
}

func streamPingPong(tr Transport, count, size int) (time.Duration, time.Duration, error) {
	ch, err := newChannel(tr)
	if err != nil {
		return 0, 0, err
	}
	defer ch.close()
	p, err := startPeer("stream-echo", ch.child, strconv.Itoa(count), strconv.Itoa(size))
	if err != nil {
		return 0, 0, err
	}
	msg := make([]byte, size)
	if _, err := io.ReadFull(ch.rd, msg[:1]); err != nil {
		p.Kill()
		return 0, 0, fmt.Errorf("baseline: peer ready: %w", err)
	}
	var sw Stopwatch
	sw.Start()
	for i := range count {
		msg[0] = byte(i)
		if _, err := ch.w.Write(msg); err != nil {
			p.Kill()
			return 0, 0, err
		}
		if _, err := io.ReadFull(ch.rd, msg); err != nil {
			p.Kill()
			return 0, 0, err
		}
		if msg[0] != byte(i) {
			p.Kill()
			return 0, 0, fmt.Errorf("baseline: echo %d came back as %d", byte(i), msg[0])
		}
		sw.Tick()
	}
	elapsed := sw.Elapsed()
	return elapsed, sw.Best(), p.wait(peerTimeout)
}
