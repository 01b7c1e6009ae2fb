package shmmap_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/shmmap"
	"github.com/stretchr/testify/require"
)

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

// ---------------------------------------------------------------------------
// Model test: several processes, disjoint and overlapping keys.
//
// Each worker owns a disjoint key range and runs random Put/Get/Delete/
// LoadOrStore/CompareAndSwap on it, checking every result against its own
// model (nobody else touches those keys) and logging every mutation. All
// workers also mutate a shared set of keys, only through Update, writing
// values unique to (writer, seq) and logging each transition (before ->
// after). The parent replays the own-key logs into a model that must equal
// the final table exactly, and checks that the shared-key transitions form
// one linear history per key ending in the table's final value.

const sharedBase = 1 << 40

var modelWorker = testproc.Register("model-worker", func(args []string) error {
	spec, id, logPath := args[0], uint64(atoi(args[1])), args[2]
	nOps, nOwn, nShared := atoi(args[3]), atoi(args[4]), atoi(args[5])
	m, err := shmmap.Open[uint64, val](spec)
	if err != nil {
		return err
	}
	defer m.Close()
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	defer w.Flush()

	stopKey := uint64(0) // optional: run until this key appears
	if len(args) > 6 {
		stopKey = uint64(atoi(args[6]))
	}
	r := rand.New(rand.NewPCG(id, 77))
	own := map[uint64]val{}
	seq := uint64(0)
	for range nOps {
		seq++
		if stopKey != 0 && seq%256 == 0 {
			if _, stop := m.Get(stopKey); stop {
				break
			}
		}
		if r.IntN(4) == 0 {
			k := uint64(sharedBase + r.IntN(nShared))
			var before, after val
			err := m.Update(k, func(v val, ok bool) (val, bool) {
				before, after = val{}, val{}
				if ok {
					before = v
					if r.IntN(3) == 0 {
						return v, false
					}
				}
				after = val{id, seq}
				return after, true
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "T %d %d %d %d %d\n", k, before.A, before.B, after.A, after.B)
			continue
		}
		k := id<<32 | uint64(r.IntN(nOwn))
		want, present := own[k]
		switch r.IntN(6) {
		case 0, 1:
			v := val{id, seq}
			if err := m.Put(k, v); err != nil {
				return err
			}
			own[k] = v
			fmt.Fprintf(w, "P %d %d %d\n", k, v.A, v.B)
		case 2:
			got, ok := m.Get(k)
			if ok != present || got != want {
				return fmt.Errorf("get %d = %v %v, model %v %v", k, got, ok, want, present)
			}
		case 3:
			if ok := m.Delete(k); ok != present {
				return fmt.Errorf("delete %d = %v, model %v", k, ok, present)
			}
			delete(own, k)
			fmt.Fprintf(w, "D %d\n", k)
		case 4:
			v := val{id, seq}
			act, loaded, err := m.LoadOrStore(k, v)
			if err != nil {
				return err
			}
			if loaded != present || (loaded && act != want) || (!loaded && act != v) {
				return fmt.Errorf("loadorstore %d = %v %v, model %v %v", k, act, loaded, want, present)
			}
			if !loaded {
				own[k] = v
				fmt.Fprintf(w, "P %d %d %d\n", k, v.A, v.B)
			}
		case 5:
			v := val{id, seq}
			sw, err := m.CompareAndSwap(k, want, v)
			if err != nil {
				return err
			}
			if sw != present {
				return fmt.Errorf("cas %d = %v, model present %v", k, sw, present)
			}
			if sw {
				own[k] = v
				fmt.Fprintf(w, "P %d %d %d\n", k, v.A, v.B)
			}
		}
	}
	st, err := m.Stats()
	if err != nil {
		return err
	}
	fmt.Println("repairs", st.Repairs)
	return nil
})

type transition struct{ before, after val }

// replayLog applies a model-worker log: own-key puts and deletes to model,
// shared-key transitions to trans.
func replayLog(t *testing.T, path string, model map[uint64]val, trans map[uint64][]transition) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		n := make([]uint64, len(f))
		for i := 1; i < len(f); i++ {
			n[i] = uint64(atoi(f[i]))
		}
		switch f[0] {
		case "P":
			model[n[1]] = val{n[2], n[3]}
		case "D":
			delete(model, n[1])
		case "T":
			trans[n[1]] = append(trans[n[1]], transition{val{n[2], n[3]}, val{n[4], n[5]}})
		}
	}
}

