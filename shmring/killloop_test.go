package shmring

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/shmtest"
	"github.com/stretchr/testify/require"
)

// Kill loops: a producer process and a consumer process SIGKILLed at
// random moments, one at a time, and restarted, SHMKIT_KILLS times in all
// (default 30; the acceptance runs use 1000), for Ring and ByteRing. Every
// item is recorded in a shmtest ledger (pushing / pushed / popped) and the
// ledger is then checked against what the package doc promises:
//
//   - no item lost that was published (every "pushed" item popped);
//   - nothing popped that was never pushed, no item torn (the consumer
//     checks each item's checksum and exits with an error, which fails
//     the test, on a torn one);
//   - duplicates only from a consumer killed between Peek (Read) and
//     Advance (Release): at most the last batch of each killed consumer;
//   - order: within one consumer's life items arrive in strictly
//     increasing (producer life, seq) order, and a restarted consumer
//     resumes at most one batch back.
//
// Each producer life has its own id and numbers its items from 0, so a
// restarted producer never reuses a number.

// killLoopKills is SHMKIT_KILLS, or def.
func killLoopKills(def int) int {
	if n, err := strconv.Atoi(os.Getenv("SHMKIT_KILLS")); err == nil && n > 0 {
		return n
	}
	return def
}

// maxKillBatch is the largest batch a kill-loop consumer peeks (reads)
// before advancing (releasing).
const maxKillBatch = 16

func killID(producer uint32, seq uint64) uint64 { return uint64(producer)<<32 | seq }

// recordPayload is the byte ring's record for id: the id, then filler
// derived from it (length varying with the id), then a checksum.
func recordPayload(id uint64, buf []byte) []byte {
	n := 16 + int(mix(id)%200)
	buf = buf[:0]
	buf = binary.LittleEndian.AppendUint64(buf, id)
	h := mix(id)
	for i := 8; i < n-8; i++ {
		buf = append(buf, byte(h>>(i%8*8))^byte(i))
	}
	return binary.LittleEndian.AppendUint64(buf, mix(id^uint64(n)))
}

func checkRecord(p []byte, scratch []byte) (uint64, error) {
	if len(p) < 16 {
		return 0, fmt.Errorf("record of %d bytes", len(p))
	}
	id := binary.LittleEndian.Uint64(p)
	if want := recordPayload(id, scratch); string(want) != string(p) {
		return id, fmt.Errorf("record %#x torn: %d bytes, want %d", id, len(p), len(want))
	}
	return id, nil
}

// killProducer: args kind spec ledger producer-id.
var killProducer = testproc.Register("ring-kill-producer", func(a []string) error {
	kind, spec, ledgerPath := a[0], a[1], a[2]
	producer := uint32(u64(a[3]))
	l, err := shmtest.OpenLedger(ledgerPath)
	if err != nil {
		return err
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 7))
	if kind == "bytes" {
		r, err := OpenBytes(spec)
		if err != nil {
			return err
		}
		buf := make([]byte, 0, 256)
		for seq := uint64(0); ; seq++ {
			if err := l.Pushing(producer, seq); err != nil {
				return err
			}
			p := recordPayload(killID(producer, seq), buf)
			if rng.IntN(2) == 0 {
				err = r.Write(ctx, p)
			} else {
				var b []byte
				if b, err = r.ReserveWait(ctx, len(p)); err == nil {
					copy(b, p)
					err = r.Commit(len(p))
				}
			}
			if err != nil {
				return err
			}
			if err := l.Pushed(producer, seq); err != nil {
				return err
			}
		}
	}
	r, err := Open[item64](spec)
	if err != nil {
		return err
	}
	for seq := uint64(0); ; seq++ {
		if err := l.Pushing(producer, seq); err != nil {
			return err
		}
		v := makeItem[item64](killID(producer, seq))
		if rng.IntN(2) == 0 {
			err = r.Push(ctx, v)
		} else {
			var s []item64
			if s, err = r.ClaimWait(ctx, 1); err == nil {
				s[0] = v
				err = r.Publish(1)
			}
		}
		if err != nil {
			return err
		}
		if err := l.Pushed(producer, seq); err != nil {
			return err
		}
	}
})

