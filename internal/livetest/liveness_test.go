package livetest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/shmkit/shmkit/internal/proc"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/shmring"
	shsync "github.com/shmkit/shmkit/sync"
)

// Liveness under real kernel states (DESIGN.md, "Trust model": a process is
// dead only on definite evidence). Two reported scenarios, each through a
// robust Mutex in a segment and through a ring's producer role:
//
//   - fdfull: the waiter's fd table is full (RLIMIT_NOFILE lowered, then
//     /dev/null opened until EMFILE), so pidfd_open and every /proc read
//     fail with EMFILE. Before the fix the Mutex fallback took EMFILE for
//     "no such thread" and stole the lock from a live holder after one
//     DeadOwnerPoll.
//   - hidepid: the waiter runs in its own mount namespace with /proc
//     remounted hidepid=2 and as uid 12345, the holder as uid 23456: the
//     holder's /proc entries do not exist for the waiter.
//
// In both, a waiter facing a live holder must keep waiting (no theft), the
// holder's Unlock / Push must keep working, and once the holder is really
// dead (SIGKILLed and reaped) the waiter must get the lock (ErrOwnerDead,
// from the kernel robust list) or the role (from ESRCH).

const (
	waiterUID = 12345
	holderUID = 23456
	// waitFor is how long a waiter facing a live holder must keep waiting:
	// several DeadOwnerPolls.
	waitFor = 500 * time.Millisecond
)

// lockSeg is the Mutex test segment.
type lockSeg struct {
	Mu shsync.Mutex
}

func newLockSeg(t *testing.T) (string, *lockSeg) {
	t.Helper()
	spec := "posix:/" + testproc.UniqueName("live-mu")
	// 0666: the waiter and holder run as other uids. Created by root, so
	// trusted by every opener.
	seg, err := segment.Create(spec, 4096, segment.WithMode(0o666))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		shsync.ForgetRange(seg.Bytes())
		_ = seg.Close()
		_ = segment.Remove(spec)
	})
	return spec, (*lockSeg)(unsafe.Pointer(unsafe.SliceData(seg.Bytes())))
}

func openLockSeg(spec string) (*lockSeg, error) {
	seg, err := segment.Open(spec)
	if err != nil {
		return nil, err
	}
	if seg.Size() < int(unsafe.Sizeof(lockSeg{})) {
		return nil, fmt.Errorf("segment too small: %d", seg.Size())
	}
	return (*lockSeg)(unsafe.Pointer(unsafe.SliceData(seg.Bytes()))), nil
}

func newLiveRing(t *testing.T) (string, *shmring.Ring[uint64]) {
	t.Helper()
	spec := "posix:/" + testproc.UniqueName("live-ring")
	r, err := shmring.Create[uint64](spec, 8, shmring.WithMode(0o666))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = r.Close()
		_ = shmring.Remove(spec)
	})
	return spec, r
}

// errSkip makes a child report that the kernel state cannot be set up
// here (a missing capability), so the test skips instead of failing.
type errSkip struct{ why string }

func (e errSkip) Error() string { return "skip: " + e.why }

// dropUID makes every thread of this process run as uid (and gid uid),
// with no supplementary groups.
func dropUID(uid int) error {
	if uid == 0 {
		return nil
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(uid); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	if os.Getuid() != uid || os.Geteuid() != uid {
		return fmt.Errorf("still uid %d/%d after setuid(%d)", os.Getuid(), os.Geteuid(), uid)
	}
	return nil
}

// enterHidepid runs in a child started in a new mount namespace: it makes
// the mounts private, mounts a fresh /proc with hidepid=2 and drops to uid.
// It returns what it verified: the holder's /proc entry is invisible.
func enterHidepid(uid, holder int) (string, error) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return "", errSkip{fmt.Sprintf("mount --make-rprivate /: %v", err)}
	}
	if err := unix.Mount("proc", "/proc", "proc", 0, "hidepid=2"); err != nil {
		return "", errSkip{fmt.Sprintf("mount proc hidepid=2: %v", err)}
	}
	// Settle our own identity while /proc/self is still ours to read (it
	// stays readable after the uid change too: hidepid hides others).
	_ = proc.Self()
	if err := dropUID(uid); err != nil {
		return "", err
	}
	statPath := "/proc/" + strconv.Itoa(holder) + "/stat"
	if _, err := os.ReadFile(statPath); !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("holder %d not hidden by hidepid=2 as uid %d: read %s: %v", holder, uid, statPath, err)
	}
	if err := unix.Kill(holder, 0); err != unix.EPERM {
		return "", fmt.Errorf("kill(holder, 0) as uid %d = %v, want EPERM", uid, err)
	}
	return fmt.Sprintf("uid=%d hidden=%d", os.Getuid(), holder), nil
}