// replayOwn returns the own-key contents a model-worker's log leaves.
func replayOwn(t *testing.T, path string) map[uint64]val {
	model := map[uint64]val{}
	replayLog(t, path, model, map[uint64][]transition{})
	return model
}

func TestModelMultiProcess(t *testing.T) {
	const workers, nOps, nOwn, nShared = 3, 30000, 2000, 64
	m, spec := create[uint64, val](t, workers*nOwn+nShared+100, shmmap.WithShards(8))
	dir := t.TempDir()
	var procs []*testproc.Proc
	for id := 1; id <= workers; id++ {
		procs = append(procs, modelWorker.Start(t, spec, strconv.Itoa(id), filepath.Join(dir, strconv.Itoa(id)),
			strconv.Itoa(nOps), strconv.Itoa(nOwn), strconv.Itoa(nShared)))
	}
	for _, p := range procs {
		require.NoError(t, p.Wait(2*time.Minute), p.Output())
	}

	model := map[uint64]val{}
	trans := map[uint64][]transition{}
	for id := 1; id <= workers; id++ {
		replayLog(t, filepath.Join(dir, strconv.Itoa(id)), model, trans)
	}
	got := maps.Collect(m.All())
	require.Equal(t, len(got), m.Len())
	for k, v := range got {
		if k >= sharedBase {
			continue
		}
		require.Equal(t, model[k], v, "key %#x", k)
	}
	for k := range model {
		_, ok := got[k]
		require.True(t, ok, "key %#x missing", k)
	}
	// Shared keys: every written value is unique, so the transitions of a
	// key form a linear history iff each value is consumed at most once,
	// only written values are consumed, and exactly the final value (if
	// any) is never consumed.
	var absent val
	nTrans := 0
	for k := range uint64(nShared) {
		k += sharedBase
		written := map[val]bool{}
		consumed := map[val]bool{}
		fromAbsent, toAbsent := 0, 0
		for _, tr := range trans[k] {
			nTrans++
			if tr.before == absent {
				fromAbsent++
			} else {
				require.False(t, consumed[tr.before], "key %#x: value %v replaced twice", k, tr.before)
				consumed[tr.before] = true
			}
			if tr.after == absent {
				toAbsent++
			} else {
				require.False(t, written[tr.after])
				written[tr.after] = true
			}
		}
		for v := range consumed {
			require.True(t, written[v], "key %#x: replaced value %v never written", k, v)
		}
		final, present := got[k]
		for v := range written {
			if present && v == final {
				require.False(t, consumed[v], "key %#x: final value %v was replaced", k, v)
			} else {
				require.True(t, consumed[v], "key %#x: value %v vanished", k, v)
			}
		}
		if present {
			require.True(t, written[final], "key %#x: final value %v never written", k, final)
			require.Equal(t, toAbsent+1, fromAbsent, "key %#x", k)
		} else {
			require.Equal(t, toAbsent, fromAbsent, "key %#x", k)
		}
	}
	require.Greater(t, nTrans, workers*nOps/8)
	require.NoError(t, m.Check())
}

// ---------------------------------------------------------------------------
// Torn reads: a writer stores values whose eight words are all equal while
// deleting and re-inserting keys of the same (single) shard, so entries
// are constantly rewritten and shifted; readers in other processes must
// never see a value with unequal words, or a value under the wrong key.

type wide [32]uint64

const (
	tornKeys    = 48
	tornStop    = 1 << 62 // written by the writer when it is done
	tornDone    = 1 << 61 // + reader id: the reader made its quota of hits
	tornReaders = 2
)

