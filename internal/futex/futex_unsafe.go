package futex

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func errnoErr(e unix.Errno) error {
	switch e {
	case 0:
		return nil
	case unix.EAGAIN:
		return ErrAgain
	case unix.EINTR:
		return ErrInterrupted
	case unix.ETIMEDOUT:
		return ErrTimeout
	}
	return e
}

// Wait blocks while *addr == val, until a FUTEX_WAKE on addr, a signal, or
// timeout (timeout <= 0 means no timeout). It returns nil when woken, or
// ErrAgain (value differed), ErrInterrupted, ErrTimeout, or another errno
// (EFAULT, EINVAL) for a bad address. Any return may be spurious: callers
// re-check their condition. addr must be 4-byte aligned and may live in a
// shared mapping; the shared futex namespace is used.
func Wait(addr *uint32, val uint32, timeout time.Duration) error {
	var tsp unsafe.Pointer
	var ts unix.Timespec
	if timeout > 0 {
		ts = unix.NsecToTimespec(int64(timeout))
		tsp = unsafe.Pointer(&ts)
	}
	_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWait, uintptr(val), uintptr(tsp), 0, 0)
	return errnoErr(e)
}

// Wake wakes up to n waiters blocked in Wait on addr (n <= 0 wakes all) and
// returns how many were woken.
func Wake(addr *uint32, n int) (int, error) {
	if n <= 0 || n > 1<<30 {
		n = 1 << 30
	}
	r, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWake, uintptr(n), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// waitv is struct futex_waitv.
type waitv struct {
	val      uint64
	uaddr    uint64
	flags    uint32
	reserved uint32
}

// cancelWord is a process-local futex word that a context.AfterFunc sets to
// 1 and wakes, interrupting a futex_waitv that also waits on it. It is heap
// allocated and kept alive across the syscall.
type cancelWord struct {
	word uint32
	vec  [2]waitv
}

var cancelPool = sync.Pool{New: func() any { return new(cancelWord) }}

// waitvUnsupported latches ENOSYS from futex_waitv.
var waitvUnsupported atomic.Bool

// pollSlice bounds each FUTEX_WAIT when futex_waitv is unavailable.
const pollSlice = 20 * time.Millisecond

// WaitContext is Wait with context cancellation: it blocks while
// *addr == val until a FUTEX_WAKE on addr or ctx is done. It returns nil on
// a wake, ErrAgain / ErrInterrupted as Wait does, or ctx.Err() once ctx is
// done (context.DeadlineExceeded when ctx's deadline passed, even if the
// context's own timer has not fired yet).
//
// Implementation: futex_waitv (Linux 5.16+) on two words, the shared addr
// and a process-local cancel word that a context.AfterFunc sets and wakes.
// A ctx deadline is passed to the kernel as an absolute CLOCK_MONOTONIC
// timeout. On older kernels it polls FUTEX_WAIT in 20 ms slices.
func WaitContext(ctx context.Context, addr *uint32, val uint32) error {
	return WaitContextTimeout(ctx, addr, val, 0)
}

// WaitContextTimeout is WaitContext with an additional relative timeout
// (<= 0: none) after which it returns ErrTimeout. Robust mutex waiters use
// it to wake periodically and check whether the holder is still alive.
func WaitContextTimeout(ctx context.Context, addr *uint32, val uint32, timeout time.Duration) error {
	done := ctx.Done()
	if done == nil {
		return Wait(addr, val, timeout)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	until, ctxBound := waitBound(ctx, timeout)
	if until == 0 {
		return context.DeadlineExceeded // only ctx's deadline can be past
	}
	if waitvUnsupported.Load() {
		return pollWait(ctx, addr, val, until, ctxBound)
	}

	cw := cancelPool.Get().(*cancelWord)
	cw.word = 0
	cw.vec[0] = waitv{val: uint64(val), uaddr: uint64(uintptr(unsafe.Pointer(addr))), flags: waitv32}
	cw.vec[1] = waitv{val: 0, uaddr: uint64(uintptr(unsafe.Pointer(&cw.word))), flags: waitv32 | waitvPrivate}
	stop := context.AfterFunc(ctx, func() {
		// Setting the word before waking makes a futex_waitv that has not
		// yet slept fail with EAGAIN instead of missing the wake.
		atomic.StoreUint32(&cw.word, 1)
		unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&cw.word)), opWake|privateFlag, 1<<30, 0, 0, 0)
	})

	var tsp unsafe.Pointer
	var ts unix.Timespec
	if until > 0 {
		ts = monotonicAfter(until)
		tsp = unsafe.Pointer(&ts)
	}
	_, _, e := unix.Syscall6(unix.SYS_FUTEX_WAITV, uintptr(unsafe.Pointer(&cw.vec[0])), 2, 0, uintptr(tsp), uintptr(unix.CLOCK_MONOTONIC), 0)
	runtime.KeepAlive(addr)
	// If the AfterFunc ran or is running it may still touch cw, so cw can
	// go back to the pool only when stop prevented it.
	if stop() {
		cancelPool.Put(cw)
	}
	if e == unix.ENOSYS {
		waitvUnsupported.Store(true)
		return pollWait(ctx, addr, val, until, ctxBound)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if e == unix.ETIMEDOUT && ctxBound {
		return context.DeadlineExceeded
	}
	if e == 0 {
		return nil
	}
	return errnoErr(e)
}

