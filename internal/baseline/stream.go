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
		pr, pw, cr, cw, err := PipePair()
		if err != nil {
			return nil, err
		}
		return &channel{w: pw, rd: pr, child: []*os.File{cr, cw}, close: func() {
			pr.Close()
			pw.Close()
			cr.Close()
			cw.Close()
		}}, nil
	case Unix, UnixBuffered:
		a, b, err := SocketPair()
		if err != nil {
			return nil, err
		}
		// The child reads and writes the same socket: pass it twice.
		return &channel{w: a, rd: a, child: []*os.File{b, b}, close: func() {
			a.Close()
			b.Close()
		}}, nil
	}
	return nil, fmt.Errorf("baseline: unknown transport %q", tr)
}

// PipePair makes the two pipes of a parent-child byte channel: the parent
// reads pr and writes pw; the child gets cr (to read what the parent
// writes) and cw (to write what the parent reads).
func PipePair() (pr, pw, cr, cw *os.File, err error) {
	cr, pw, err = os.Pipe() // parent -> child
	if err != nil {
		return nil, nil, nil, nil, err
	}
	pr, cw, err = os.Pipe() // child -> parent
	if err != nil {
		cr.Close()
		pw.Close()
		return nil, nil, nil, nil, err
	}
	return pr, pw, cr, cw, nil
}

// SocketPair makes a connected pair of Unix stream sockets (close-on-exec):
// the parent's end and the end to hand to the child.
func SocketPair() (parent, child *os.File, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("baseline: socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "sock-parent"), os.NewFile(uintptr(fds[1]), "sock-child"), nil
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
