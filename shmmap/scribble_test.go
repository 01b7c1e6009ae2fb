package shmmap_test

import (
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/shmmap"
	shmsync "github.com/shmkit/shmkit/sync"
	"github.com/stretchr/testify/require"
)

// Trust model, item 3: a peer that writes the victim's OWN keeper TID into
// a shard lock word. The word then names a live thread of the live process
// recorded as the lock's holder, so no liveness check can call it bogus,
// and the victim's Unlock finds a word naming one of its keepers that may
// not back the lock. The victim must never panic.
//
// scribbleOwnTID maps the map at args[0] and watches shard 0's lock word
// until the victim holds it, taking the TID it finds there (the victim's
// keeper). Then, for args[1] milliseconds, it alternates two phases of
// args[2] milliseconds: "stuck" stores the TID into the word every 200 µs
// (whether the word is free or legitimately held by the victim); "free"
// stores 0 once and leaves the word alone, so that the victim's Puts go
// through again and the next stuck phase lands on a held lock too. It
// prints "tid N" when it has the TID and "scribbles N" at the end, and
// leaves the word scribbled.
var scribbleOwnTID = testproc.Register("scribble-own-tid", func(args []string) error {
	s, err := layout.Open(args[0], layout.Expect{Kind: layout.KindMap})
	if err != nil {
		return err
	}
	defer s.Close()
	total, _ := time.ParseDuration(args[1] + "ms")
	phase, _ := time.ParseDuration(args[2] + "ms")
	reg := s.Region(0)
	word := (*uint32)(unsafe.Pointer(&reg[8])) // shard 0's Mutex word (see ShardStride)
	var tid uint32
	for deadline := time.Now().Add(10 * time.Second); tid == 0; {
		if v := atomic.LoadUint32(word); v&futex.TIDMask != 0 && v&futex.TIDMask != futex.TIDMask {
			tid = v & futex.TIDMask
		} else if time.Now().After(deadline) {
			return errors.New("never saw shard 0 locked")
		}
	}
	fmt.Println("tid", tid)
	n := 0
	for end, start := time.Now().Add(total), time.Now(); time.Now().Before(end); {
		if (time.Since(start)/phase)%2 == 0 { // stuck
			atomic.StoreUint32(word, tid)
			n++
			time.Sleep(200 * time.Microsecond)
			continue
		}
		atomic.StoreUint32(word, 0)
		n++
		time.Sleep(phase - time.Since(start)%phase)
	}
	atomic.StoreUint32(word, tid)
	fmt.Println("scribbles", n+1)
	return nil
})

