package fuzz_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/proc"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/shmring"
)

// Adversarial peers: where the scribbler (hostile_test.go) writes random
// and edge values anywhere, the adversary writes the values a malicious or
// badly broken peer would choose, one attack per test case, into a live
// ring that this process is operating (both roles, every op under a
// deadline). Asserted for every case: no panic, no fault, no out-of-bounds
// slice, no op overrunning its deadline, every error wraps a shmkit
// sentinel; and for the attacks whose values are impossible, that the ring
// noticed (errors wrapping ErrCorrupt).

// Offsets in a ring's control block (region 0), as asserted by shmring's
// layout test; checked again at run time by adversaryOffsets.
const (
	ctlTail      = 0
	ctlHead      = 128
	ctlNotEmpty  = 256
	ctlNotFull   = 384
	ctlNotFullAt = 392
	ctlProducer  = 512
	ctlConsumer  = 520
)

// adversary: args spec attack ctlOff dataOff cap selfWord. It prints
// "go\n" once mapped and attacks until killed.
var adversary = testproc.Register("fuzz-ring-adversary", func(a []string) error {
	spec, attack := a[0], a[1]
	ctlOff, _ := strconv.Atoi(a[2])
	dataOff, _ := strconv.Atoi(a[3])
	capacity, _ := strconv.ParseUint(a[4], 10, 64)
	selfWord, _ := strconv.ParseUint(a[5], 10, 64)
	seg, err := segment.Open(spec)
	if err != nil {
		return err
	}
	b := seg.Bytes()
	le := binary.LittleEndian
	ctl := b[ctlOff:]
	data := b[dataOff : dataOff+int(capacity)]
	load := func(off int) uint64 { return le.Uint64(ctl[off:]) }
	store := func(off int, v uint64) { le.PutUint64(ctl[off:], v) }
	rng := rand.New(rand.NewPCG(7, 11))
	maxRecord := uint32(capacity/2 - 8)
	for i := uint64(0); ; i++ {
		switch attack {
		case "tail-past-capacity": // tail = head + cap + 1
			store(ctlTail, load(ctlHead)+capacity+1)
		case "head-past-tail": // tail < head, seen by the producer
			store(ctlHead, load(ctlTail)+1)
		case "tail-behind-head":
			store(ctlTail, load(ctlHead)-1)
		case "wrapped": // cursors wrapped around 2^64
			store(ctlHead, ^uint64(0))
			store(ctlTail, 1)
		case "misaligned": // byte ring: a cursor not 8-aligned
			store(ctlTail, load(ctlHead)+3)
		case "role-self-wrong-start": // our pid, another start time
			store(ctlProducer, selfWord^1)
			store(ctlConsumer, selfWord^2)
		case "role-self-right-start": // exactly our word, or free
			if i%2 == 0 {
				store(ctlProducer, selfWord)
				store(ctlConsumer, selfWord)
			} else {
				store(ctlProducer, 0)
				store(ctlConsumer, 0)
			}
		case "parked-garbage": // parked bit set, garbage sequence
			le.PutUint32(ctl[ctlNotEmpty:], 1<<31|rng.Uint32())
			le.PutUint32(ctl[ctlNotFull:], 1<<31|rng.Uint32())
			store(ctlNotFullAt, rng.Uint64())
		case "record-len-max": // byte ring: the record at the head claims a huge length
			off := load(ctlHead) & (capacity - 1) &^ 7
			lens := []uint32{^uint32(0), 1<<31 + 1, maxRecord, maxRecord + 1, uint32(capacity - off - 8), uint32(capacity - off - 7)}
			n := lens[i%uint64(len(lens))]
			le.PutUint32(data[off:], n)
		case "record-len-flip": // double fetch: a length flips between valid and huge
			off := load(ctlHead) & (capacity - 1) &^ 7
			for range 64 {
				le.PutUint32(data[off:], 8)
				le.PutUint32(data[off:], ^uint32(0))
			}
			le.PutUint32(data[off:], 8)
		default:
			return fmt.Errorf("unknown attack %q", attack)
		}
		if i == 0 {
			fmt.Println("go") // after the first attack
		}
		if i%64 == 0 {
			runtime.Gosched()
		}
	}
})

// adversaryOffsets checks the control-block offsets above against a ring
// in a known state (3 pushed, 1 popped).
func adversaryOffsets(t *testing.T, seg *layout.Segment) {
	ctl := seg.Raw().Bytes()[seg.Header().Regions[0].Off:]
	tail, head := binary.LittleEndian.Uint64(ctl[ctlTail:]), binary.LittleEndian.Uint64(ctl[ctlHead:])
	prod, cons := binary.LittleEndian.Uint64(ctl[ctlProducer:]), binary.LittleEndian.Uint64(ctl[ctlConsumer:])
	self := proc.Self().Word()
	if head != 1 || prod != self || cons != self || (tail != 3 && tail != 3*24) {
		t.Fatalf("control block offsets changed: tail %d head %d producer %#x consumer %#x (self %#x)", tail, head, prod, cons, self)
	}
}

