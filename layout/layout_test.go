package layout_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	shsync "github.com/shmkit/shmkit/sync"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { testproc.Main(m) }

// posixSpec returns a fresh POSIX segment name removed at cleanup.
func posixSpec(t *testing.T) string {
	spec := "posix:/" + testproc.UniqueName("layout")
	t.Cleanup(func() { _ = segment.Remove(spec) })
	return spec
}

func fileSpec(t *testing.T) (spec, path string) {
	path = filepath.Join(t.TempDir(), "seg")
	return "file:" + path, path
}

func TestHeaderLayout(t *testing.T) {
	var h layout.Header
	// The format is fixed: these offsets are what other builds read.
	require.Equal(t, uintptr(0), unsafe.Offsetof(h.Magic))
	require.Equal(t, uintptr(8), unsafe.Offsetof(h.Version))
	require.Equal(t, uintptr(16), unsafe.Offsetof(h.Kind))
	require.Equal(t, uintptr(32), unsafe.Offsetof(h.SegmentSize))
	require.Equal(t, uintptr(48), unsafe.Offsetof(h.Creator))
	require.Equal(t, uintptr(136), unsafe.Offsetof(h.Params))
	require.Equal(t, uintptr(200), unsafe.Offsetof(h.Regions))
	require.Equal(t, uintptr(328), unsafe.Offsetof(h.Checksum))
	require.Equal(t, uintptr(336), unsafe.Offsetof(h.State))
	require.Equal(t, 464, layout.HeaderSize)
	require.Equal(t, uintptr(464), unsafe.Sizeof(h))
	require.Zero(t, unsafe.Offsetof(h.State)%4, "State is an atomic word")
	require.Zero(t, unsafe.Offsetof(h.Creator.Start)%8)
}

type Order struct {
	ID    uint64
	Side  uint8
	Price float64
	Qty   int32
	Sym   [8]byte
}

type OrderRenamed struct {
	ID    uint64
	Side  uint8
	Price float64
	Qty   int32
	Sym   [8]byte
}

type OrderReordered struct {
	Side  uint8
	ID    uint64
	Price float64
	Qty   int32
	Sym   [8]byte
}

type withAtomics struct {
	N    atomic.Int64
	Flag atomic.Bool
	Arr  [4]atomic.Uint32
}

func TestTypeRulesAccept(t *testing.T) {
	for _, ty := range []reflect.Type{
		reflect.TypeFor[uint8](), reflect.TypeFor[int](), reflect.TypeFor[complex128](),
		reflect.TypeFor[[16]float32](), reflect.TypeFor[Order](),
		reflect.TypeFor[withAtomics](), reflect.TypeFor[struct{}](),
		reflect.TypeFor[struct {
			A [2]struct{ X, Y int16 }
			_ [4]byte
		}](),
	} {
		ti, err := layout.Describe(ty)
		require.NoError(t, err, ty.String())
		require.Equal(t, uint64(ty.Size()), ti.Size)
		require.NotZero(t, ti.Fingerprint)
	}
}

func TestTypeRulesReject(t *testing.T) {
	type inner struct {
		OK  uint32
		Bad *int
	}
	type nested struct {
		A  uint64
		In [3]inner
	}
	cases := []struct {
		ty   reflect.Type
		path string
	}{
		{reflect.TypeFor[*int](), "T"},
		{reflect.TypeFor[string](), "T"},
		{reflect.TypeFor[[]byte](), "T"},
		{reflect.TypeFor[map[int]int](), "T"},
		{reflect.TypeFor[chan int](), "T"},
		{reflect.TypeFor[func()](), "T"},
		{reflect.TypeFor[any](), "T"},
		{reflect.TypeFor[uintptr](), "T"},
		{reflect.TypeFor[unsafe.Pointer](), "Pointer"},
		{reflect.TypeFor[nested](), "nested.In[*].Bad"},
		{reflect.TypeFor[struct{ S string }](), "T.S"},
		{reflect.TypeFor[struct{ P atomic.Pointer[int] }](), "T.P._[*]"},
		{reflect.TypeFor[struct{ V atomic.Value }](), "T.V.v"},
		{reflect.TypeFor[struct{ T time.Time }](), "T.T.loc"},
		{reflect.TypeFor[struct{ U atomic.Uintptr }](), "T.U.v"},
	}
	for _, c := range cases {
		_, err := layout.Describe(c.ty)
		require.ErrorIs(t, err, layout.ErrUnsupportedType, c.ty.String())
		var te *layout.TypeError
		require.True(t, errors.As(err, &te))
		require.Equal(t, c.path, te.Path, c.ty.String())
		require.Contains(t, err.Error(), c.path)
	}
	_, err := layout.Describe(nil)
	require.ErrorIs(t, err, layout.ErrUnsupportedType)
}