// tornQuota is how many values each reader must see while the writer runs
// (children inherit the environment, so they agree).
func tornQuota() int {
	if os.Getenv("SHMKIT_SOAK") != "" {
		return 50_000_000
	}
	return 1_000_000
}

// The writer keeps writing until every reader has seen tornQuota values
// (so the readers really ran against a live writer), then writes tornStop.
var tornWriter = testproc.Register("torn-writer", func(args []string) error {
	m, err := shmmap.Open[uint64, wide](args[0])
	if err != nil {
		return err
	}
	defer m.Close()
	deadline := time.Now().Add(time.Minute)
	r := rand.New(rand.NewPCG(1, 2))
	for c := uint64(1); ; c++ {
		if c%1024 == 0 {
			done := 0
			for id := range uint64(tornReaders) {
				if _, ok := m.Get(tornDone + id); ok {
					done++
				}
			}
			if done == tornReaders {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("readers did not make their quota")
			}
		}
		k := uint64(r.IntN(tornKeys))
		if c%5 == 0 {
			m.Delete(k)
			continue
		}
		var v wide
		for i := range v {
			v[i] = k<<32 | c
		}
		if err := m.Put(k, v); err != nil {
			return err
		}
	}
	return m.Put(tornStop, wide{})
})

var tornReader = testproc.Register("torn-reader", func(args []string) error {
	m, err := shmmap.Open[uint64, wide](args[0])
	if err != nil {
		return err
	}
	defer m.Close()
	id := uint64(atoi(args[1]))
	quota := tornQuota()
	reads, hits := 0, 0
	for ; ; reads++ {
		if reads%256 == 0 {
			if _, stop := m.Get(tornStop); stop {
				break
			}
		}
		k := uint64(reads % tornKeys)
		v, ok := m.Get(k)
		if !ok {
			continue
		}
		hits++
		if hits == quota {
			if err := m.Put(tornDone+id, wide{}); err != nil {
				return err
			}
		}
		for i := range v {
			if v[i] != v[0] || v[i]>>32 != k {
				_ = m.Put(tornDone+id, wide{}) // let the writer stop
				return fmt.Errorf("torn read of key %d: %x", k, v)
			}
		}
	}
	st, err := m.Stats()
	if err != nil {
		return err
	}
	fmt.Println(reads, hits, st.LockedReads)
	return nil
})

func TestTornReads(t *testing.T) {
	_, spec := create[uint64, wide](t, tornKeys+tornReaders+1, shmmap.WithShards(1))
	var readers []*testproc.Proc
	for id := range tornReaders {
		readers = append(readers, tornReader.Start(t, spec, strconv.Itoa(id)))
	}
	w := tornWriter.Start(t, spec)
	require.NoError(t, w.Wait(2*time.Minute), w.Output())
	for _, r := range readers {
		require.NoError(t, r.Wait(time.Minute), r.Output())
		var reads, hits, locked int
		_, err := fmt.Sscan(r.Output(), &reads, &hits, &locked)
		require.NoError(t, err)
		t.Logf("reader: %d gets (%d through the lock), %d hits, no torn value", reads, locked, hits)
		require.GreaterOrEqual(t, hits, tornQuota())
	}
}

// ---------------------------------------------------------------------------
// Padded keys across processes: one process stores keys whose padding
// bytes are garbage; another finds them with clean keys and with keys
// carrying different garbage.

type padKey struct {
	A uint8
	B uint64
	C uint16
}

var padWriter = testproc.Register("pad-writer", func(args []string) error {
	m, err := shmmap.Open[padKey, uint64](args[0])
	if err != nil {
		return err
	}
	defer m.Close()
	for i := range uint64(500) {
		k := padKey{A: uint8(i), B: i * 1000, C: uint16(i)}
		dirtyPadding(&k, 0xAB^byte(i))
		if err := m.Put(k, i); err != nil {
			return err
		}
	}
	return nil
})