// fillFDs lowers RLIMIT_NOFILE and opens /dev/null until EMFILE, then
// checks that pidfd_open and /proc reads fail with EMFILE.
func fillFDs() (string, error) {
	_ = proc.Self()                      // identity first: it reads /proc
	time.Sleep(time.Millisecond)         // the runtime's poller (timers) is up
	ctx, cancel := timeoutCtx(time.Hour) // and context timers work
	cancel()
	<-ctx.Done()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return "", err
	}
	lim.Cur = 64
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return "", fmt.Errorf("setrlimit: %w", err)
	}
	n := 0
	for {
		_, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == unix.EMFILE {
			break
		}
		if err != nil {
			return "", fmt.Errorf("filling the fd table: %w", err)
		}
		n++
	}
	return fmt.Sprintf("filled=%d %s", n, fdState()), fdFull()
}

func fdState() string {
	_, perr := unix.PidfdOpen(os.Getpid(), 0)
	_, rerr := os.ReadFile("/proc/self/stat")
	return fmt.Sprintf("pidfd=%v stat=%v", perr, rerr)
}

// fdFull checks that the fd table is still full.
func fdFull() error {
	if _, err := unix.PidfdOpen(os.Getpid(), 0); err != unix.EMFILE {
		return fmt.Errorf("fd table not full: pidfd_open = %v", err)
	}
	if _, err := os.ReadFile("/proc/self/stat"); !errors.Is(err, unix.EMFILE) {
		return fmt.Errorf("fd table not full: read /proc/self/stat = %v", err)
	}
	return nil
}

// waiterSetup puts a waiter child in its state around opening the
// structure: hidepid (namespace, uid) before, fd table full after.
func waiterSetup(mode string, holder int, open func() error) (string, error) {
	var info string
	var err error
	if mode == "hidepid" {
		if info, err = enterHidepid(waiterUID, holder); err != nil {
			return "", err
		}
	}
	if err := open(); err != nil {
		return "", err
	}
	if mode == "fdfull" {
		if info, err = fillFDs(); err != nil {
			return "", err
		}
	}
	return info, nil
}

// checkState re-verifies the waiter's state before each reply.
func checkState(mode string) string {
	if mode == "fdfull" {
		if err := fdFull(); err != nil {
			return "state-lost: " + err.Error()
		}
	}
	return "state-ok"
}

// errText names err in one space-free token for reply lines: the sentinel
// it wraps, or its text with spaces replaced.
func errText(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, context.DeadlineExceeded):
		return "DeadlineExceeded"
	case errors.Is(err, shsync.ErrOwnerDead):
		return "ErrOwnerDead"
	case errors.Is(err, shmring.ErrRoleTaken):
		return "ErrRoleTaken"
	}
	return strings.ReplaceAll(err.Error(), " ", "_")
}

// runChild reports a setup error as a "skip" line when it is one, so the
// test can tell a missing capability from a failure.
func runChild(f func() error) error {
	err := f()
	var s errSkip
	if errors.As(err, &s) {
		reply("skip %s", s.why)
		return nil
	}
	return err
}

// ---- Mutex children ----