// Tick and TickFrame are shared types that carry a bool (refused: a peer
// can store any byte in it).
type Tick struct {
	Seq  uint64
	Live bool
}

type TickFrame struct {
	N     uint32
	Ticks [4]Tick
}

type flag bool

func TestTypeRulesRejectBool(t *testing.T) {
	const why = " is a bool: a peer can store any byte in it; use uint8"
	cases := []struct {
		ty   reflect.Type
		path string
	}{
		{reflect.TypeFor[bool](), "T"},
		{reflect.TypeFor[flag](), "flag"},
		{reflect.TypeFor[Tick](), "Tick.Live"},
		{reflect.TypeFor[TickFrame](), "TickFrame.Ticks[*].Live"},
		{reflect.TypeFor[[8]bool](), "T[*]"},
		{reflect.TypeFor[[0]bool](), "T[*]"},
		{reflect.TypeFor[struct {
			A uint8
			F flag
		}](), "T.F"},
		{reflect.TypeFor[struct {
			A [2]struct{ Flags [3]bool }
		}](), "T.A[*].Flags[*]"},
	}
	for _, c := range cases {
		_, err := layout.Describe(c.ty)
		require.ErrorIs(t, err, layout.ErrUnsupportedType, c.ty.String())
		var te *layout.TypeError
		require.True(t, errors.As(err, &te), c.ty.String())
		require.Equal(t, c.path, te.Path, c.ty.String())
		require.Equal(t, "shmkit: unsupported type "+c.ty.String()+": "+c.path+why, err.Error())
	}
	_, err := layout.DescribeOf[Tick]()
	require.EqualError(t, err, "shmkit: unsupported type layout_test.Tick: Tick.Live"+why)

	// The structures refuse it at Create and Open, before touching a
	// segment.
	spec := posixSpec(t)
	_, err = layout.CreateValue[Tick](spec)
	require.ErrorIs(t, err, layout.ErrUnsupportedType)
	_, err = layout.OpenValue[Tick](spec)
	require.ErrorIs(t, err, layout.ErrUnsupportedType)
	_, err = segment.Open(spec)
	require.ErrorIs(t, err, fs.ErrNotExist, "a refused Create made no segment")
}

// The process-shared primitives are made of sized integers (no bool), and
// atomic.Bool is a uint32 read as v != 0: all are accepted.
func TestTypeRulesAcceptSyncTypes(t *testing.T) {
	type counters struct {
		Mu   shsync.Mutex
		Sem  shsync.Semaphore
		Note shsync.Notifier
		Seq  shsync.SeqCount
		On   atomic.Bool
		N    uint64
	}
	ti, err := layout.DescribeOf[counters]()
	require.NoError(t, err)
	require.NotContains(t, ti.Layout, "bool")
}

func TestStdlibSyncRejected(t *testing.T) {
	type bad struct {
		Mu   struct{ X int32 }
		Real [0]func()
	}
	_, err := layout.Describe(reflect.TypeFor[bad]())
	require.ErrorIs(t, err, layout.ErrUnsupportedType, "a zero-length array of funcs still names a func type")
	_, err = layout.Describe(reflect.TypeFor[struct{ M syncMutex }]())
	require.ErrorIs(t, err, layout.ErrUnsupportedType)
	require.Contains(t, err.Error(), "shmkit/sync")
}

