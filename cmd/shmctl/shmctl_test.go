package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	"github.com/stretchr/testify/require"
)

var binDir string

func TestMain(m *testing.M) {
	if testproc.IsChild() {
		testproc.Main(m) // runs the child and exits
	}
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// shmctlBin builds the command once per test binary.
func shmctlBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "shmctl-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "shmctl")
		goTool, err := testproc.GoTool()
		if err != nil {
			buildErr = fmt.Errorf("no go tool to build shmctl with: %w", err)
			return
		}
		out, err := exec.Command(goTool, "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// result is one run of shmctl.
type result struct {
	code           int
	stdout, stderr string
}

// runBin runs the built binary.
func runBin(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(shmctlBin(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	require.NotContains(t, errb.String(), "panic", "shmctl %q crashed", args)
	return result{code, out.String(), errb.String()}
}

// runIn runs the tool in process.
func runIn(args ...string) result {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// Counters is the element type of the value segments the tests create.
type Counters struct {
	Hits   uint64
	Misses uint64
	Name   [16]byte
}

func posixSpec(t *testing.T, prefix string) string {
	spec := "posix:/" + testproc.UniqueName(prefix)
	t.Cleanup(func() { _ = segment.Remove(spec) })
	return spec
}

var sysvSeq atomic.Uint32

func sysvSpec(t *testing.T) string {
	// A key in a range nothing else on a test machine uses, unique per
	// process and call.
	key := 0x5c000000 | uint32(os.Getpid()&0xffff)<<8 | sysvSeq.Add(1)&0xff
	spec := fmt.Sprintf("sysv:0x%08x", key)
	t.Cleanup(func() { _ = segment.Remove(spec) })
	return spec
}

func createValue(t *testing.T, spec string) *layout.Value[Counters] {
	t.Helper()
	v, err := layout.CreateValue[Counters](spec)
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	return v
}

func decodeList(t *testing.T, out string) []Report {
	t.Helper()
	var rs []Report
	require.NoError(t, json.Unmarshal([]byte(out), &rs), out)
	return rs
}

func findSpec(rs []Report, spec string) *Report {
	for i := range rs {
		if rs[i].Spec == spec {
			return &rs[i]
		}
	}
	return nil
}

// Children.

// holdChild opens the segment named by args[0], says "ready" on stdout,
// and keeps it mapped until killed.
var holdChild = testproc.Register("shmctl-hold", func(args []string) error {
	s, err := layout.Open(args[0], layout.Expect{})
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("ready")
	select {}
})

// createChild creates a value segment at args[0] and exits without
// removing it (with a crash point armed, it dies inside Create).
var createChild = testproc.Register("shmctl-create", func(args []string) error {
	v, err := layout.CreateValue[Counters](args[0])
	if err != nil {
		return err
	}
	return v.Close()
})

// startHolder starts holdChild on spec and waits until it has the segment mapped.
func startHolder(t *testing.T, spec string) *testproc.Proc {
	t.Helper()
	return startSaying(t, holdChild, "ready", spec)
}

// startSaying starts child c with args and waits until the first line it
// prints is want (the child is ready: holding what it holds).
func startSaying(t *testing.T, c testproc.Child, want string, args ...string) *testproc.Proc {
	t.Helper()
	cmd := c.Command(t, args...)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	cmd.Stdout = w
	p := testproc.StartCmd(t, cmd)
	w.Close()
	line, err := bufio.NewReader(r).ReadString('\n')
	r.Close()
	require.NoError(t, err, "%s output: %s", c, p.Output())
	require.Equal(t, want+"\n", line)
	return p
}

func TestHelp(t *testing.T) {
	res := runBin(t, "--help")
	require.Equal(t, 0, res.code)
	require.Contains(t, res.stdout, "Usage: shmctl COMMAND")
	for _, c := range []string{"ls", "stat", "watch", "rm", "doctor"} {
		require.Contains(t, res.stdout, "\n  "+c+" ")
		h := runBin(t, c, "--help")
		require.Equal(t, 0, h.code, c)
		require.True(t, strings.HasPrefix(h.stdout, "Usage: shmctl "+c+" "), h.stdout)
		for _, section := range []string{"\n\nOptions:\n", "\nExamples:\n", "\nExit status:\n"} {
			require.Contains(t, h.stdout, section, "%s --help", c)
		}
		require.Equal(t, h.stdout, runIn("help", c).stdout)
	}
	require.Equal(t, 2, runBin(t).code)
	bad := runBin(t, "ls", "--bogus")
	require.Equal(t, 2, bad.code)
	require.Contains(t, bad.stderr, "flag provided but not defined: -bogus")
	require.Contains(t, bad.stderr, "Usage: shmctl ls")
	require.Equal(t, 2, runBin(t, "frobnicate").code)
	require.Equal(t, 2, runBin(t, "stat").code)
	require.Equal(t, 2, runBin(t, "watch", "-i", "0s", "posix:/x").code)
}

func TestLsAndStatValueAcrossBackends(t *testing.T) {
	want, err := layout.DescribeOf[Counters]()
	require.NoError(t, err)

	pspec := posixSpec(t, "ctl-ls")
	createValue(t, pspec)

	dir := t.TempDir()
	fspec := "file:" + filepath.Join(dir, "state.shm")
	createValue(t, fspec)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "not-shmkit"), bytes.Repeat([]byte{7}, 4096), 0o600))

	sspec := sysvSpec(t)
	createValue(t, sspec)

	mname := testproc.UniqueName("ctl-memfd")
	createValue(t, "memfd:"+mname)

	res := runBin(t, "ls", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	rs := decodeList(t, res.stdout)
	me := int32(os.Getpid())
	for _, spec := range []string{pspec, sspec} {
		r := findSpec(rs, spec)
		require.NotNil(t, r, "%s not listed:\n%s", spec, res.stdout)
		require.True(t, r.Shmkit)
		require.Equal(t, "ok", r.Status, r.Error)
		require.Equal(t, "value", r.Header.Kind)
		require.Equal(t, uint64(1), r.Header.Capacity)
		require.Len(t, r.Header.Types, 1)
		require.Equal(t, "main.Counters", r.Header.Types[0].Name)
		require.Equal(t, want.Layout, r.Header.Types[0].Layout)
		require.Equal(t, me, r.Creator.PID)
		require.True(t, r.Creator.Alive)
		require.Contains(t, r.Users, me, "this test maps %s", spec)
	}
	require.Equal(t, "sysv", findSpec(rs, sspec).Backend)
	require.Equal(t, uint64(1), findSpec(rs, sspec).SysV.Nattch)
	var memfd *Report
	for i := range rs {
		if rs[i].Backend == "memfd" && rs[i].Name == mname {
			memfd = &rs[i]
		}
	}
	require.NotNil(t, memfd, "memfd %s not listed", mname)
	require.Equal(t, "ok", memfd.Status, memfd.Error)
	require.Equal(t, "main.Counters", memfd.Header.Types[0].Name)
	require.True(t, strings.HasPrefix(memfd.Spec, fmt.Sprintf("/proc/%d/fd/", me)), memfd.Spec)

	// The memfd is named by its /proc path or found by name.
	st := runBin(t, "stat", "--json", "memfd:"+mname)
	require.Equal(t, 0, st.code, st.stderr)

	// Files are listed by directory; non-shmkit ones only with --all.
	res = runBin(t, "ls", dir)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, fspec)
	require.Contains(t, res.stdout, "main.Counters")
	require.NotContains(t, res.stdout, "not-shmkit")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	require.Len(t, lines, 2)
	require.Regexp(t, `^BACKEND\s+SPEC\s+KIND\s+TYPE\s+CAP\s+LEN\s+SIZE\s+OWNERS\s+STATUS$`, lines[0])
	require.Regexp(t, `^file\s+\S+\s+value\s+main\.Counters\s+1\s+-\s+\d+\s+creator=\d+/alive users=\d+\s+ok$`, lines[1])
	res = runBin(t, "ls", "--all", dir)
	require.Contains(t, res.stdout, "not-shmkit")
	require.Regexp(t, `file\s+\S+not-shmkit\s+-\s+-\s+-\s+-\s+4096\s+-\s+-\n`, res.stdout)

	// stat decodes the whole header.
	st = runBin(t, "stat", "--json", pspec)
	require.Equal(t, 0, st.code, st.stderr)
	var r Report
	require.NoError(t, json.Unmarshal([]byte(st.stdout), &r))
	require.Equal(t, uint32(layout.FormatVersion), r.Header.Version)
	require.Equal(t, "ready", r.Header.State)
	require.Equal(t, fmt.Sprintf("%#016x", want.Fingerprint), r.Header.Types[0].Fingerprint)
	require.Equal(t, want.Size, r.Header.Types[0].Size)
	require.Len(t, r.Header.Regions, 1)
	require.Equal(t, uint64(layout.HeaderSize), r.Header.TypeDescOff)
	require.NotNil(t, r.Valid)
	require.True(t, *r.Valid)
	require.WithinDuration(t, time.Now(), *r.Header.Created, time.Minute)

	st = runBin(t, "stat", "/dev/shm/"+strings.TrimPrefix(pspec, "posix:/"))
	require.Equal(t, 0, st.code, st.stderr)
	for _, want := range []string{"spec:", pspec, "validation:", "kind:", "value (1)", "layout[0]:", want.Layout,
		fmt.Sprintf("pid %d", me), "alive", "region[0]:"} {
		require.Contains(t, st.stdout, want)
	}
}

// Offsets of header words the tests scribble on, taken from the Go type
// rather than counted by hand.
var stateOffset = fieldOffset("State")

func fieldOffset(name string) int {
	f, ok := reflect.TypeFor[layout.Header]().FieldByName(name)
	if !ok {
		panic("layout.Header has no field " + name)
	}
	return int(f.Offset)
}

func TestHeaderDecodeMatchesLayout(t *testing.T) {
	// The header has no implicit padding: its bytes are its fields.
	require.Equal(t, layout.HeaderSize, binary.Size(layout.Header{}))
	require.Equal(t, 336, stateOffset)
	require.Equal(t, 48, fieldOffset("Creator"))
	// shmctl decodes headers with layout.Peek: from a copy of the bytes it
	// must see what layout.Open attaches.
	spec := "file:" + filepath.Join(t.TempDir(), "seg")
	createValue(t, spec)
	s, err := layout.Open(spec, layout.Expect{Kind: layout.KindAny})
	require.NoError(t, err)
	defer s.Close()
	b := slices.Clone(s.Raw().Bytes())
	hd, types, err := layout.Peek(b, len(b))
	require.NoError(t, err)
	require.Equal(t, *s.Header(), *hd)
	require.Equal(t, s.Types(), types)
	head := b[:min(len(b), headRead)]
	hd, types, err = layout.Peek(head, len(b))
	require.NoError(t, err, "the head shmctl copies holds the header and type descriptions")
	require.Equal(t, *s.Header(), *hd)
	require.Equal(t, s.Types(), types)
}

// exists reports whether the object named by spec is still there.
func exists(t *testing.T, spec string) bool {
	s, err := segment.Open(spec, segment.ReadOnly())
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	require.NoError(t, err)
	require.NoError(t, s.Close())
	return true
}

func TestStaleHalfInitializedAndDoctorFix(t *testing.T) {
	for _, backend := range []string{"posix", "file", "sysv"} {
		t.Run(backend, func(t *testing.T) {
			// Files are found only in the directories ls is given.
			var spec string
			var lsOperands []string
			switch backend {
			case "posix":
				spec = posixSpec(t, "ctl-halfinit")
			case "file":
				dir := t.TempDir()
				spec = "file:" + filepath.Join(dir, "half")
				lsOperands = []string{dir}
			case "sysv":
				spec = sysvSpec(t)
			}
			cmd := createChild.Command(t, spec)
			cmd.Env = append(cmd.Env, crashpoint.Arm("layout.initializing", 1))
			p := testproc.StartCmd(t, cmd)
			require.Error(t, p.Wait(time.Minute), "child must have been SIGKILLed")
			require.Equal(t, -1, p.Cmd.ProcessState.ExitCode(), "killed by a signal: %s", p.Output())

			res := runBin(t, append([]string{"ls", "--json"}, lsOperands...)...)
			r := findSpec(decodeList(t, res.stdout), spec)
			require.NotNil(t, r, res.stdout)
			require.Equal(t, "stale", r.Status)
			require.Equal(t, "initializing", r.Header.State)
			require.False(t, r.Creator.Alive)
			require.Equal(t, int32(p.Pid()), r.Creator.PID)
			require.Len(t, r.Stale, 1)
			require.Equal(t, "half-initialized", r.Stale[0].What)
			require.True(t, r.Stale[0].Fixable)

			res = runBin(t, append([]string{"ls"}, lsOperands...)...)
			// The kind is not written yet: only the creator and the state word are.
			require.Regexp(t, regexp.QuoteMeta(spec)+`\s+\?\s+-\s+-\s+-\s+\d+\s+creator=\d+/dead\s.*STALE\n`, res.stdout)

			st := runBin(t, "stat", spec)
			require.Equal(t, 1, st.code)
			require.Contains(t, st.stdout, "half-initialized")

			doc := runBin(t, "doctor", spec)
			require.Equal(t, 1, doc.code)
			require.Contains(t, doc.stdout, spec+": half-initialized: creator pid")
			require.True(t, exists(t, spec), "doctor without --fix changes nothing")

			doc = runBin(t, "doctor", "--fix", "--json", spec)
			require.Equal(t, 0, doc.code, doc.stdout+doc.stderr)
			var found []finding
			require.NoError(t, json.Unmarshal([]byte(doc.stdout), &found), doc.stdout)
			require.Len(t, found, 1)
			require.Equal(t, spec, found[0].Spec)
			require.Equal(t, "half-initialized", found[0].Problems[0].What)
			require.Equal(t, []string{fmt.Sprintf("removed %s: its creator pid %d died during initialization", spec, p.Pid())}, found[0].Actions)
			require.False(t, found[0].Remaining)
			require.False(t, exists(t, spec))
		})
	}
}

// A segment whose creator finished and exited, and that nobody maps, is how
// posix, file and sysv segments keep data between runs: idle, not stale.
// (Until the "first hour" issue shmctl called it STALE/orphaned, stat
// exited 1 asking for doctor, and doctor only noted it.) Only a creator that
// died during initialization leaves a broken segment: see
// TestStaleHalfInitializedAndDoctorFix.
func TestExitedCreatorIsIdleNotStale(t *testing.T) {
	fpath := filepath.Join(t.TempDir(), "saved.shm")
	for _, spec := range []string{posixSpec(t, "ctl-idle"), "file:" + fpath, sysvSpec(t)} {
		t.Run(strings.SplitN(spec, ":", 2)[0], func(t *testing.T) {
			createChild.Run(t, spec)
			res := runBin(t, "ls", "--json", spec)
			require.Equal(t, 0, res.code, res.stderr)
			rs := decodeList(t, res.stdout)
			require.Len(t, rs, 1)
			r := rs[0]
			require.Equal(t, "idle", r.Status, r.Error)
			require.False(t, r.Creator.Alive)
			require.Empty(t, r.Stale)
			require.Contains(t, r.Note, "no process has it mapped; its creator pid")

			tab := runBin(t, "ls", spec)
			require.Equal(t, 0, tab.code, tab.stderr)
			require.Regexp(t, regexp.QuoteMeta(spec)+`\s+value\s+main\.Counters\s.*creator=\d+/dead.*\sidle\n`, tab.stdout)
			require.NotContains(t, tab.stdout, "STALE")

			st := runBin(t, "stat", spec)
			require.Equal(t, 0, st.code, "an idle segment is fine: %s", st.stderr)
			require.Empty(t, st.stderr, "no advice to run doctor")
			require.Regexp(t, `status:\s+idle\n`, st.stdout)
			require.Regexp(t, `note:\s+no process has it mapped; its creator pid \d+ has exited`, st.stdout)
			require.NotContains(t, st.stdout, "STALE")

			doc := runBin(t, "doctor", "--fix", spec)
			require.Equal(t, 0, doc.code, doc.stdout)
			require.Equal(t, "no problems found\n", doc.stdout)
			v, err := layout.OpenValue[Counters](spec)
			require.NoError(t, err, "doctor leaves the saved data alone")
			require.NoError(t, v.Close())

			// Mapped by a live process, it is in use again: ok.
			h := startHolder(t, spec)
			res = runBin(t, "stat", "--json", spec)
			require.Equal(t, 0, res.code, res.stdout)
			var rep Report
			require.NoError(t, json.Unmarshal([]byte(res.stdout), &rep))
			require.Equal(t, "ok", rep.Status)
			h.Kill()
		})
	}
}

// A SysV segment removed (IPC_RMID, as "ipcrm -m/-M" does) while processes
// still have it attached loses its key, but still uses memory until the
// last detach: ls shows it as such instead of hiding it.
func TestRemovedSysVStillAttachedListed(t *testing.T) {
	spec := sysvSpec(t)
	v := createValue(t, spec)
	holder := startHolder(t, spec)
	res := runBin(t, "ls", "--json", spec)
	rs := decodeList(t, res.stdout)
	require.Len(t, rs, 1)
	shmid := rs[0].SysV.ShmID

	require.NoError(t, segment.Remove(spec)) // IPC_RMID
	res = runBin(t, "ls", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var r *Report
	for _, x := range decodeList(t, res.stdout) {
		if x.SysV != nil && x.SysV.ShmID == shmid {
			r = &x
		}
	}
	require.NotNil(t, r, "removed but attached segment shmid %d missing from ls:\n%s", shmid, res.stdout)
	require.Equal(t, "removed", r.Status)
	require.True(t, r.SysV.Removed)
	require.Equal(t, uint64(2), r.SysV.Nattch, "this test and the holder")
	require.True(t, r.Shmkit)
	require.Equal(t, "value", r.Header.Kind)
	require.Equal(t, "main.Counters", r.Header.Types[0].Name)
	require.Contains(t, r.Note, "removed (IPC_RMID) while still attached by 2 process(es)")

	tab := runBin(t, "ls")
	require.Regexp(t, fmt.Sprintf(`shmid:%d\s+value\s+main\.Counters\s.*removed, still attached by 2\n`, shmid), tab.stdout)
	doc := runBin(t, "doctor")
	require.NotContains(t, doc.stdout, fmt.Sprintf("shmid:%d", shmid), "nothing to repair: it goes with its last user")

	holder.Kill()
	require.NoError(t, v.Close())
	tab = runBin(t, "ls", "--all")
	require.NotContains(t, tab.stdout, fmt.Sprintf("shmid:%d ", shmid), "freed at the last detach")
}

func TestRmRefusesLiveSegment(t *testing.T) {
	spec := posixSpec(t, "ctl-rm")
	v := createValue(t, spec)
	require.NoError(t, v.Close())
	holder := startHolder(t, spec)

	res := runBin(t, "rm", spec)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, fmt.Sprintf("in use by live processes %d", holder.Pid()))
	path := "/dev/shm/" + strings.TrimPrefix(spec, "posix:/")
	_, err := os.Stat(path)
	require.NoError(t, err)

	res = runBin(t, "rm", spec, "--force")
	require.Equal(t, 0, res.code, res.stderr)
	_, err = os.Stat(path)
	require.ErrorIs(t, err, fs.ErrNotExist)

	// A file segment: its users are found by its mappings too.
	fpath := filepath.Join(t.TempDir(), "seg")
	fspec := "file:" + fpath
	fv := createValue(t, fspec)
	require.NoError(t, fv.Close())
	fholder := startHolder(t, fspec)
	res = runBin(t, "rm", fpath)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, fmt.Sprintf("in use by live processes %d", fholder.Pid()))
	fholder.Kill()
	res = runBin(t, "rm", fpath)
	require.Equal(t, 0, res.code, "no user left: %s", res.stderr)
	_, err = os.Stat(fpath)
	require.ErrorIs(t, err, fs.ErrNotExist)

	// SysV: refused while attached (nattch > 0), removed once detached.
	sspec := sysvSpec(t)
	sv := createValue(t, sspec)
	res = runBin(t, "rm", sspec)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "in use by live processes")
	require.NoError(t, sv.Close())
	res = runBin(t, "rm", sspec)
	require.Equal(t, 0, res.code, res.stderr)
	_, err = segment.Open(sspec)
	require.ErrorIs(t, err, fs.ErrNotExist)

	// Not a shmkit object: refused without --force.
	other := filepath.Join(t.TempDir(), "other")
	require.NoError(t, os.WriteFile(other, make([]byte, 4096), 0o600))
	res = runBin(t, "rm", other)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "not a shmkit segment")
	require.Equal(t, 1, runBin(t, "rm", "posix:/"+testproc.UniqueName("absent")).code)
}

