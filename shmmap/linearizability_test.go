package shmmap_test

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/shmmap"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// ---------------------------------------------------------------------------
// Linearizability, checked by an external checker (porcupine) over
// histories recorded by real processes.
//
// Writer processes run Get/Put/Delete/CompareAndSwap and reader processes
// run Get on a few keys that all live in ONE shard (WithShards(1)), so
// every operation goes through the same lock, sequence count, redo record
// and backward-shift cluster. Each child stamps every call and return with
// CLOCK_MONOTONIC (unix.ClockGettime: one clock for all processes) and logs
// them; the parent assembles the history and asks porcupine whether some
// order of the operations, each taking effect at one instant between its
// call and its return, is legal for a plain map. Every Put writes a value
// unique to (writer, op), so a stale, lost, resurrected or torn value
// cannot pass.
//
// With kills, writers are SIGKILLed mid-operation (at the map's crash
// points, or at random moments) and replaced. A killed writer's last
// operation has a call and no return: it is PENDING, given an infinite
// return time, so porcupine may place its effect at any point after its
// call, including after everything else (not at all). The history is
// partitioned by key, which is sound for single-key operations
// (linearizability is local: Herlihy and Wing).

const (
	linKeys  = 4
	linShift = 40 // value = writer id << linShift | op number
)

// linInput is an operation's input; linOutput its result.
type linInput struct {
	op       byte // 'G' get, 'P' put, 'D' delete, 'S' compare-and-swap
	key      uint64
	arg, new uint64 // P: arg is the value; S: arg is old, new is new
}

type linOutput struct {
	v       uint64
	ok      bool // G: present; D: deleted; S: swapped
	pending bool // no return: the caller was killed during the call
}

// linState is one key's state (the history is partitioned by key).
type linState struct {
	v  uint64
	ok bool
}

var linModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[uint64][]porcupine.Operation{}
		var keys []uint64
		for _, op := range h {
			k := op.Input.(linInput).key
			if _, seen := byKey[k]; !seen {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return linState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(linState), input.(linInput), output.(linOutput)
		switch in.op {
		case 'G':
			return out.pending || (out.ok == s.ok && (!s.ok || out.v == s.v)), s
		case 'P':
			return true, linState{in.arg, true}
		case 'D':
			return out.pending || out.ok == s.ok, linState{}
		case 'S':
			hit := s.ok && s.v == in.arg
			if !out.pending && out.ok != hit {
				return false, s
			}
			if hit {
				return true, linState{in.new, true}
			}
			return true, s
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		res := fmt.Sprintf("%#x %v", out.v, out.ok)
		if out.pending {
			res = "pending"
		}
		switch in.op {
		case 'G':
			return fmt.Sprintf("get(%d) -> %s", in.key, res)
		case 'P':
			return fmt.Sprintf("put(%d, %#x)", in.key, in.arg)
		case 'D':
			return fmt.Sprintf("delete(%d) -> %s", in.key, res)
		default:
			return fmt.Sprintf("cas(%d, %#x, %#x) -> %s", in.key, in.arg, in.new, res)
		}
	},
	DescribeState: func(state any) string {
		s := state.(linState)
		if !s.ok {
			return "absent"
		}
		return fmt.Sprintf("%#x", s.v)
	},
}

// monoNow reads CLOCK_MONOTONIC, the clock every process shares.
func monoNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}

// linVal stores v so that a torn copy is visible.
func linVal(v uint64) val { return val{v, ^v} }