func TestFingerprint(t *testing.T) {
	a, err := layout.DescribeOf[Order]()
	require.NoError(t, err)
	b, err := layout.DescribeOf[OrderRenamed]()
	require.NoError(t, err)
	c, err := layout.DescribeOf[OrderReordered]()
	require.NoError(t, err)
	require.Equal(t, a.Fingerprint, b.Fingerprint, "the type's name is not part of the fingerprint")
	require.NotEqual(t, a.Name, b.Name)
	require.NotEqual(t, a.Fingerprint, c.Fingerprint, "field order changes the layout")
	require.Contains(t, a.Layout, "Price float64@16")
	pa, err := layout.ParseLayout(a.Layout)
	require.NoError(t, err)
	require.Equal(t, layout.LayoutField{Name: "Price", Type: &layout.LayoutType{Text: "float64", Size: 8}, Off: 16}, pa.Type.Fields[2])
	i1, _ := layout.DescribeOf[int32]()
	u1, _ := layout.DescribeOf[uint32]()
	require.NotEqual(t, i1.Fingerprint, u1.Fingerprint, "kinds are part of the fingerprint")
}

var valueChild = testproc.Register("layout-value-add", func(args []string) error {
	v, err := layout.OpenValue[withAtomics](args[0])
	if err != nil {
		return err
	}
	defer v.Close()
	n, _ := strconv.Atoi(args[1])
	for range n {
		v.Ptr().N.Add(1)
	}
	v.Ptr().Arr[2].Store(0xfeed)
	return nil
})

func TestValueAcrossProcesses(t *testing.T) {
	spec := posixSpec(t)
	v, err := layout.CreateValue[withAtomics](spec)
	require.NoError(t, err)
	defer v.Close()
	p1 := valueChild.Start(t, spec, "1000")
	p2 := valueChild.Start(t, spec, "1000")
	require.NoError(t, p1.Wait(time.Minute), p1.Output())
	require.NoError(t, p2.Wait(time.Minute), p2.Output())
	require.Equal(t, int64(2000), v.Ptr().N.Load())
	require.Equal(t, uint32(0xfeed), v.Ptr().Arr[2].Load())
	h := v.Segment().Header()
	require.Equal(t, layout.KindValue, h.Kind)
	require.Equal(t, int32(os.Getpid()), h.Creator.PID)
}

func TestOpenWrongType(t *testing.T) {
	spec := posixSpec(t)
	v, err := layout.CreateValue[Order](spec)
	require.NoError(t, err)
	defer v.Close()

	_, err = layout.OpenValue[OrderReordered](spec)
	require.ErrorIs(t, err, layout.ErrTypeMismatch)
	require.Contains(t, err.Error(), "layout_test.Order ")
	require.Contains(t, err.Error(), "layout_test.OrderReordered ")
	require.Contains(t, err.Error(), "T.Side: segment has field ID uint64 at offset 0, caller Side uint8 at offset 0",
		"the mismatch names the first differing field")

	w, err := layout.OpenValue[OrderRenamed](spec)
	require.NoError(t, err, "same layout under another name opens")
	require.NoError(t, w.Close())

	_, err = layout.Open(spec, layout.Expect{Kind: layout.KindRing})
	require.ErrorIs(t, err, layout.ErrTypeMismatch)
	require.Contains(t, err.Error(), "holds a value, opened as a ring")

	_, err = layout.OpenValue[struct{ S string }](spec)
	require.ErrorIs(t, err, layout.ErrUnsupportedType)
}

func TestCreateExisting(t *testing.T) {
	spec := posixSpec(t)
	v, err := layout.CreateValue[Order](spec)
	require.NoError(t, err)
	defer v.Close()
	_, err = layout.CreateValue[Order](spec)
	require.ErrorIs(t, err, os.ErrExist)
	_, err = layout.OpenValue[Order](posixSpec(t))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// TestEveryHeaderByteFlipped flips each byte of the header and type
// descriptions in turn: every open must fail with a sentinel error (or
// succeed, for the reserved bytes after State), never panic.
func TestEveryHeaderByteFlipped(t *testing.T) {
	spec, path := fileSpec(t)
	v, err := layout.CreateValue[Order](spec)
	require.NoError(t, err)
	h := *v.Segment().Header()
	require.NoError(t, v.Close())

	img, err := os.ReadFile(path)
	require.NoError(t, err)
	stateOff := int(unsafe.Offsetof(h.State))
	end := int(h.TypeDescOff + h.TypeDescLen)
	sentinels := []error{layout.ErrBadMagic, layout.ErrVersion, layout.ErrCorrupt, layout.ErrTooSmall, layout.ErrNotReady}
	for off := range end {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			mut := append([]byte(nil), img...)
			mut[off] ^= mask
			require.NoError(t, os.WriteFile(path, mut, 0o600))
			w, err := layout.OpenValue[Order](spec, layout.WithInitTimeout(time.Millisecond))
			if off >= stateOff+4 && off < layout.HeaderSize {
				require.NoError(t, err, "reserved byte %d", off)
				require.NoError(t, w.Close())
				continue
			}
			require.Error(t, err, "byte %d ^ %#x accepted", off, mask)
			matched := false
			for _, s := range sentinels {
				matched = matched || errors.Is(err, s)
			}
			require.True(t, matched, "byte %d ^ %#x: %v", off, mask, err)
		}
	}
}

