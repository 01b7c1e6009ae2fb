package shmqueue

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/shmkit/shmkit/sync"
)

// Backend selects the synchronization a queue uses. Values are part of the
// on-segment format.
type Backend uint8

const (
	// BackendFutex is the lock-free ring parking on futex notifiers.
	BackendFutex Backend = 1
	// BackendSysV is the {slots, items, lock} System V semaphore design.
	BackendSysV Backend = 2
)

func (b Backend) String() string {
	switch b {
	case BackendFutex:
		return "futex"
	case BackendSysV:
		return "sysv"
	}
	return fmt.Sprintf("backend(%d)", uint8(b))
}

// backend is what a Queue handle asks of its synchronization backend. The
// errors it returns carry no package prefix: Queue wraps them in the one
// OpError shape. Every method may run concurrently with every other except
// detach.
type backend[T any] interface {
	// push pushes all of vs (block: waiting for room as needed) or as much
	// as fits now (!block: ErrFull if not all of it), and returns how many
	// it pushed.
	push(ctx context.Context, vs []T, block bool) (int, error)
	// pop pops at least one item into out (block), or what is there now
	// (!block: ErrEmpty if nothing); ErrClosed once closed and drained.
	pop(ctx context.Context, out []T, block bool) (int, error)
	// pushOne and popOne are push and pop of one item. They exist so the
	// per-item calls pass the item by value: a one-element slice handed
	// through this interface escapes, an allocation per Push and Pop.
	pushOne(ctx context.Context, v T, block bool) error
	popOne(ctx context.Context, block bool) (T, error)
	// closeWrites closes the queue for writes, for every process.
	closeWrites() error
	// length is a snapshot of the number of items.
	length() int
	// stats is a snapshot of the shared counters (Backend and Cap are
	// filled in by the caller).
	stats() Stats
	// waitSource is the notifier producers signal and a check for "an item
	// can be popped, or the queue is closed" (see Queue.WaitSource).
	waitSource() (*sync.Notifier, func() bool)
	// blocked counts this handle's goroutines now inside a blocking wait
	// for items (consumers) or room (producers): process-local, for tests.
	blocked(consumers bool) int
	// detach releases what the handle holds in the segment (no operation
	// may be in flight).
	detach()
}

// Header parameter words (layout.Header.Params).
const (
	paramBackend = 0 // Backend
	paramMembers = 1 // number of member records (futex; 0 for SysV)
	paramLanes   = 2 // lanes per member record (futex; 0 for SysV)
	paramSemKey  = 3 // SysV key (uint32 of the int32), 0 for IPC_PRIVATE
	paramSemID   = 4 // SysV semaphore set identifier
)

const (
	// DefaultMaxHandles is the default number of member records: handles
	// (Create/Open in some process) that may be attached at once.
	DefaultMaxHandles = 64
	// maxHandles bounds WithMaxHandles and what Open accepts.
	maxHandles = 4096
	// maxCapacity bounds the futex capacity (the slot region stays below
	// 2^46 bytes anyway).
	maxCapacity = 1 << 32
	// maxSysVCapacity bounds the SysV capacity: slots + closeBonus must fit
	// a semaphore (SEMVMX 32767).
	maxSysVCapacity = 1 << 14
)

// waitCounter is the process-local count of a handle's goroutines blocked
// waiting, shared by both backends.
type waitCounter struct {
	n [2]atomic.Int32 // [0] producers, [1] consumers
}

func (w *waitCounter) enter(consumer bool) { w.n[b2i(consumer)].Add(1) }
func (w *waitCounter) leave(consumer bool) { w.n[b2i(consumer)].Add(-1) }
func (w *waitCounter) blocked(consumers bool) int {
	return int(w.n[b2i(consumers)].Load())
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