func TestPaddedKeysAcrossProcesses(t *testing.T) {
	m, spec := create[padKey, uint64](t, 1000)
	padWriter.Run(t, spec)
	require.Equal(t, 500, m.Len())
	for i := range uint64(500) {
		k := padKey{A: uint8(i), B: i * 1000, C: uint16(i)}
		v, ok := m.Get(k)
		require.True(t, ok, "clean key %d", i)
		require.Equal(t, i, v)
		dirtyPadding(&k, 0x5C)
		v, ok = m.Get(k)
		require.True(t, ok, "dirty key %d", i)
		require.Equal(t, i, v)
	}
	require.NoError(t, m.Check())
}

// ---------------------------------------------------------------------------
// Crash test: writers are SIGKILLed at crash points inside Put, Update and
// Delete (after logging, mid-copy, mid-shift, after applying) and at random
// moments, in a loop, while reader processes keep reading. The table must
// stay consistent (Check), its contents must match a model replayed from
// the writers' logs (the killed writer's in-flight op either applied or
// not), and no reader Get may block for long.

const (
	bystanderKeys = 200
	bystanderStop = 1 << 60
	crashKeys     = 600
	crashStop     = 1 << 62
	// readBound is the longest a reader Get may take. A reader stuck behind
	// a dead writer that was never detected would instead fail its Load
	// with ErrLockTimeout after readerLockTimeout; readBound only has to
	// be above plain scheduling delays, which reached 7 s on an overloaded
	// 2-core machine running several test binaries.
	readBound         = 15 * time.Second
	readerLockTimeout = 3 * time.Second
	crashShard        = 4
)

var crashWriter = testproc.Register("crash-writer", func(args []string) error {
	m, err := shmmap.Open[uint64, val](args[0])
	if err != nil {
		return err
	}
	defer m.Close()
	f, err := os.OpenFile(args[1], os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	seed, nOps := uint64(atoi(args[2])), atoi(args[3])
	avoid := map[uint64]bool{}
	for _, a := range args[4:] {
		avoid[uint64(atoi(a))] = true
	}
	r := rand.New(rand.NewPCG(seed, 3))
	for i := range nOps {
		k := uint64(r.IntN(crashKeys))
		if avoid[k] {
			continue
		}
		ver := seed<<32 | uint64(i)
		op := "P"
		switch r.IntN(5) {
		case 0, 1:
			op = "X"
		case 2:
			op = "U"
		}
		// Unbuffered writes: what the kernel accepted survives SIGKILL.
		if _, err := fmt.Fprintf(f, "I %s %d %d\n", op, k, ver); err != nil {
			return err
		}
		var res string
		switch op {
		case "P":
			err = m.Put(k, val{k, ver})
			res = "ok"
		case "X":
			var ok bool
			_, ok, err = m.LoadAndDelete(k)
			res = strconv.FormatBool(ok)
		case "U": // delete if present, insert if absent
			var was bool
			err = m.Update(k, func(v val, ok bool) (val, bool) {
				was = ok
				return val{k, ver}, !ok
			})
			res = strconv.FormatBool(was)
		}
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(f, "D %s\n", res); err != nil {
			return err
		}
	}
	return nil
})

var crashReader = testproc.Register("crash-reader", func(args []string) error {
	m, err := shmmap.Open[uint64, val](args[0], shmmap.WithLockTimeout(readerLockTimeout))
	if err != nil {
		return err
	}
	defer m.Close()
	var worst time.Duration
	var slow []string
	n := 0
	for ; ; n++ {
		k := uint64(n % crashKeys)
		if n%64 == 0 {
			k = crashStop
		}
		locked0, repairs0 := m.LockedReads(), m.RepairCount()
		start := time.Now()
		v, ok, err := m.Load(k)
		d := time.Since(start)
		worst = max(worst, d)
		if err != nil {
			return fmt.Errorf("load %d: %w", k, err)
		}
		if d > readBound {
			st, _ := m.Stats()
			return fmt.Errorf("get of %d took %v (locked reads so far %d, repairs %d, shards %+v)", k, d, st.LockedReads, st.Repairs, st.Shard)
		}
		if d > 100*time.Millisecond {
			slow = append(slow, fmt.Sprintf("slow get of %d: %v at %s (through the lock: %d, repairs: %d)",
				k, d, start.Format("15:04:05.000"), m.LockedReads()-locked0, m.RepairCount()-repairs0))
		}
		if k == crashStop {
			if ok {
				break
			}
			continue
		}
		if ok && v.A != k {
			return fmt.Errorf("key %d holds %v", k, v)
		}
	}
	st, err := m.Stats()
	if err != nil {
		return err
	}
	fmt.Println(n, worst.Nanoseconds(), st.LockedReads, st.Repairs)
	for _, line := range slow {
		fmt.Println(line)
	}
	return nil
})

var crashPoints = []string{
	"shmmap.put-logged", "shmmap.put-mid", "shmmap.put-applied",
	"shmmap.update-logged", "shmmap.update-mid",
	"shmmap.delete-logged", "shmmap.delete-shifting",
}

// crashModel replays writer logs.
type crashModel struct {
	m map[uint64]val
}

// apply replays a log; it returns the in-flight op (key and the value it
// would leave, present or not) if the writer died inside one.
func (cm *crashModel) apply(t *testing.T, log string) (pending bool, key uint64, after val, afterPresent bool) {
	t.Helper()
	var op string
	var k, ver uint64
	for line := range strings.Lines(log) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "I":
			require.False(t, pending, "two ops in flight")
			if len(f) < 4 {
				// Killed while writing the line: nothing after it ran.
				return false, 0, val{}, false
			}
			op, k, ver = f[1], uint64(atoi(f[2])), uint64(atoi(f[3]))
			pending = true
		case "D":
			require.True(t, pending)
			cur, present := cm.m[k]
			switch op {
			case "P":
				cm.m[k] = val{k, ver}
			case "X":
				require.Equal(t, strconv.FormatBool(present), f[1], "delete result of %d", k)
				delete(cm.m, k)
			case "U":
				require.Equal(t, strconv.FormatBool(present), f[1], "update saw %d", k)
				if present {
					delete(cm.m, k)
				} else {
					cm.m[k] = val{k, ver}
				}
			}
			_ = cur
			pending = false
		}
	}
	if !pending {
		return false, 0, val{}, false
	}
	_, present := cm.m[k]
	switch op {
	case "P":
		return true, k, val{k, ver}, true
	case "X":
		return true, k, val{}, false
	default:
		if present {
			return true, k, val{}, false
		}
		return true, k, val{k, ver}, true
	}
}