func TestTruncated(t *testing.T) {
	spec, path := fileSpec(t)
	v, err := layout.CreateValue[[4096]byte](spec)
	require.NoError(t, err)
	require.NoError(t, v.Close())
	require.NoError(t, os.Truncate(path, int64(layout.HeaderSize+100)))
	_, err = layout.OpenValue[[4096]byte](spec)
	require.ErrorIs(t, err, layout.ErrTooSmall)
	require.Contains(t, err.Error(), "header says")
	require.NoError(t, os.Truncate(path, 100))
	_, err = layout.OpenValue[[4096]byte](spec)
	require.ErrorIs(t, err, layout.ErrTooSmall)
}

func TestZeroLengthObject(t *testing.T) {
	spec, path := fileSpec(t)
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	start := time.Now()
	_, err := layout.OpenValue[Order](spec, layout.WithInitTimeout(50*time.Millisecond))
	require.ErrorIs(t, err, layout.ErrTooSmall)
	require.ErrorIs(t, err, layout.ErrNotReady)
	require.Less(t, time.Since(start), 10*time.Second)
}

func TestForeignObject(t *testing.T) {
	spec, path := fileSpec(t)
	junk := make([]byte, 8192)
	for i := range junk {
		junk[i] = byte(i*7 + 3)
	}
	require.NoError(t, os.WriteFile(path, junk, 0o600))
	_, err := layout.OpenValue[Order](spec)
	require.ErrorIs(t, err, layout.ErrBadMagic)

	require.NoError(t, os.WriteFile(path, make([]byte, 8192), 0o600))
	_, err = layout.OpenValue[Order](spec, layout.WithInitTimeout(20*time.Millisecond))
	require.ErrorIs(t, err, layout.ErrNotReady, "a fresh all-zero object may be one whose creator has not started: see TestNotShmkitSaidAtOnce")
}

var createChild = testproc.Register("layout-create", func(args []string) error {
	v, err := layout.CreateValue[Order](args[0])
	if err != nil {
		return err
	}
	return v.Close()
})

// TestCreatorKilledWhileInitializing kills a creator inside the init window
// (a real SIGKILL at a named point): an opener must report the dead creator
// at once instead of waiting or hanging.
func TestCreatorKilledWhileInitializing(t *testing.T) {
	spec := posixSpec(t)
	cmd := createChild.Command(t, spec)
	cmd.Env = append(cmd.Env, crashpoint.Arm("layout.initializing", 1))
	p := testproc.StartCmd(t, cmd)
	err := p.Wait(time.Minute)
	require.Error(t, err, "child must die by SIGKILL")
	require.Contains(t, err.Error(), "killed")

	start := time.Now()
	_, err = layout.OpenValue[Order](spec, layout.WithInitTimeout(time.Minute))
	require.ErrorIs(t, err, layout.ErrNotReady)
	require.Contains(t, err.Error(), fmt.Sprintf("creator pid %d died", p.Pid()))
	require.Less(t, time.Since(start), 30*time.Second, "a dead creator is reported without waiting out the timeout")
}

