package fuzz_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/shmkit/shmkit/internal/proc"
	shmsync "github.com/shmkit/shmkit/sync"
)

// Fuzz workers are processes that the fuzzing engine stops with SIGINT and
// then SIGKILL when they overrun a minimization budget, so a worker's
// t.Cleanup does not always run. Everything a fuzz target makes outside the
// process is therefore named after the worker, and each worker sweeps away
// what dead workers left behind before it starts.

// fuzzWorkerDir returns a directory for this worker's file: segments,
// os.TempDir()/shmkit-fuzz/<pid>-<start>, removing the directories of
// workers that are no longer alive.
func fuzzWorkerDir(f *testing.F) string {
	base := filepath.Join(os.TempDir(), "shmkit-fuzz")
	if entries, err := os.ReadDir(base); err == nil {
		for _, e := range entries {
			var id proc.ID
			if _, err := fmt.Sscanf(e.Name(), "%d-%d", &id.PID, &id.Start); err != nil || !proc.Alive(id) {
				_ = os.RemoveAll(filepath.Join(base, e.Name()))
			}
		}
	}
	me := proc.Self()
	dir := filepath.Join(base, fmt.Sprintf("%d-%d", me.PID, me.Start))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// fuzzSemKeyTag marks the SysV keys of semaphore sets made by fuzz
// workers: tag<<24 | pid (pids are below 2^22 on Linux).
const fuzzSemKeyTag = 0x5f

// fuzzWorkerSemKey returns the SysV key this worker's queues use, after
// removing sets left under such keys by workers that are gone (and any
// left under this worker's own key by a dead process with the same pid).
func fuzzWorkerSemKey(f *testing.F) int32 {
	me := int32(os.Getpid())
	key := fuzzSemKeyTag<<24 | me
	file, err := os.Open("/proc/sysvipc/sem")
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Scan() // header line
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		k, err1 := strconv.ParseInt(fields[0], 10, 64)
		id, err2 := strconv.Atoi(fields[1])
		if err1 != nil || err2 != nil || k>>24 != fuzzSemKeyTag {
			continue
		}
		pid := int32(k & 0xffffff)
		if pid != me && proc.Alive(proc.ID{PID: pid}) {
			continue
		}
		if s, err := shmsync.OpenSemSetID(id); err == nil {
			_ = s.Remove()
		}
	}
	return key
}
