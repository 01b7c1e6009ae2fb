package faultguard

import "testing"

var sink int

//go:noinline
func plain(i int) int { return i + 1 }

//go:noinline
func flagOnly(i int) int {
	prev := Enable()
	Restore(prev)
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
	defer func(prev bool) {
		_ = Catch(recover(), Region{})
		Restore(prev)
	}(Enable())
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
