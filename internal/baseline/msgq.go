package baseline

import (
	"fmt"
	"strconv"
	"syscall"
	"time"

	"github.com/shmkit/shmkit/internal/sysv"
)

// ---- System V message queue ----

// msgq creates a private message queue (IPC_PRIVATE: no key to collide
// with) removed by the returned func.
func msgq() (int, func(), error) {
	id, err := sysv.Msgget(sysv.IPC_PRIVATE, sysv.IPC_CREAT|0o600)
	if err != nil {
		return 0, nil, fmt.Errorf("baseline: msgget: %w", err)
	}
	return id, func() { _ = sysv.MsgctlRmid(id) }, nil
}

// msgSend and msgRecv retry on EINTR (SysV calls are never restarted).
func msgSend(id int, buf []byte) error {
	for {
		err := sysv.Msgsnd(id, buf, 0)
		if err != syscall.EINTR {
			return err
		}
	}
}

func msgRecv(id int, buf []byte, typ int64) (int, error) {
	for {
		n, err := sysv.Msgrcv(id, buf, typ, 0)
		if err != syscall.EINTR {
			return n, err
		}
	}
}

func setType(buf []byte, typ int64) {
	for i := range 8 {
		buf[i] = byte(uint64(typ) >> (8 * i))
	}
}

// Message types: parent -> child 1, child -> parent 2.
const (
	typeToChild  = 1
	typeToParent = 2
)

func msgqThroughput(count, size int) (time.Duration, error) {
	id, rm, err := msgq()
	if err != nil {
		return 0, err
	}
	defer rm()
	p, err := startPeer("msgq-sink", nil, strconv.Itoa(id), strconv.Itoa(count), strconv.Itoa(size))
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 8+size)
	if _, err := msgRecv(id, buf, typeToParent); err != nil {
		p.Kill()
		return 0, fmt.Errorf("baseline: peer ready: %w", err)
	}
	setType(buf, typeToChild)
	start := time.Now()
	for range count {
		if err := msgSend(id, buf); err != nil {
			p.Kill()
			return 0, fmt.Errorf("baseline: msgsnd: %w", err)
		}
	}
	if _, err := msgRecv(id, buf, typeToParent); err != nil {
		p.Kill()
		return 0, fmt.Errorf("baseline: peer ack: %w", err)
	}
	elapsed := time.Since(start)
	return elapsed, p.wait(peerTimeout)
}

func msgqPingPong(count, size int) (time.Duration, time.Duration, error) {
	id, rm, err := msgq()
	if err != nil {
		return 0, 0, err
	}
	defer rm()
	p, err := startPeer("msgq-echo", nil, strconv.Itoa(id), strconv.Itoa(count), strconv.Itoa(size))
	if err != nil {
		return 0, 0, err
	}
	buf := make([]byte, 8+size)
	if _, err := msgRecv(id, buf, typeToParent); err != nil {
		p.Kill()
		return 0, 0, fmt.Errorf("baseline: peer ready: %w", err)
	}
	var sw Stopwatch
	sw.Start()
	for range count {
		setType(buf, typeToChild)
		if err := msgSend(id, buf); err != nil {
			p.Kill()
			return 0, 0, err
		}
		if _, err := msgRecv(id, buf, typeToParent); err != nil {
			p.Kill()
			return 0, 0, err
		}
		sw.Tick()
	}
	elapsed := sw.Elapsed()
	return elapsed, sw.Best(), p.wait(peerTimeout)
}
