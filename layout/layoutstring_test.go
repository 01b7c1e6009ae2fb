package layout_test

import (
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/shmkit/shmkit/layout"
	"github.com/stretchr/testify/require"
)

// checkParsed compares a parsed layout with the Go type it describes.
func checkParsed(t *testing.T, lt *layout.LayoutType, ty reflect.Type, path string) {
	t.Helper()
	require.Equal(t, uint64(ty.Size()), lt.Size, path)
	switch ty.Kind() {
	case reflect.Struct:
		require.Equal(t, uint64(ty.Align()), lt.Align, path)
		require.Len(t, lt.Fields, ty.NumField(), path)
		for i := range ty.NumField() {
			f := ty.Field(i)
			require.Equal(t, f.Name, lt.Fields[i].Name, path)
			require.Equal(t, uint64(f.Offset), lt.Fields[i].Off, path+"."+f.Name)
			checkParsed(t, lt.Fields[i].Type, f.Type, path+"."+f.Name)
		}
	case reflect.Array:
		require.Equal(t, uint64(ty.Len()), lt.Len, path)
		require.NotNil(t, lt.Elem, path)
		checkParsed(t, lt.Elem, ty.Elem(), path+"[*]")
	default:
		require.Nil(t, lt.Elem, path)
		require.Empty(t, lt.Fields, path)
	}
}

// ParseLayout reads back exactly what Describe writes.
func TestParseLayoutRoundTrip(t *testing.T) {
	for _, ty := range []reflect.Type{
		reflect.TypeFor[uint8](), reflect.TypeFor[int](), reflect.TypeFor[uint](), reflect.TypeFor[complex128](),
		reflect.TypeFor[[16]float32](), reflect.TypeFor[Order](),
		reflect.TypeFor[withAtomics](), reflect.TypeFor[struct{}](), reflect.TypeFor[[0]struct{ A int8 }](),
		reflect.TypeFor[struct {
			A [2]struct{ X, Y int16 }
			_ [4]byte
			C [3][2]complex64
		}](),
	} {
		ti, err := layout.Describe(ty)
		require.NoError(t, err, ty.String())
		p, err := layout.ParseLayout(ti.Layout)
		require.NoError(t, err, ti.Layout)
		require.Equal(t, runtime.GOARCH, p.Arch)
		require.Contains(t, []string{"le", "be"}, p.Order)
		require.Equal(t, ti.Layout, p.Arch+"/"+p.Order+" "+p.Type.Text, "Text is the layout after its prefix")
		checkParsed(t, p.Type, ty, "T")
	}
}

func TestParseLayoutRejects(t *testing.T) {
	for _, bad := range []string{"", "amd64/le", "amd64/le struct{", "amd64/le [99999999999999999999]uint8",
		"amd64/le struct{A pointer@0}#8/8", "amd64/le struct{A uint8@x}#1/1", "amd64/le uint8 trailing",
		"amd64/le " + string(make([]byte, 100)), "amd64/le [1]" + strings.Repeat("[1]", 100) + "uint8",
		"amd64/le [4398046511104]struct{A uint64@0}#1024/8", "amd64 uint8", "amd64/xx uint8", "/le uint8",
		"amd64/le struct{A uint8@0 B uint8@1}#2/1", "amd64/le struct{}#1", "amd64/le [2]"} {
		_, err := layout.ParseLayout(bad)
		require.Error(t, err, "%q", bad)
	}
}

func TestLayoutFind(t *testing.T) {
	type inner struct{ X, Y int16 }
	type outer struct {
		A   uint8
		In  inner
		Arr [3]inner
	}
	ti, err := layout.DescribeOf[outer]()
	require.NoError(t, err)
	it, err := layout.DescribeOf[inner]()
	require.NoError(t, err)
	p, err := layout.ParseLayout(ti.Layout)
	require.NoError(t, err)
	pi, err := layout.ParseLayout(it.Layout)
	require.NoError(t, err)
	rt := reflect.TypeFor[outer]()
	in, _ := rt.FieldByName("In")
	arr, _ := rt.FieldByName("Arr")
	require.Equal(t, []layout.LayoutAt{
		{Path: "In", Off: uint64(in.Offset)},
		{Path: "Arr[0]", Off: uint64(arr.Offset)},
		{Path: "Arr[1]", Off: uint64(arr.Offset) + 4},
		{Path: "Arr[2]", Off: uint64(arr.Offset) + 8},
	}, p.Type.Find(pi.Type.Text, 10))
	require.Len(t, p.Type.Find(pi.Type.Text, 2), 2, "bounded")
	require.Equal(t, []layout.LayoutAt{{Path: "T", Off: 0}}, pi.Type.Find(pi.Type.Text, 10))
	require.Empty(t, p.Type.Find("float64", 10))
}
