package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/shmkit/shmkit/shmring"
	shmsync "github.com/shmkit/shmkit/sync"
)

// shmring rows. Segments are memfds handed to the child as fd 5 (no name
// in /dev/shm to leak if the run is interrupted). The parent is the
// producer, the child the consumer, as in the baseline throughput rows.

// Item types: a sequence number (checked by the consumer) padded to the
// payload size.
type (
	item8  struct{ Seq uint64 }
	item64 struct {
		Seq uint64
		_   [56]byte
	}
	item1k struct {
		Seq uint64
		_   [1016]byte
	}
	// item4k carries its sequence number at both ends: the in-place
	// reader checks the two, as shmipc-go's benchmark reader does.
	item4k struct {
		Seq  uint64
		_    [4080]byte
		Last uint64
	}
)

// seq4k is item4k's sequence number, or a mismatch marker when its two
// ends disagree (a torn or stale item).
func seq4k(v *item4k) uint64 {
	if v.Seq != v.Last {
		return ^uint64(0)
	}
	return v.Seq
}

// ringCap is the rings' depth in items: the Go channel rows use the same.
// The 4 KiB rows use ringCap4k, the depth shmipcvs gives its 4 KiB ring
// (4 MiB; 4096 such items would not stay in the cache).
const (
	ringCap   = 4096
	ringCap4k = 1024
)

// ringItemsArgs: size mode n.
var _ = registerPeer("shmbench-ring-consume", func(m member, a []string) error {
	size, mode, n := atoi(a[0]), a[1], atoi(a[2])
	switch size {
	case 8:
		return ringConsume(m, mode, n, func(v *item8) uint64 { return v.Seq })
	case 64:
		return ringConsume(m, mode, n, func(v *item64) uint64 { return v.Seq })
	case 1024:
		return ringConsume(m, mode, n, func(v *item1k) uint64 { return v.Seq })
	case 4096:
		return ringConsume(m, mode, n, seq4k)
	}
	return fmt.Errorf("bad size %d", size)
})