// TestCrashWriters runs 12 rounds (6 under -race, 300 with SHMKIT_SOAK=1);
// SHMKIT_KILLS=N instead runs rounds until N writers have been SIGKILLed,
// e.g.
//
//	SHMKIT_KILLS=1000 go test -run TestCrashWriters -v -timeout 1h ./shmmap/
func TestCrashWriters(t *testing.T) {
	rounds := 12
	if raceEnabled {
		rounds = 6
	}
	if os.Getenv("SHMKIT_SOAK") != "" {
		rounds = 300
	}
	killTarget := envCount(t, "SHMKIT_KILLS", 0)
	began := time.Now()
	m, spec := create[uint64, val](t, crashKeys+bystanderKeys+80, shmmap.WithShards(crashShard))
	readers := []*testproc.Proc{crashReader.Start(t, spec), crashReader.Start(t, spec)}
	dir := t.TempDir()
	// A bystander writer works on its own keys in the same shards the
	// whole time, checking every result against its private model: a dead
	// writer's repair must never disturb it.
	bystanderLog := filepath.Join(dir, "bystander")
	bystander := modelWorker.Start(t, spec, "7", bystanderLog, "100000000", strconv.Itoa(bystanderKeys), "8", strconv.Itoa(bystanderStop))
	cm := &crashModel{m: map[uint64]val{}}
	type amb struct {
		key          uint64
		after        val
		afterPresent bool
		// mustApply: killed at a crash point, all of which lie after the
		// op's redo record is published, so the op must be completed.
		mustApply bool
	}
	var unresolved []amb
	r := rand.New(rand.NewPCG(9, 9))
	kills, acked, inFlight, applied := 0, 0, 0, 0
	// settle checks the table (which repairs), resolves the killed
	// writers' in-flight ops and compares the whole table with the model.
	settle := func(round int) {
		require.NoError(t, m.Check(), "round %d", round)
		for _, a := range unresolved {
			v, ok := m.Get(a.key)
			before, beforePresent := cm.m[a.key]
			switch {
			case ok == a.afterPresent && (!ok || v == a.after):
				applied++
				if ok {
					cm.m[a.key] = v
				} else {
					delete(cm.m, a.key)
				}
			case !a.mustApply && ok == beforePresent && (!ok || v == before):
			default:
				t.Fatalf("round %d: key %d is %v %v: neither before (%v %v) nor after (%v %v) its in-flight op",
					round, a.key, v, ok, before, beforePresent, a.after, a.afterPresent)
			}
		}
		unresolved = unresolved[:0]
		got := maps.Collect(m.All())
		maps.DeleteFunc(got, func(k uint64, _ val) bool { return k >= crashKeys })
		require.Equal(t, cm.m, got, "round %d", round)
	}
	round := 0
	for ; killTarget == 0 && round < rounds || killTarget > 0 && kills < killTarget; round++ {
		require.Less(t, round, 3*killTarget+rounds, "writers are not being killed")
		roundStart := time.Now()
		logPath := filepath.Join(dir, "w"+strconv.Itoa(round))
		args := []string{spec, logPath, strconv.Itoa(round + 1), "3000"}
		for _, a := range unresolved {
			args = append(args, strconv.FormatUint(a.key, 10))
		}
		cmd := crashWriter.Command(t, args...)
		viaPoint := round%3 != 2
		if viaPoint {
			cp := crashPoints[round%len(crashPoints)]
			cmd.Env = append(cmd.Env, crashpoint.Arm(cp, 1+r.IntN(200)))
		}
		p := testproc.StartCmd(t, cmd)
		if !viaPoint {
			select {
			case <-p.Done():
			case <-time.After(time.Duration(1+r.IntN(20)) * time.Millisecond):
				p.Kill()
			}
		}
		werr := p.Wait(time.Minute)
		waited := time.Since(roundStart)
		if werr != nil {
			kills++
			require.Contains(t, werr.Error(), "killed", p.Output())
		}
		b, err := os.ReadFile(logPath)
		if !errors.Is(err, os.ErrNotExist) {
			require.NoError(t, err)
		}
		for line := range strings.Lines(string(b)) {
			if strings.HasPrefix(line, "D ") {
				acked++
			}
		}
		pending, k, after, afterPresent := cm.apply(t, string(b))
		if pending {
			inFlight++
			unresolved = append(unresolved, amb{k, after, afterPresent, viaPoint && werr != nil})
		}
		// Every other round, leave the repair to the next writer and
		// the readers; otherwise check (which repairs) and resolve.
		if round%2 == 1 {
			settle(round)
		}
		if testing.Verbose() && (killTarget == 0 || round%100 == 0) {
			t.Logf("round %d: writer %v, round %v, %d kills so far", round, waited, time.Since(roundStart), kills)
		}
	}
	settle(round - 1)
	require.NoError(t, m.Put(bystanderStop, val{}))
	require.NoError(t, bystander.Wait(2*time.Minute), bystander.Output())
	t.Logf("bystander: %s", strings.TrimSpace(bystander.Output()))
	own := replayOwn(t, bystanderLog)
	for k, v := range m.All() {
		if k >= crashKeys && k < sharedBase && k != bystanderStop {
			require.Equal(t, own[k], v, "bystander key %#x", k)
			delete(own, k)
		}
	}
	require.Empty(t, own, "bystander keys missing")
	require.NoError(t, m.Put(crashStop, val{}))
	var readerRepairs uint64
	for _, rd := range readers {
		require.NoError(t, rd.Wait(time.Minute), rd.Output())
		var n, worst, locked, repairs int64
		_, err := fmt.Sscan(rd.Output(), &n, &worst, &locked, &repairs)
		require.NoError(t, err)
		t.Logf("reader: %d gets, worst %v, %d through the lock, %d repairs", n, time.Duration(worst), locked, repairs)
		readerRepairs += uint64(repairs)
		if _, more, ok := strings.Cut(rd.Output(), "\n"); ok && strings.TrimSpace(more) != "" {
			t.Logf("reader:\n%s", more)
		}
	}
	st, err := m.Stats()
	require.NoError(t, err)
	t.Logf("%d rounds in %v, %d writers SIGKILLed (%d inside an op: %d of those applied, the rest not); %d acknowledged writer ops; len %d; repairs: %d by the parent, %d by the readers, 0 violations",
		round, time.Since(began).Round(time.Millisecond), kills, inFlight, applied, acked, st.Len, st.Repairs, readerRepairs)
	require.Greater(t, kills, round/2)
	require.GreaterOrEqual(t, kills, killTarget)
}