// waitBound is the bound of a wait under ctx with an extra relative timeout
// (<= 0: none): the earlier of the two, as a duration from now (-1: no
// bound; 0: ctx's deadline has passed), and whether it is ctx's deadline
// (which then ends the wait with context.DeadlineExceeded, not ErrTimeout).
func waitBound(ctx context.Context, timeout time.Duration) (until time.Duration, ctxBound bool) {
	until = -1
	if dl, ok := ctx.Deadline(); ok {
		until, ctxBound = max(time.Until(dl), 0), true
	}
	if timeout > 0 && (until < 0 || timeout < until) {
		until, ctxBound = timeout, false
	}
	return until, ctxBound
}

// monotonicAfter is the CLOCK_MONOTONIC time d from now, for futex_waitv's
// absolute timeout. d was measured before the clock is read, so a delay in
// between makes the deadline late, never early.
func monotonicAfter(d time.Duration) unix.Timespec {
	var now unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
	return unix.NsecToTimespec(now.Nano() + int64(d))
}

func pollWait(ctx context.Context, addr *uint32, val uint32, until time.Duration, ctxBound bool) error {
	start := time.Now()
	for {
		slice := pollSlice
		if until > 0 {
			left := until - time.Since(start)
			if left <= 0 {
				if ctxBound {
					return context.DeadlineExceeded
				}
				return ErrTimeout
			}
			slice = min(slice, left)
		}
		err := Wait(addr, val, slice)
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		// A slice that ran out, or that a signal cut short (the Go
		// runtime's preemption signals land here): look again. Anything
		// else is the wait's own answer.
		if err != ErrTimeout && err != ErrInterrupted {
			return err
		}
	}
}

// SetRobustList registers head as the calling thread's robust futex list.
// The registration belongs to the OS thread, so the caller must hold it with
// runtime.LockOSThread for as long as the list is in use, and head must
// never move or be freed.
func SetRobustList(head *RobustListHead) error {
	_, _, e := unix.RawSyscall(unix.SYS_SET_ROBUST_LIST, uintptr(unsafe.Pointer(head)), unsafe.Sizeof(*head), 0)
	if e != 0 {
		return e
	}
	return nil
}

// Gettid returns the calling OS thread's ID.
func Gettid() int32 { return int32(unix.Gettid()) }