func TestCorruptSegmentReported(t *testing.T) {
	spec := posixSpec(t, "ctl-corrupt")
	v := createValue(t, spec)
	require.NoError(t, v.Close())
	path := "/dev/shm/" + strings.TrimPrefix(spec, "posix:/")
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	// Scribble the capacity: the checksum no longer matches.
	_, err = f.WriteAt([]byte{0xde, 0xad, 0xbe, 0xef}, int64(fieldOffset("Capacity")))
	require.NoError(t, err)

	res := runBin(t, "stat", spec)
	require.Equal(t, 1, res.code)
	require.Regexp(t, `validation:\s+FAILED: `, res.stdout)
	require.Contains(t, res.stdout, "header checksum")
	require.Contains(t, res.stderr, "corrupt")

	res = runBin(t, "stat", "--json", spec)
	require.Equal(t, 1, res.code)
	var r Report
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &r))
	require.Equal(t, "corrupt", r.Status)
	require.False(t, *r.Valid)
	require.Contains(t, r.Error, layout.ErrCorrupt.Error())

	res = runBin(t, "ls")
	require.Equal(t, 0, res.code)
	require.Regexp(t, spec+`\s+value\s.*CORRUPT\n`, res.stdout)
	require.Equal(t, 1, runBin(t, "doctor", spec).code)

	// Garbage everywhere after the magic, including the state word: still
	// reported, never a crash.
	rng := rand.New(rand.NewPCG(1, 2))
	target, err := resolve(spec, &procScan{})
	require.NoError(t, err)
	for i := range 300 {
		junk := make([]byte, 4096)
		for j := range junk {
			junk[j] = byte(rng.UintN(256))
		}
		copy(junk, layout.Magic[:])
		if i%2 == 0 {
			// A valid state word, so layout.Open gets to the checks.
			copy(junk[stateOffset:], []byte{0x59, 0x44, 0x45, 0x52})
		}
		_, err = f.WriteAt(junk, 0)
		require.NoError(t, err)
		if i < 5 {
			r := runIn("stat", spec)
			require.Equal(t, 1, r.code)
			require.Contains(t, r.stderr, "corrupt")
		}
		// The same inspection without the /proc scan, many times.
		rep := inspect(target, &procScan{})
		require.Equal(t, "corrupt", rep.Status, "round %d: %s", i, rep.Error)
		require.NotEmpty(t, rep.Error)
	}
	// Shorter than a header but with the magic.
	require.NoError(t, f.Truncate(100))
	r2 := runIn("stat", spec)
	require.Equal(t, 1, r2.code)
	require.Contains(t, r2.stdout, layout.ErrTooSmall.Error())
}

func TestWatchValueHasNoCounters(t *testing.T) {
	spec := posixSpec(t, "ctl-watch")
	createValue(t, spec)
	res := runIn("watch", "-n", "2", "-i", "10ms", spec)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "no live counters")
}

func TestInProcessMatchesBinary(t *testing.T) {
	dir := t.TempDir()
	fspec := "file:" + filepath.Join(dir, "seg")
	createValue(t, fspec)
	a := runIn("ls", "--json", dir)
	b := runBin(t, "ls", "--json", dir)
	require.Equal(t, 0, a.code)
	ra, rb := decodeList(t, a.stdout), decodeList(t, b.stdout)
	require.Len(t, ra, 1)
	require.Len(t, rb, 1)
	require.Equal(t, ra[0].Header, rb[0].Header)
	require.Equal(t, ra[0].Spec, rb[0].Spec)
}