// Clear killed midway: the shard it was clearing is finished by the next
// locker; shards before it are empty, shards after it untouched.
var clearWriter = testproc.Register("clear-writer", func(args []string) error {
	m, err := shmmap.Open[uint64, val](args[0])
	if err != nil {
		return err
	}
	defer m.Close()
	return m.Clear()
})

func TestCrashMidClear(t *testing.T) {
	const shards, n = 8, 2000
	m, spec := create[uint64, val](t, n, shmmap.WithShards(shards))
	for k := range uint64(n) {
		require.NoError(t, m.Put(k, val{k, k}))
	}
	before, err := m.Stats()
	require.NoError(t, err)
	cmd := clearWriter.Command(t, spec)
	cmd.Env = append(cmd.Env, crashpoint.Arm("shmmap.clear-mid", 4)) // in the 4th shard
	p := testproc.StartCmd(t, cmd)
	require.ErrorContains(t, p.Wait(time.Minute), "killed")

	mid, err := m.Stats()
	require.NoError(t, err)
	require.Equal(t, "clear", mid.Shard[3].PendingOp)
	require.True(t, mid.Shard[3].Writing)
	require.True(t, mid.Shard[3].Lock.OwnerDead)

	require.NoError(t, m.Check()) // repairs shard 3
	after, err := m.Stats()
	require.NoError(t, err)
	for sh := range shards {
		if sh <= 3 {
			require.Zero(t, after.Shard[sh].Len, "shard %d", sh)
		} else {
			require.Equal(t, before.Shard[sh].Len, after.Shard[sh].Len, "shard %d", sh)
		}
	}
	for k, v := range m.All() {
		require.Equal(t, val{k, k}, v)
	}
	require.Equal(t, after.Len, m.Len())
}

