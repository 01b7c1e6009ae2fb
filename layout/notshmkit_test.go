package layout_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"github.com/shmkit/shmkit/internal/proc"
	"github.com/shmkit/shmkit/layout"
	"github.com/stretchr/testify/require"
)

// Objects that are not shmkit segments are named as such at once, with
// their first bytes, instead of "segment too small" or a wait for a creator
// that does not exist. Only a header that a live creator is initializing
// (or an empty or all-zero object made a moment ago, which a creator is
// about to write) is waited for.
func TestNotShmkitSaidAtOnce(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, b, 0o600))
		return "file:" + path
	}
	magicThenZeros := make([]byte, 8192)
	copy(magicThenZeros, layout.Magic[:])
	text := write("notes.txt", []byte("hello world, not shared memory\n"))
	bigText := write("big.txt", []byte(fmt.Sprintf("%8192s", "hello")))
	zeros := write("zeros", make([]byte, 8192))
	empty := write("empty", nil)
	magic := write("magic", magicThenZeros)

	// A header being initialized by a live creator (this process): the
	// creator's identity and the Initializing state word, nothing else.
	var h layout.Header
	me := proc.Self()
	h.Creator = layout.ProcRecord{PID: me.PID, Start: me.Start}
	h.State = layout.StateInitializing
	img := make([]byte, 8192)
	copy(img, unsafe.Slice((*byte)(unsafe.Pointer(&h)), unsafe.Sizeof(h)))
	initializing := write("initializing", img)

	// Fresh, an empty or all-zero object may be one whose creator is
	// about to size it or write its header: Open waits.
	start := time.Now()
	_, err := layout.OpenValue[Order](zeros, layout.WithInitTimeout(100*time.Millisecond))
	require.ErrorIs(t, err, layout.ErrNotReady)
	require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)

	time.Sleep(layout.CreatorGrace + 100*time.Millisecond) // ctime cannot be set back

	cases := []struct {
		spec string
		want string
	}{
		{text, `shmkit: bad magic (not a shmkit segment): first bytes are 68 65 6c 6c 6f 20 77 6f 72 6c 64 2c 20 6e 6f 74 ("hello world, not") (a shmkit segment begins with "SHMKIT\x00\x01")`},
		{bigText, `shmkit: bad magic (not a shmkit segment): first bytes are 20 20 20 20`},
		{zeros, `shmkit: bad magic (not a shmkit segment): its first 8192 bytes are all zero`},
		{empty, `shmkit: bad magic (not a shmkit segment): the object is empty (0 bytes) and was last changed`},
		{magic, `shmkit: bad magic (not a shmkit segment): it begins with the shmkit magic "SHMKIT\x00\x01" but no header follows (the next 8184 bytes are zero)`},
	}
	for _, c := range cases {
		start := time.Now()
		_, err := layout.OpenValue[Order](c.spec) // the default 2 s init timeout
		require.ErrorIs(t, err, layout.ErrBadMagic, c.spec)
		require.NotErrorIs(t, err, layout.ErrNotReady, c.spec)
		require.Contains(t, err.Error(), "layout: open "+c.spec+": "+c.want)
		require.NotContains(t, err.Error(), "too small", c.spec)
		require.Less(t, time.Since(start), 500*time.Millisecond, "%s: no wait for a creator: %v", c.spec, err)
	}

	// A live creator's Initializing header is waited for, however old.
	start = time.Now()
	_, err = layout.OpenValue[Order](initializing, layout.WithInitTimeout(300*time.Millisecond))
	require.ErrorIs(t, err, layout.ErrNotReady)
	require.Contains(t, err.Error(), fmt.Sprintf("creator pid %d still initializing after 300ms", me.PID))
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)

	// Peek (shmctl) says the same.
	for _, b := range [][]byte{make([]byte, 8192), magicThenZeros, []byte("hello")} {
		hd, _, err := layout.Peek(b, len(b))
		require.Nil(t, hd)
		require.ErrorIs(t, err, layout.ErrBadMagic)
		require.Contains(t, err.Error(), "(not a shmkit segment): ")
		require.NotContains(t, err.Error(), "no shmkit header written")
	}
}

// An Open racing a creator in another process (so seeing the object empty,
// all zero, or half-written) waits for it and never takes it for a foreign
// object.
func TestOpenRacingCreatorWaits(t *testing.T) {
	for i := range 20 {
		spec := posixSpec(t)
		p := createChild.Start(t, spec)
		var err error
		for {
			var v *layout.Value[Order]
			v, err = layout.OpenValue[Order](spec)
			if err == nil {
				require.NoError(t, v.Close())
				break
			}
			if !errors.Is(err, fs.ErrNotExist) {
				break
			}
		}
		require.NoError(t, err, "round %d", i)
		require.NoError(t, p.Wait(time.Minute))
	}
}