// muHolder: args spec, uid. Locks Mu as uid and replies "locked"; then
// "unlock" and "lock" commands. Exits (holding whatever it holds) at EOF.
var muHolder = testproc.Register("live-mu-holder", func(args []string) error {
	if err := dropUID(atoi(args[1])); err != nil {
		return err
	}
	s, err := openLockSeg(args[0])
	if err != nil {
		return err
	}
	if err := s.Mu.Lock(); err != nil {
		return err
	}
	tids, robust := shsync.KeeperTIDs()
	reply("locked uid=%d robust=%v tids=%v", os.Getuid(), robust, tids)
	for cmd := range commands() {
		switch cmd {
		case "unlock":
			func() {
				defer func() {
					if p := recover(); p != nil {
						reply("unlock panic: %v", p)
					}
				}()
				s.Mu.Unlock()
				reply("unlocked")
			}()
		case "lock":
			reply("lock %s", errText(s.Mu.Lock()))
		default:
			return fmt.Errorf("bad command %q", cmd)
		}
	}
	return nil
})

// muWaiter: args spec, mode, holder pid. Enters its state and replies
// "ready"; then "try MS" (LockContext with a timeout; an acquired lock is
// released again) and "lock" (Lock; ErrOwnerDead is repaired).
var muWaiter = testproc.Register("live-mu-waiter", func(args []string) error {
	return runChild(func() error {
		mode, holder := args[1], atoi(args[2])
		var s *lockSeg
		info, err := waiterSetup(mode, holder, func() (err error) {
			s, err = openLockSeg(args[0])
			return err
		})
		if err != nil {
			return err
		}
		reply("ready %s", info)
		release := func(err error) {
			if errors.Is(err, shsync.ErrOwnerDead) {
				_ = s.Mu.MarkConsistent()
			}
			if err == nil || errors.Is(err, shsync.ErrOwnerDead) {
				s.Mu.Unlock()
			}
		}
		for cmd := range commands() {
			f := strings.Fields(cmd)
			switch f[0] {
			case "try":
				ctx, cancel := timeoutCtx(time.Duration(atoi(f[1])) * time.Millisecond)
				t0 := time.Now()
				err := s.Mu.LockContext(ctx)
				el := time.Since(t0)
				cancel()
				st := checkState(mode)
				release(err)
				reply("try err=%s ms=%d %s", errText(err), el.Milliseconds(), st)
			case "lock":
				t0 := time.Now()
				err := s.Mu.Lock()
				el := time.Since(t0)
				st := checkState(mode)
				release(err)
				reply("lock err=%s ms=%d %s", errText(err), el.Milliseconds(), st)
			default:
				return fmt.Errorf("bad command %q", cmd)
			}
		}
		return nil
	})
})

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

// field returns the value of key=value in a reply line.
func field(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// startWaiter starts a waiter child in mode and returns it once ready, or
// skips the test if its state cannot be set up here.
func startWaiter(t *testing.T, c testproc.Child, mode, spec string, holder int) *peer {
	t.Helper()
	var mod func(*exec.Cmd)
	if mode == "hidepid" {
		mod = func(cmd *exec.Cmd) { cmd.SysProcAttr.Unshareflags |= syscall.CLONE_NEWNS }
	}
	w, err := startPeer(t, c, mod, spec, mode, strconv.Itoa(holder))
	if err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("cannot start a child in a new mount namespace: %v", err)
		}
		t.Fatal(err)
	}
	l := w.next(20 * time.Second)
	if why, ok := strings.CutPrefix(l, "skip "); ok {
		t.Skipf("waiter state %s unavailable: %s", mode, why)
	}
	if !strings.HasPrefix(l, "ready") {
		t.Fatalf("waiter replied %q, want ready\n%s", l, w.p.Output())
	}
	t.Logf("waiter (%s) %s", mode, l)
	return w
}

func wantStateOK(t *testing.T, line string) {
	t.Helper()
	if !strings.HasSuffix(line, "state-ok") {
		t.Fatalf("waiter lost its kernel state: %s", line)
	}
}

func TestLivenessMutex(t *testing.T) {
	for _, mode := range []string{"fdfull", "hidepid"} {
		t.Run(mode, func(t *testing.T) { testLivenessMutex(t, mode) })
	}
}

