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
	for _, f := range []func(int) (Result, error){SpinPingPong, FutexPingPong} {
		r, err := f(100)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(r)
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