// linWorker runs operations on keys 0..linKeys-1 and logs each as
//
//	C op key arg new tcall
//	R v ok treturn
//
// args: spec, log path, worker id, role ("w" or "r"), ops (a writer's
// count; a reader reads until the stop file exists or it has done this
// many), the go file (start when it exists), the stop file. A writer's log
// is unbuffered, so that a SIGKILL loses nothing the writer logged: a C
// line without its R line is the operation in flight.
var linWorker = testproc.Register("lin-worker", func(args []string) error {
	spec, logPath, id, role := args[0], args[1], uint64(atoi(args[2])), args[3]
	nOps, goFile, stopFile := atoi(args[4]), args[5], args[6]
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
	var w interface {
		WriteString(string) (int, error)
	} = f
	if role == "r" {
		bw := bufio.NewWriterSize(f, 1<<16)
		defer bw.Flush()
		w = bw
	}
	fmt.Println("ready")
	for deadline := time.Now().Add(time.Minute); ; {
		if _, err := os.Stat(goFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("no go file")
		}
		time.Sleep(time.Millisecond)
	}
	r := rand.New(rand.NewPCG(id, 0x11))
	var last [linKeys]uint64 // the last value seen per key: CAS's expectation
	for i := uint64(1); i <= uint64(nOps); i++ {
		k := uint64(r.IntN(linKeys))
		in := linInput{op: 'G', key: k}
		// Every process pauses briefly every 8 ops, readers and writers
		// alike, so that the readers' few thousand reads span the
		// writers' run (a history of hundreds of thousands of reads
		// takes the checker minutes) and the processes' bursts interleave
		// in ever new ways.
		if i%8 == 0 {
			time.Sleep(time.Duration(r.IntN(200)) * time.Microsecond)
		}
		if role == "r" {
			if i%16 == 0 {
				if _, err := os.Stat(stopFile); err == nil {
					break
				}
			}
		} else {
			switch p := r.IntN(100); {
			case p < 35:
				in.op, in.arg = 'P', id<<linShift|i
			case p < 55:
				in.op = 'D'
			case p < 85:
				in.op, in.arg, in.new = 'S', last[k], id<<linShift|i
				if r.IntN(4) == 0 {
					in.arg = last[r.IntN(linKeys)] // sometimes a wrong one
				}
			}
		}
		if _, err := w.WriteString(fmt.Sprintf("C %c %d %d %d %d\n", in.op, in.key, in.arg, in.new, monoNow())); err != nil {
			return err
		}
		var out linOutput
		switch in.op {
		case 'G':
			var v val
			v, out.ok, err = m.Load(k)
			if out.ok {
				if v.B != ^v.A {
					return fmt.Errorf("torn value %v for key %d", v, k)
				}
				out.v = v.A
				last[k] = v.A
			}
		case 'P':
			err = m.Put(k, linVal(in.arg))
			last[k] = in.arg
		case 'D':
			_, out.ok, err = m.LoadAndDelete(k)
		case 'S':
			out.ok, err = m.CompareAndSwap(k, linVal(in.arg), linVal(in.new))
			if out.ok {
				last[k] = in.new
			}
		}
		t := monoNow()
		if err != nil {
			return fmt.Errorf("op %c on key %d: %w", in.op, k, err)
		}
		if _, err := w.WriteString(fmt.Sprintf("R %d %t %d\n", out.v, out.ok, t)); err != nil {
			return err
		}
	}
	st, err := m.Stats()
	if err != nil {
		return err
	}
	fmt.Println("repairs", st.Repairs, "locked", st.LockedReads)
	return nil
})

// parseLinLog turns a worker's log into operations of client id. A C line
// without an R line is a pending operation (its writer was killed during
// it); a torn last line (killed while logging) is dropped if it is a C line
// (the call never started) and makes its operation pending if it is an R
// line.
func parseLinLog(t *testing.T, path string, id int) (ops []porcupine.Operation, pending int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0
	}
	require.NoError(t, err)
	var cur *porcupine.Operation
	flush := func() {
		if cur != nil {
			cur.Output, cur.Return = linOutput{pending: true}, math.MaxInt64
			ops = append(ops, *cur)
			pending++
			cur = nil
		}
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		complete := strings.HasSuffix(line, "\n")
		switch {
		case len(f) == 6 && f[0] == "C" && complete:
			require.Nil(t, cur, "%s: two calls in flight", path)
			in := linInput{op: f[1][0], key: pu64(f[2]), arg: pu64(f[3]), new: pu64(f[4])}
			cur = &porcupine.Operation{ClientId: id, Input: in, Call: int64(pu64(f[5]))}
		case len(f) == 4 && f[0] == "R" && complete:
			require.NotNil(t, cur, "%s: a return without a call", path)
			cur.Output = linOutput{v: pu64(f[1]), ok: f[2] == "true"}
			cur.Return = int64(pu64(f[3]))
			require.GreaterOrEqual(t, cur.Return, cur.Call)
			ops = append(ops, *cur)
			cur = nil
		default:
			require.False(t, complete, "%s: bad line %q", path, line)
		}
	}
	flush()
	return ops, pending
}