func testLivenessMutex(t *testing.T, mode string) {
	spec, s := newLockSeg(t)
	uid := 0
	if mode == "hidepid" {
		uid = holderUID
	}
	h := mustStart(t, muHolder, nil, spec, strconv.Itoa(uid))
	hl := h.expect("locked", 20*time.Second)
	t.Logf("holder pid %d: %s", h.p.Pid(), hl)
	w := startWaiter(t, muWaiter, mode, spec, h.p.Pid())

	// 1. A live holder: the waiter keeps waiting (several DeadOwnerPolls).
	w.send(fmt.Sprintf("try %d", waitFor.Milliseconds()))
	l := w.expect("try", 20*time.Second)
	wantStateOK(t, l)
	if e := field(l, "err"); e != "DeadlineExceeded" {
		t.Fatalf("waiter against a live holder: LockContext err=%s, want DeadlineExceeded (the live holder's lock was taken): %s", e, l)
	}
	if ms := atoi(field(l, "ms")); ms < int(waitFor.Milliseconds())-5 {
		t.Fatalf("waiter gave up after %d ms, before its %v deadline", ms, waitFor)
	}
	if st := s.Mu.State(); !st.Locked || st.Owner.PID != int32(h.p.Pid()) || st.OwnerDead {
		t.Fatalf("after the waiter's attempt: state %+v, want locked by live holder %d", st, h.p.Pid())
	}

	// 2. The holder still holds it: its Unlock works, no panic.
	h.send("unlock")
	if l := h.next(10 * time.Second); l != "unlocked" {
		t.Fatalf("holder's Unlock after the waiter's attempt: %q\n%s", l, h.p.Output())
	}
	// The waiter can lock a free mutex in its state.
	w.send("try 5000")
	l = w.expect("try", 20*time.Second)
	wantStateOK(t, l)
	if e := field(l, "err"); e != "nil" {
		t.Fatalf("waiter could not take the free lock: %s", l)
	}

	// 3. The holder locks again and is SIGKILLed while the waiter blocks
	// in Lock: the kernel robust list hands the lock over (the /proc and
	// pidfd checks cannot help in this state).
	h.send("lock")
	if l := h.expect("lock", 10*time.Second); l != "nil" {
		t.Fatalf("holder relock: %s", l)
	}
	w.send("lock")
	select {
	case l := <-w.lines:
		t.Fatalf("waiter returned from Lock while the holder was alive: %q", l)
	case <-time.After(200 * time.Millisecond):
	}
	t0 := time.Now()
	h.kill()
	l = w.expect("lock", 20*time.Second)
	wantStateOK(t, l)
	if e := field(l, "err"); e != "ErrOwnerDead" {
		t.Fatalf("waiter after the holder's death: %s, want ErrOwnerDead", l)
	}
	t.Logf("waiter got the dead holder's lock %v after SIGKILL (%s)", time.Since(t0).Round(time.Millisecond), l)
	if st := s.Mu.State(); st.Locked || st.NotRecoverable || st.Inconsistent {
		t.Fatalf("after recovery: state %+v, want unlocked and consistent", st)
	}
}

// ---- ring children ----

// ringHolder: args spec, uid. Pushes 1 as uid (claiming the producer role)
// and replies "producer"; then "push N".
var ringHolder = testproc.Register("live-ring-holder", func(args []string) error {
	if err := dropUID(atoi(args[1])); err != nil {
		return err
	}
	r, err := shmring.Open[uint64](args[0])
	if err != nil {
		return err
	}
	ctx, cancel := timeoutCtx(10 * time.Second)
	defer cancel()
	if err := r.Push(ctx, 1); err != nil {
		return err
	}
	reply("producer uid=%d", os.Getuid())
	for cmd := range commands() {
		f := strings.Fields(cmd)
		if len(f) != 2 || f[0] != "push" {
			return fmt.Errorf("bad command %q", cmd)
		}
		reply("push %s", errText(r.Push(ctx, uint64(atoi(f[1])))))
	}
	return nil
})

