package shmring

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/testproc"
	shmsync "github.com/shmkit/shmkit/sync"
	"github.com/stretchr/testify/require"
)

// soak reports whether long runs were asked for (SHMKIT_SOAK=1).
func soak() bool { return os.Getenv("SHMKIT_SOAK") == "1" }

func policyArg(s string) shmsync.WaitPolicy {
	switch s {
	case "spin":
		return shmsync.SpinOnly
	case "park":
		return shmsync.ParkOnly
	}
	return shmsync.SpinThenPark
}

// produce pushes items start..start+count-1 with the given API.
func produce[T element](spec string, start, count uint64, mode, policy string) error {
	r, err := Open[T](spec, WithWaitPolicy(policyArg(policy)))
	if err != nil {
		return err
	}
	defer r.Close()
	ctx := context.Background()
	end := start + count
	switch mode {
	case "push":
		for seq := start; seq < end; seq++ {
			if err := r.Push(ctx, makeItem[T](seq)); err != nil {
				return err
			}
		}
	case "batch":
		buf := make([]T, 37)
		for seq := start; seq < end; {
			n := min(uint64(len(buf)), end-seq)
			for i := range n {
				buf[i] = makeItem[T](seq + i)
			}
			if _, err := r.PushBatch(ctx, buf[:n]); err != nil {
				return err
			}
			seq += n
		}
	case "claim":
		for seq := start; seq < end; {
			s, err := r.ClaimWait(ctx, int(min(end-seq, 100)))
			if err != nil {
				return err
			}
			for i := range s {
				s[i] = makeItem[T](seq + uint64(i))
			}
			if err := r.Publish(len(s)); err != nil {
				return err
			}
			seq += uint64(len(s))
		}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	return nil
}

// consume takes count items and checks each is whole and the next in
// sequence after start.
func consume[T element](spec string, start, count uint64, mode, policy string) error {
	r, err := Open[T](spec, WithWaitPolicy(policyArg(policy)))
	if err != nil {
		return err
	}
	defer r.Close()
	ctx := context.Background()
	next := start
	check := func(v *T) error {
		seq, err := checkItem(v)
		if err != nil {
			return err
		}
		if seq != next {
			return fmt.Errorf("got item %d, want %d", seq, next)
		}
		next++
		return nil
	}
	end := start + count
	switch mode {
	case "pop":
		for next < end {
			v, err := r.Pop(ctx)
			if err != nil {
				return err
			}
			if err := check(&v); err != nil {
				return err
			}
		}
	case "popbatch":
		buf := make([]T, 50)
		for next < end {
			n, err := r.PopBatch(ctx, buf[:min(uint64(len(buf)), end-next)])
			if err != nil {
				return err
			}
			for i := range n {
				if err := check(&buf[i]); err != nil {
					return err
				}
			}
		}
	case "peek":
		for next < end {
			s, err := r.PeekWait(ctx, int(min(end-next, 64)))
			if err != nil {
				return err
			}
			for i := range s {
				if err := check(&s[i]); err != nil {
					return err
				}
			}
			if err := r.Advance(len(s)); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	return nil
}

// byElem dispatches on an element-size name.
func byElem(elem string, f8, f64, f1k func() error) error {
	switch elem {
	case "8":
		return f8()
	case "64":
		return f64()
	case "1k":
		return f1k()
	}
	return fmt.Errorf("unknown element %q", elem)
}

func u64(s string) uint64 {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		panic(err)
	}
	return n
}

// args: spec elem start count mode policy
var producerChild = testproc.Register("ring-produce", func(a []string) error {
	spec, elem, start, count, mode, pol := a[0], a[1], u64(a[2]), u64(a[3]), a[4], a[5]
	return byElem(elem,
		func() error { return produce[item8](spec, start, count, mode, pol) },
		func() error { return produce[item64](spec, start, count, mode, pol) },
		func() error { return produce[item1k](spec, start, count, mode, pol) })
})

var consumerChild = testproc.Register("ring-consume", func(a []string) error {
	spec, elem, start, count, mode, pol := a[0], a[1], u64(a[2]), u64(a[3]), a[4], a[5]
	return byElem(elem,
		func() error { return consume[item8](spec, start, count, mode, pol) },
		func() error { return consume[item64](spec, start, count, mode, pol) },
		func() error { return consume[item1k](spec, start, count, mode, pol) })
})

func createRing(t *testing.T, elem string, capacity int) string {
	spec := posixSpec(t)
	var err error
	switch elem {
	case "8":
		var r *Ring[item8]
		r, err = Create[item8](spec, capacity)
		if err == nil {
			err = r.Close()
		}
	case "64":
		var r *Ring[item64]
		r, err = Create[item64](spec, capacity)
		if err == nil {
			err = r.Close()
		}
	case "1k":
		var r *Ring[item1k]
		r, err = Create[item1k](spec, capacity)
		if err == nil {
			err = r.Close()
		}
	}
	require.NoError(t, err)
	return spec
}

// TestCrossProcess streams sequence-numbered items from a producer process
// to a consumer process through rings of several capacities and element
// sizes, with every API pairing and wait policy; the consumer checks that
// every item arrives whole, in order, exactly once.
func TestCrossProcess(t *testing.T) {
	scale := uint64(1)
	if soak() {
		scale = 100
	}
	cases := []struct {
		elem     string
		capacity int
		count    uint64
		prod     string
		cons     string
		policy   string
	}{
		{"8", 1, 20_000, "push", "pop", "default"},
		{"8", 2, 20_000, "push", "pop", "park"}, // every item a park and a wake
		{"8", 64, 200_000, "push", "pop", "spin"},
		{"8", 4096, 200_000, "batch", "popbatch", "default"},
		{"8", 1024, 200_000, "claim", "peek", "park"},
		{"64", 16, 200_000, "push", "peek", "default"},
		{"64", 1024, 200_000, "claim", "popbatch", "spin"},
		{"1k", 8, 50_000, "batch", "pop", "park"},
		{"1k", 256, 50_000, "claim", "peek", "default"},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%sB-cap%d-%s-%s-%s", c.elem, c.capacity, c.prod, c.cons, c.policy)
		t.Run(name, func(t *testing.T) {
			spec := createRing(t, c.elem, c.capacity)
			n := strconv.FormatUint(c.count*scale, 10)
			cons := consumerChild.Start(t, spec, c.elem, "0", n, c.cons, c.policy)
			prod := producerChild.Start(t, spec, c.elem, "0", n, c.prod, c.policy)
			timeout := 2 * time.Minute * time.Duration(scale)
			if err := prod.Wait(timeout); err != nil {
				t.Fatalf("producer: %v\n%s", err, prod.Output())
			}
			if err := cons.Wait(timeout); err != nil {
				t.Fatalf("consumer: %v\n%s", err, cons.Output())
			}
		})
	}
}

// ---- crash tests ----

// crashConsumer peeks batches of up to 64 items, reports their seqs to the
// parent in one write(2) (atomic for <= PIPE_BUF bytes), then advances. It
// runs until it has seen seq last.
var crashConsumer = testproc.Register("ring-crash-consumer", func(a []string) error {
	spec, last := a[0], u64(a[1])
	r, err := Open[item64](spec)
	if err != nil {
		return err
	}
	defer r.Close()
	out := childPipe()
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	buf := make([]byte, 0, 64*8)
	for {
		s, err := r.PeekWait(context.Background(), 1+rng.IntN(maxCrashBatch))
		if err != nil {
			return err
		}
		buf = buf[:0]
		for i := range s {
			seq, err := checkItem(&s[i])
			if err != nil {
				return err
			}
			buf = binary.LittleEndian.AppendUint64(buf, seq)
		}
		if _, err := out.Write(buf); err != nil {
			return err
		}
		if err := r.Advance(len(s)); err != nil {
			return err
		}
		if binary.LittleEndian.Uint64(buf[len(buf)-8:]) == last {
			return nil
		}
	}
})

const maxCrashBatch = 64

// TestConsumerCrashRestart SIGKILLs the consumer at random moments, 50
// times in a row, restarting it each time, while the parent produces.
// Every item must be delivered at least once, in order; after a restart the
// new consumer may re-deliver only the items its predecessor had peeked and
// not advanced (at most one batch, maxCrashBatch items).
func TestConsumerCrashRestart(t *testing.T) {
	const capacity = 256
	kills, tailItems := 50, uint64(20_000)
	if soak() {
		kills, tailItems = 500, 5_000_000
	}
	spec := posixSpec(t)
	r, err := Create[item64](spec, capacity)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	// The producer runs until limit, which stays unbounded until the last
	// planned kill; then it is set to what was pushed plus tailItems.
	var limit, pushed atomic.Uint64
	limit.Store(math.MaxUint64)
	prodErr := make(chan error, 1)
	// On failure, stop the producer before unmapping the ring under it.
	defer func() {
		cancel()
		<-prodErr
		r.Close()
	}()
	go func() {
		for seq := uint64(0); seq < limit.Load(); seq++ {
			if err := r.Push(ctx, makeItem[item64](seq)); err != nil {
				prodErr <- err
				return
			}
			pushed.Store(seq + 1)
		}
		prodErr <- nil
	}()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	next := uint64(0) // first seq never delivered yet
	redelivered, maxRedelivery, killed := 0, 0, 0
	for life := 0; ; life++ {
		last := uint64(math.MaxUint64) // "run until killed"
		if life == kills {
			limit.Store(pushed.Load() + tailItems)
			last = limit.Load() - 1
		}
		p, pipe := startWithPipe(t, crashConsumer, nil, spec, strconv.FormatUint(last, 10))
		// Kill after a random number of reported items plus a random delay,
		// so the SIGKILL lands anywhere in the peek/report/advance loop.
		killAt := 1 + rng.IntN(1000)
		var b [8]byte
		first, seen, prev := true, 0, uint64(0)
		for {
			if _, err := io.ReadFull(pipe, b[:]); err != nil {
				break // EOF: the child exited or was killed
			}
			seq := binary.LittleEndian.Uint64(b[:])
			if first {
				// A restarted consumer resumes at the shared head: no gap,
				// and it may only repeat its predecessor's last batch.
				require.LessOrEqual(t, seq, next, "life %d skipped items %d..%d", life, next, seq)
				require.LessOrEqual(t, next-seq, uint64(maxCrashBatch), "life %d re-delivered %d items", life, next-seq)
				redelivered += int(next - seq)
				maxRedelivery = max(maxRedelivery, int(next-seq))
				first = false
			} else {
				require.Equal(t, prev+1, seq, "life %d out of order", life)
			}
			prev = seq
			next = max(next, seq+1)
			seen++
			if seen == killAt && life < kills {
				time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
				p.Kill()
				killed++
			}
		}
		err := p.Wait(time.Minute)
		if life < kills {
			require.Error(t, err, "life %d: consumer exited on its own\n%s", life, p.Output())
			continue
		}
		require.NoError(t, err, "final consumer\n%s", p.Output())
		break
	}
	err = <-prodErr
	prodErr <- err // for the deferred cleanup
	require.NoError(t, err)
	require.Equal(t, limit.Load(), next, "every item delivered")
	require.Equal(t, kills, killed)
	t.Logf("%d items, %d kills, %d re-deliveries (max %d after one restart)", next, killed, redelivered, maxRedelivery)
}

// crashProducer produces item64s from the current tail with Claim/Publish;
// a crash point (armed by the parent) kills it inside the claim window. In
// "half" mode it writes each item in two halves with a test crash point in
// between.
var crashProducer = testproc.Register("ring-crash-producer", func(a []string) error {
	spec, count, mode := a[0], u64(a[1]), a[2]
	r, err := Open[item64](spec)
	if err != nil {
		return err
	}
	defer r.Close()
	ctx := context.Background()
	// Claim the role first, then start at what is published.
	if _, err := r.Claim(0); err != nil {
		return err
	}
	st, err := r.Stats()
	if err != nil {
		return err
	}
	seq := st.Tail
	end := seq + count
	for seq < end {
		s, err := r.ClaimWait(ctx, int(min(end-seq, 7)))
		if err != nil {
			return err
		}
		for i := range s {
			v := makeItem[item64](seq + uint64(i))
			if mode == "half" {
				s[i].Seq = v.Seq
				copy(s[i].Data[:3], v.Data[:3])
				if crashpoint.Enabled {
					crashpoint.Hit("test.half-written")
				}
				copy(s[i].Data[3:], v.Data[3:])
				s[i].Sum = v.Sum
			} else {
				s[i] = v
			}
		}
		if err := r.Publish(len(s)); err != nil {
			return err
		}
		seq += uint64(len(s))
	}
	return nil
})

// TestProducerCrashMidClaim SIGKILLs the producer inside the claim window
// (after Claim, mid-item, and just before the tail store), then lets a new
// producer take over the dead one's role. The consumer must see every
// published item whole and in order, and nothing from the killed claims.
func TestProducerCrashMidClaim(t *testing.T) {
	for _, point := range []string{"ring.claimed", "test.half-written", "ring.publishing"} {
		t.Run(point, func(t *testing.T) {
			spec := posixSpec(t)
			r, err := Create[item64](spec, 32)
			require.NoError(t, err)
			defer r.Close()
			ctx := timeoutCtx(t, time.Minute)
			next := uint64(0)
			drain := func() {
				for {
					v, ok := r.TryPop()
					if !ok {
						return
					}
					seq, err := checkItem(&v)
					require.NoError(t, err, "torn item visible")
					require.Equal(t, next, seq)
					next++
				}
			}
			for round := range 10 {
				// Die at a random hit of the crash point, draining as we go so
				// the producer does not simply block on a full ring.
				nth := 1 + rand.IntN(20)
				cmd := crashProducer.Command(t, spec, "1000000", "half")
				cmd.Env = append(cmd.Env, crashpoint.Arm(point, nth))
				p := testproc.StartCmd(t, cmd)
			loop:
				for {
					select {
					case <-p.Done():
						break loop
					default:
						drain()
						time.Sleep(50 * time.Microsecond)
					}
				}
				require.Error(t, p.Wait(time.Second), "round %d: the producer should have died at %s:%d\n%s", round, point, nth, p.Output())
				drain()
				st := statsOf(t, r)
				require.False(t, st.Producer.Alive)
				require.Equal(t, next, st.Tail, "everything published was seen")
			}
			// A clean producer takes over the dead one's role and continues
			// from the published tail.
			end := next + 500
			clean := crashProducer.Start(t, spec, "500", "half")
			for next < end {
				v, err := r.Pop(ctx)
				require.NoError(t, err, clean.Output())
				seq, err := checkItem(&v)
				require.NoError(t, err)
				require.Equal(t, next, seq)
				next++
			}
			require.NoError(t, clean.Wait(time.Minute), clean.Output())
			drain()
		})
	}
}

// holdRole claims a role in a child and parks until killed.
var roleHolder = testproc.Register("ring-role-holder", func(a []string) error {
	r, err := Open[item8](a[0])
	if err != nil {
		return err
	}
	if a[1] == "producer" {
		_, err = r.Claim(0)
	} else {
		_, err = r.Peek(0)
	}
	if err != nil {
		return err
	}
	if _, err := childPipe().Write([]byte{'R'}); err != nil {
		return err
	}
	select {}
})

// TestRoleTakenAcrossProcesses: a second live producer (consumer) is
// refused, naming the holder; after the holder is SIGKILLed the role can
// be taken.
func TestRoleTakenAcrossProcesses(t *testing.T) {
	for _, role := range []string{"producer", "consumer"} {
		t.Run(role, func(t *testing.T) {
			spec := posixSpec(t)
			r, err := Create[item8](spec, 8)
			require.NoError(t, err)
			defer r.Close()
			p, pipe := startWithPipe(t, roleHolder, nil, spec, role)
			waitReady(t, p, pipe)
			try := func() error {
				if role == "producer" {
					return r.Push(context.Background(), item8{1})
				}
				_, err := r.Peek(1)
				return err
			}
			err = try()
			require.ErrorIs(t, err, ErrRoleTaken)
			require.ErrorContains(t, err, fmt.Sprintf("pid %d", p.Pid()))
			st := statsOf(t, r)
			holder := st.Producer
			if role == "consumer" {
				holder = st.Consumer
			}
			require.Equal(t, int32(p.Pid()), holder.PID)
			require.True(t, holder.Alive)

			p.Kill()
			require.NoError(t, try())
			st = statsOf(t, r)
			holder = st.Producer
			if role == "consumer" {
				holder = st.Consumer
			}
			require.Equal(t, int32(os.Getpid()), holder.PID)
		})
	}
}