func TestCreateRejectsBadDesc(t *testing.T) {
	spec := posixSpec(t)
	_, err := layout.Create(spec, layout.Desc{Kind: 99}, nil)
	require.Error(t, err)
	_, err = layout.Create(spec, layout.Desc{Kind: layout.KindRing, Regions: []layout.Region{{Size: 8, Align: 3}}}, nil)
	require.ErrorContains(t, err, "alignment")
	_, err = layout.Create(spec, layout.Desc{Kind: layout.KindRing, Regions: []layout.Region{{Size: 1 << 62}}}, nil)
	require.ErrorContains(t, err, "too large")
	initErr := errors.New("init failed")
	_, err = layout.Create(spec, layout.Desc{Kind: layout.KindRing}, func(*layout.Segment) error { return initErr })
	require.ErrorIs(t, err, initErr)
	_, err = segment.Open(spec)
	require.ErrorIs(t, err, os.ErrNotExist, "a failed create removes what it made")
}

// TestPeek: the decoder tools use on a copy of a segment's bytes agrees with
// Open, and says what a segment that Open refuses holds.
func TestPeek(t *testing.T) {
	spec, path := fileSpec(t)
	v, err := layout.CreateValue[Order](spec)
	require.NoError(t, err)
	require.NoError(t, v.Close())
	s, err := layout.Open(spec, layout.Expect{Kind: layout.KindValue})
	require.NoError(t, err)
	defer s.Close()
	img, err := os.ReadFile(path)
	require.NoError(t, err)

	h, types, err := layout.Peek(img, len(img))
	require.NoError(t, err)
	require.Equal(t, *s.Header(), *h)
	require.Equal(t, s.Types(), types)

	// Every byte flipped: Peek fails with a sentinel where Open does, and
	// never panics.
	end := int(h.TypeDescOff + h.TypeDescLen)
	for off := range end {
		mut := append([]byte(nil), img...)
		mut[off] ^= 0x80
		_, _, err := layout.Peek(mut, len(mut))
		if off >= int(unsafe.Offsetof(h.State))+4 && off < layout.HeaderSize {
			require.NoError(t, err, "reserved byte %d", off)
			continue
		}
		require.Error(t, err, "byte %d", off)
	}
	// A bad checksum: the header is still returned, for display.
	mut := append([]byte(nil), img...)
	mut[unsafe.Offsetof(h.Capacity)] ^= 1
	h2, types2, err := layout.Peek(mut, len(mut))
	require.ErrorIs(t, err, layout.ErrCorrupt)
	require.NotNil(t, h2)
	require.Equal(t, s.Types(), types2, "descriptions decode though the header fails")

	// Header written, state word zero: impossible for a creator.
	mut = append([]byte(nil), img...)
	copy(mut[unsafe.Offsetof(h.State):], []byte{0, 0, 0, 0})
	h2, _, err = layout.Peek(mut, len(mut))
	require.ErrorIs(t, err, layout.ErrCorrupt)
	require.NotNil(t, h2)

	// Too short: with the magic it is a damaged segment, without it not one.
	_, _, err = layout.Peek(img[:100], 100)
	require.ErrorIs(t, err, layout.ErrTooSmall)
	require.NotErrorIs(t, err, layout.ErrBadMagic)
	_, _, err = layout.Peek(make([]byte, 100), 100)
	require.ErrorIs(t, err, layout.ErrTooSmall)
	require.ErrorIs(t, err, layout.ErrBadMagic)

	// Foreign and all-zero objects.
	h2, _, err = layout.Peek(make([]byte, 8192), 8192)
	require.ErrorIs(t, err, layout.ErrBadMagic)
	require.Nil(t, h2)
	junk := make([]byte, 8192)
	for i := range junk {
		junk[i] = byte(i*7 + 3)
	}
	h2, _, err = layout.Peek(junk, len(junk))
	require.ErrorIs(t, err, layout.ErrBadMagic)
	require.Nil(t, h2)

	// Half-initialized by a creator killed in the init window.
	hspec, hpath := fileSpec(t)
	cmd := createChild.Command(t, hspec)
	cmd.Env = append(cmd.Env, crashpoint.Arm("layout.initializing", 1))
	p := testproc.StartCmd(t, cmd)
	require.Error(t, p.Wait(time.Minute))
	half, err := os.ReadFile(hpath)
	require.NoError(t, err)
	h2, _, err = layout.Peek(half, len(half))
	require.ErrorIs(t, err, layout.ErrNotReady)
	require.NotNil(t, h2)
	require.Equal(t, int32(p.Pid()), h2.Creator.PID)
	require.Equal(t, layout.StateInitializing, h2.State)
}