// ringWaiter: args spec, mode, holder pid. Enters its state and replies
// "ready"; then "claim MS" (Claim over and over for MS ms, expecting
// ErrRoleTaken every time) and "takeover MS" (Claim until it succeeds,
// then publishes 1000).
var ringWaiter = testproc.Register("live-ring-waiter", func(args []string) error {
	return runChild(func() error {
		mode, holder := args[1], atoi(args[2])
		var r *shmring.Ring[uint64]
		info, err := waiterSetup(mode, holder, func() (err error) {
			r, err = shmring.Open[uint64](args[0])
			return err
		})
		if err != nil {
			return err
		}
		reply("ready %s", info)
		for cmd := range commands() {
			f := strings.Fields(cmd)
			if len(f) != 2 {
				return fmt.Errorf("bad command %q", cmd)
			}
			d := time.Duration(atoi(f[1])) * time.Millisecond
			t0 := time.Now()
			switch f[0] {
			case "claim":
				tries, taken := 0, 0
				var last error
				for time.Since(t0) < d {
					tries++
					slots, err := r.Claim(1)
					if err == nil {
						slots[0] = 666
						_ = r.Publish(1)
						reply("claim stole the role after %d tries, %v %s", tries, time.Since(t0), checkState(mode))
						break
					}
					last = err
					if errors.Is(err, shmring.ErrRoleTaken) {
						taken++
					}
					time.Sleep(20 * time.Millisecond)
				}
				if last != nil && tries > 0 {
					reply("claim tries=%d taken=%d last=%s %s", tries, taken, errText(last), checkState(mode))
				}
			case "takeover":
				var err error
				for {
					var slots []uint64
					if slots, err = r.Claim(1); err == nil {
						slots[0] = 1000
						err = r.Publish(1)
						break
					}
					if time.Since(t0) > d {
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
				reply("takeover err=%s ms=%d %s", errText(err), time.Since(t0).Milliseconds(), checkState(mode))
			default:
				return fmt.Errorf("bad command %q", cmd)
			}
		}
		return nil
	})
})

func TestLivenessRingRole(t *testing.T) {
	for _, mode := range []string{"fdfull", "hidepid"} {
		t.Run(mode, func(t *testing.T) { testLivenessRingRole(t, mode) })
	}
}

func testLivenessRingRole(t *testing.T, mode string) {
	spec, r := newLiveRing(t)
	uid := 0
	if mode == "hidepid" {
		uid = holderUID
	}
	h := mustStart(t, ringHolder, nil, spec, strconv.Itoa(uid))
	h.expect("producer", 20*time.Second)
	w := startWaiter(t, ringWaiter, mode, spec, h.p.Pid())

	producer := func() shmring.RoleHolder {
		t.Helper()
		st, err := r.Stats()
		if err != nil {
			t.Fatal(err)
		}
		return st.Producer
	}
	pop := func(want uint64) {
		t.Helper()
		ctx, cancel := timeoutCtx(10 * time.Second)
		defer cancel()
		v, err := r.Pop(ctx)
		if err != nil || v != want {
			t.Fatalf("Pop = %d, %v; want %d", v, err, want)
		}
	}

	// 1. A live holder: every claim fails with ErrRoleTaken.
	w.send(fmt.Sprintf("claim %d", waitFor.Milliseconds()))
	l := w.expect("claim", 20*time.Second)
	wantStateOK(t, l)
	tries, taken := atoi(field(l, "tries")), atoi(field(l, "taken"))
	if tries < 5 || taken != tries {
		t.Fatalf("waiter against a live producer: %s; want every claim to fail with ErrRoleTaken", l)
	}
	if p := producer(); p.PID != int32(h.p.Pid()) || !p.Alive {
		t.Fatalf("producer role after the waiter's claims: %v, want live holder %d", p, h.p.Pid())
	}

	// 2. The holder still owns the role: its pushes go through, in order.
	h.send("push 2")
	if l := h.expect("push", 10*time.Second); l != "nil" {
		t.Fatalf("holder's Push after the waiter's claims: %s", l)
	}
	pop(1)
	pop(2)

	// 3. Once the holder is SIGKILLed (and reaped: its PID is gone) the
	// waiter takes the role over, state unchanged.
	h.kill()
	w.send("takeover 10000")
	l = w.expect("takeover", 20*time.Second)
	wantStateOK(t, l)
	if e := field(l, "err"); e != "nil" {
		t.Fatalf("waiter could not take over the dead holder's role: %s", l)
	}
	t.Logf("takeover: %s", l)
	pop(1000)
	if p := producer(); p.PID != int32(w.p.Pid()) {
		t.Fatalf("producer role after takeover: %v, want waiter %d", p, w.p.Pid())
	}
}
