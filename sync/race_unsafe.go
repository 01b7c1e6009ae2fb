//go:build race

package sync

import (
	"runtime"
	stdsync "sync"
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
