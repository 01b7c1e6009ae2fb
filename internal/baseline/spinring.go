package baseline

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmkit/shmkit/internal/mem"
	"github.com/shmkit/shmkit/segment"
)

// SpinRing is the bare per-item ring: the hand-off of items one at a time
// through shared memory with nothing around it. This process copies count
// items of size bytes (8 to 1024) into a 4096-slot ring in a memfd and
// publishes each with one atomic store of its tail; a child spins on the
// tail in a tight loop, copies each item out, checks its sequence number
// and releases it with one atomic store of its head. The two cursors sit
// on lines of their own. No roles, no validation of the peer's cursor, no
// waking, no fault guard.
//
// It is the protocol shmring's Push/Pop runs per item, so the ratio of a
// Ring row to this one shows what the library adds. It is not a floor:
// its tight spin re-reads the tail the moment it has caught up, taking the
// tail's cache line from the producer on every look; with 8-byte items the
// Ring's waiter, which does more per look, gets more through, and with
// 1 KiB items the bare ring swings far above and far below the Ring from
// run to run. The anchors' C SPSC ring is different again: it publishes
// a whole batch with one store.
func SpinRing(count, size int) (Result, error) {
	res := Result{Name: "spin-ring", Kind: "throughput", Count: count, Size: size}
	if count < 1 || size < 8 || size > spinRingMaxItem {
		return res, fmt.Errorf("baseline: spin ring of %d items of %d bytes (count > 0, size in [8, %d])", count, size, spinRingMaxItem)
	}
	seg, err := segment.Create("memfd:shmkit-baseline-spin-ring", spinRingBytes)
	if err != nil {
		return res, err
	}
	defer seg.Close()
	ring, err := openSpinRing(seg)
	if err != nil {
		return res, err
	}
	p, err := startPeer("spin-ring-sink", []*os.File{seg.File()}, strconv.Itoa(count), strconv.Itoa(size))
	if err != nil {
		return res, err
	}
	if err := awaitReady(p, ring.ready); err != nil {
		return res, err
	}
	var item [spinRingMaxItem]byte
	start := time.Now()
	var headCache uint64
	var fullSince time.Time
	for t := uint64(0); t < uint64(count); t++ {
		for t-headCache >= spinRingSlots {
			headCache = atomic.LoadUint64(&ring.ctl.head)
			if t-headCache < spinRingSlots {
				fullSince = time.Time{}
				break
			}
			// Full: the child is behind, or gone (it exits on a bad item).
			select {
			case <-p.Done():
				return res, fmt.Errorf("baseline: spin ring consumer exited at item %d: %w", headCache, p.wait(peerTimeout))
			default:
			}
			if fullSince.IsZero() {
				fullSince = time.Now()
			} else if time.Since(fullSince) > peerTimeout {
				p.Kill()
				return res, fmt.Errorf("baseline: spin ring full for %v (consumer stuck at item %d)", peerTimeout, headCache)
			}
			_, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
		}
		binary.LittleEndian.PutUint64(item[:8], t)
		copy(ring.slot(t, size), item[:size])
		atomic.StoreUint64(&ring.ctl.tail, t+1)
	}
	if err := p.wait(peerTimeout); err != nil {
		return res, err
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// awaitReady waits up to 30 s for peer p to report itself ready (it does
// once it has mapped the segment: ready turns true), killing it if it
// does not.
func awaitReady(p *peer, ready func() bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for !ready() {
		if time.Now().After(deadline) {
			p.Kill()
			return fmt.Errorf("baseline: peer %d not ready after 30s", p.Pid())
		}
		time.Sleep(100 * time.Microsecond)
	}
	return nil
}

const (
	spinRingSlots   = 4096
	spinRingMaxItem = 1024
	spinRingBytes   = 4096 + spinRingSlots*spinRingMaxItem
)

// spinRingControl is the first page of the segment.
type spinRingControl struct {
	tail  uint64
	_     [120]byte
	head  uint64
	_     [120]byte
	ready uint64
}

type spinRing struct {
	ctl  *spinRingControl
	data []byte
}

// ready reports whether the peer has mapped the ring (set ctl.ready).
func (r spinRing) ready() bool { return atomic.LoadUint64(&r.ctl.ready) != 0 }

func openSpinRing(seg *segment.Segment) (spinRing, error) {
	b := seg.Bytes()
	ctl, err := mem.Ptr[spinRingControl](b)
	if err != nil {
		return spinRing{}, err
	}
	return spinRing{ctl: ctl, data: b[4096:]}, nil
}

// slot is the size bytes of position pos (slots are size bytes apart, as
// in a Ring of a size-byte type).
func (r spinRing) slot(pos uint64, size int) []byte {
	off := int(pos%spinRingSlots) * size
	return r.data[off : off+size]
}

func spinRingSink(count, size int) error {
	seg, err := segment.Open("fd:3")
	if err != nil {
		return err
	}
	defer seg.Close()
	ring, err := openSpinRing(seg)
	if err != nil {
		return err
	}
	atomic.StoreUint64(&ring.ctl.ready, 1)
	var item [spinRingMaxItem]byte
	var tailCache uint64
	for h := uint64(0); h < uint64(count); h++ {
		for spins := 0; h == tailCache; spins++ {
			tailCache = atomic.LoadUint64(&ring.ctl.tail)
			if spins&4095 == 4095 {
				_, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			}
		}
		copy(item[:size], ring.slot(h, size))
		if got := binary.LittleEndian.Uint64(item[:8]); got != h {
			return fmt.Errorf("spin ring: item %d carries %d", h, got)
		}
		atomic.StoreUint64(&ring.ctl.head, h+1)
	}
	return nil
}

// SpinRingPingPong is the bare per-item ring's round trip: two rings of 16
// 8-byte slots in one memfd, this process pushing item i on one and the
// child echoing it back on the other, each side spinning on the tail it
// reads, then copying the slot out and storing its head, as a Ring
// ping-pong does per hand-off and with nothing else: a hand-off moves the
// slot's cache line and the tail's, where the bare word ping-pong
// (SpinPingPong) moves one. It is a reference for the Ring ping-pong rows,
// not their floor: shmkit's rings have run faster than this loop since
// Notify inlines (docs/BENCHMARKS.md); the C ring pair in
// scripts/protocol_floor.c is the protocol's floor.
func SpinRingPingPong(count int) (Result, error) {
	res := Result{Name: "spin-ring", Kind: "pingpong", Count: count, Size: 8}
	if count < 1 {
		return res, fmt.Errorf("baseline: count %d must be positive", count)
	}
	seg, err := segment.Create("memfd:shmkit-baseline-spin-ring-pp", 4*4096)
	if err != nil {
		return res, err
	}
	defer seg.Close()
	ping, pong, err := openRingPair(seg)
	if err != nil {
		return res, err
	}
	p, err := startPeer("spin-ring-echo", []*os.File{seg.File()}, strconv.Itoa(count))
	if err != nil {
		return res, err
	}
	if err := awaitReady(p, ping.ready); err != nil {
		return res, err
	}
	var sw Stopwatch
	sw.Start()
	for i := uint64(0); i < uint64(count); i++ {
		ping.push(i)
		if got := pong.pop(i); got != i {
			p.Kill()
			return res, fmt.Errorf("baseline: spin ring echo returned %d for %d", got, i)
		}
		sw.Tick()
	}
	res.Elapsed, res.Best = sw.Elapsed(), sw.Best()
	return res, p.wait(peerTimeout)
}

const pairSlots = 16

// openRingPair views seg (four pages) as two 16-slot rings: controls in
// pages 0 and 1, slots in pages 2 and 3.
func openRingPair(seg *segment.Segment) (ping, pong spinRing, err error) {
	b := seg.Bytes()
	for i, r := range []*spinRing{&ping, &pong} {
		if r.ctl, err = mem.Ptr[spinRingControl](b[i*4096:]); err != nil {
			return ping, pong, err
		}
		r.data = b[(2+i)*4096 : (3+i)*4096]
	}
	return ping, pong, nil
}

// push stores v in slot pos and publishes it (the ring never fills: one
// item is in flight at a time).
func (r spinRing) push(v uint64) {
	binary.LittleEndian.PutUint64(r.data[(v%pairSlots)*8:], v)
	atomic.StoreUint64(&r.ctl.tail, v+1)
}

// pop spins until item pos is published, copies it out and releases it.
func (r spinRing) pop(pos uint64) uint64 {
	for spins := 0; atomic.LoadUint64(&r.ctl.tail) <= pos; spins++ {
		if spins&4095 == 4095 {
			_, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
		}
	}
	v := binary.LittleEndian.Uint64(r.data[(pos%pairSlots)*8:])
	atomic.StoreUint64(&r.ctl.head, pos+1)
	return v
}

func spinRingEcho(count int) error {
	seg, err := segment.Open("fd:3")
	if err != nil {
		return err
	}
	defer seg.Close()
	ping, pong, err := openRingPair(seg)
	if err != nil {
		return err
	}
	atomic.StoreUint64(&ping.ctl.ready, 1)
	for i := uint64(0); i < uint64(count); i++ {
		pong.push(ping.pop(i))
	}
	return nil
}
