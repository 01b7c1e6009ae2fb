package baseline

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// TestAll runs every measurement briefly, so a broken peer is caught by
// go test rather than in a benchmark run.
func TestAll(t *testing.T) {
	for _, tr := range Transports {
		r, err := Throughput(tr, 2000, 8)
		if err != nil {
			t.Fatalf("%s throughput: %v", tr, err)
		}
		t.Log(r)
		if buffered(tr) {
			continue // ping-pong is the same as unbuffered
		}
		r, err = PingPong(tr, 200, 64)
		if err != nil {
			t.Fatalf("%s pingpong: %v", tr, err)
		}
		t.Log(r)
	}
	for _, f := range []func(int) (Result, error){SpinPingPong, FutexPingPong, SpinRingPingPong} {
		r, err := f(100)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(r)
	}
	// The bare ring checks every item's sequence number in the child: a
	// lost, repeated or torn item fails it. 10000 items lap its 4096 slots.
	for _, size := range []int{8, 64, 1024} {
		r, err := SpinRing(10000, size)
		if err != nil {
			t.Fatalf("spin ring, %d-byte items: %v", size, err)
		}
		t.Log(r)
	}
	if _, err := SpinRing(10, 4); err == nil {
		t.Error("SpinRing of 4-byte items: no error (an item carries an 8-byte sequence number)")
	}
}

var _ = func() bool {
	RegisterPeer("test-echo-args", func(args []string) error {
		if len(args) != 2 || args[0] != "a,b" || args[1] != "c" {
			return fmt.Errorf("args %q", args)
		}
		return nil
	})
	return true
}()

func TestMain(m *testing.M) {
	RunPeer()
	os.Exit(m.Run())
}

func TestRegisteredPeer(t *testing.T) {
	p, err := StartPeer("test-echo-args", nil, "a,b", "c")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(time.Minute); err != nil {
		t.Fatal(err)
	}
}

// TestBlocks: the mean counts every block, the best only full ones (a
// faster part block does not count), and with no full block the best is
// the mean.
func TestBlocks(t *testing.T) {
	var b Blocks
	if b.Mean() != 0 || b.Best() != 0 {
		t.Fatalf("empty: mean %v, best %v", b.Mean(), b.Best())
	}
	b.Add(300*ChunkOps, ChunkOps) // 300 ns each
	b.Add(200*ChunkOps, ChunkOps) // 200 ns each: the best
	b.Add(100*500, 500)           // 100 ns each, but not a full block
	if want := time.Duration(300*ChunkOps+200*ChunkOps+100*500) / (2*ChunkOps + 500); b.Mean() != want {
		t.Errorf("mean %v, want %v", b.Mean(), want)
	}
	if b.Best() != 200 {
		t.Errorf("best %v, want 200ns", b.Best())
	}
	var part Blocks
	part.Add(100*500, 500)
	if part.Best() != 100 || part.Mean() != 100 {
		t.Errorf("part block only: mean %v, best %v, want 100ns both", part.Mean(), part.Best())
	}
}
