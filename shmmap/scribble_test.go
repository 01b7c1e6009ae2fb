package shmmap_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
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

// ---------------------------------------------------------------------------
// Adversarial values: not random garbage (fuzz/hostile_*) but the values
// that sit exactly on the map's checks, written into a live map again and
// again by a peer process while the victim operates: lock words naming
// the victim's own main thread, the peer itself, a dead thread, or the
// not-recoverable state; redo records naming slots just past the shard and
// at 2^32-1, or an unknown op; a sequence count kept odd forever; every tag
// at its maximum (no empty slot); a key count larger than the shard; and
// words that flip between a value that passes a check and one that does
// not (a double fetch would check one and use the other).
//
// The victim must never panic, fault, index out of range or overrun its
// lock timeout by more than scheduling slack; it returns only the errors
// each case allows, and ErrCorrupt where the value is impossible. Where
// the scribbles cannot change the table's contents, every successful
// operation must agree with a model of the victim's own writes.

// scribbleValues writes scribbles forever, until killed. It reads one job
// per line from stdin: a map segment spec followed by scribbles, each
// "REGION:OFF:WIDTH:V1,V2,..." (WIDTH 4 or 8, each V a number or "self"
// for the scribbler's own PID); the n-th pass writes the (n mod count)-th
// value, so a word with two values flips. It prints "go N" once it has made
// a first pass of the N-th job (counting from 1, not counting empty lines), and works on a job until the
// next line arrives; an empty line stops it scribbling until the next job.
// (One scribbler serves every case: a process start is the dearest part of
// a case under -race.)
var scribbleValues = testproc.Register("scribble-values", func(args []string) error {
	type scribble struct {
		word []byte
		vals []uint64
	}
	jobs := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			jobs <- sc.Text()
		}
		close(jobs)
	}()
	var seg *layout.Segment
	var scr []scribble
	start := func(job string) error {
		if seg != nil {
			_ = seg.Close()
			seg, scr = nil, nil
		}
		f := strings.Fields(job)
		if len(f) == 0 {
			return nil
		}
		s, err := layout.Open(f[0], layout.Expect{Kind: layout.KindMap})
		if err != nil {
			return err
		}
		seg = s
		for _, a := range f[1:] {
			p := strings.Split(a, ":")
			if len(p) != 4 {
				return fmt.Errorf("bad scribble %q", a)
			}
			reg, off, width := atoi(p[0]), atoi(p[1]), atoi(p[2])
			r := s.Region(reg)
			if off < 0 || off+width > len(r) || off%width != 0 || (width != 4 && width != 8) {
				return fmt.Errorf("scribble %q out of region %d (%d bytes)", a, reg, len(r))
			}
			sc := scribble{word: r[off : off+width]}
			for _, v := range strings.Split(p[3], ",") {
				if v == "self" {
					sc.vals = append(sc.vals, uint64(os.Getpid()))
					continue
				}
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return err
				}
				sc.vals = append(sc.vals, n)
			}
			scr = append(scr, sc)
		}
		return nil
	}
	jobN := 0
	for n := 0; ; n++ {
		if scr == nil {
			job, ok := <-jobs
			if !ok {
				return nil
			}
			if job != "" {
				jobN++
			}
			if err := start(job); err != nil {
				return err
			}
			n = -1 // the next pass is the job's first
			continue
		}
		select {
		case job, ok := <-jobs:
			if !ok {
				return nil
			}
			if job != "" {
				jobN++
			}
			if err := start(job); err != nil {
				return err
			}
			n = -1 // the next pass is the job's first
			continue
		default:
		}
		for _, sc := range scr {
			v := sc.vals[n%len(sc.vals)]
			if len(sc.word) == 8 {
				atomic.StoreUint64((*uint64)(unsafe.Pointer(&sc.word[0])), v)
			} else {
				atomic.StoreUint32((*uint32)(unsafe.Pointer(&sc.word[0])), uint32(v))
			}
		}
		if n == 0 {
			fmt.Println("go", jobN)
		}
		if n%256 == 255 {
			time.Sleep(20 * time.Microsecond)
		} else {
			runtime.Gosched()
		}
	}
})

// advCase is one adversarial scribble.
type advCase struct {
	name        string
	lockTimeout time.Duration
	run         time.Duration // how long the victim operates
	// scribbles for scribbleValues, given the map's geometry.
	scribbles func(perShard int) []string
	allowed   []error // errors the victim may get (besides none)
	must      error   // an error the victim must get at least once (nil: none)
	exact     bool    // successful ops must agree with the victim's model
	after     func(t *testing.T, m *shmmap.Map[uint64, uint64])
}