func pu64(s string) uint64 {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		panic(err)
	}
	return n
}

// linRun is one linearizability run.
type linRun struct {
	writers, readers int // running at once
	writerOps        int
	kills            int // writers to SIGKILL (replaced as they die)
}

func (cfg linRun) run(t *testing.T) {
	m, spec := create[uint64, val](t, 8, shmmap.WithShards(1))
	dir := t.TempDir()
	goFile, stopFile := filepath.Join(dir, "go"), filepath.Join(dir, "stop")
	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 5))
	type worker struct {
		p      *testproc.Proc
		log    string
		id     int
		armed  bool          // meant to be killed (at a crash point, or after killIn)
		killIn time.Duration // random kill: this long after its first logged op
		killAt time.Time
		point  bool // armed at a crash point
	}
	nextID := 1
	start := func(role string, nOps int, kill bool) *worker {
		w := &worker{id: nextID, log: filepath.Join(dir, strconv.Itoa(nextID))}
		nextID++
		cmd := linWorker.Command(t, spec, w.log, strconv.Itoa(w.id), role, strconv.Itoa(nOps), goFile, stopFile)
		if w.armed = kill; kill {
			if r.IntN(3) == 0 {
				w.killIn = time.Duration(1+r.IntN(20)) * time.Millisecond
			} else {
				w.point = true
				cmd.Env = append(cmd.Env, crashpoint.Arm(crashPoints[r.IntN(len(crashPoints))], 1+r.IntN(30)))
			}
		}
		w.p = testproc.StartCmd(t, cmd)
		return w
	}
	var all, readers, writers []*worker
	for range cfg.readers {
		readers = append(readers, start("r", 4000, false))
	}
	for i := range cfg.writers {
		writers = append(writers, start("w", cfg.writerOps, i < cfg.kills))
	}
	all = append(append(all, readers...), writers...)
	for _, w := range all { // all at their marks: they start together
		require.True(t, w.p.WaitOutput("ready", time.Minute), w.p.Output())
	}
	require.NoError(t, os.WriteFile(goFile, nil, 0o600))
	began := time.Now()
	kills, pointKills, survived := 0, 0, 0
	for len(writers) > 0 {
		require.Less(t, time.Since(began), 2*time.Minute, "writers do not finish")
		var still []*worker
		for _, w := range writers {
			if w.killIn > 0 && w.killAt.IsZero() {
				if fi, err := os.Stat(w.log); err == nil && fi.Size() > 0 {
					w.killAt = time.Now().Add(w.killIn)
				}
			}
			if !w.killAt.IsZero() && time.Now().After(w.killAt) {
				w.p.Kill()
			}
			select {
			case <-w.p.Done():
			default:
				still = append(still, w)
				continue
			}
			if err := w.p.Wait(time.Minute); err != nil { // exited: returns at once
				require.Contains(t, err.Error(), "killed", w.p.Output())
				kills++
				if w.point {
					pointKills++
				}
			} else {
				survived++
			}
			// Replace a writer armed to die until enough have died (a
			// writer whose crash point was never reached survives).
			if w.armed && kills < cfg.kills && nextID < 10*cfg.kills+50 {
				nw := start("w", cfg.writerOps, true)
				all = append(all, nw)
				still = append(still, nw)
			}
		}
		writers = still
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, os.WriteFile(stopFile, nil, 0o600))
	for _, w := range readers {
		require.NoError(t, w.p.Wait(time.Minute), w.p.Output())
	}
	elapsed := time.Since(began)

	var history []porcupine.Operation
	pending, completed := 0, 0
	for _, w := range all {
		ops, p := parseLinLog(t, w.log, w.id)
		history = append(history, ops...)
		pending += p
		completed += len(ops) - p
	}
	// The parent reads every key last: the final state is part of the
	// history, so a killed op's effect must be settled consistently.
	for k := range uint64(linKeys) {
		call := monoNow()
		v, ok, err := m.Load(k)
		require.NoError(t, err)
		history = append(history, porcupine.Operation{ClientId: 0, Input: linInput{op: 'G', key: k},
			Call: call, Output: linOutput{v: v.A, ok: ok}, Return: monoNow()})
	}
	require.NoError(t, m.Check())
	if cfg.kills > 0 {
		require.GreaterOrEqual(t, kills, cfg.kills, "%d writers survived their crash points", survived)
		// A crash point lies inside an operation: its C line is logged.
		require.GreaterOrEqual(t, pending, pointKills, "a writer killed at a crash point left no pending operation")
		require.Positive(t, pending, "no operation was left pending by a kill")
	}
	st, err := m.Stats()
	require.NoError(t, err)

	checkStart := time.Now()
	res, info := porcupine.CheckOperationsVerbose(linModel, history, 2*time.Minute)
	t.Logf("seed %d: %d processes, %d ops (%d pending), %d writers killed, %d survived; run %v, check %v: %s; parent repairs %d",
		seed, len(all), completed, pending, kills, survived, elapsed.Round(time.Millisecond), time.Since(checkStart).Round(time.Millisecond), res, st.Repairs)
	if res != porcupine.Ok {
		f, err := os.CreateTemp("", "shmmap-lin-*.html")
		if err == nil {
			_ = porcupine.Visualize(linModel, info, f)
			_ = f.Close()
			t.Logf("visualization: %s", f.Name())
		}
		t.Fatalf("history is %s", res)
	}
}