// killConsumer: args kind spec ledger. Peeks (reads) a random batch,
// records every item, then advances (releases).
var killConsumer = testproc.Register("ring-kill-consumer", func(a []string) error {
	kind, spec, ledgerPath := a[0], a[1], a[2]
	l, err := shmtest.OpenLedger(ledgerPath)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 9))
	return consumeKillLoop(context.Background(), kind, spec, l, rng, false)
})

// consumeKillLoop consumes the ring at spec, recording every item in l,
// until killed or, when drain is set, until the ring is empty.
func consumeKillLoop(ctx context.Context, kind, spec string, l *shmtest.Ledger, rng *rand.Rand, drain bool) error {
	record := func(id uint64) error { return l.Popped(uint32(id>>32), id&(1<<32-1)) }
	if kind == "bytes" {
		r, err := OpenBytes(spec)
		if err != nil {
			return err
		}
		defer r.Close()
		scratch := make([]byte, 0, 256)
		for {
			k := 1 + rng.IntN(maxKillBatch)
			for i := 0; i < k; i++ {
				var p []byte
				if drain {
					p, err = r.Read()
				} else if i == 0 {
					p, err = r.ReadWait(ctx)
				} else {
					p, err = r.Read()
					if errors.Is(err, ErrEmpty) {
						break
					}
				}
				if drain && errors.Is(err, ErrEmpty) {
					return r.Release()
				}
				if err != nil {
					return err
				}
				id, err := checkRecord(p, scratch)
				if err != nil {
					return err
				}
				if err := record(id); err != nil {
					return err
				}
			}
			if err := r.Release(); err != nil {
				return err
			}
		}
	}
	r, err := Open[item64](spec)
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		var s []item64
		if drain {
			s, err = r.Peek(1 + rng.IntN(maxKillBatch))
			if err == nil && len(s) == 0 {
				return nil
			}
		} else {
			s, err = r.PeekWait(ctx, 1+rng.IntN(maxKillBatch))
		}
		if err != nil {
			return err
		}
		for i := range s {
			id, err := checkItem(&s[i])
			if err != nil {
				return err
			}
			if err := record(id); err != nil {
				return err
			}
		}
		if err := r.Advance(len(s)); err != nil {
			return err
		}
	}
}

// killLoopOrder checks the order promises on the ledger's pops, in file
// order: strictly increasing ids within a consumer session, and a new
// session resuming at most maxKillBatch items back. It returns the number
// of re-delivered pops.
func killLoopOrder(entries []shmtest.Entry) (redelivered int, err error) {
	var errs []string
	var session uint64
	var last, highest uint64 // ids; highest over all sessions so far
	started := false
	back := 0
	for i, e := range entries {
		if e.Op != shmtest.Popped {
			continue
		}
		id := killID(e.Producer, e.Seq)
		if e.Session != session {
			session, back = e.Session, 0
		} else if id <= last {
			errs = append(errs, fmt.Sprintf("entry %d: %#x after %#x in one consumer", i, id, last))
		}
		if started && id <= highest {
			back++
			redelivered++
			if back > maxKillBatch {
				errs = append(errs, fmt.Sprintf("entry %d: session %#x re-delivered more than %d items", i, session, maxKillBatch))
			}
		}
		last, started = id, true
		highest = max(highest, id)
		if len(errs) > 10 {
			break
		}
	}
	if len(errs) > 0 {
		return redelivered, errors.New(strings.Join(errs, "; "))
	}
	return redelivered, nil
}

func TestKillLoopRing(t *testing.T)     { killLoop(t, "ring") }
func TestKillLoopByteRing(t *testing.T) { killLoop(t, "bytes") }

