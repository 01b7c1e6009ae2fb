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