// A reader that meets a writer killed mid-write (sequence count left odd,
// lock held by a dead process) falls back to the lock, repairs the shard
// and returns the completed value, quickly.
var putOnce = testproc.Register("put-once", func(args []string) error {
	m, err := shmmap.Open[uint64, val](args[0])
	if err != nil {
		return err
	}
	defer m.Close()
	return m.Put(uint64(atoi(args[1])), val{7, 7})
})

func TestReaderRepairsDeadWriter(t *testing.T) {
	for _, point := range []string{"shmmap.put-mid", "shmmap.update-mid", "shmmap.put-logged"} {
		t.Run(point, func(t *testing.T) {
			m, spec := create[uint64, val](t, 10, shmmap.WithShards(1))
			require.NoError(t, m.Put(1, val{1, 1}))
			key := "2"
			if point == "shmmap.update-mid" {
				key = "1"
			}
			cmd := putOnce.Command(t, spec, key)
			cmd.Env = append(cmd.Env, crashpoint.Arm(point, 1))
			require.ErrorContains(t, testproc.StartCmd(t, cmd).Wait(time.Minute), "killed")

			st, err := m.Stats()
			require.NoError(t, err)
			require.True(t, st.Shard[0].Lock.OwnerDead)
			require.Equal(t, point != "shmmap.put-logged", st.Shard[0].Writing)

			start := time.Now()
			v, ok := m.Get(uint64(atoi(key)))
			took := time.Since(start)
			require.True(t, ok)
			require.Equal(t, val{7, 7}, v, "the logged op is completed")
			st, err = m.Stats()
			require.NoError(t, err)
			t.Logf("get took %v; locked reads %d, repairs %d", took, st.LockedReads, st.Repairs)
			require.Equal(t, uint64(1), st.Repairs, "the reader repaired the shard")
			if point != "shmmap.put-logged" {
				// The count was left odd: only the lock path could answer.
				require.Equal(t, uint64(1), st.LockedReads)
			} else {
				// Killed before the count went odd: the reader saw the
				// pending redo record and settled the shard without
				// waiting.
				require.Zero(t, st.LockedReads)
			}
			require.Less(t, took, readBound)
			require.False(t, st.Shard[0].Writing)
			require.False(t, st.Shard[0].Lock.Locked)
			require.NoError(t, m.Check())
		})
	}
}

