package sync_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	shsync "github.com/shmkit/shmkit/sync"
)

func TestFtok(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	k, err := shsync.Ftok(path, 0x5e)
	if err != nil {
		t.Fatal(err)
	}
	want := uint32(st.Ino&0xffff) | uint32(st.Dev&0xff)<<16 | 0x5e<<24
	if uint32(k) != want {
		t.Fatalf("Ftok = %#x, want %#x", uint32(k), want)
	}
	if _, err := shsync.Ftok(filepath.Join(t.TempDir(), "missing"), 1); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Ftok of a missing file: %v", err)
	}
}

func TestSemSetCreateOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := shsync.Ftok(path, 7)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := shsync.OpenSemSet(key); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenSemSet before create: %v", err)
	}
	set, err := shsync.CreateSemSet(key, 3, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Remove() })
	if _, err := shsync.CreateSemSet(key, 3, 0o600); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second create: %v", err)
	}
	if err := set.SetAll([]uint16{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	other, err := shsync.OpenSemSet(key)
	if err != nil {
		t.Fatal(err)
	}
	if other.Len() != 3 || other.ID() != set.ID() || other.Key() != key {
		t.Fatalf("opened Len %d ID %d key %#x", other.Len(), other.ID(), other.Key())
	}
	if vals, err := other.GetAll(); err != nil || vals[0] != 1 || vals[1] != 2 || vals[2] != 3 {
		t.Fatalf("GetAll = %v, %v", vals, err)
	}
	if err := other.SetVal(1, 9); err != nil {
		t.Fatal(err)
	}
	if v, err := set.GetVal(1); v != 9 || err != nil {
		t.Fatalf("GetVal = %d, %v", v, err)
	}
	// Bad arguments are refused before the kernel sees them.
	if err := set.SetVal(3, 1); err == nil {
		t.Error("SetVal out of range accepted")
	}
	if err := set.SetVal(0, 40000); err == nil {
		t.Error("SetVal above SEMVMX accepted")
	}
	if err := set.SetAll([]uint16{1}); err == nil {
		t.Error("SetAll with a short slice accepted")
	}
	if err := set.Op(context.Background(), shsync.SemOp{Num: 5, Delta: 1}); err == nil {
		t.Error("Op on index 5 of 3 accepted")
	}
	// Atomic multi-op: nothing happens unless everything can.
	err = set.Op(context.Background(), shsync.SemOp{Num: 0, Delta: -1, NoWait: true}, shsync.SemOp{Num: 2, Delta: -4, NoWait: true})
	if !errors.Is(err, shsync.ErrWouldBlock) || !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("NoWait op = %v", err)
	}
	if vals, _ := set.GetAll(); vals[0] != 1 || vals[2] != 3 {
		t.Fatalf("partial op applied: %v", vals)
	}
	// The same with a Done-able context goes through semtimedop.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err = set.Op(ctx, shsync.SemOp{Num: 0, Delta: -2, NoWait: true})
	if !errors.Is(err, shsync.ErrWouldBlock) {
		t.Fatalf("NoWait op with ctx = %v", err)
	}
	if err := set.Op(ctx, shsync.SemOp{Num: 0, Delta: -1}, shsync.SemOp{Num: 2, Delta: -3}); err != nil {
		t.Fatal(err)
	}
	if vals, _ := set.GetAll(); vals[0] != 0 || vals[2] != 0 {
		t.Fatalf("after op: %v", vals)
	}
	// Wait-for-zero.
	if err := set.Op(ctx, shsync.SemOp{Num: 2, Delta: 0}); err != nil {
		t.Fatal(err)
	}
}

func TestSemSetCancel(t *testing.T) {
	set := newSemSet(t, 1)
	for _, c := range cancelCases(50 * time.Millisecond) {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := c.mk()
			defer cancel()
			start := time.Now()
			if err := set.Op(ctx, shsync.SemOp{Delta: -1, Undo: true}); !errors.Is(err, c.want) {
				t.Fatalf("Op = %v, want %v", err, c.want)
			}
			if d := time.Since(start); d < 40*time.Millisecond || d > 2*time.Second {
				t.Fatalf("returned after %v", d)
			}
			if n, err := set.Waiting(0); n != 0 || err != nil {
				t.Fatalf("Waiting = %d, %v after cancellation", n, err)
			}
			if v, _ := set.GetVal(0); v != 0 {
				t.Fatalf("value %d after a cancelled P", v)
			}
		})
	}
}

func TestSemSetRemovedWhileBlocked(t *testing.T) {
	set, err := shsync.CreateSemSet(0, 1, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	removed := false
	t.Cleanup(func() {
		if !removed {
			_ = set.Remove()
		}
	})
	blocked := make(chan error, 2)
	go func() { blocked <- set.Op(context.Background(), shsync.SemOp{Delta: -1}) }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { blocked <- set.Op(ctx, shsync.SemOp{Delta: -1}) }()
	for {
		n, err := set.Waiting(0)
		if err != nil {
			t.Fatal(err)
		}
		if n == 2 {
			break
		}
		time.Sleep(time.Millisecond) // polling the kernel's count, not synchronizing
	}
	if err := set.Remove(); err != nil {
		t.Fatal(err)
	}
	removed = true
	for range 2 {
		if err := <-blocked; !errors.Is(err, shsync.ErrRemoved) {
			t.Fatalf("blocked Op after Remove = %v, want ErrRemoved", err)
		}
	}
	if err := set.Op(context.Background(), shsync.SemOp{Delta: 1}); !errors.Is(err, shsync.ErrRemoved) {
		t.Fatalf("Op on a removed set = %v", err)
	}
	if _, err := set.GetVal(0); !errors.Is(err, shsync.ErrRemoved) {
		t.Fatalf("GetVal on a removed set = %v", err)
	}
	if _, err := shsync.OpenSemSetID(set.ID()); !errors.Is(err, shsync.ErrRemoved) {
		t.Fatalf("OpenSemSetID on a removed set = %v", err)
	}
}

// A child killed while holding a SEM_UNDO lock: the kernel undoes its P.
func TestSemSetUndoOnDeath(t *testing.T) {
	spec, s := newShared(t)
	set := newSemSet(t, 1)
	if err := set.SetVal(0, 1); err != nil {
		t.Fatal(err)
	}
	p := semsetHoldChild.Start(t, spec, strconv.Itoa(set.ID()))
	awaitFlag(t, p, &s.Note, &s.Flag, 1)
	if v, _ := set.GetVal(0); v != 0 {
		t.Fatalf("value %d while the child holds the lock", v)
	}
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		got <- set.Op(ctx, shsync.SemOp{Delta: -1, Undo: true})
	}()
	p.Kill()
	if err := <-got; err != nil {
		t.Fatalf("P after the holder's death = %v", err)
	}
	if err := set.Op(context.Background(), shsync.SemOp{Delta: 1, Undo: true}); err != nil {
		t.Fatal(err)
	}
	if v, _ := set.GetVal(0); v != 1 {
		t.Fatalf("final value %d", v)
	}
}
