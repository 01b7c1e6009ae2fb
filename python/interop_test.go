// Package python_test runs the Python package (python/shmkit) against real
// segments made by Go: python3 runs as a separate process and its output
// is checked here. The tests skip only when python3 is missing.
package python_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/shmbus"
	"github.com/shmkit/shmkit/shmmap"
	"github.com/shmkit/shmkit/shmring"
)

func TestMain(m *testing.M) {
	if testproc.IsChild() {
		testproc.Main(m) // runs the child and exits
	}
	code := m.Run()
	// The native library and the fixture binary are built once per test
	// binary, each into a directory of its own: remove them.
	for _, p := range []string{native.lib, fixtureOnce.path} {
		if p != "" {
			_ = os.RemoveAll(filepath.Dir(p))
		}
	}
	os.Exit(code)
}

// Item and Point match python/internal/gofixture's (only the layout counts,
// not the type name).
type Item struct {
	Seq uint64
	Val int32
	Sum float64
}

type Point struct {
	X    int64
	Y    float64
	Name [16]byte
	Tags [3]uint16
	Flag uint8
	Z    complex64
}

func item(i uint64) Item { return Item{Seq: i, Val: int32(i*3) - 7, Sum: float64(i) / 2} }

// python3 returns the interpreter, skipping the test when there is none.
func python3(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: the Python package's tests need it (CI installs it)")
	}
	return p
}

// pyCmd prepares python3 with args, run in python/ so that -m shmkit and
// the tests find the package. It uses the native library built by
// nativeLib when there is one (instead of building into ~/.cache).
func pyCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(python3(t), args...)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
	if lib, _ := nativeLib(t); lib != "" {
		cmd.Env = append(cmd.Env, "SHMKIT_NATIVE="+lib)
	}
	return cmd
}

var native struct {
	once     sync.Once
	lib, why string
}

// nativeLib builds the Python package's native library (python3 -m
// shmkit.build) once per test binary and returns its path, or "" and why
// it could not be built (no C compiler).
func nativeLib(t *testing.T) (string, string) {
	native.once.Do(func() {
		dir, err := os.MkdirTemp("", "shmkit-pynative-")
		if err != nil {
			native.why = err.Error()
			return
		}
		lib := filepath.Join(dir, "libshmkitpy.so")
		cmd := exec.Command(python3(t), "-m", "shmkit.build", "--out", lib)
		cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			native.why = fmt.Sprintf("python3 -m shmkit.build: %v: %s", err, out)
			return
		}
		native.lib = lib
	})
	return native.lib, native.why
}

// needNative skips when the native library cannot be built here; CI has
// gcc, so there it always runs.
func needNative(t *testing.T) {
	t.Helper()
	if lib, why := nativeLib(t); lib == "" {
		if _, err := exec.LookPath("gcc"); err == nil {
			t.Fatalf("gcc is installed but the native library did not build: %s", why)
		}
		t.Skipf("no C compiler for the Python package's native library: %s", why)
	}
}

func spec(t *testing.T, prefix string) string {
	s := "posix:/" + testproc.UniqueName("py"+prefix)
	t.Cleanup(func() { _ = segment.Remove(s) })
	return s
}

// dump runs python3 -m shmkit dump spec and decodes its JSON.
func dump(t *testing.T, s string, into any) {
	t.Helper()
	out, err := pyCmd(t, "-m", "shmkit", "dump", s).CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -m shmkit dump %s: %v\n%s", s, err, out)
	}
	if err := json.Unmarshal(out, into); err != nil {
		t.Fatalf("decoding %s: %v", out, err)
	}
}

var fixtureOnce struct {
	path string
	err  error
	done bool
}

// fixture builds python/internal/gofixture once per test binary.
func fixture(t *testing.T) string {
	t.Helper()
	if !fixtureOnce.done {
		fixtureOnce.done = true
		goBin, err := testproc.GoTool()
		if err != nil {
			goBin = "go" // the build below says what is missing
		}
		dir, err := os.MkdirTemp("", "shmkit-gofixture-")
		if err == nil {
			fixtureOnce.path = filepath.Join(dir, "gofixture")
			out, berr := exec.Command(goBin, "build", "-o", fixtureOnce.path, "./internal/gofixture").CombinedOutput()
			if berr != nil {
				err = fmt.Errorf("go build gofixture: %v\n%s", berr, out)
			}
		}
		fixtureOnce.err = err
	}
	if fixtureOnce.err != nil {
		t.Fatal(fixtureOnce.err)
	}
	return fixtureOnce.path
}

// TestPythonUnittest runs the Python package's own unit tests (python/tests)
// against segments made by the Go fixture program.
// It runs twice: consuming through include/shmkit.h (the default), and
// through the Python ports of the protocols (SHMKIT_PY_PROTOCOL=1).
func TestPythonUnittest(t *testing.T) {
	for _, mode := range []string{"header", "protocol"} {
		t.Run(mode, func(t *testing.T) { pythonUnittest(t, mode == "protocol") })
	}
}

