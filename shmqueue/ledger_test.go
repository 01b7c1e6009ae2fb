package shmqueue

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/shmkit/shmkit/internal/mem"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/segment"
)

// ledger is an append-only log in its own shared segment, where children
// record what they pushed and popped right after each call returns. A
// SIGKILL cannot lose a record that was written (the memory is shared);
// it can only stop a child between an operation and its record, which is
// exactly the in-flight item the crash semantics allow to go unrecorded.
//
// Layout, in 8-byte words: [0] next entry index, [1] stop flag, [2..17]
// per-slot progress counters, then entries of two words {item, tag}. The
// tag is written last and carries tagValid, so an entry whose writer died
// between taking the index and finishing is skipped.
type ledger struct {
	seg      *segment.Segment
	words    []atomic.Uint64
	next     *atomic.Uint64
	stop     *atomic.Uint64
	progress []atomic.Uint64
	ents     []atomic.Uint64
}

const (
	ledgerHeader = 32
	tagValid     = uint64(1) << 63
	kindPush     = uint64(1)
	kindPop      = uint64(2)
	kindClosed   = uint64(3) // a consumer saw ErrClosed
)

// item encoding: incarnation in the high bits, sequence number in the low 40.
func mkItem(inc, seq uint64) uint64 { return inc<<40 | seq }
func itemInc(v uint64) uint64       { return v >> 40 }
func itemSeq(v uint64) uint64       { return v & (1<<40 - 1) }

func createLedger(t testing.TB, entries int) (string, *ledger) {
	t.Helper()
	spec := "posix:/" + testproc.UniqueName("ledger")
	size := (ledgerHeader + 2*entries) * 8
	seg, err := segment.Create(spec, size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = seg.Close()
		_ = segment.Remove(spec)
	})
	l, err := ledgerOf(seg)
	if err != nil {
		t.Fatal(err)
	}
	return spec, l
}

func openLedger(spec string) (*ledger, error) {
	seg, err := segment.Open(spec)
	if err != nil {
		return nil, err
	}
	return ledgerOf(seg)
}

func ledgerOf(seg *segment.Segment) (*ledger, error) {
	b := seg.Bytes()
	words, err := mem.Slice[atomic.Uint64](b, len(b)/8)
	if err != nil {
		return nil, err
	}
	return &ledger{
		seg:      seg,
		words:    words,
		next:     &words[0],
		stop:     &words[1],
		progress: words[2:18],
		ents:     words[ledgerHeader:],
	}, nil
}

func (l *ledger) cap() int { return len(l.ents) / 2 }

func (l *ledger) record(kind, who, item uint64) error {
	i := l.next.Add(1) - 1
	if i >= uint64(l.cap()) {
		return fmt.Errorf("ledger full (%d entries)", l.cap())
	}
	l.ents[2*i].Store(item)
	l.ents[2*i+1].Store(tagValid | kind<<56 | who)
	return nil
}

type entry struct {
	kind, who, item uint64
}

// entries returns the complete entries in log order.
func (l *ledger) entries() []entry {
	n := min(l.next.Load(), uint64(l.cap()))
	out := make([]entry, 0, n)
	for i := uint64(0); i < n; i++ {
		tag := l.ents[2*i+1].Load()
		if tag&tagValid == 0 {
			continue
		}
		out = append(out, entry{kind: tag >> 56 & 0x7f, who: tag & (1<<56 - 1), item: l.ents[2*i].Load()})
	}
	return out
}