// A read-only handle reads lock-free, refuses writes, and reports (instead
// of hanging on or faulting in) a shard left mid-write by a dead writer.
func TestReadOnlyHandle(t *testing.T) {
	m, spec := create[uint64, val](t, 10, shmmap.WithShards(1))
	require.NoError(t, m.Put(1, val{1, 1}))
	ro, err := shmmap.Open[uint64, val](spec, shmmap.WithLayout(layout.WithSegment(segment.ReadOnly())))
	require.NoError(t, err)
	defer ro.Close()
	v, ok := ro.Get(1)
	require.True(t, ok)
	require.Equal(t, val{1, 1}, v)
	require.ErrorIs(t, ro.Put(2, val{}), shmmap.ErrReadOnly)
	_, _, err = ro.LoadAndDelete(1)
	require.ErrorIs(t, err, shmmap.ErrReadOnly)
	require.Equal(t, 1, len(maps.Collect(ro.All())))

	cmd := putOnce.Command(t, spec, "2")
	cmd.Env = append(cmd.Env, crashpoint.Arm("shmmap.put-mid", 1))
	require.ErrorContains(t, testproc.StartCmd(t, cmd).Wait(time.Minute), "killed")
	_, _, err = ro.Load(1)
	require.ErrorIs(t, err, shmmap.ErrReadOnly)
	require.NoError(t, m.Check()) // a writable handle repairs
	v, ok, err = ro.Load(2)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, val{7, 7}, v)
}

// A live process that holds a shard lock indefinitely (here: stuck inside
// an Update callback) makes writers fail after the lock timeout instead of
// hanging; lock-free readers are not affected; its death frees the shard.
var holdLock = testproc.Register("hold-lock", func(args []string) error {
	m, err := shmmap.Open[uint64, val](args[0])
	if err != nil {
		return err
	}
	return m.Update(1, func(v val, ok bool) (val, bool) {
		fmt.Println("holding")
		select {} // until killed
	})
})

func TestLockTimeout(t *testing.T) {
	_, spec := create[uint64, val](t, 10, shmmap.WithShards(1))
	m, err := shmmap.Open[uint64, val](spec, shmmap.WithLockTimeout(200*time.Millisecond))
	require.NoError(t, err)
	defer m.Close()
	require.NoError(t, m.Put(1, val{1, 1}))
	p := holdLock.Start(t, spec)
	for !strings.Contains(p.Output(), "holding") {
		select {
		case <-p.Done():
			t.Fatalf("holder exited: %s", p.Output())
		case <-time.After(time.Millisecond):
		}
	}
	start := time.Now()
	err = m.Put(2, val{2, 2})
	require.ErrorIs(t, err, shmmap.ErrLockTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 5*time.Second)
	t.Log(err)
	v, ok := m.Get(1) // lock-free: unaffected
	require.True(t, ok)
	require.Equal(t, val{1, 1}, v)

	p.Kill()
	require.NoError(t, m.Put(2, val{2, 2}))
	require.NoError(t, m.Check())
}