func killLoop(t *testing.T, kind string) {
	kills := killLoopKills(30)
	spec := posixSpec(t)
	var stats func() (RingStats, error)
	if kind == "bytes" {
		r, err := CreateBytes(spec, 1024)
		require.NoError(t, err)
		defer r.Close()
		stats = r.Stats
	} else {
		r, err := Create[item64](spec, 64)
		require.NoError(t, err)
		defer r.Close()
		stats = r.Stats
	}
	ledger := shmtest.NewLedger(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	nextProducer := uint32(1)
	startProducer := func() *testproc.Proc {
		p := killProducer.Start(t, kind, spec, ledger.Path(), strconv.FormatUint(uint64(nextProducer), 10))
		nextProducer++
		return p
	}
	startConsumer := func() *testproc.Proc { return killConsumer.Start(t, kind, spec, ledger.Path()) }
	prod, cons := startProducer(), startConsumer()
	// stop SIGKILLs p, which must still be running (a child that exited on
	// its own failed: a torn item, an error), and reports whether the role
	// it held is left to a successor to take over from the dead holder.
	stop := func(p *testproc.Proc, role string) bool {
		select {
		case <-p.Done():
			t.Fatalf("%s exited on its own: %v\n%s", role, p.Wait(time.Second), p.Output())
		default:
		}
		p.Kill()
		_ = p.Wait(time.Minute)
		st, err := stats()
		require.NoError(t, err)
		holder := st.Producer
		if role == "consumer" {
			holder = st.Consumer
		}
		return int(holder.PID) == p.Pid() && !holder.Alive
	}
	began := time.Now()
	var prodKills, consKills, repairs int
	// progressed waits (up to 10 s) until the cursor the victim moves has
	// moved past from, so that the kill lands in the middle of its loop
	// rather than while it starts (which takes far longer under -race).
	progressed := func(role string, from uint64) {
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Microsecond) {
			st, err := stats()
			require.NoError(t, err)
			if (role == "producer" && st.Tail != from) || (role == "consumer" && st.Head != from) {
				return
			}
		}
	}
	st0, err := stats()
	require.NoError(t, err)
	prodFrom, consFrom := st0.Tail, st0.Head
	for range kills {
		victim := "producer"
		if rng.IntN(2) == 0 {
			victim = "consumer"
		}
		// Most kills land in the middle of the victim's loop, one in
		// eight wherever it is (starting up, opening, claiming its role).
		if rng.IntN(8) != 0 {
			if victim == "producer" {
				progressed(victim, prodFrom)
			} else {
				progressed(victim, consFrom)
			}
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		st, err := stats()
		require.NoError(t, err)
		prodFrom, consFrom = st.Tail, st.Head
		if victim == "producer" {
			if stop(prod, "producer") {
				repairs++
			}
			prod, prodKills = startProducer(), prodKills+1
		} else {
			if stop(cons, "consumer") {
				repairs++
			}
			cons, consKills = startConsumer(), consKills+1
		}
	}
	time.Sleep(20 * time.Millisecond)
	if stop(prod, "producer") {
		repairs++
	}
	if stop(cons, "consumer") {
		repairs++
	}
	consKills++
	// Drain what is left here (taking over both dead roles).
	l, err := shmtest.OpenLedger(ledger.Path())
	require.NoError(t, err)
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, consumeKillLoop(ctx, kind, spec, l, rng, true))
	st, err := stats()
	require.NoError(t, err)
	require.Zero(t, st.Len, "drained")
	took := time.Since(began)

	entries, err := ledger.Entries()
	require.NoError(t, err)
	pushed, popped := 0, 0
	for _, e := range entries {
		switch e.Op {
		case shmtest.Pushed:
			pushed++
		case shmtest.Popped:
			popped++
		}
	}
	redelivered, err := killLoopOrder(entries)
	require.NoError(t, err)
	// No published item lost; duplicates only from killed consumers' last
	// batches.
	require.NoError(t, shmtest.RunChecks(entries, shmtest.Delivered(0, consKills*maxKillBatch), shmtest.InOrderPerProducer()))
	t.Logf("%s: %d kills (%d producer, %d consumer, plus the 2 final), %d items pushed, %d pops, 0 lost, %d re-delivered, %d dead-role take-overs, %v",
		kind, prodKills+consKills-1, prodKills, consKills-1, pushed, popped, redelivered, repairs, took.Round(time.Millisecond))
	require.Positive(t, pushed)
}
