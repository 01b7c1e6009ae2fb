package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/shmring"
)

// errCheck reports that items failed verification in a stage.
var errCheck = errors.New("verification failed")

// stage is what a stage process knows: its place in the pipeline, the specs
// of the segments it opens, and the shared control block.
type stage struct {
	cfg     config
	index   int // 0 = source, 1..cfg.stages = transforms, cfg.stages+1 = sink
	in, out string
	ctl     *control
	me      *stageCounters
	// corruptSeq, when non-negative, makes a transform damage that item's
	// checksum on the way through: the tests use it to show that the sink
	// notices and the exit status says so.
	corruptSeq int64
}

// receiver checks the stream arriving at one stage: items in sequence, each
// checksum right, and at the end a marker whose count and xor match what
// arrived.
type receiver struct {
	next       uint32 // Seq expected next
	count      uint32 // items received
	xor        uint32 // xor of the Sums received
	outOfOrder uint64
	badSum     uint64
}

// take checks one item (not the end marker) and reports whether it is good.
func (r *receiver) take(h *Header, p []uint64) bool {
	ok := true
	if h.Seq != r.next {
		r.outOfOrder++
		ok = false
	}
	if checksum(h, p) != h.Sum {
		r.badSum++
		ok = false
	}
	r.next = h.Seq + 1
	r.count++
	r.xor ^= h.Sum
	return ok
}

// end checks the end marker against what arrived and the item count asked for.
func (r *receiver) end(h *Header, want uint32) error {
	if h.Seq != r.count || h.Sum != r.xor || r.count != want {
		return fmt.Errorf("%w: end marker says %d items (xor %#x), received %d (xor %#x), expected %d",
			errCheck, h.Seq, h.Sum, r.count, r.xor, want)
	}
	if r.outOfOrder != 0 || r.badSum != 0 {
		return fmt.Errorf("%w: %d items out of order, %d with a bad checksum", errCheck, r.outOfOrder, r.badSum)
	}
	return nil
}

// words returns the number of payload words of T.
func words[T any, P item[T]]() int {
	var zero T
	_, p := P(&zero).parts()
	return len(p)
}

// runSource writes items 0..n-1 and the end marker straight into the output
// ring's slots: Claim hands out shared memory, the source fills it in place,
// Publish makes a whole batch visible with one atomic store.
func runSource[T any, P item[T]](ctx context.Context, st *stage) error {
	out, err := shmring.Open[T](st.out)
	if err != nil {
		return err
	}
	defer out.Close()
	st.me.State.Store(stateAttached)

	n := uint32(st.cfg.n)
	var seq, xor uint32
	pace := newPacer(st.cfg.rate)
	for seq < n {
		// A ring operation that can proceed never looks at its context, so
		// a stage that is never blocked checks for cancellation itself.
		if err := ctx.Err(); err != nil {
			return err
		}
		want := min(st.cfg.batch, int(n-seq))
		if pace != nil {
			want = min(want, pace.due(ctx, uint64(seq)))
		}
		slots, err := out.ClaimWait(ctx, want)
		if err != nil {
			return err
		}
		now := monoNow()
		if seq == 0 {
			st.ctl.FirstStamp = now
		}
		for i := range slots {
			h, p := P(&slots[i]).parts()
			h.Seq, h.Stamp = seq, now
			for j := range p {
				p[j] = payloadWord(seq, j)
			}
			h.Sum = checksum(h, p)
			xor ^= h.Sum
			seq++
		}
		if err := out.Publish(len(slots)); err != nil {
			return err
		}
		st.me.Items.Add(uint64(len(slots)))
	}
	slots, err := out.ClaimWait(ctx, 1)
	if err != nil {
		return err
	}
	h, _ := P(&slots[0]).parts()
	*h = Header{Seq: n, Sum: xor, Stamp: endMarker}
	return out.Publish(1)
}

// pacer holds the source to -rate items per second.
type pacer struct {
	rate  float64
	start time.Time
}

func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return nil
	}
	return &pacer{rate: rate, start: time.Now()}
}

// due waits until item sent+1 is due and returns how many items are due now
// (at least 1, or 1 if ctx is done: the caller checks ctx).
func (p *pacer) due(ctx context.Context, sent uint64) int {
	for ctx.Err() == nil {
		elapsed := time.Since(p.start)
		if n := int64(elapsed.Seconds()*p.rate) - int64(sent); n > 0 {
			return int(n)
		}
		next := time.Duration(float64(sent+1) / p.rate * 1e9)
		if wait := next - elapsed; wait > 100*time.Microsecond {
			time.Sleep(wait)
		} else {
			runtime.Gosched()
		}
	}
	return 1
}

