package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/shmkit/shmkit/layout"
	"github.com/stretchr/testify/require"
)

// FuzzTypeLayout: a stored layout string comes from shared memory; the
// parser must reject garbage without panicking or running away.
func FuzzTypeLayout(f *testing.F) {
	for _, s := range []string{
		"amd64/le struct{A uint32@0; Mu " + mutexLayout + "@8}#40/8",
		"amd64/le [3]" + mutexLayout,
		"amd64/le uint64",
		"amd64/le struct{}#0/1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := layout.ParseLayout(s)
		if err != nil {
			return
		}
		for _, loc := range n.Type.Find(mutexLayout, 16) {
			if loc.Path == "" {
				t.Fatalf("empty path in %q", s)
			}
		}
	})
}

// FuzzInspect: whatever bytes an object holds, inspecting it reports a
// status and never panics.
func FuzzInspect(f *testing.F) {
	seed := make([]byte, 4096)
	copy(seed, layout.Magic[:])
	f.Add(seed)
	f.Add(seed[:100])
	f.Add([]byte{})
	dir := f.TempDir()
	v, err := layout.CreateValue[Guarded]("file:" + filepath.Join(dir, "valid"))
	if err != nil {
		f.Fatal(err)
	}
	valid := slices.Clone(v.Segment().Raw().Bytes())
	_ = v.Close()
	f.Add(valid)
	statuses := []string{"ok", "idle", "stale", "initializing", "corrupt", "foreign", "error"}
	path := filepath.Join(dir, "seg") // one per worker process: workers run inputs one at a time
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		tg, err := resolve(path, &procScan{})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan *Report, 1)
		go func() { done <- inspect(tg, &procScan{}) }()
		var r *Report
		select {
		case r = <-done:
		case <-time.After(10 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("inspect hangs:\n%s", buf[:runtime.Stack(buf, true)])
		}
		if !slices.Contains(statuses, r.Status) {
			t.Fatalf("status %q", r.Status)
		}
		if r.Status == "error" && len(b) > 0 {
			t.Fatalf("a readable file must not be an error: %s", r.Error)
		}
	})
}

// TestInspectMutatedSegments is FuzzInspect's property over a fixed set of
// random mutations of a valid value segment (with mutexes), run by every
// go test: a few bytes scribbled anywhere (header, type descriptions,
// the value and its mutex words) or the object truncated.
func TestInspectMutatedSegments(t *testing.T) {
	dir := t.TempDir()
	v, err := layout.CreateValue[Guarded]("file:" + filepath.Join(dir, "valid"))
	require.NoError(t, err)
	valid := slices.Clone(v.Segment().Raw().Bytes())
	require.NoError(t, v.Close())
	path := filepath.Join(dir, "seg")
	tg, err := resolve(path, &procScan{})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(5, 6))
	seen := map[string]int{}
	for range 500 {
		b := slices.Clone(valid)
		for range 1 + rng.IntN(4) {
			b[rng.IntN(len(b))] = byte(rng.UintN(256))
		}
		if rng.IntN(10) == 0 {
			b = b[:rng.IntN(len(b))]
		}
		require.NoError(t, os.WriteFile(path, b, 0o600))
		r := inspect(tg, &procScan{})
		require.Contains(t, []string{"ok", "idle", "stale", "initializing", "corrupt", "foreign"}, r.Status, r.Error)
		seen[r.Status]++
	}
	require.Positive(t, seen["corrupt"])
	require.Positive(t, seen["ok"], "scribbles inside the value itself are not corruption")
}