// redoWord is the 8-byte word at OffRedoOp: RedoOp (low) and RedoSlot
// (high), written together so that a scribbled op never pairs with the
// victim's own (valid) slot.
func redoWord(op uint32, slot uint64) string {
	return strconv.FormatUint(slot<<32|uint64(op), 10)
}

func r0(off, width int, vals ...string) string {
	return fmt.Sprintf("0:%d:%d:%s", off, width, strings.Join(vals, ","))
}

// checkSoon runs Check until it passes (a scribble left in a redo record
// is reported, and cleared, by the first).
func checkSoon(t *testing.T, m *shmmap.Map[uint64, uint64]) {
	t.Helper()
	err := m.Check()
	if err != nil {
		require.ErrorIs(t, err, shmmap.ErrCorrupt)
		err = m.Check()
	}
	require.NoError(t, err)
}

func TestAdversarialScribbles(t *testing.T) {
	// A process that has exited: its PID names no thread.
	deadPID := 0
	{
		cmd := scribbleValues.Command(t)
		cmd.Stdin = strings.NewReader("") // no job: exits at once
		p := testproc.StartCmd(t, cmd)
		require.NoError(t, p.Wait(time.Minute), p.Output())
		deadPID = p.Pid()
	}
	u64max := strconv.FormatUint(^uint64(0), 10)
	fast, slow := 100*time.Millisecond, time.Second
	corrupt := []error{shmmap.ErrCorrupt}
	redoCase := func(name string, slot func(perShard int) uint64) advCase {
		return advCase{
			name: name, lockTimeout: fast, run: 250 * time.Millisecond,
			scribbles: func(per int) []string {
				s := slot(per)
				return []string{r0(shmmap.OffRedoOp, 8, redoWord(shmmap.OpInsert, s), redoWord(shmmap.OpUpdate, s), redoWord(shmmap.OpDelete, s))}
			},
			allowed: corrupt, must: shmmap.ErrCorrupt, exact: true, after: checkSoon,
		}
	}
	cases := []advCase{
		{
			// The victim's own main thread: a live thread of the process
			// recorded as holder. Indistinguishable from a holder stopped
			// in its critical section: wait out the lock timeout.
			name: "lock word: victim's PID", lockTimeout: fast, run: 300 * time.Millisecond,
			scribbles: func(int) []string { return []string{r0(shmmap.OffLockWord, 4, strconv.Itoa(os.Getpid()))} },
			allowed:   []error{shmmap.ErrLockTimeout}, must: shmmap.ErrLockTimeout, exact: true,
			after: func(t *testing.T, m *shmmap.Map[uint64, uint64]) {
				word := (*uint32)(unsafe.Pointer(&m.Segment().Region(0)[shmmap.OffLockWord]))
				if v := atomic.LoadUint32(word); v&futex.TIDMask == uint32(os.Getpid()) {
					atomic.CompareAndSwapUint32(word, v, 0)
				}
				checkSoon(t, m)
			},
		},
		{
			// The scribbler's own PID: a live thread, but not of the
			// recorded holder (the victim): certainly bogus.
			name: "lock word: peer's PID", lockTimeout: 1500 * time.Millisecond, run: time.Second,
			scribbles: func(int) []string { return []string{r0(shmmap.OffLockWord, 4, "self")} },
			allowed:   []error{shmmap.ErrCorrupt, shmmap.ErrLockTimeout}, must: shmmap.ErrCorrupt, exact: true,
			after: func(t *testing.T, m *shmmap.Map[uint64, uint64]) {
				word := (*uint32)(unsafe.Pointer(&m.Segment().Region(0)[shmmap.OffLockWord]))
				atomic.StoreUint32(word, 0) // the peer is dead now; any holder was us
				checkSoon(t, m)
			},
		},
		{
			// A thread that no longer exists: the lock is taken over as
			// from a dead owner, and the shard repaired (nothing to do).
			name: "lock word: dead thread", lockTimeout: slow, run: 400 * time.Millisecond,
			scribbles: func(int) []string { return []string{r0(shmmap.OffLockWord, 4, strconv.Itoa(deadPID))} },
			// ErrCorrupt: the word was rewritten while the victim held
			// the lock in owner-dead state (MarkConsistent fails).
			allowed: []error{shmmap.ErrCorrupt}, exact: true, after: checkSoon,
		},
		{
			name: "lock word: not recoverable", lockTimeout: fast, run: 250 * time.Millisecond,
			scribbles: func(int) []string {
				return []string{r0(shmmap.OffLockWord, 4, strconv.FormatUint(uint64(futex.TIDMask), 10))}
			},
			allowed: []error{shmmap.ErrNotRecoverable, shmmap.ErrLockTimeout}, must: shmmap.ErrNotRecoverable, exact: true,
		},
		redoCase("redo slot: perShard", func(per int) uint64 { return uint64(per) }),
		redoCase("redo slot: perShard+1", func(per int) uint64 { return uint64(per) + 1 }),
		redoCase("redo slot: 2^32-1", func(int) uint64 { return 1<<32 - 1 }),
		{
			name: "redo op: unknown", lockTimeout: fast, run: 250 * time.Millisecond,
			scribbles: func(int) []string { return []string{r0(shmmap.OffRedoOp, 8, redoWord(0xffffffff, 0), redoWord(1, 1))} },
			allowed:   corrupt, must: shmmap.ErrCorrupt, exact: true, after: checkSoon,
		},
		{
			// Readers find the count odd, fall back to the lock and
			// repair (nothing to redo); every value stays right.
			name: "sequence count: odd forever", lockTimeout: fast, run: 250 * time.Millisecond,
			scribbles: func(int) []string { return []string{r0(shmmap.OffSeq, 8, "1", "12345", u64max)} },
			exact:     true, after: checkSoon,
		},
		{
			name: "key count: larger than the shard", lockTimeout: fast, run: 250 * time.Millisecond,
			scribbles: func(per int) []string {
				return []string{r0(shmmap.OffCount, 8, strconv.Itoa(per+1), u64max, strconv.Itoa(1<<32))}
			},
			// Deletes count a scribbled count down, through the limit
			// (ErrFull: a full shard and a count scribbled to the limit
			// look alike).
			allowed: []error{shmmap.ErrCorrupt, shmmap.ErrFull}, must: shmmap.ErrCorrupt, exact: true,
		},
		{
			// No empty slot anywhere: probes end by their bound.
			name: "tags: all at max", lockTimeout: fast, run: 250 * time.Millisecond,
			scribbles: func(per int) []string {
				var out []string
				for i := range per {
					out = append(out, fmt.Sprintf("1:%d:8:%s", i*shmmap.SlotSize[uint64, uint64](), u64max))
				}
				return out
			},
			allowed: []error{shmmap.ErrCorrupt, shmmap.ErrFull}, must: shmmap.ErrCorrupt,
			after: func(t *testing.T, m *shmmap.Map[uint64, uint64]) {
				require.ErrorIs(t, m.Check(), shmmap.ErrCorrupt)
			},
		},
		{
			// Words that flip between a value that passes its check and
			// one that does not: the redo slot (in range, then 2^32-1),
			// the redo entry's tag (its own, then all ones), the count.
			name: "double fetch: flipping words", lockTimeout: fast, run: 400 * time.Millisecond,
			scribbles: func(per int) []string {
				return []string{
					r0(shmmap.OffRedoOp, 8, redoWord(shmmap.OpInsert, 0), redoWord(shmmap.OpInsert, 1<<32-1),
						redoWord(shmmap.OpUpdate, uint64(per-1)), redoWord(shmmap.OpDelete, uint64(per))),
					r0(shmmap.OffRedoEntry, 8, "1", u64max, "3"),
					r0(shmmap.OffCount, 8, "3", u64max),
					r0(shmmap.OffSeq, 8, "2", "3"),
				}
			},
			allowed: []error{shmmap.ErrCorrupt, shmmap.ErrFull},
		},
	}
	cmd := scribbleValues.Command(t)
	jobs, err := cmd.StdinPipe()
	require.NoError(t, err)
	scr := testproc.StartCmd(t, cmd)
	sent := 0 // jobs sent (with -run, only some cases run)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sent++
			runAdversarial(t, c, scr, jobs, sent)
		})
	}
	require.NoError(t, jobs.Close())
	require.NoError(t, scr.Wait(time.Minute), scr.Output())
}