// Adversarial runs are bounded per op and in time: ops ops, and at least
// advMinRun, so that the attacker (on another core, or preempting us on a
// busy one) really overlaps them.
const (
	advOpDeadline = 10 * time.Millisecond
	advMinRun     = 300 * time.Millisecond
)

// runAdversary starts the attack on the ring in seg and runs at least ops
// ops (each with a deadline) while it lasts. It returns how many errors
// wrapped ErrCorrupt.
func runAdversary(t *testing.T, spec, attack string, seg *layout.Segment, ops int, op func(ctx context.Context, i int) error) int {
	t.Helper()
	h := seg.Header()
	cmd := adversary.Command(t, spec, attack, strconv.FormatUint(h.Regions[0].Off, 10), strconv.FormatUint(h.Regions[1].Off, 10),
		strconv.FormatUint(h.Regions[1].Size, 10), strconv.FormatUint(proc.Self().Word(), 10))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := testproc.StartCmd(t, cmd)
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "go\n" {
		p.Kill()
		t.Fatalf("adversary did not start: %q %v\n%s", line, err, p.Output())
	}
	defer p.Kill()
	corrupt, other := 0, map[string]int{}
	var slowest time.Duration
	done := 0
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("%s: panic: %v\n%s", attack, r, debug.Stack())
			}
		}()
		debug.SetPanicOnFault(true)
		defer debug.SetPanicOnFault(false)
		deadline := time.Now().Add(hostileRunLimit)
		minEnd := time.Now().Add(advMinRun)
		// An impossible value must be reported as ErrCorrupt: keep going
		// until one op has met it (the adversary rewrites it constantly,
		// but our own ops may overwrite it in between), up to the limit.
		for i := 0; i < ops || time.Now().Before(minEnd) || (impossible[attack] && corrupt == 0); i++ {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d ops (%d wanted) and %d ErrCorrupt in %v", attack, i, ops, corrupt, hostileRunLimit)
			}
			ctx, cancel := context.WithTimeout(context.Background(), advOpDeadline)
			start := time.Now()
			err := op(ctx, i)
			done++
			slowest = max(slowest, time.Since(start))
			cancel()
			switch {
			case err == nil:
			case errors.Is(err, shmring.ErrCorrupt):
				corrupt++
			case wrapsAny(err, hostileOK):
				other[sentinelName(err)]++
			default:
				t.Errorf("%s: error wraps no shmkit sentinel: %v", attack, err)
			}
		}
	}()
	if slowest > advOpDeadline+time.Second {
		t.Errorf("%s: an op took %v with a %v deadline", attack, slowest, advOpDeadline)
	}
	select {
	case <-p.Done():
		t.Errorf("%s: the adversary exited early: %v\n%s", attack, p.Wait(time.Second), p.Output())
	default:
	}
	t.Logf("%s: %d ops, %d ErrCorrupt, other errors %v, slowest op %v", attack, done, corrupt, other, slowest)
	return corrupt
}

// impossible are the attacks whose values no correct peer writes: the ring
// must report them.
var impossible = map[string]bool{
	"tail-past-capacity": true, "head-past-tail": true, "tail-behind-head": true,
	"wrapped": true, "misaligned": true, "record-len-max": true,
}

