package shmqueue

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmkit/shmkit/sync"
)

// ipcrm runs the real util-linux ipcrm (another process removes the set).
func ipcrm(t *testing.T, args ...string) {
	t.Helper()
	path, err := exec.LookPath("ipcrm")
	if err != nil {
		t.Skip("ipcrm (util-linux) is not installed")
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	require.NoError(t, err, "ipcrm %q: %s", args, out)
}

// TestSemSetRemovedByIpcrm: another tool removes a SysV queue's semaphore
// set. Every operation of a live handle (including one parked waiting),
// Open and Stats then say so, naming the set, with ErrSemRemoved (not
// ErrClosed, not ErrCorrupt); Remove still cleans up the segment.
func TestSemSetRemovedByIpcrm(t *testing.T) {
	for _, byKey := range []bool{true, false} {
		t.Run(fmt.Sprintf("byKey=%v", byKey), func(t *testing.T) {
			var opts []Option
			key := int32(0x5e000000 | int32(time.Now().UnixNano()&0xffffff))
			if byKey {
				opts = append(opts, WithSysVKey(key))
			}
			q, spec := create[uint64](t, 4, append(opts, WithBackend(BackendSysV))...)
			require.NoError(t, q.TryPush(1))
			st, err := q.Stats()
			require.NoError(t, err)
			require.False(t, st.SemRemoved)
			id := st.SemID
			name := "id " + strconv.Itoa(id)
			if byKey {
				require.Equal(t, key, st.SemKey)
				name = fmt.Sprintf("key %#x id %d", uint32(key), id)
			}

			// A consumer parked on an empty queue notices too.
			q2, err := Open[uint64](spec)
			require.NoError(t, err)
			t.Cleanup(func() { _ = q2.Close() })
			_, err = q2.Pop(context.Background())
			require.NoError(t, err)
			parked := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				_, err := q2.Pop(ctx)
				parked <- err
			}()
			waitParked(t, q2, 0, 1)

			if byKey {
				ipcrm(t, "-S", fmt.Sprintf("%#x", uint32(key)))
			} else {
				ipcrm(t, "-s", strconv.Itoa(id))
			}
			select {
			case err := <-parked:
				require.ErrorIs(t, err, ErrSemRemoved)
			case <-time.After(10 * time.Second):
				t.Fatal("a parked Pop did not notice the removed set")
			}
			// An empty queue's TryPop reads head and tail and need not
			// touch the set: empty is the truth. Everything else fails.
			_, err = q.TryPop()
			require.ErrorIs(t, err, ErrEmpty)
			for _, err := range []error{q.TryPush(2), q.Push(context.Background(), 2), q.CloseWrites()} {
				require.ErrorIs(t, err, ErrSemRemoved)
				require.ErrorIs(t, err, sync.ErrRemoved)
				require.NotErrorIs(t, err, ErrClosed, "a consumer must not take it for closed-and-drained")
				require.NotErrorIs(t, err, ErrCorrupt)
				require.ErrorContains(t, err, "shmqueue: ")
				require.ErrorContains(t, err, spec)
				require.ErrorContains(t, err, "semaphore set "+name)
				require.ErrorContains(t, err, "shmctl rm")
			}
			st, err = q.Stats()
			require.NoError(t, err)
			require.True(t, st.SemRemoved)
			ins, err := Inspect(q.Segment())
			require.NoError(t, err)
			require.True(t, ins.SemRemoved)
			require.Equal(t, id, ins.SemID)

			_, err = Open[uint64](spec)
			require.ErrorIs(t, err, ErrSemRemoved)
			require.ErrorContains(t, err, "semaphore set "+name)

			require.NoError(t, q.Close())
			require.NoError(t, Remove(spec), "Remove cleans up what is left")
			_, err = Open[uint64](spec)
			require.Error(t, err)
		})
	}
}
