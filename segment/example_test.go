package segment_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/shmkit/shmkit/segment"
)

// Create, open and remove a POSIX shared-memory object by spec string.
func Example() {
	spec := fmt.Sprintf("posix:/shmkit-example-segment-%d", os.Getpid())
	s, err := segment.Create(spec, 4096)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	copy(s.Bytes(), "hello")

	_, err = segment.Create(spec, 4096)
	fmt.Println("create again:", errors.Is(err, fs.ErrExist))

	o, err := segment.Open(spec) // in another process, typically
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(o.Bytes()[:5]), o.Size())
	o.Close()

	if err := segment.Remove(spec); err != nil {
		fmt.Println(err)
	}
	_, err = segment.Open(spec)
	fmt.Println("open after remove:", errors.Is(err, fs.ErrNotExist))
	// Output:
	// create again: true
	// hello 4096
	// open after remove: true
}