// runAdversarial runs case c, which is job number job of scribbler scr.
func runAdversarial(t *testing.T, c advCase, scr *testproc.Proc, jobs io.Writer, job int) {
	const nKeys = 12
	m, spec := create[uint64, uint64](t, 16, shmmap.WithShards(1), shmmap.WithLockTimeout(c.lockTimeout))
	model := map[uint64]uint64{}
	for k := range uint64(8) {
		require.NoError(t, m.Put(k, k))
		model[k] = k
	}
	st, err := m.Stats()
	require.NoError(t, err)
	_, err = fmt.Fprintln(jobs, strings.Join(append([]string{spec}, c.scribbles(st.ShardSlots)...), " "))
	require.NoError(t, err)
	require.True(t, scr.WaitOutput(fmt.Sprintf("go %d\n", job), time.Minute), scr.Output())

	type result struct {
		panicked any
		stack    []byte
		counts   map[string]int
		bad      []string
		slowest  time.Duration
		ops      int
	}
	resc := make(chan result, 1)
	go func() {
		res := result{counts: map[string]int{}}
		defer func() {
			if r := recover(); r != nil {
				res.panicked, res.stack = r, debug.Stack()
			}
			resc <- res
		}()
		debug.SetPanicOnFault(true)
		r := rand.New(rand.NewPCG(1, 2))
		badf := func(format string, args ...any) {
			if len(res.bad) < 5 {
				res.bad = append(res.bad, fmt.Sprintf(format, args...))
			}
		}
		for end := time.Now().Add(c.run); time.Now().Before(end); res.ops++ {
			k := uint64(r.IntN(nKeys))
			want, present := model[k]
			nv := uint64(res.ops) << 8
			start := time.Now()
			var err error
			op := r.IntN(6)
			switch op {
			case 0:
				var v uint64
				var ok bool
				v, ok, err = m.Load(k)
				if err == nil && c.exact && (ok != present || v != want) {
					badf("load %d = %d %v, model %d %v", k, v, ok, want, present)
				}
			case 1:
				if err = m.Put(k, nv); err == nil {
					model[k] = nv
				}
			case 2:
				var v uint64
				var ok bool
				v, ok, err = m.LoadAndDelete(k)
				if err == nil {
					if c.exact && (ok != present || v != want) {
						badf("delete %d = %d %v, model %d %v", k, v, ok, want, present)
					}
					delete(model, k)
				}
			case 3:
				var sw bool
				sw, err = m.CompareAndSwap(k, want, nv)
				if err == nil {
					if c.exact && sw != present {
						badf("cas %d = %v, model present %v", k, sw, present)
					}
					if sw {
						model[k] = nv
					}
				}
			case 4:
				n := 0
				for range m.All() {
					n++
				}
				if n > st.Slots {
					badf("All yielded %d entries from %d slots", n, st.Slots)
				}
			default:
				if n := m.Len(); n < 0 || n > st.ShardLimit {
					badf("Len %d", n)
				}
				_, err = m.Stats()
			}
			if d := time.Since(start); d > res.slowest {
				res.slowest = d
			}
			class := "ok"
			if err != nil {
				class = "other: " + err.Error()
				for _, a := range c.allowed {
					if errors.Is(err, a) {
						class = a.Error()
						break
					}
				}
				var oe *layout.OpError
				if !errors.As(err, &oe) {
					badf("op %d: not an OpError: %v", op, err)
				}
			}
			if strings.HasPrefix(class, "other") {
				badf("op %d: %s", op, class)
			}
			res.counts[class]++
		}
	}()
	var res result
	select {
	case res = <-resc:
	case <-time.After(c.run + c.lockTimeout + 30*time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("the victim hangs\n%s", buf[:runtime.Stack(buf, true)])
	}
	_, err = fmt.Fprintln(jobs) // stop scribbling (before the checks below)
	require.NoError(t, err)
	time.Sleep(10 * time.Millisecond)
	if res.panicked != nil {
		t.Fatalf("the victim panicked: %v\n%s", res.panicked, res.stack)
	}
	st, err = m.Stats()
	require.NoError(t, err)
	t.Logf("%d ops, slowest %v; outcomes %v; locked reads %d, repairs %d", res.ops, res.slowest, res.counts, st.LockedReads, st.Repairs)
	for _, b := range res.bad {
		t.Error(b)
	}
	require.Less(t, res.slowest, c.lockTimeout+2*time.Second, "an op overran its lock timeout")
	if c.must != nil {
		require.Positive(t, res.counts[c.must.Error()], "never got %v: the case proved nothing", c.must)
	}
	require.Positive(t, res.ops)
	if c.after != nil {
		c.after(t, m)
	}
	if c.exact {
		for k := range uint64(nKeys) {
			v, ok, err := m.Load(k)
			if err != nil {
				continue // a scribble left behind (not-recoverable lock, count)
			}
			want, present := model[k]
			require.Equal(t, present, ok, "key %d", k)
			require.Equal(t, want, v, "key %d", k)
		}
	}
}
