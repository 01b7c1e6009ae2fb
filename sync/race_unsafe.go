//go:build race

package sync

import (
	"runtime"
	stdsync "sync"
	"sync/atomic"
	"unsafe"
)

// raceShadows maps the address of a primitive in shared memory to a Go-heap
// byte the race detector can see. The detector ignores memory outside the
// Go heap, so without this a happens-before edge created through a shared
// lock would be invisible and Go data guarded by it would be reported.
var raceShadows stdsync.Map // uintptr -> *byte

func raceShadow(p *uint32) unsafe.Pointer {
	key := uintptr(unsafe.Pointer(p))
	v, ok := raceShadows.Load(key)
	if !ok {
		v, _ = raceShadows.LoadOrStore(key, new(byte))
	}
	return unsafe.Pointer(v.(*byte))
}

func raceAcquire(p *uint32) { runtime.RaceAcquire(raceShadow(p)) }
func raceRelease(p *uint32) { runtime.RaceReleaseMerge(raceShadow(p)) }

// dekkerFence orders the caller's earlier atomic store before its next
// atomic load (see Notifier). Under -race, sync/atomic goes through the
// race runtime, whose stores are release-only (a plain MOV on amd64): a
// later load may pass them, which breaks the Dekker handshake between a
// waiter and a notifier and loses a wake (seen: two goroutines parked on
// each other's notifier for ever). An atomic read-modify-write is a full
// barrier on every architecture the runtime supports; on a private word it
// costs no sharing.
func dekkerFence() {
	var w uint32
	atomic.AddUint32(&w, 0)
}
