package shmtest

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Op is what a ledger entry records.
type Op uint8

const (
	// Pushing: the producer is about to hand the item to the structure.
	Pushing Op = 1
	// Pushed: the structure accepted the item (the push returned nil).
	Pushed Op = 2
	// Popped: a consumer received the item.
	Popped Op = 3
)

func (o Op) String() string {
	switch o {
	case Pushing:
		return "pushing"
	case Pushed:
		return "pushed"
	case Popped:
		return "popped"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Item names one item: which producer made it and its sequence number in
// that producer's output. Encode your items so that a consumer can recover
// both (e.g. producer<<48 | seq in a uint64).
type Item struct {
	Producer uint32
	Seq      uint64
}

func (it Item) String() string { return fmt.Sprintf("%d/%d", it.Producer, it.Seq) }

// Entry is one ledger record.
type Entry struct {
	Op Op
	Item
	// Session identifies the Ledger handle that wrote the entry: one per
	// OpenLedger call, so a restarted process is a new session even if it
	// got the same pid.
	Session uint64
	PID     int
}

const (
	recordSize  = 32
	recordMagic = 0xA5
)

// Ledger is an append-only record of what processes did, made to survive
// SIGKILL (see the package doc). Its methods may be called from many
// goroutines and many processes at once: each record is one write(2) on an
// O_APPEND descriptor. Records reach the kernel before the call returns;
// they survive the death of the process, not of the machine (no fsync).
type Ledger struct {
	f       *os.File
	path    string
	session uint64
	pid     int
}

// NewLedger creates an empty ledger in t.TempDir and closes it at cleanup.
// Pass Path() to children, which append to it with OpenLedger.
func NewLedger(t testing.TB) *Ledger {
	t.Helper()
	l, err := OpenLedger(filepath.Join(t.TempDir(), "ledger"))
	if err != nil {
		t.Fatalf("shmtest: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// OpenLedger opens the ledger file at path for appending, creating it if
// needed. Each call starts a new session.
func OpenLedger(path string) (*Ledger, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("shmtest: open ledger: %w", err)
	}
	return &Ledger{f: f, path: path, session: rand.Uint64() | 1, pid: os.Getpid()}, nil
}

// Path returns the ledger's file name.
func (l *Ledger) Path() string { return l.path }

// Session returns the session this handle writes.
func (l *Ledger) Session() uint64 { return l.session }

// Close closes the handle; the file stays.
func (l *Ledger) Close() error { return l.f.Close() }

// Record appends one entry.
func (l *Ledger) Record(op Op, producer uint32, seq uint64) error {
	var rec [recordSize]byte
	rec[0] = recordMagic
	rec[1] = byte(op)
	le := binary.LittleEndian
	le.PutUint32(rec[4:], producer)
	le.PutUint64(rec[8:], seq)
	le.PutUint64(rec[16:], l.session)
	le.PutUint32(rec[24:], uint32(l.pid))
	le.PutUint32(rec[28:], crc32.ChecksumIEEE(rec[:28]))
	// One write of the whole record: with O_APPEND the kernel places it at
	// the end atomically, so concurrent writers never interleave inside a
	// record.
	if _, err := l.f.Write(rec[:]); err != nil {
		return fmt.Errorf("shmtest: ledger %s: %w", l.path, err)
	}
	return nil
}

// Pushing records that producer is about to push item seq.
func (l *Ledger) Pushing(producer uint32, seq uint64) error {
	return l.Record(Pushing, producer, seq)
}

// Pushed records that the push of item seq returned successfully.
func (l *Ledger) Pushed(producer uint32, seq uint64) error {
	return l.Record(Pushed, producer, seq)
}

// Popped records that a consumer received item seq of producer.
func (l *Ledger) Popped(producer uint32, seq uint64) error {
	return l.Record(Popped, producer, seq)
}

// Entries reads every entry written so far, by any process.
func (l *Ledger) Entries() ([]Entry, error) { return ReadLedger(l.path) }

// Check reads the ledger and runs checks on it, returning all their
// failures joined (nil if all pass).
func (l *Ledger) Check(checks ...Check) error {
	entries, err := l.Entries()
	if err != nil {
		return err
	}
	return RunChecks(entries, checks...)
}

// ReadLedger reads a ledger file. A record that is cut short or fails its
// checksum is an error: the ledger's whole point is to be trustworthy.
func ReadLedger(path string) ([]Entry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("shmtest: read ledger: %w", err)
	}
	if len(b)%recordSize != 0 {
		return nil, fmt.Errorf("shmtest: ledger %s: %d bytes is not a whole number of %d-byte records", path, len(b), recordSize)
	}
	le := binary.LittleEndian
	entries := make([]Entry, 0, len(b)/recordSize)
	for off := 0; off < len(b); off += recordSize {
		rec := b[off : off+recordSize]
		if rec[0] != recordMagic || le.Uint32(rec[28:]) != crc32.ChecksumIEEE(rec[:28]) {
			return nil, fmt.Errorf("shmtest: ledger %s: record %d is damaged", path, off/recordSize)
		}
		entries = append(entries, Entry{
			Op:      Op(rec[1]),
			Item:    Item{Producer: le.Uint32(rec[4:]), Seq: le.Uint64(rec[8:])},
			Session: le.Uint64(rec[16:]),
			PID:     int(le.Uint32(rec[24:])),
		})
	}
	return entries, nil
}

// Check inspects a ledger's entries (in file order) and returns an error
// describing every violation it finds.
type Check func(entries []Entry) error

// RunChecks runs checks on entries and joins their failures.
func RunChecks(entries []Entry, checks ...Check) error {
	var errs []error
	for _, c := range checks {
		if err := c(entries); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ExactlyOnce checks that every pushed item was popped exactly once, an
// item only marked pushing (its producer died mid-push) at most once, and
// nothing else was popped.
func ExactlyOnce() Check { return Delivered(0, 0) }

// AtMostLost is ExactlyOnce allowing up to n pushed items never to be
// popped: the items a consumer received but was killed before recording,
// or that a structure may drop by its documented crash semantics.
func AtMostLost(n int) Check { return Delivered(n, 0) }

// Delivered checks delivery against the pushes: no item is popped that was
// never pushed or pushing (a phantom), no item is pushed twice, at most
// maxLost pushed items are never popped, and at most maxDuplicated items
// are popped more than once (a consumer that died after reading and before
// advancing may see its item again). Items only marked pushing may be
// popped once or not at all.
func Delivered(maxLost, maxDuplicated int) Check {
	return func(entries []Entry) error {
		type state struct{ pushing, pushed, popped int }
		items := map[Item]*state{}
		get := func(it Item) *state {
			s := items[it]
			if s == nil {
				s = &state{}
				items[it] = s
			}
			return s
		}
		for _, e := range entries {
			s := get(e.Item)
			switch e.Op {
			case Pushing:
				s.pushing++
			case Pushed:
				s.pushed++
			case Popped:
				s.popped++
			}
		}
		var phantom, twice, lost, dup []Item
		for it, s := range items {
			switch {
			case s.popped > 0 && s.pushed == 0 && s.pushing == 0:
				phantom = append(phantom, it)
			case s.pushed > 1:
				twice = append(twice, it)
			}
			if s.pushed > 0 && s.popped == 0 {
				lost = append(lost, it)
			}
			if s.popped > 1 {
				dup = append(dup, it)
			}
		}
		var errs []string
		if len(phantom) > 0 {
			errs = append(errs, fmt.Sprintf("%d items popped but never pushed: %s", len(phantom), items10(phantom)))
		}
		if len(twice) > 0 {
			errs = append(errs, fmt.Sprintf("%d items pushed twice (a producer reused a sequence number): %s", len(twice), items10(twice)))
		}
		if len(lost) > maxLost {
			errs = append(errs, fmt.Sprintf("%d pushed items never popped (at most %d allowed): %s", len(lost), maxLost, items10(lost)))
		}
		if len(dup) > maxDuplicated {
			errs = append(errs, fmt.Sprintf("%d items popped more than once (at most %d allowed): %s", len(dup), maxDuplicated, items10(dup)))
		}
		if len(errs) == 0 {
			return nil
		}
		return errors.New("shmtest: delivery: " + strings.Join(errs, "; "))
	}
}

// InOrderPerProducer checks that every consumer session popped each
// producer's items in increasing sequence order (FIFO per producer). A
// restarted consumer is a new session, so an item redelivered to it after a
// crash is not counted as out of order.
func InOrderPerProducer() Check {
	return func(entries []Entry) error {
		type key struct {
			session  uint64
			producer uint32
		}
		last := map[key]uint64{}
		seen := map[key]bool{}
		var errs []string
		for i, e := range entries {
			if e.Op != Popped {
				continue
			}
			k := key{e.Session, e.Producer}
			if seen[k] && e.Seq <= last[k] {
				if len(errs) < 10 {
					errs = append(errs, fmt.Sprintf("entry %d: pid %d popped %v after %d/%d", i, e.PID, e.Item, e.Producer, last[k]))
				}
				continue
			}
			seen[k], last[k] = true, e.Seq
		}
		if len(errs) == 0 {
			return nil
		}
		return errors.New("shmtest: order: " + strings.Join(errs, "; "))
	}
}

// items10 formats up to ten items, sorted, for an error message.
func items10(items []Item) string {
	slices.SortFunc(items, func(a, b Item) int {
		return cmp.Or(cmp.Compare(a.Producer, b.Producer), cmp.Compare(a.Seq, b.Seq))
	})
	var b strings.Builder
	for i, it := range items {
		if i == 10 {
			fmt.Fprintf(&b, " ... (%d more)", len(items)-10)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(it.String())
	}
	return b.String()
}