func TestAdversarialRing(t *testing.T) {
	for _, attack := range []string{"tail-past-capacity", "head-past-tail", "tail-behind-head", "wrapped",
		"role-self-wrong-start", "role-self-right-start", "parked-garbage"} {
		t.Run(attack, func(t *testing.T) {
			spec := hostileSpec(t, "adv-ring")
			r, err := shmring.Create[item](spec, 16)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for i := range 3 {
				if err := r.Push(context.Background(), mkItem(uint64(i))); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := r.Pop(context.Background()); err != nil {
				t.Fatal(err)
			}
			adversaryOffsets(t, r.Segment())
			buf := make([]item, 8)
			n := uint64(0)
			// Each op is bounded; a second handle now and then re-claims
			// roles against the forged role words.
			corrupt := runAdversary(t, spec, attack, r.Segment(), hostileOps(200), func(ctx context.Context, i int) error {
				switch i % 8 {
				case 0:
					n++
					return r.Push(ctx, mkItem(n))
				case 1:
					_, err := r.Pop(ctx)
					return err
				case 2:
					r.TryPush(mkItem(n))
					r.TryPop()
					return nil
				case 3:
					s, err := r.ClaimWait(ctx, 4)
					if err != nil {
						return err
					}
					if len(s) > r.Cap() {
						t.Errorf("Claim returned %d slots", len(s))
					}
					return r.Publish(len(s))
				case 4:
					s, err := r.PeekWait(ctx, 4)
					if err != nil {
						return err
					}
					if len(s) > r.Cap() {
						t.Errorf("Peek returned %d items", len(s))
					}
					for j := range s {
						_ = s[j]
					}
					return r.Advance(len(s))
				case 5:
					_, err := r.PopBatch(ctx, buf)
					return err
				case 6:
					if l := r.Len(); l < 0 || l > r.Cap() {
						t.Errorf("Len %d", l)
					}
					_, err := r.Stats()
					return err
				default:
					// Another handle of this process: its claims must not
					// succeed beside ours (the local role table), whatever
					// the words say.
					r2, err := shmring.Open[item](spec)
					if err != nil {
						return err
					}
					defer r2.Close()
					if r2.TryPush(mkItem(0)) {
						t.Errorf("a second handle in this process took the producer role")
					}
					if _, ok := r2.TryPop(); ok {
						t.Errorf("a second handle in this process took the consumer role")
					}
					return nil
				}
			})
			if impossible[attack] && corrupt == 0 {
				t.Errorf("%s: no op reported ErrCorrupt", attack)
			}
		})
	}
}

func TestAdversarialByteRing(t *testing.T) {
	for _, attack := range []string{"tail-past-capacity", "head-past-tail", "tail-behind-head", "wrapped", "misaligned",
		"role-self-wrong-start", "parked-garbage", "record-len-max", "record-len-flip"} {
		t.Run(attack, func(t *testing.T) {
			spec := hostileSpec(t, "adv-bytes")
			r, err := shmring.CreateBytes(spec, 1024)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			msg := []byte("sixteen bytes!!!")
			for range 3 {
				if err := r.Write(context.Background(), msg); err != nil {
					t.Fatal(err)
				}
			}
			// Make the head 1 (in bytes: not a record boundary, so check
			// only the roles and the tail) - read one record instead.
			if _, err := r.Read(); err != nil {
				t.Fatal(err)
			}
			if err := r.Release(); err != nil {
				t.Fatal(err)
			}
			st, _ := r.Stats()
			if st.Head != 24 || st.Tail != 72 {
				t.Fatalf("unexpected cursors %+v", st)
			}
			buf := make([]byte, 2048)
			data := r.Segment().Region(1)
			corrupt := runAdversary(t, spec, attack, r.Segment(), hostileOps(200), func(ctx context.Context, i int) error {
				switch i % 6 {
				case 0:
					return r.Write(ctx, msg[:i%len(msg)])
				case 1:
					p, err := r.ReadWait(ctx)
					if err != nil {
						return err
					}
					checkInData(t, p, data, r.MaxRecord())
					for j := range p {
						_ = p[j]
					}
					return r.Release()
				case 2:
					n, err := r.ReadInto(ctx, buf)
					if n > r.MaxRecord() {
						t.Errorf("ReadInto returned %d bytes, MaxRecord %d", n, r.MaxRecord())
					}
					return err
				case 3:
					if err := r.TryWrite(msg); err != nil {
						return err
					}
					p, err := r.Read()
					if err != nil {
						return err
					}
					checkInData(t, p, data, r.MaxRecord())
					return r.Release()
				case 4:
					b, err := r.ReserveWait(ctx, 8)
					if err != nil {
						return err
					}
					copy(b, "reserved")
					return r.Commit(len(b))
				default:
					_, err := r.Stats()
					return err
				}
			})
			if impossible[attack] && corrupt == 0 {
				t.Errorf("%s: no op reported ErrCorrupt", attack)
			}
		})
	}
}

// checkInData fails the test unless p lies inside data and is at most max
// bytes long.
func checkInData(t *testing.T, p, data []byte, max int) {
	t.Helper()
	if len(p) > max {
		t.Errorf("record of %d bytes, MaxRecord %d", len(p), max)
	}
	if len(p) == 0 {
		return
	}
	// p is a subslice of data: its end must not pass data's end.
	full := data[:cap(data)]
	for off := range full {
		if &full[off] == &p[0] {
			if off+cap(p) > len(data) {
				t.Errorf("record at %d of %d bytes (cap %d) runs past the %d-byte region", off, len(p), cap(p), len(data))
			}
			return
		}
	}
	t.Errorf("record does not alias the data region")
}
