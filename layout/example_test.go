package layout_test

import (
	"fmt"
	"os"
	"sync/atomic"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
)

// Stats is a struct that lives in shared memory: fixed-size fields only,
// atomics for anything several processes update.
type Stats struct {
	Requests atomic.Uint64
	Errors   atomic.Uint64
	Started  int64
}

// One Stats shared by every process that opens the segment. The second
// handle stands for another process.
func ExampleValue() {
	spec := fmt.Sprintf("posix:/shmkit-example-value-%d", os.Getpid())
	v, err := layout.CreateValue[Stats](spec)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer segment.Remove(spec)
	defer v.Close()

	other, err := layout.OpenValue[Stats](spec) // in another process, typically
	if err != nil {
		fmt.Println(err)
		return
	}
	defer other.Close()

	other.Ptr().Requests.Add(3)
	other.Ptr().Errors.Add(1)
	fmt.Println("requests:", v.Ptr().Requests.Load(), "errors:", v.Ptr().Errors.Load())

	// A segment made for another type is refused, naming both layouts.
	_, err = layout.OpenValue[struct{ N int32 }](spec)
	fmt.Println("wrong type refused:", err != nil)
	// Output:
	// requests: 3 errors: 1
	// wrong type refused: true
}
