package shmring

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/segment"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { testproc.Main(m) }

// posixSpec returns a fresh POSIX segment spec, removed at cleanup.
func posixSpec(t testing.TB) string {
	spec := "posix:/" + testproc.UniqueName("ring")
	t.Cleanup(func() { _ = segment.Remove(spec) })
	return spec
}

// Test element types: sequence-numbered, with a checksum over every other
// field so a torn or half-written item is detected.
type item8 struct{ Seq uint64 }

type item64 struct {
	Seq  uint64
	Data [6]uint64
	Sum  uint64
}

type item1k struct {
	Seq  uint64
	Data [126]uint64
	Sum  uint64
}

// element is what the generic test helpers need from an item type.
type element interface {
	item8 | item64 | item1k
}

func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}

// makeItem builds the item for seq.
func makeItem[T element](seq uint64) T {
	var v T
	switch p := any(&v).(type) {
	case *item8:
		p.Seq = seq
	case *item64:
		fill(p.Data[:], seq, &p.Seq, &p.Sum)
	case *item1k:
		fill(p.Data[:], seq, &p.Seq, &p.Sum)
	}
	return v
}

func fill(data []uint64, seq uint64, s, sum *uint64) {
	*s = seq
	h := mix(seq)
	for i := range data {
		data[i] = seq*1000003 + uint64(i)
		h = mix(h ^ data[i])
	}
	*sum = h
}

// checkItem returns the item's seq, or an error if it is torn.
func checkItem[T element](v *T) (uint64, error) {
	switch p := any(v).(type) {
	case *item8:
		return p.Seq, nil
	case *item64:
		return p.Seq, verify(p.Data[:], p.Seq, p.Sum)
	case *item1k:
		return p.Seq, verify(p.Data[:], p.Seq, p.Sum)
	}
	return 0, fmt.Errorf("unknown item type %T", v)
}

func verify(data []uint64, seq, sum uint64) error {
	h := mix(seq)
	for i := range data {
		if data[i] != seq*1000003+uint64(i) {
			return fmt.Errorf("item %d: word %d is %#x", seq, i, data[i])
		}
		h = mix(h ^ data[i])
	}
	if h != sum {
		return fmt.Errorf("item %d: checksum %#x, computed %#x", seq, sum, h)
	}
	return nil
}

// startWithPipe starts child c with a pipe on its fd 3 and returns the
// read end. The child writes readiness or results there; the pipe hits EOF
// when the child exits.
func startWithPipe(t testing.TB, c testproc.Child, env []string, args ...string) (*testproc.Proc, *os.File) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := c.Command(t, args...)
	cmd.ExtraFiles = []*os.File{pw}
	cmd.Env = append(cmd.Env, env...)
	p := testproc.StartCmd(t, cmd)
	pw.Close()
	t.Cleanup(func() { pr.Close() })
	return p, pr
}

// childPipe is fd 3 in a child started by startWithPipe.
func childPipe() *os.File { return os.NewFile(3, "parent-pipe") }

// waitReady reads the child's one-byte readiness token from r.
func waitReady(t testing.TB, p *testproc.Proc, r io.Reader) {
	t.Helper()
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		t.Fatalf("child did not get ready: %v\n%s", err, p.Output())
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

func timeoutCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// statsOf returns the ring's stats, failing the test on an error.
func statsOf(t testing.TB, r interface {
	Stats() (RingStats, error)
}) RingStats {
	t.Helper()
	st, err := r.Stats()
	require.NoError(t, err)
	return st
}