// envCount returns the count the environment variable name asks for, or def.
func envCount(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, name)
	return n
}

func TestLinearizable(t *testing.T) {
	ops := 1000
	if raceEnabled {
		ops = 400
	}
	ops = envCount(t, "SHMKIT_LIN_OPS", ops)
	linRun{writers: 3, readers: 2, writerOps: ops}.run(t)
}

// TestLinearizableKills: the same with writers SIGKILLed mid-operation
// (SHMKIT_LIN_KILLS of them, default 4).
func TestLinearizableKills(t *testing.T) {
	ops := 400
	if raceEnabled {
		ops = 250
	}
	ops = envCount(t, "SHMKIT_LIN_OPS", ops)
	kills := envCount(t, "SHMKIT_LIN_KILLS", 4)
	linRun{writers: 3, readers: 2, writerOps: ops, kills: kills}.run(t)
}

// TestLinearizabilityCheckerRejects: the model and checker catch what they
// must (so that an Ok above means something): a read of a value that was
// overwritten before the read began, a lost acknowledged Put, a CAS that
// reports success against the wrong value, and a pending Delete that a
// later read contradicts together with an earlier one.
func TestLinearizabilityCheckerRejects(t *testing.T) {
	op := func(in linInput, call int64, out linOutput, ret int64) porcupine.Operation {
		return porcupine.Operation{Input: in, Call: call, Output: out, Return: ret}
	}
	put := func(k, v uint64, c, r int64) porcupine.Operation {
		return op(linInput{op: 'P', key: k, arg: v}, c, linOutput{}, r)
	}
	get := func(k, v uint64, ok bool, c, r int64) porcupine.Operation {
		return op(linInput{op: 'G', key: k}, c, linOutput{v: v, ok: ok}, r)
	}
	pendingDel := op(linInput{op: 'D', key: 1}, 3, linOutput{pending: true}, math.MaxInt64)
	for name, h := range map[string][]porcupine.Operation{
		"stale read": {put(1, 10, 0, 1), put(1, 11, 2, 3), get(1, 10, true, 4, 5)},
		"lost put":   {put(1, 10, 0, 1), get(1, 0, false, 2, 3)},
		"bad cas": {put(1, 10, 0, 1),
			op(linInput{op: 'S', key: 1, arg: 9, new: 12}, 2, linOutput{ok: true}, 3)},
		"pending delete undone": {put(1, 10, 0, 1), pendingDel, get(1, 0, false, 4, 5), get(1, 10, true, 6, 7)},
	} {
		require.Equal(t, porcupine.Illegal, porcupine.CheckOperationsTimeout(linModel, h, 10*time.Second), name)
	}
	// And accepts a pending op either way.
	for _, h := range [][]porcupine.Operation{
		{put(1, 10, 0, 1), pendingDel, get(1, 10, true, 4, 5)},
		{put(1, 10, 0, 1), pendingDel, get(1, 0, false, 4, 5)},
	} {
		require.Equal(t, porcupine.Ok, porcupine.CheckOperationsTimeout(linModel, h, 10*time.Second))
	}
}