func ringConsume[T any](m member, mode string, n int, seq func(*T) uint64) error {
	r, err := shmring.Open[T](m.fdSpec(0), shmring.WithPopulate())
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := r.Peek(0); err != nil { // take the consumer role before "ready"
		return err
	}
	if err := m.ready(); err != nil {
		return err
	}
	ctx := context.Background()
	switch mode {
	case "item":
		// v lives outside the loop: seq (a func value) makes it escape,
		// and one declared per item was one heap allocation per item.
		var v T
		for i := range uint64(n) {
			if v, err = r.Pop(ctx); err != nil {
				return err
			}
			if seq(&v) != i {
				return fmt.Errorf("item %d has sequence %d", i, seq(&v))
			}
		}
	case "inplace":
		// One item at a time, read where it lies (no copy out).
		for i := range uint64(n) {
			s, err := r.PeekWait(ctx, 1)
			if err != nil {
				return err
			}
			if seq(&s[0]) != i {
				return fmt.Errorf("item %d has sequence %d", i, seq(&s[0]))
			}
			if err := r.Advance(1); err != nil {
				return err
			}
		}
	case "batch":
		for i := uint64(0); i < uint64(n); {
			s, err := r.PeekWait(ctx, 256)
			if err != nil {
				return err
			}
			for j := range s {
				if seq(&s[j]) != i {
					return fmt.Errorf("item %d has sequence %d", i, seq(&s[j]))
				}
				i++
			}
			if err := r.Advance(len(s)); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("bad mode %q", mode)
	}
	return m.report(tagDone, uint64(n))
}

func ringThroughput(size int, mode string) func(runConfig, int) (outcome, error) {
	return func(cfg runConfig, n int) (outcome, error) {
		switch size {
		case 8:
			return ringProduce(cfg, size, mode, n, func(v *item8, i uint64) { v.Seq = i })
		case 64:
			return ringProduce(cfg, size, mode, n, func(v *item64, i uint64) { v.Seq = i })
		case 1024:
			return ringProduce(cfg, size, mode, n, func(v *item1k, i uint64) { v.Seq = i })
		case 4096:
			return ringProduce(cfg, size, mode, n, func(v *item4k, i uint64) { v.Seq, v.Last = i, i })
		}
		return outcome{}, fmt.Errorf("bad size %d", size)
	}
}

// ringProduce pushes n items, stamping each into one reused item first (as
// a producer that fills a struct and pushes it does; building each item
// afresh cost a zeroing and a copy of it per item, which the 4 KiB row
// felt).
func ringProduce[T any](cfg runConfig, size int, mode string, n int, stamp func(*T, uint64)) (outcome, error) {
	depth := ringCap
	if size == 4096 {
		depth = ringCap4k
	}
	r, err := shmring.Create[T]("memfd:"+uniqueName("ring"), depth, shmring.WithPopulate())
	if err != nil {
		return outcome{}, err
	}
	defer r.Close()
	ctx := context.Background()
	t, start, err := launchTeam(cfg, "shmbench-ring-consume", []*os.File{r.Segment().Raw().File()}, []string{itoa(size), mode, itoa(n)})
	if err != nil {
		return outcome{}, err
	}
	switch mode {
	case "item", "inplace":
		var v T
		for i := range uint64(n) {
			stamp(&v, i)
			if err := r.Push(ctx, v); err != nil {
				return outcome{}, t.fail(err)
			}
		}
	case "batch":
		var v T
		for i := uint64(0); i < uint64(n); {
			s, err := r.ClaimWait(ctx, min(256, n-int(i)))
			if err != nil {
				return outcome{}, t.fail(err)
			}
			for j := range s {
				stamp(&v, i)
				s[j] = v // the whole item, as Push writes it
				i++
			}
			if err := r.Publish(len(s)); err != nil {
				return outcome{}, t.fail(err)
			}
		}
	}
	if _, err := t.expect(tagDone, 1); err != nil {
		return outcome{}, t.fail(err)
	}
	elapsed := time.Since(start)
	return outcome{elapsed: elapsed}, t.wait()
}

// ---- ByteRing: variable-length records ----

const byteRingCap = 1 << 20

// args: size n
var _ = registerPeer("shmbench-bytering-consume", func(m member, a []string) error {
	size, n := atoi(a[0]), atoi(a[1])
	r, err := shmring.OpenBytes(m.fdSpec(0), shmring.WithPopulate())
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := r.Read(); err != nil && !errors.Is(err, shmring.ErrEmpty) { // take the consumer role
		return err
	}
	if err := m.ready(); err != nil {
		return err
	}
	ctx := context.Background()
	buf := make([]byte, size)
	for i := range n {
		k, err := r.ReadInto(ctx, buf)
		if err != nil {
			return err
		}
		if k != size || buf[0] != byte(i) {
			return fmt.Errorf("record %d: %d bytes starting %d", i, k, buf[0])
		}
	}
	return m.report(tagDone, uint64(n))
})

func byteRingThroughput(size int) func(runConfig, int) (outcome, error) {
	return func(cfg runConfig, n int) (outcome, error) {
		r, err := shmring.CreateBytes("memfd:"+uniqueName("bytering"), byteRingCap, shmring.WithPopulate())
		if err != nil {
			return outcome{}, err
		}
		defer r.Close()
		ctx := context.Background()
		msg := make([]byte, size)
		t, start, err := launchTeam(cfg, "shmbench-bytering-consume", []*os.File{r.Segment().Raw().File()}, []string{itoa(size), itoa(n)})
		if err != nil {
			return outcome{}, err
		}
		for i := range n {
			msg[0] = byte(i)
			if err := r.Write(ctx, msg); err != nil {
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

// ---- Ring ping-pong: two rings, the child pops from one and pushes back ----

var policies = map[string]shmsync.WaitPolicy{
	"spin":    shmsync.SpinOnly,
	"park":    shmsync.ParkOnly,
	"default": shmsync.SpinThenPark,
}

// args: policy n
var _ = registerPeer("shmbench-ring-echo", func(m member, a []string) error {
	opt := shmring.WithWaitPolicy(policies[a[0]])
	n := atoi(a[1])
	ping, err := shmring.Open[item8](m.fdSpec(0), opt)
	if err != nil {
		return err
	}
	defer ping.Close()
	pong, err := shmring.Open[item8](m.fdSpec(1), opt)
	if err != nil {
		return err
	}
	defer pong.Close()
	if _, err := ping.Peek(0); err != nil {
		return err
	}
	if _, err := pong.Claim(0); err != nil {
		return err
	}
	if err := m.ready(); err != nil {
		return err
	}
	ctx := context.Background()
	for range n {
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

func ringPingPong(policy string) func(runConfig, int) (outcome, error) {
	return func(cfg runConfig, n int) (outcome, error) {
		opt := shmring.WithWaitPolicy(policies[policy])
		ping, err := shmring.Create[item8]("memfd:"+uniqueName("ping"), 16, opt)
		if err != nil {
			return outcome{}, err
		}
		defer ping.Close()
		pong, err := shmring.Create[item8]("memfd:"+uniqueName("pong"), 16, opt)
		if err != nil {
			return outcome{}, err
		}
		defer pong.Close()
		files := []*os.File{ping.Segment().Raw().File(), pong.Segment().Raw().File()}
		t, err := startTeam(cfg, "shmbench-ring-echo", files, []string{policy, itoa(n)})
		if err != nil {
			return outcome{}, err
		}
		return timePingPong(t, n, ping, pong)
	}
}

// pingPonger is what a ping-pong row needs of a ring or a queue of item8.
type pingPonger interface {
	Push(ctx context.Context, v item8) error
	Pop(ctx context.Context) (item8, error)
}

// timePingPong starts team t, which echoes every item from ping to pong,
// and times n round trips (see timeRoundTrips).
func timePingPong(t *team, n int, ping, pong pingPonger) (outcome, error) {
	if _, err := t.launch(); err != nil {
		return outcome{}, err
	}
	ctx := context.Background()
	out, err := timeRoundTrips(n, func(i uint64) error {
		if err := ping.Push(ctx, item8{i}); err != nil {
			return err
		}
		v, err := pong.Pop(ctx)
		if err != nil {
			return err
		}
		if v.Seq != i {
			return fmt.Errorf("echo %d came back as %d", i, v.Seq)
		}
		return nil
	})
	if err != nil {
		return outcome{}, t.fail(err)
	}
	return out, t.wait()
}
