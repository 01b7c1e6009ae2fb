package baseline

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/internal/mem"
	"github.com/shmkit/shmkit/segment"
)

// SpinPingPong is the bare cache-line ping-pong: this process and a child
// bounce one 32-bit word in a shared memfd page, each spinning on atomic
// loads until the word holds its turn (odd: the child's, even: ours). It is
// the floor for any cross-process round trip through shared memory.
//
// Every 4096 unsuccessful loads the spinner calls sched_yield, about as
// often as shmring's SpinOnly policy does: on a machine with more runnable
// threads than CPUs a pure spinner burns whole time slices while its peer
// waits for a CPU.
func SpinPingPong(count int) (Result, error) {
	return wordPingPong("spin", count)
}

// FutexPingPong is the same word ping-pong where each side sleeps in
// FUTEX_WAIT and the other always calls FUTEX_WAKE: the classic blocking
// handoff, with no spinning and no waiter count.
func FutexPingPong(count int) (Result, error) {
	return wordPingPong("futex", count)
}

func wordPingPong(kind string, count int) (Result, error) {
	res := Result{Name: kind, Kind: "pingpong", Count: count, Size: 4}
	if count < 1 {
		return res, fmt.Errorf("baseline: count %d must be positive", count)
	}
	seg, err := segment.Create("memfd:shmkit-baseline-"+kind, os.Getpagesize())
	if err != nil {
		return res, err
	}
	defer seg.Close()
	word, err := mem.Ptr[uint32](seg.Bytes())
	if err != nil {
		return res, err
	}
	p, err := startPeer(kind+"-echo", []*os.File{seg.File()}, strconv.Itoa(count))
	if err != nil {
		return res, err
	}
	// The child announces itself by storing 1<<31.
	if err := awaitReady(p, func() bool { return atomic.LoadUint32(word) == readyMark }); err != nil {
		return res, err
	}
	atomic.StoreUint32(word, 0)
	var sw Stopwatch
	sw.Start()
	if kind == "spin" {
		for i := uint32(0); i < uint32(count); i++ {
			atomic.StoreUint32(word, 2*i+1)
			spinUntil(word, 2*i+2)
			sw.Tick()
		}
	} else {
		for i := uint32(0); i < uint32(count); i++ {
			atomic.StoreUint32(word, 2*i+1)
			_, _ = futex.Wake(word, 1)
			for {
				v := atomic.LoadUint32(word)
				if v == 2*i+2 {
					break
				}
				_ = futex.Wait(word, v, 0)
			}
			sw.Tick()
		}
	}
	res.Elapsed, res.Best = sw.Elapsed(), sw.Best()
	return res, p.wait(peerTimeout)
}

const readyMark = 1 << 31

func openWord() (*segment.Segment, *uint32, error) {
	seg, err := segment.Open("fd:3")
	if err != nil {
		return nil, nil, err
	}
	word, err := mem.Ptr[uint32](seg.Bytes())
	if err != nil {
		seg.Close()
		return nil, nil, err
	}
	atomic.StoreUint32(word, readyMark)
	return seg, word, nil
}

func spinEcho(count int) error {
	seg, word, err := openWord()
	if err != nil {
		return err
	}
	defer seg.Close()
	for i := uint32(0); i < uint32(count); i++ {
		spinUntil(word, 2*i+1)
		atomic.StoreUint32(word, 2*i+2)
	}
	return nil
}

func futexEcho(count int) error {
	seg, word, err := openWord()
	if err != nil {
		return err
	}
	defer seg.Close()
	for i := uint32(0); i < uint32(count); i++ {
		for {
			v := atomic.LoadUint32(word)
			if v == 2*i+1 {
				break
			}
			_ = futex.Wait(word, v, 0)
		}
		atomic.StoreUint32(word, 2*i+2)
		_, _ = futex.Wake(word, 1)
	}
	return nil
}

// spinUntil spins until *word == want, yielding the CPU every 4096 loads.
func spinUntil(word *uint32, want uint32) {
	for {
		for range 4096 {
			if atomic.LoadUint32(word) == want {
				return
			}
		}
		_, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
}