// runTransform moves items from its input ring to its output ring, checking
// each and xoring its stage key into the payload. Items are read in place
// (Peek) and written in place (Claim): the only copy is the one from the
// input slot to the output slot. The output batch is published before the
// input batch is released, so a transform killed in between makes its
// successor see those items again rather than never.
func runTransform[T any, P item[T]](ctx context.Context, st *stage) error {
	in, err := shmring.Open[T](st.in)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := shmring.Open[T](st.out)
	if err != nil {
		return err
	}
	defer out.Close()
	st.me.State.Store(stateAttached)

	keys := make([]uint64, words[T, P]())
	for j := range keys {
		keys[j] = stageKey(st.index, j)
	}
	var rx receiver
	var sent, sentXor uint32
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		src, err := in.PeekWait(ctx, st.cfg.batch)
		if err != nil {
			return err
		}
		dst, err := out.ClaimWait(ctx, len(src))
		if err != nil {
			return err
		}
		k := len(dst)
		for i := range k {
			sh, sp := P(&src[i]).parts()
			if sh.Stamp == endMarker {
				checkErr := rx.end(sh, uint32(st.cfg.n))
				dh, _ := P(&dst[i]).parts()
				*dh = Header{Seq: sent, Sum: sentXor, Stamp: endMarker}
				if err := out.Publish(i + 1); err != nil {
					return err
				}
				if err := in.Advance(i + 1); err != nil {
					return err
				}
				st.me.Items.Add(uint64(i))
				return checkErr
			}
			if !rx.take(sh, sp) {
				st.me.Bad.Add(1)
			}
			dst[i] = src[i]
			dh, dp := P(&dst[i]).parts()
			for j := range dp {
				dp[j] ^= keys[j]
			}
			dh.Sum = checksum(dh, dp)
			if int64(dh.Seq) == st.corruptSeq {
				dh.Sum ^= 1
			}
			sentXor ^= dh.Sum
			sent++
		}
		if err := out.Publish(k); err != nil {
			return err
		}
		if err := in.Advance(k); err != nil {
			return err
		}
		st.me.Items.Add(uint64(k))
	}
}

// runSink checks every item in place (Peek), records its latency, and
// releases the batch (Advance). Results go to the control block for the
// parent's summary.
func runSink[T any, P item[T]](ctx context.Context, st *stage) (err error) {
	in, err := shmring.Open[T](st.in)
	if err != nil {
		return err
	}
	defer in.Close()
	st.me.State.Store(stateAttached)

	// The payload must be the source's words with every transform's key
	// xored in exactly once.
	allKeys := make([]uint64, words[T, P]())
	for k := 1; k <= st.cfg.stages; k++ {
		for j := range allKeys {
			allKeys[j] ^= stageKey(k, j)
		}
	}
	var (
		rx         receiver
		badPayload uint64
		hist       [histBuckets]uint64
	)
	defer func() {
		c := st.ctl
		c.Received = uint64(rx.count)
		c.OutOfOrder = rx.outOfOrder
		c.BadSum = rx.badSum
		c.BadPayload = badPayload
		c.Hist = hist
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		src, err := in.PeekWait(ctx, st.cfg.batch)
		if err != nil {
			return err
		}
		now := monoNow()
		for i := range src {
			h, p := P(&src[i]).parts()
			if h.Stamp == endMarker {
				checkErr := rx.end(h, uint32(st.cfg.n))
				if checkErr == nil && badPayload != 0 {
					checkErr = fmt.Errorf("%w: %d items with a wrong payload", errCheck, badPayload)
				}
				if checkErr == nil {
					st.ctl.EndOK = 1
				}
				st.ctl.LastSeen = now
				st.me.Items.Add(uint64(i))
				return errors.Join(checkErr, in.Advance(i+1))
			}
			good := rx.take(h, p)
			for j, w := range p {
				if w != payloadWord(h.Seq, j)^allKeys[j] {
					badPayload++
					good = false
					break
				}
			}
			if !good {
				st.me.Bad.Add(1)
			}
			hist[histBucket(uint64(max(now-h.Stamp, 0)))]++
		}
		if err := in.Advance(len(src)); err != nil {
			return err
		}
		st.me.Items.Add(uint64(len(src)))
	}
}

// runStage opens the control block and runs the stage's loop for the element
// type chosen by -elem.
func runStage(ctx context.Context, st *stage, ctlSpec string) error {
	v, err := layout.OpenValue[control](ctlSpec)
	if err != nil {
		return fmt.Errorf("open control block: %w", err)
	}
	defer v.Close()
	st.ctl = v.Ptr()
	st.me = &st.ctl.Stage[st.index]
	if err := initClock(); err != nil {
		return err
	}
	err = dispatch(ctx, st)
	if err != nil {
		st.me.State.Store(stateFailed)
	} else {
		st.me.State.Store(stateDone)
	}
	return err
}

func dispatch(ctx context.Context, st *stage) error {
	switch st.cfg.elem {
	case 16:
		return runRole[Item16](ctx, st)
	case 64:
		return runRole[Item64](ctx, st)
	case 256:
		return runRole[Item256](ctx, st)
	case 1024:
		return runRole[Item1024](ctx, st)
	}
	return fmt.Errorf("unsupported -elem %d", st.cfg.elem)
}

func runRole[T any, P item[T]](ctx context.Context, st *stage) error {
	switch {
	case st.index == 0:
		return runSource[T, P](ctx, st)
	case st.index <= st.cfg.stages:
		return runTransform[T, P](ctx, st)
	default:
		return runSink[T, P](ctx, st)
	}
}
