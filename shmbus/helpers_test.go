package shmbus

import (
	"fmt"
	"os"
	"testing"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/segment"
)

func TestMain(m *testing.M) { testproc.Main(m) }

// posixSpec returns a fresh POSIX segment spec, removed at cleanup.
func posixSpec(t testing.TB) string {
	spec := "posix:/" + testproc.UniqueName("bus")
	t.Cleanup(func() { _ = segment.Remove(spec) })
	return spec
}

// soak reports whether long runs were asked for (SHMKIT_SOAK=1).
func soak() bool { return os.Getenv("SHMKIT_SOAK") == "1" }

// msg is a self-checking 64-byte message: Sum covers Seq and Data, so a
// torn or half-written message is detected.
type msg struct {
	Seq  uint64
	Data [6]uint64
	Sum  uint64
}

func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}

func makeMsg(seq uint64) msg {
	m := msg{Seq: seq}
	s := mix(seq + 1)
	for i := range m.Data {
		m.Data[i] = mix(seq*7 + uint64(i) + 3)
		s ^= mix(m.Data[i] + uint64(i))
	}
	m.Sum = s
	return m
}

// check returns the message's sequence number, or an error if it is torn.
func (m *msg) check() (uint64, error) {
	if want := makeMsg(m.Seq); *m != want {
		return 0, fmt.Errorf("torn or corrupt message %+v", *m)
	}
	return m.Seq, nil
}