// MaxWaitv is the kernel's limit on one futex_waitv vector (FUTEX_WAITV_MAX).
// WaitAny uses one entry for its cancel word, so it takes at most
// MaxWaitv-1 words.
const MaxWaitv = 128

// waitAnyPoll is the sleep between checks of WaitAny's fallback for kernels
// without futex_waitv.
const waitAnyPoll = time.Millisecond

// WaitAny blocks while every *addrs[i] == vals[i], until a FUTEX_WAKE on any
// of them, ctx is done, or timeout (> 0) has passed, with one futex_waitv
// call. It returns the index of a word that was woken (or -1 when unknown)
// and nil, or ErrAgain (some word already differed), ErrInterrupted,
// ErrTimeout, or ctx.Err(). Any return may be spurious. At most MaxWaitv-1
// words. On kernels without futex_waitv (before 5.16) it polls the words
// every millisecond.
func WaitAny(ctx context.Context, addrs []*uint32, vals []uint32, timeout time.Duration) (int, error) {
	n := len(addrs)
	if n == 0 || n != len(vals) || n > MaxWaitv-1 {
		return -1, unix.EINVAL
	}
	if err := ctx.Err(); err != nil {
		return -1, err
	}
	until, ctxBound := waitBound(ctx, timeout)
	if until == 0 {
		return -1, context.DeadlineExceeded // only ctx's deadline can be past
	}
	if waitvUnsupported.Load() {
		return pollAny(ctx, addrs, vals, until, ctxBound)
	}
	vec := make([]waitv, n+1)
	for i, a := range addrs {
		vec[i] = waitv{val: uint64(vals[i]), uaddr: uint64(uintptr(unsafe.Pointer(a))), flags: waitv32}
	}
	cancel := new(uint32)
	vec[n] = waitv{uaddr: uint64(uintptr(unsafe.Pointer(cancel))), flags: waitv32 | waitvPrivate}
	stop := context.AfterFunc(ctx, func() {
		atomic.StoreUint32(cancel, 1)
		unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(cancel)), opWake|privateFlag, 1<<30, 0, 0, 0)
	})
	defer stop()
	var tsp unsafe.Pointer
	var ts unix.Timespec
	if until > 0 {
		ts = monotonicAfter(until)
		tsp = unsafe.Pointer(&ts)
	}
	r, _, e := unix.Syscall6(unix.SYS_FUTEX_WAITV, uintptr(unsafe.Pointer(&vec[0])), uintptr(n+1), 0, uintptr(tsp), uintptr(unix.CLOCK_MONOTONIC), 0)
	runtime.KeepAlive(addrs)
	runtime.KeepAlive(cancel)
	if e == unix.ENOSYS {
		waitvUnsupported.Store(true)
		return pollAny(ctx, addrs, vals, until, ctxBound)
	}
	if err := ctx.Err(); err != nil {
		return -1, err
	}
	if e == unix.ETIMEDOUT {
		if ctxBound {
			return -1, context.DeadlineExceeded
		}
		return -1, ErrTimeout
	}
	if e != 0 {
		return -1, errnoErr(e)
	}
	if int(r) < n {
		return int(r), nil
	}
	return -1, nil
}

// pollAny is WaitAny without futex_waitv, for at most until (< 0: no
// bound; see waitBound).
func pollAny(ctx context.Context, addrs []*uint32, vals []uint32, until time.Duration, ctxBound bool) (int, error) {
	start := time.Now()
	t := time.NewTicker(waitAnyPoll)
	defer t.Stop()
	for {
		for i, a := range addrs {
			if atomic.LoadUint32(a) != vals[i] {
				return i, ErrAgain
			}
		}
		if until >= 0 && time.Since(start) >= until {
			if err := ctx.Err(); err != nil {
				return -1, err
			}
			if ctxBound {
				return -1, context.DeadlineExceeded
			}
			return -1, ErrTimeout
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-t.C:
		}
	}
}
