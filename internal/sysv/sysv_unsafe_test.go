package sysv

import (
	"encoding/binary"
	"errors"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func newSet(t *testing.T, n int) int {
	id, err := Semget(IPC_PRIVATE, n, IPC_CREAT|0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Semctl(id, 0, IPC_RMID, 0) })
	return id
}

func TestSemaphores(t *testing.T) {
	id := newSet(t, 3)
	if err := SemctlSetAll(id, []uint16{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	vals := make([]uint16, 3)
	if err := SemctlGetAll(id, vals); err != nil || vals[0] != 1 || vals[2] != 3 {
		t.Fatalf("GetAll = %v, %v", vals, err)
	}
	if err := Semop(id, []Sembuf{{Num: 0, Op: -1}, {Num: 2, Op: -3}}); err != nil {
		t.Fatal(err)
	}
	if v, err := Semctl(id, 2, GETVAL, 0); v != 0 || err != nil {
		t.Fatalf("GETVAL = %d, %v", v, err)
	}
	if err := Semop(id, []Sembuf{{Num: 0, Op: -1, Flg: IPC_NOWAIT}}); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("NOWAIT on 0 = %v", err)
	}
	start := time.Now()
	if err := Semtimedop(id, []Sembuf{{Num: 0, Op: -1}}, 20*time.Millisecond); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("timed out op = %v", err)
	}
	if time.Since(start) < 15*time.Millisecond {
		t.Fatal("semtimedop returned early")
	}
	if _, err := Semctl(id, 1, SETVAL, 7); err != nil {
		t.Fatal(err)
	}
	ds, err := SemctlStat(id)
	if err != nil || ds.Nsems != 3 || ds.Perm.Mode&0o777 != 0o600 {
		t.Fatalf("IPC_STAT = %+v, %v", ds, err)
	}
	if _, err := Semctl(id, 0, IPC_RMID, 0); err != nil {
		t.Fatal(err)
	}
	if err := Semop(id, []Sembuf{{Num: 0, Op: 1}}); !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EIDRM) {
		t.Fatalf("op on removed set = %v", err)
	}
}

func TestMessages(t *testing.T) {
	id, err := Msgget(IPC_PRIVATE, IPC_CREAT|0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer MsgctlRmid(id)
	msg := make([]byte, 8+5)
	binary.NativeEndian.PutUint64(msg, 7)
	copy(msg[8:], "hello")
	if err := Msgsnd(id, msg, 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8+64)
	n, err := Msgrcv(id, buf, 0, 0)
	if err != nil || n != 5 || string(buf[8:8+n]) != "hello" || binary.NativeEndian.Uint64(buf) != 7 {
		t.Fatalf("Msgrcv = %d %q, %v", n, buf[8:8+n], err)
	}
	if _, err := Msgrcv(id, buf, 0, IPC_NOWAIT); !errors.Is(err, unix.ENOMSG) {
		t.Fatalf("empty queue NOWAIT = %v", err)
	}
}

func TestLayout(t *testing.T) {
	if s := unsafe.Sizeof(Sembuf{}); s != 6 {
		t.Errorf("Sembuf is %d bytes, want 6 (struct sembuf)", s)
	}
	want := map[string]uintptr{"amd64": 104, "arm64": 88}[runtime.GOARCH]
	if s := unsafe.Sizeof(SemidDS{}); s != want {
		t.Errorf("SemidDS is %d bytes on %s, want %d (struct semid64_ds)", s, runtime.GOARCH, want)
	}
	if o := unsafe.Offsetof(SemidDS{}.Perm); o != 0 {
		t.Errorf("Perm at %d", o)
	}
	if s := unsafe.Sizeof(unix.SysvIpcPerm{}); s != 48 {
		t.Errorf("SysvIpcPerm is %d bytes, want 48 (struct ipc64_perm)", s)
	}
}
