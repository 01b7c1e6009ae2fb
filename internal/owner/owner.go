// Package owner is the one way a process claims a single-holder word in a
// segment: a ring's producer or consumer role, a bus's publisher role or a
// durable subscriber's record. The word holds the holder's proc.Word; 0 is
// free. A claim succeeds when the word is free, names a process that is
// certainly dead (proc.Dead: definite evidence only), or names this process
// with no other open handle of this process holding the same claim (the
// word names a process, not a handle, so the process keeps a private
// registry of which handle holds what).
package owner

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/shmkit/shmkit/internal/proc"
	"github.com/shmkit/shmkit/internal/shmerr"
	"github.com/shmkit/shmkit/layout"
)

// Holder describes the process named by an owner word.
type Holder struct {
	PID   int32  // 0 when free
	Start uint64 // low bits of the holder's start time (clock ticks), see proc.Word
	Alive bool   // false only when the holder is certainly dead
}

func (h Holder) String() string {
	if h.PID == 0 {
		return "free"
	}
	state := "alive"
	if !h.Alive {
		state = "dead"
	}
	return fmt.Sprintf("pid %d (start %d, %s)", h.PID, h.Start, state)
}

// Decode reads an owner word and checks its holder's liveness.
func Decode(w uint64) Holder {
	if w == 0 {
		return Holder{}
	}
	id := proc.FromWord(w)
	return Holder{PID: id.PID, Start: id.Start, Alive: !proc.Dead(id)}
}

// Key names one claim within this process: which segment (by its creator
// and creation time, the same for every handle and mapping of it) and which
// word in it.
type Key struct {
	creator int32
	start   uint64
	created int64
	Slot    int // the structure's name for the word: a role, a record index
}

// KeyOf returns the key of word slot in seg.
func KeyOf(seg *layout.Segment, slot int) Key {
	h := seg.Header()
	return Key{creator: h.Creator.PID, start: h.Creator.Start, created: h.CreatedUnix, Slot: slot}
}

var (
	mu   sync.Mutex
	held = map[Key]bool{}
)

// Claim takes word for this process under key. what names the claim in
// errors ("the producer role"). The error wraps ErrRoleTaken and names the
// live holder, or says that another handle of this process holds it.
func Claim(word *atomic.Uint64, key Key, what string) error {
	self := proc.Self()
	me := self.Word()
	mu.Lock()
	defer mu.Unlock()
	if held[key] {
		// Whatever the shared word says now (a peer may have cleared or
		// rewritten it), a handle of ours holds it.
		return fmt.Errorf("%w: %s is held by another handle in this process (pid %d)", shmerr.ErrRoleTaken, what, self.PID)
	}
	for range 100 {
		cur := word.Load()
		switch {
		case cur == me:
			// Left by a handle of ours that was dropped without Close.
		case cur == 0:
			if !word.CompareAndSwap(0, me) {
				continue
			}
		default:
			if h := Decode(cur); h.Alive {
				return fmt.Errorf("%w: %s is held by live %s", shmerr.ErrRoleTaken, what, h)
			}
			if !word.CompareAndSwap(cur, me) {
				continue
			}
		}
		held[key] = true
		return nil
	}
	return fmt.Errorf("%w: %s: the owner word keeps changing", shmerr.ErrRoleTaken, what)
}

// Note records that this process holds key, for a word claimed by another
// protocol (say, under a table lock).
func Note(key Key) {
	mu.Lock()
	held[key] = true
	mu.Unlock()
}

// Release gives up a claim: the registry entry, and the word if it still
// names this process.
func Release(word *atomic.Uint64, key Key) {
	mu.Lock()
	delete(held, key)
	mu.Unlock()
	word.CompareAndSwap(proc.Self().Word(), 0)
}

// ReleaseDead frees each word that names a certainly dead process and
// returns their holders (for tools: shmctl doctor --fix).
func ReleaseDead(words ...*atomic.Uint64) []Holder {
	var released []Holder
	for _, w := range words {
		cur := w.Load()
		if cur == 0 {
			continue
		}
		if h := Decode(cur); !h.Alive && w.CompareAndSwap(cur, 0) {
			released = append(released, h)
		}
	}
	return released
}
