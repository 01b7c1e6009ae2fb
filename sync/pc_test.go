package sync_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testproc"
)

// checkDelivery verifies that items 1..total were each consumed once.
func checkDelivery(t *testing.T, s *shared, total int) {
	t.Helper()
	if s.Dups != 0 {
		t.Errorf("%d items delivered twice", s.Dups)
	}
	if s.Consumed != uint64(total) {
		t.Errorf("consumed %d items, want %d", s.Consumed, total)
	}
	if want := uint64(total) * uint64(total+1) / 2; s.Sum != want {
		t.Errorf("sum of items %d, want %d", s.Sum, want)
	}
	for i := 1; i <= total; i++ {
		if s.Seen[i/64]&(1<<(i%64)) == 0 {
			t.Fatalf("item %d never delivered", i)
		}
	}
	if s.Head != uint64(total) || s.Tail != uint64(total) {
		t.Errorf("ring head %d tail %d, want %d", s.Head, s.Tail, total)
	}
}

// runPC starts producers and consumers (2 each) and waits for them.
func runPC(t *testing.T, start func(role string, first, count int) *testproc.Proc, perProducer int) {
	t.Helper()
	const producers, consumers = 2, 2
	total := producers * perProducer
	var ps []*testproc.Proc
	for c := range consumers {
		_ = c
		ps = append(ps, start("cons", 0, total/consumers))
	}
	for p := range producers {
		ps = append(ps, start("prod", p*perProducer+1, perProducer))
	}
	for _, p := range ps {
		if err := p.Wait(2 * time.Minute); err != nil {
			t.Fatalf("child: %v\n%s", err, p.Output())
		}
	}
}

func TestProducerConsumerSemSet(t *testing.T) {
	spec, s := newShared(t)
	set := newSemSet(t, 3)
	if err := set.SetAll([]uint16{0, uint16(len(s.Ring)), 1}); err != nil {
		t.Fatal(err)
	}
	per := 2000
	if raceEnabled {
		per = 500
	}
	id := strconv.Itoa(set.ID())
	runPC(t, func(role string, first, count int) *testproc.Proc {
		return pcSemSetChild.Start(t, spec, id, role, strconv.Itoa(first), strconv.Itoa(count))
	}, per)
	checkDelivery(t, s, 2*per)
	if vals, err := set.GetAll(); err != nil || vals[semItems] != 0 || vals[semSlots] != uint16(len(s.Ring)) || vals[semLock] != 1 {
		t.Fatalf("final semaphore values %v, %v", vals, err)
	}
}

func TestProducerConsumerSemaphores(t *testing.T) {
	spec, s := newShared(t)
	s.Slots.Init(uint32(len(s.Ring)))
	s.LockSem.Init(1)
	per := 5000
	if raceEnabled {
		per = 1000
	}
	runPC(t, func(role string, first, count int) *testproc.Proc {
		return pcSemChild.Start(t, spec, role, strconv.Itoa(first), strconv.Itoa(count))
	}, per)
	checkDelivery(t, s, 2*per)
	if s.Items.Value() != 0 || s.Slots.Value() != uint32(len(s.Ring)) || s.LockSem.Value() != 1 {
		t.Fatalf("final values items %d slots %d lock %d", s.Items.Value(), s.Slots.Value(), s.LockSem.Value())
	}
	for _, sem := range []interface{ Waiters() uint32 }{&s.Items, &s.Slots, &s.LockSem} {
		if w := sem.Waiters(); w != 0 {
			t.Fatalf("waiter count %d left behind", w)
		}
	}
}
