package shmmap_test

import (
	"fmt"
	"os"
	"slices"

	"github.com/shmkit/shmkit/shmmap"
)

type SessionKey struct {
	User uint64
	Dev  uint16
}

type Session struct {
	Expires int64
	Hits    uint32
}

// A map shared by every process that opens the segment.
func ExampleMap() {
	spec := fmt.Sprintf("posix:/shmkit-example-map-%d", os.Getpid())
	m, err := shmmap.Create[SessionKey, Session](spec, 1000)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer shmmap.Remove(spec)
	defer m.Close()

	for u := range uint64(3) {
		if err := m.Put(SessionKey{User: u, Dev: 1}, Session{Expires: 1000 + int64(u)}); err != nil {
			fmt.Println(err)
			return
		}
	}
	other, err := shmmap.Open[SessionKey, Session](spec) // in another process, typically
	if err != nil {
		fmt.Println(err)
		return
	}
	defer other.Close()

	s, ok := other.Get(SessionKey{User: 1, Dev: 1})
	fmt.Println(s.Expires, ok)
	_, ok = other.Get(SessionKey{User: 1, Dev: 2})
	fmt.Println(ok)
	fmt.Println(m.Delete(SessionKey{User: 0, Dev: 1}), other.Len())

	var users []uint64
	for k := range other.All() {
		users = append(users, k.User)
	}
	slices.Sort(users)
	fmt.Println(users)
	// Output:
	// 1001 true
	// false
	// true 2
	// [1 2]
}