func pythonUnittest(t *testing.T, protocol bool) {
	cmd := pyCmd(t, "-m", "unittest", "discover", "-s", "tests", "-v")
	cmd.Env = append(cmd.Env, "SHMKIT_GOFIXTURE="+fixture(t))
	if protocol {
		cmd.Env = append(cmd.Env, "SHMKIT_PY_PROTOCOL=1")
	}
	out, err := cmd.CombinedOutput()
	t.Logf("python3 -m unittest:\n%s", out)
	if err != nil {
		t.Fatalf("python unit tests failed: %v", err)
	}
	s := string(out)
	if !strings.Contains(s, "\nOK") {
		t.Fatalf("no OK in the unittest output")
	}
	if strings.Contains(s, "no Go toolchain") {
		t.Fatalf("fixture-based Python tests were skipped")
	}
	if _, err := exec.LookPath("gcc"); err == nil && strings.Contains(s, "native library unavailable") {
		t.Fatalf("gcc is installed but the native Python tests were skipped")
	}
}

// TestPythonReadsValue: a Value made and written by Go, read by Python.
func TestPythonReadsValue(t *testing.T) {
	python3(t)
	s := spec(t, "value")
	v, err := layout.CreateValue[Point](s)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	p := v.Ptr()
	p.X, p.Y, p.Tags, p.Flag, p.Z = -42, 3.5, [3]uint16{9, 8, 7}, 1, complex(2, 3)
	copy(p.Name[:], "hello from Go")
	var got struct {
		Kind  string
		Types []struct{ Name, Layout, Struct string }
		Value struct {
			X    int64
			Y    float64
			Name string
			Tags [3]uint16
			Flag uint8
			Z    [2]float32
		}
	}
	dump(t, s, &got)
	if got.Kind != "value" || len(got.Types) != 1 || got.Types[0].Struct != "<qd16s3HB1xff" {
		t.Fatalf("header: %+v", got)
	}
	w := got.Value
	if w.X != -42 || w.Y != 3.5 || w.Name != "hello from Go" || w.Tags != [3]uint16{9, 8, 7} || w.Flag != 1 || w.Z != [2]float32{2, 3} {
		t.Fatalf("python read %+v", w)
	}
}

// TestPythonReadsMap: a sharded Map made by Go, snapshotted by Python.
func TestPythonReadsMap(t *testing.T) {
	python3(t)
	s := spec(t, "map")
	const n = 3000
	m, err := shmmap.Create[uint64, Item](s, n)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	want := map[uint64]Item{}
	for i := range uint64(n) {
		k := i*7919 + 3
		if err := m.Put(k, item(i)); err != nil {
			t.Fatal(err)
		}
		want[k] = item(i)
	}
	for i := uint64(0); i < n; i += 5 {
		k := i*7919 + 3
		m.Delete(k)
		delete(want, k)
	}
	var got struct {
		Len   int
		Items [][2]json.RawMessage
	}
	dump(t, s, &got)
	if got.Len != len(want) || len(got.Items) != len(want) {
		t.Fatalf("python saw %d items (len %d), want %d", len(got.Items), got.Len, len(want))
	}
	for _, kv := range got.Items {
		var k uint64
		var v Item
		if err := json.Unmarshal(kv[0], &k); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(kv[1], &v); err != nil {
			t.Fatal(err)
		}
		if w, ok := want[k]; !ok || w != v {
			t.Fatalf("python saw %d -> %+v, want %+v (present %v)", k, v, w, ok)
		}
	}
}

