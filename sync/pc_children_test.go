package sync_test

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/shmkit/shmkit/internal/testproc"
	shsync "github.com/shmkit/shmkit/sync"
)

// Semaphore indexes of the producer/consumer SemSet.
const (
	semItems = 0
	semSlots = 1
	semLock  = 2
)

// record marks item seen in the shared checker state.
func record(s *shared, item uint64) error {
	if item == 0 || item >= itemsTotal {
		return fmt.Errorf("item %d out of range", item)
	}
	bit := uint64(1) << (item % 64)
	if atomic.OrUint64(&s.Seen[item/64], bit)&bit != 0 {
		atomic.AddUint64(&s.Dups, 1)
	}
	atomic.AddUint64(&s.Sum, item)
	atomic.AddUint64(&s.Consumed, 1)
	return nil
}

// pcSemSetChild: args spec, id, role (prod|cons), first item, count.
// The classic empty/full/mutex design: items and slots count (no undo),
// the lock semaphore has SEM_UNDO.
var pcSemSetChild = testproc.Register("pc-semset", func(args []string) error {
	s, err := openShared(args[0])
	if err != nil {
		return err
	}
	set, err := shsync.OpenSemSetID(atoi(args[1]))
	if err != nil {
		return err
	}
	first, count := uint64(atoi(args[3])), atoi(args[4])
	ctx := context.Background()
	for i := range count {
		if args[2] == "prod" {
			if err := set.Op(ctx, shsync.SemOp{Num: semSlots, Delta: -1}, shsync.SemOp{Num: semLock, Delta: -1, Undo: true}); err != nil {
				return err
			}
			s.Ring[s.Head%uint64(len(s.Ring))] = first + uint64(i)
			s.Head++
			if err := set.Op(ctx, shsync.SemOp{Num: semLock, Delta: 1, Undo: true}, shsync.SemOp{Num: semItems, Delta: 1}); err != nil {
				return err
			}
			continue
		}
		if err := set.Op(ctx, shsync.SemOp{Num: semItems, Delta: -1}, shsync.SemOp{Num: semLock, Delta: -1, Undo: true}); err != nil {
			return err
		}
		item := s.Ring[s.Tail%uint64(len(s.Ring))]
		s.Tail++
		if err := set.Op(ctx, shsync.SemOp{Num: semLock, Delta: 1, Undo: true}, shsync.SemOp{Num: semSlots, Delta: 1}); err != nil {
			return err
		}
		if err := record(s, item); err != nil {
			return err
		}
	}
	return nil
})

// pcSemChild: args spec, role, first item, count. The same with futex
// Semaphores: Items, Slots, and LockSem (value 1) as the lock.
var pcSemChild = testproc.Register("pc-sem", func(args []string) error {
	s, err := openShared(args[0])
	if err != nil {
		return err
	}
	first, count := uint64(atoi(args[2])), atoi(args[3])
	for i := range count {
		if args[1] == "prod" {
			if err := s.Slots.Wait(); err != nil {
				return err
			}
			if err := s.LockSem.Wait(); err != nil {
				return err
			}
			s.Ring[s.Head%uint64(len(s.Ring))] = first + uint64(i)
			s.Head++
			if err := s.LockSem.Post(); err != nil {
				return err
			}
			if err := s.Items.Post(); err != nil {
				return err
			}
			continue
		}
		if err := s.Items.Wait(); err != nil {
			return err
		}
		if err := s.LockSem.Wait(); err != nil {
			return err
		}
		item := s.Ring[s.Tail%uint64(len(s.Ring))]
		s.Tail++
		if err := s.LockSem.Post(); err != nil {
			return err
		}
		if err := s.Slots.Post(); err != nil {
			return err
		}
		if err := record(s, item); err != nil {
			return err
		}
	}
	return nil
})

// seqWriterChild: args spec. Starts a SeqCount write, signals Flag=1 and
// waits to be killed mid-write.
var seqWriterChild = testproc.Register("seq-writer", func(args []string) error {
	s, err := openShared(args[0])
	if err != nil {
		return err
	}
	if err := s.Mu.Lock(); err != nil {
		return err
	}
	s.Seq.BeginWrite()
	s.A++ // B not yet: the data is torn
	signal(&s.Note, &s.Flag, 1)
	select {}
})

// pingChild: args spec, n. Semaphore ping-pong peer: waits on Sem, posts
// Items, n times.
var pingChild = testproc.Register("sem-ping", func(args []string) error {
	s, err := openShared(args[0])
	if err != nil {
		return err
	}
	for range atoi(args[1]) {
		if err := s.Sem.Wait(); err != nil {
			return err
		}
		if err := s.Items.Post(); err != nil {
			return err
		}
	}
	return nil
})
