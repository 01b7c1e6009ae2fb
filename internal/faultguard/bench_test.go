package faultguard

import "testing"

var sink int

//go:noinline
func plain(i int) int { return i + 1 }

//go:noinline
func flagOnly(i int) int {
	Restore(enable())
	return i + 1
}

//go:noinline
func deferRecover(i int) (n int) {
	defer func() {
		_ = Catch(recover(), Region{})
	}()
	return i + 1
}

//go:noinline
func full(i int) (n int) {
	defer func(a Armed) {
		_ = Catch(recover(), Region{})
		Restore(a)
	}(enable())
	return i + 1
}

func BenchmarkPlain(b *testing.B) {
	for i := range b.N {
		sink += plain(i)
	}
}
func BenchmarkFlag(b *testing.B) {
	for i := range b.N {
		sink += flagOnly(i)
	}
}
func BenchmarkDeferRecover(b *testing.B) {
	for i := range b.N {
		sink += deferRecover(i)
	}
}
func BenchmarkFull(b *testing.B) {
	for i := range b.N {
		sink += full(i)
	}
}

var unarmedLatch = Latch{cannotFault: true}

//go:noinline
func unarmed(i int) (n int) {
	defer unarmedLatch.Guard(nil, "bench", unarmedLatch.Enable())
	return i + 1
}

// BenchmarkUnarmed is a call guarded by the latch of a segment that cannot
// shrink: what the guard costs on a sealed memfd.
func BenchmarkUnarmed(b *testing.B) {
	for i := range b.N {
		sink += unarmed(i)
	}
}