// TestScribbledOwnKeeperTID: the victim loops on Put over keys of both
// shards while a child writes the victim's own keeper TID into shard 0's
// lock word.
//
// What the victim gets (observed): Puts to shard 1 always succeed. Puts to
// shard 0 succeed in the free phases; in the stuck phases each one waits
// its full lock timeout and fails with ErrLockTimeout (wrapping
// context.DeadlineExceeded): the word names a live thread of the live
// process recorded as the holder, so the map cannot tell it from a
// holder stopped in its critical section, and its own Mutex cannot tell
// it from another goroutine of its own holding the lock. A scribble that
// lands while the victim holds the lock (possible at the start of each
// stuck phase) is absorbed by its Unlock, which goes by the victim's own
// records, not by the word. Never a panic, never a lost or
// torn Put: every value is the last one whose Put returned nil. After the
// child leaves the word scribbled, shard 0 stays unusable for writes (each
// Put: ErrLockTimeout) until the word is cleared, and Get is unaffected.
func TestScribbledOwnKeeperTID(t *testing.T) {
	const lockTimeout = 60 * time.Millisecond
	m, spec := create[uint64, uint64](t, 64, shmmap.WithShards(2), shmmap.WithLockTimeout(lockTimeout))
	var keys [2][]uint64 // keys of shard 0 and of shard 1
	for k := uint64(0); len(keys[0]) < 8 || len(keys[1]) < 8; k++ {
		require.NoError(t, m.Put(k, 0))
		st, err := m.Stats()
		require.NoError(t, err)
		sh := 0
		if st.Shard[1].Len > len(keys[1]) {
			sh = 1
		}
		if len(keys[sh]) < 8 {
			keys[sh] = append(keys[sh], k)
		} else {
			require.True(t, m.Delete(k))
		}
	}
	model := map[uint64]uint64{}
	for _, ks := range keys {
		for _, k := range ks {
			model[k] = 0
		}
	}

	// The loop classifies each Put's outcome by shard; it keeps the
	// first error that is not an OpError naming put.
	stop := make(chan struct{})
	done := make(chan any, 1)
	counts := map[string]int{}
	var badErr error
	go func() {
		defer func() { done <- recover() }()
		debug.SetPanicOnFault(true)
		for i := uint64(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			sh := int(i % 2)
			k := keys[sh][i/2%8]
			err := m.Put(k, i)
			class := "ok"
			switch {
			case err == nil:
				model[k] = i
			case errors.Is(err, shmmap.ErrLockTimeout):
				class = "ErrLockTimeout"
			case errors.Is(err, shmmap.ErrCorrupt):
				class = "ErrCorrupt"
			default:
				class = err.Error()
			}
			var oe *layout.OpError
			if err != nil && badErr == nil && (!errors.As(err, &oe) || oe.Op != "put") {
				badErr = err
			}
			counts[fmt.Sprintf("shard %d: %s", sh, class)]++
		}
	}()

	p := scribbleOwnTID.Start(t, spec, "1500", "250")
	require.NoError(t, p.Wait(time.Minute), p.Output())
	close(stop)
	select {
	case r := <-done:
		require.Nil(t, r, "the victim panicked")
	case <-time.After(10 * time.Second):
		t.Fatal("the victim's Put loop did not stop")
	}
	t.Log(strings.TrimSpace(p.Output()))

	// The TID the child wrote is one of ours.
	var tid int32
	_, err := fmt.Sscanf(p.Output(), "tid %d", &tid)
	require.NoError(t, err, p.Output())
	tids, _ := shmsync.KeeperTIDs()
	require.Contains(t, tids, tid, "the child scribbled a TID that is not one of the victim's keepers")

	require.NoError(t, badErr, "not an OpError naming put")
	t.Logf("Put outcomes: %v", counts)
	for class := range counts {
		require.True(t, slices.Contains([]string{"shard 0: ok", "shard 0: ErrLockTimeout", "shard 1: ok"}, class), "unexpected outcome %q", class)
	}
	require.Positive(t, counts["shard 0: ErrLockTimeout"], "the scribbles never blocked a Put: the test proved nothing")
	require.Positive(t, counts["shard 0: ok"], "no Put to shard 0 went through between scribbles")

	// Left scribbled: writes to shard 0 time out, reads go on. The child's
	// last store may have landed while the victim held the lock with that
	// very word, and the victim's Unlock then freed it: scribble it again
	// now that the loop has stopped, so this check does not depend on that
	// race.
	word := (*uint32)(unsafe.Pointer(&m.Segment().Region(0)[8]))
	atomic.StoreUint32(word, uint32(tid))
	k0 := keys[0][0]
	err = m.Put(k0, 1<<40)
	require.ErrorIs(t, err, shmmap.ErrLockTimeout)
	t.Log(err)
	for k, want := range model {
		got, ok := m.Get(k)
		require.True(t, ok)
		require.Equal(t, want, got, "key %d: not the last successful Put", k)
	}
	// Un-scribbled, the shard works and the table is whole.
	v := atomic.LoadUint32(word)
	require.Equal(t, uint32(tid), v&futex.TIDMask, "word %#x", v)
	require.True(t, atomic.CompareAndSwapUint32(word, v, 0))
	require.NoError(t, m.Put(k0, 1<<40))
	require.NoError(t, m.Check())
	st, err := m.Stats()
	require.NoError(t, err)
	require.Equal(t, 16, st.Len)
	require.Zero(t, st.Repairs, "a scribbled word is not a dead writer: nothing to repair")
}