// TestPythonReadsRing: Python peeks at a Go ring without consuming.
func TestPythonReadsRing(t *testing.T) {
	python3(t)
	s := spec(t, "ring")
	r, err := shmring.Create[Item](s, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := range uint64(10) {
		if !r.TryPush(item(i)) {
			t.Fatal("full")
		}
	}
	for range 3 {
		r.TryPop()
	}
	var got struct {
		First int
		Items []Item
		Stats struct {
			Head, Tail, Len int
			Producer        struct{ Pid int }
		}
	}
	dump(t, s, &got)
	if got.First != 3 || len(got.Items) != 7 || got.Stats.Head != 3 || got.Stats.Tail != 10 || got.Stats.Producer.Pid != os.Getpid() {
		t.Fatalf("python saw %+v", got)
	}
	for i, it := range got.Items {
		if it != item(uint64(i+3)) {
			t.Fatalf("item %d: %+v", i, it)
		}
	}
	// Python consumed nothing.
	if r.Len() != 7 {
		t.Fatalf("ring has %d items after python read it, want 7", r.Len())
	}
}

// publisherChild publishes N items on the bus at spec, then closes it for
// writes: a Go process publishing to a Python subscriber.
var publisherChild = testproc.Register("python-bus-publisher", func(args []string) error {
	s := args[0]
	n, _ := strconv.Atoi(args[1])
	b, err := shmbus.Open[Item](s)
	if err != nil {
		return err
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range uint64(n) {
		if err := b.Publish(ctx, item(i)); err != nil {
			return err
		}
	}
	return b.CloseWrites()
})

// follower starts python3 -m shmkit follow (or consume) on a bus and
// returns a reader of its JSON lines once it said it is ready.
func follower(t *testing.T, args ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := pyCmd(t, append([]string{"-m", "shmkit"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("python stderr:\n%s", stderr.String())
		}
	})
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || !strings.Contains(sc.Text(), `"ready": true`) {
		_, _ = io.Copy(io.Discard, stdout)
		t.Fatalf("python did not get ready: %q", sc.Text())
	}
	return cmd, sc
}

// collect reads Item lines until the {"done": ...} line.
func collect(t *testing.T, sc *bufio.Scanner) (items []Item, lagged uint64, done map[string]uint64) {
	t.Helper()
	for sc.Scan() {
		line := sc.Bytes()
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(line, &probe); err != nil {
			t.Fatalf("bad line %q: %v", line, err)
		}
		if _, ok := probe["done"]; ok {
			_ = json.Unmarshal(line, &done)
			return items, lagged, done
		}
		if l, ok := probe["lagged"]; ok {
			n, _ := strconv.ParseUint(string(l), 10, 64)
			lagged += n
			continue
		}
		var it Item
		if err := json.Unmarshal(line, &it); err != nil {
			t.Fatal(err)
		}
		items = append(items, it)
	}
	t.Fatalf("python output ended without a done line: %v", sc.Err())
	return
}

// TestGoPublisherPythonSubscriber: a Go child process publishes on a Bus,
// Python follows it (pure Python, read-only) and sees every message in
// order, untorn.
func TestGoPublisherPythonSubscriber(t *testing.T) {
	python3(t)
	for _, ov := range []shmbus.Overflow{shmbus.Block, shmbus.Overwrite} {
		t.Run(ov.String(), func(t *testing.T) {
			s := spec(t, "bus")
			const n = 2000
			b, err := shmbus.Create[Item](s, 4096, shmbus.WithOverflow(ov))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			cmd, sc := follower(t, "follow", s, "--timeout", "60")
			pub := publisherChild.Start(t, s, strconv.Itoa(n))
			items, lagged, done := collect(t, sc)
			if err := pub.Wait(time.Minute); err != nil {
				t.Fatalf("publisher: %v\n%s", err, pub.Output())
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("python: %v", err)
			}
			if lagged != 0 || done["missed"] != 0 || len(items) != n {
				t.Fatalf("python got %d of %d messages, lagged %d", len(items), n, lagged)
			}
			for i, it := range items {
				if it != item(uint64(i)) {
					t.Fatalf("message %d: %+v", i, it)
				}
			}
		})
	}
}

// TestGoPublisherPythonSubscriberNative: Python joins a Block bus as a real
// subscriber (through the native library), so the Go child publisher must
// wait for it: every message arrives, none lapped, and the publisher's
// futex waits are woken by Python's cursor stores.
func TestGoPublisherPythonSubscriberNative(t *testing.T) {
	python3(t)
	needNative(t)
	s := spec(t, "nbus")
	const n = 3000
	b, err := shmbus.Create[Item](s, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cmd, sc := follower(t, "consume", s, "--timeout", "60")
	st, err := b.Stats()
	if err != nil || len(st.Subscribers) != 1 || st.Subscribers[0].Owner.PID != int32(cmd.Process.Pid) || !st.Subscribers[0].Alive {
		t.Fatalf("python subscriber not in the table: %+v, %v", st, err)
	}
	pub := publisherChild.Start(t, s, strconv.Itoa(n))
	items, lagged, _ := collect(t, sc)
	if err := pub.Wait(time.Minute); err != nil {
		t.Fatalf("publisher: %v\n%s", err, pub.Output())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python: %v", err)
	}
	if lagged != 0 || len(items) != n {
		t.Fatalf("python got %d of %d messages, lagged %d", len(items), n, lagged)
	}
	for i, it := range items {
		if it != item(uint64(i)) {
			t.Fatalf("message %d: %+v", i, it)
		}
	}
	if st, _ := b.Stats(); len(st.Subscribers) != 0 {
		t.Fatalf("python left its subscriber record: %+v", st.Subscribers)
	}
}

// TestPythonConsumesGoRing: Python is the ring's consumer; the Go producer
// (this process) blocks on the small ring and is woken by Python.
func TestPythonConsumesGoRing(t *testing.T) {
	python3(t)
	needNative(t)
	s := spec(t, "nring")
	const n = 5000
	r, err := shmring.Create[Item](s, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd, sc := follower(t, "consume", s, "-n", strconv.Itoa(n), "--timeout", "60")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		for i := range uint64(n) {
			if err := r.Push(ctx, item(i)); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	items, _, done := collect(t, sc)
	if err := <-errc; err != nil {
		t.Fatalf("push: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python: %v", err)
	}
	if done["done"] != n || len(items) != n {
		t.Fatalf("python consumed %d of %d", len(items), n)
	}
	for i, it := range items {
		if it != item(uint64(i)) {
			t.Fatalf("item %d: %+v", i, it)
		}
	}
	st, err := r.Stats()
	if err != nil || st.Head != n || st.Len != 0 || st.Consumer.PID != 0 {
		t.Fatalf("after python: %+v, %v", st, err)
	}
}
