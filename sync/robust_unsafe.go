package sync

import (
	"context"
	"runtime"
	stdsync "sync"
	"sync/atomic"
	"unsafe"

	"github.com/shmkit/shmkit/internal/atomicx"
	"github.com/shmkit/shmkit/internal/crashpoint"
	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/internal/proc"
	"github.com/shmkit/shmkit/segment"
)

// procPin disables preemption and returns the current P's id; procUnpin
// undoes it. While pinned, no other goroutine runs on this P, so per-P data
// can be claimed without an atomic read-modify-write. sync.Pool is built on
// the same pair; the runtime keeps them linkable (go.dev/issue/67401).
//
//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()

const (
	// slotsPerP keeper threads may serve each P (spawned on demand), so a
	// goroutine can hold that many locks taken on one P before further
	// locks go on the shared list.
	slotsPerP = 4
	// maxPinnedP bounds the Ps with their own keepers; locks taken on
	// higher-numbered Ps use the shared list.
	maxPinnedP = 64
	numSlots   = 1 + maxPinnedP*slotsPerP
	// tidTableSize is the open-addressed TID -> slot table (power of 2,
	// more than twice numSlots).
	tidTableSize = 1024
)

// keeperSlot is one keeper thread's robust-list state, on its own cache
// lines. It lives in the package-level keepers array, so it never moves:
// the kernel holds the address of head.
type keeperSlot struct {
	head futex.RobustListHead
	// tid is the keeper's TID, stored last when the keeper starts (after
	// its robust list is registered and its TID is in the TID table): 0
	// means the keeper is not running.
	tid uint32
	_   uint32
	// owner is what Mutex.ownerTID and ownerPID hold, as one 64-bit word,
	// and start what ownerStart holds, for a lock taken through this
	// keeper (see recordOwner): on the line the fast path reads anyway.
	owner uint64
	start uint64
	_     [128 - 48]byte
}

var keepers struct {
	// slots[0] keeps the shared list; slots[1+p*slotsPerP+j] serve P p.
	slots [numSlots]keeperSlot
	// tidKeys/tidSlots map a keeper TID to its slot index + 1 (0: empty).
	tidKeys  [tidTableSize]uint32
	tidSlots [tidTableSize]uint32

	once    stdsync.Once
	spawnMu stdsync.Mutex
	self    proc.ID
	err     error // set_robust_list failed: only the /proc fallback works

	// mirror lists the entries linked on slot 0's list, oldest first; the
	// kernel's chain runs head -> mirror[n-1] -> ... -> mirror[0] -> head.
	// Guarded by slot 0's ListOpPending lock. Unlink uses it instead of
	// reading links back from shared memory, which a peer could scribble.
	// The pointers point into shared mappings, outside the Go heap; the
	// garbage collector ignores them.
	mirror []*Mutex
}

// sharedOnly, when not 0, forces every lock onto the shared list (tests).
var sharedOnly uint32

func ensureKeepers() {
	keepers.once.Do(func() {
		keepers.self = proc.Self()
		keepers.mirror = make([]*Mutex, 0, 16)
		keepers.spawnMu.Lock()
		spawnLocked(0)
		keepers.spawnMu.Unlock()
	})
}

// spawnLocked starts the keeper of slot i if it is not running. The caller
// holds spawnMu.
func spawnLocked(i int) {
	k := &keepers.slots[i]
	if atomic.LoadUint32(&k.tid) != 0 {
		return
	}
	k.head.Next = uint64(uintptr(unsafe.Pointer(&k.head))) // empty circular list
	k.head.FutexOffset = int64(unsafe.Offsetof(Mutex{}.word)) - int64(unsafe.Offsetof(Mutex{}.next))
	ready := make(chan struct{})
	var tid uint32
	go func() {
		// The robust list belongs to this OS thread; the kernel walks it
		// when the thread exits, i.e. when the process dies. The goroutine
		// must never return: a goroutine exiting while locked to its thread
		// terminates the thread, and its locks would be marked dead.
		runtime.LockOSThread()
		if err := futex.SetRobustList(&k.head); err != nil && keepers.err == nil {
			keepers.err = err
		}
		tid = uint32(futex.Gettid())
		close(ready)
		select {}
	}()
	<-ready
	h := tidHash(tid)
	for atomic.LoadUint32(&keepers.tidSlots[h]) != 0 {
		h = (h + 1) % tidTableSize
	}
	atomic.StoreUint32(&keepers.tidKeys[h], tid)
	atomic.StoreUint32(&keepers.tidSlots[h], uint32(i)+1)
	*(*[2]int32)(unsafe.Pointer(&k.owner)) = [2]int32{int32(tid), keepers.self.PID}
	k.start = keepers.self.Start
	atomic.StoreUint32(&k.tid, tid) // publish: the keeper is running
}

func tidHash(tid uint32) uint32 { return (tid * 0x9e3779b1) >> 22 % tidTableSize }

// slotOf returns this process's keeper slot whose TID is tid, or nil.
func slotOf(tid uint32) *keeperSlot {
	if tid == 0 {
		return nil
	}
	for h := tidHash(tid); ; h = (h + 1) % tidTableSize {
		s := atomic.LoadUint32(&keepers.tidSlots[h])
		if s == 0 {
			return nil
		}
		if atomic.LoadUint32(&keepers.tidKeys[h]) == tid {
			return &keepers.slots[s-1]
		}
	}
}

// KeeperTIDs returns the TIDs of this process's keeper threads (the values
// its held Mutexes carry in their words) and whether the kernel robust list
// is registered. It starts the first keeper if needed.
func KeeperTIDs() (tids []int32, robust bool) {
	ensureKeepers()
	for i := range keepers.slots {
		if tid := atomic.LoadUint32(&keepers.slots[i].tid); tid != 0 {
			tids = append(tids, int32(tid))
		}
	}
	return tids, keepers.err == nil
}

// Taking a lock registers it with a keeper, so that the kernel marks the
// word if this process dies.
//
// Fast path: claim a keeper of the current P whose list_op_pending slot is
// free by storing m's address in it, then CAS the word to that keeper's
// TID. The kernel treats the pending entry like a list entry (OWNER_DIED +
// wake when the word carries the keeper's TID), so a keeper guarding one
// lock needs no list manipulation. The claim needs no atomic RMW: a slot
// goes from free to claimed only on its own P with preemption disabled
// (so claimers are serialized), and from claimed to free only by whoever
// claimed it (or the holder that unlocks, from any P). So the fast path
// costs what a plain futex mutex costs plus a few plain loads and stores.
// With the P's keepers all busy, the lock goes on the shared list.

// lock is Lock and LockContext. Its fast path is acquire's for a free
// word, written out here because a call costs about as much as the rest.
//
// Nothing in shared memory is touched while pinned: a fault there (a peer
// truncating the segment) is a recoverable panic under
// debug.SetPanicOnFault, but the runtime turns a panic with preemption
// disabled into a fatal throw.
func (m *Mutex) lock(ctx context.Context) error {
	pid := uint(procPin())
	if pid < maxPinnedP && atomicx.LoadAcquire32(&sharedOnly) == 0 {
		k := firstSlot(pid)
		if atomicx.LoadAcquire64(&k.head.ListOpPending) == 0 && atomicx.LoadAcquire32(&k.tid) != 0 {
			atomicx.StoreRelease64(&k.head.ListOpPending, uint64(uintptr(unsafe.Pointer(m))))
			procUnpin()
			// Only pid lives across the call: k and its TID (set once,
			// before the keeper is used) are recomputed, not spilled.
			k = firstSlot(pid)
			if atomic.CompareAndSwapUint32(&m.word, 0, atomicx.LoadAcquire32(&k.tid)) {
				m.took(k, slotSize+uintptr(pid)*(slotsPerP*slotSize))
				if crashpoint.Enabled {
					crashpoint.Hit("sync.mutex-acquired-not-linked")
				}
				raceAcquire(&m.word)
				return nil
			}
			atomicx.StoreRelease64(&k.head.ListOpPending, 0)
			return m.lockSlow(ctx)
		}
	}
	procUnpin()
	if m.acquire(0, 0) {
		return nil
	}
	return m.lockSlow(ctx)
}

// firstSlot returns &keepers.slots[1+pid*slotsPerP], P pid's first keeper,
// for pid < maxPinnedP, without the bounds check: the address is computed
// with one shift, which is on the path to the lock's CAS.
func firstSlot(pid uint) *keeperSlot {
	return (*keeperSlot)(unsafe.Add(unsafe.Pointer(&keepers.slots[1]), uintptr(pid)*(slotsPerP*slotSize)))
}

const slotSize = unsafe.Sizeof(keeperSlot{})

// took records, after a successful CAS, that m is held through per-P
// keeper k, at byte offset off in keepers.slots. It leaves off in m.next,
// the hint Unlock starts from: a plain store, since
// only the holder writes m.next, and for a lock held through a pending slot
// the kernel never reads it (it does not follow list_op_pending's link). A
// peer may scribble it; Unlock checks it against this process's private
// records. Then it records the owner.
func (m *Mutex) took(k *keeperSlot, off uintptr) {
	m.next = uint64(off)
	m.recordOwner(k.owner, k.start)
}

// recordOwner stores this process and keeper as the holder (owner is the
// keeper's ownerTID and ownerPID as one word, start this process's start
// time), writing only what differs so that re-locking by the same process
// through the same keeper dirties nothing extra.
func (m *Mutex) recordOwner(owner, start uint64) {
	p := (*uint64)(unsafe.Pointer(&m.ownerTID)) // ownerTID, ownerPID: 8-aligned (layout test)
	if atomic.LoadUint64(p) != owner {
		atomic.StoreUint64(p, owner)
	}
	if atomic.LoadUint64(&m.ownerStart) != start {
		atomic.StoreUint64(&m.ownerStart, start)
	}
}

// acquire CASes m's word from old to (a keeper TID | bits), registered with
// a keeper of the current P (claimSlow) or, with all of them busy, on the
// shared list, and reports whether the CAS succeeded. It is the path of
// every locking call but lock's fast path for a free word.
func (m *Mutex) acquire(old, bits uint32) bool {
	k, i := m.claimSlow()
	if k == nil {
		return m.acquireShared(old, bits)
	}
	if !atomic.CompareAndSwapUint32(&m.word, old, atomic.LoadUint32(&k.tid)|bits) {
		atomicx.StoreRelease64(&k.head.ListOpPending, 0)
		return false
	}
	m.took(k, uintptr(i)*slotSize)
	if crashpoint.Enabled {
		crashpoint.Hit("sync.mutex-acquired-not-linked")
	}
	raceAcquire(&m.word)
	return true
}

// claimSlow claims (stores m's address in the pending slot of) the first
// free keeper of the current P, spawning keepers as needed, and returns it
// and its index; or nil when m must go on the shared list.
func (m *Mutex) claimSlow() (*keeperSlot, uint) {
	if atomic.LoadUint32(&sharedOnly) != 0 {
		return nil, 0
	}
	// Each round either claims a slot, spawns one more keeper (at most
	// numSlots in all), or gives up.
	for {
		pid := procPin()
		if pid >= maxPinnedP {
			procUnpin()
			return nil, 0
		}
		base := 1 + uint(pid)*slotsPerP
		for j := range uint(slotsPerP) {
			k := &keepers.slots[base+j]
			if atomic.LoadUint32(&k.tid) == 0 {
				break
			}
			if atomic.LoadUint64(&k.head.ListOpPending) == 0 {
				atomicx.StoreRelease64(&k.head.ListOpPending, uint64(uintptr(unsafe.Pointer(m))))
				procUnpin()
				return k, base + j
			}
		}
		procUnpin()
		if !spawnFor(pid) {
			return nil, 0
		}
	}
}

// spawnFor starts the next keeper of P pid, reporting whether it did.
func spawnFor(pid int) bool {
	ensureKeepers()
	keepers.spawnMu.Lock()
	defer keepers.spawnMu.Unlock()
	base := 1 + pid*slotsPerP
	for j := range slotsPerP {
		if atomic.LoadUint32(&keepers.slots[base+j].tid) == 0 {
			spawnLocked(base + j)
			return true
		}
	}
	return false
}

// Unlock releases m. It panics if this process does not hold m (it was not
// locked through this mapping by this process), like sync.Mutex: that is
// decided from this process's private records, never from the shared word,
// so a peer scribbling the word cannot make Unlock panic. If m is
// held in the owner-dead state and MarkConsistent was not called, Unlock
// makes it permanently not recoverable and wakes every waiter.
//
// Fast path: m is held through a per-P keeper and consistent. The keeper's
// offset is read from m.next, where Lock left it, and believed only if it
// is in range, that keeper's pending slot (private memory) names m, and
// the word carries that keeper's TID: a scribbled hint or word, a lock on
// the shared list or in the owner-dead state, or one not held at all goes
// to unlockSlow, which decides from private records alone. The hint is a
// byte offset, so that the load it leads to needs no arithmetic; slot 0
// (the shared list) is never a hint. (Written out here, not in a helper
// returning the keeper, so that each failed check jumps straight to
// unlockSlow.)
func (m *Mutex) Unlock() {
	off := uintptr(atomic.LoadUint64(&m.next))
	if off-slotSize < (numSlots-1)*slotSize && off%slotSize == 0 {
		k := (*keeperSlot)(unsafe.Add(unsafe.Pointer(&keepers.slots), off))
		// Nested ifs, not &&: the compiler materializes a && chain as a
		// bool and tests it again.
		if atomicx.LoadAcquire64(&k.head.ListOpPending) == uint64(uintptr(unsafe.Pointer(m))) {
			if atomic.LoadUint32(&m.word)&^futex.Waiters == atomicx.LoadAcquire32(&k.tid) {
				if atomic.LoadUint32(&m.state) != mutexInconsistent {
					// The same steps as release, for this case.
					raceRelease(&m.word)
					if crashpoint.Enabled {
						crashpoint.Hit("sync.mutex-unlinked-not-released")
					}
					old := atomic.SwapUint32(&m.word, 0)
					atomicx.StoreRelease64(&k.head.ListOpPending, 0)
					if old&futex.Waiters != 0 {
						m.wakeOne()
					}
					return
				}
			}
		}
	}
	m.unlockSlow()
}

// release swaps newWord into m's word and deregisters m from its keeper.
// It returns the old word, or ok=false if this process does not hold m.
// (Unlock's fast path does the same for a lock held through a per-P
// keeper.)
func (m *Mutex) release(newWord uint32) (old uint32, ok bool) {
	k := slotOf(atomic.LoadUint32(&m.word) & futex.TIDMask)
	switch {
	case k == nil:
		return m.releaseScribbled(newWord)
	case k == &keepers.slots[0]:
		if old, ok := m.releaseShared(newWord); ok {
			return old, true
		}
		// The word names our shared-list keeper, but m is not on its
		// list: a peer wrote our keeper's TID over the word.
		return m.releaseScribbled(newWord)
	case atomic.LoadUint64(&k.head.ListOpPending) != uint64(uintptr(unsafe.Pointer(m))):
		return m.releaseScribbled(newWord)
	}
	if crashpoint.Enabled {
		crashpoint.Hit("sync.mutex-unlinked-not-released")
	}
	old = atomic.SwapUint32(&m.word, newWord)
	// A death right here leaves pending naming a word without the
	// keeper's TID: the kernel then only wakes one waiter, harmlessly.
	atomicx.StoreRelease64(&k.head.ListOpPending, 0)
	return old, true
}

// releaseScribbled handles an Unlock whose lock word no longer names the
// keeper holding m: a peer wrote over shared memory while we held the lock.
// If one of our keepers still guards m, we did hold it: free that keeper and
// store newWord only if the word still holds what we read (never clobber a
// value another process may now own). Shared memory is not trusted, so this
// is not a panic; only an Unlock that no keeper of ours backs is (misuse).
func (m *Mutex) releaseScribbled(newWord uint32) (old uint32, ok bool) {
	entry := uint64(uintptr(unsafe.Pointer(m)))
	for i := 1; i < numSlots; i++ {
		k := &keepers.slots[i]
		if atomic.LoadUint64(&k.head.ListOpPending) == entry {
			// We hold m through keeper i. A word naming another keeper of
			// ours that does not back m is a scribble too (locks taken
			// through slot 0 are on the mirror; through slot j, in its
			// pending slot): release it. A word naming a foreign thread is
			// left alone: it may be another process's now.
			old = atomic.LoadUint32(&m.word)
			if o := slotOf(old & futex.TIDMask); o != nil && !backs(o, m) {
				atomic.CompareAndSwapUint32(&m.word, old, newWord)
			}
			atomicx.StoreRelease64(&k.head.ListOpPending, 0)
			return old, true
		}
	}
	listLock(entry)
	linked := unlinkLocked(m)
	listUnlock()
	if linked {
		old = atomic.LoadUint32(&m.word)
		atomic.CompareAndSwapUint32(&m.word, old, newWord)
		return old, true
	}
	return 0, false
}

// backs reports whether keeper k guards m for this process: m is in k's
// pending slot, or (slot 0) on its list.
func backs(k *keeperSlot, m *Mutex) bool {
	if atomic.LoadUint64(&k.head.ListOpPending) == uint64(uintptr(unsafe.Pointer(m))) {
		return true
	}
	if k != &keepers.slots[0] {
		return false
	}
	listLock(uint64(uintptr(unsafe.Pointer(m))))
	defer listUnlock()
	for _, x := range keepers.mirror {
		if x == m {
			return true
		}
	}
	return false
}

// ownedBySelf reports whether word names one of this process's keepers.
func ownedBySelf(word uint32) bool { return slotOf(word&futex.TIDMask) != nil }

// The shared list (slot 0). Its ListOpPending doubles as the in-process
// lock serializing list operations: CASing it from 0 to the entry both
// takes the lock and announces the pending operation to the kernel.

func listLock(entry uint64) {
	for !atomic.CompareAndSwapUint64(&keepers.slots[0].head.ListOpPending, 0, entry) {
		// Held for a few instructions by another goroutine of this
		// process (unless it was preempted inside): yield.
		runtime.Gosched()
	}
}

func listUnlock() { atomicx.StoreRelease64(&keepers.slots[0].head.ListOpPending, 0) }

func (m *Mutex) acquireShared(old, bits uint32) bool {
	ensureKeepers()
	entry := uint64(uintptr(unsafe.Pointer(m)))
	k := &keepers.slots[0]
	listLock(entry)
	if !atomic.CompareAndSwapUint32(&m.word, old, atomic.LoadUint32(&k.tid)|bits) {
		listUnlock()
		return false
	}
	if crashpoint.Enabled {
		crashpoint.Hit("sync.mutex-acquired-not-linked")
	}
	// m.next = head.next; head.next = m. Plain stores into m: only the
	// holder touches m.next, and the CAS made us the holder.
	m.next = k.head.Next
	k.head.Next = entry
	keepers.mirror = append(keepers.mirror, m)
	listUnlock()
	raceAcquire(&m.word)
	m.recordOwner(k.owner, k.start)
	return true
}

func (m *Mutex) releaseShared(newWord uint32) (old uint32, ok bool) {
	listLock(uint64(uintptr(unsafe.Pointer(m))))
	if !unlinkLocked(m) {
		listUnlock()
		return 0, false
	}
	if crashpoint.Enabled {
		crashpoint.Hit("sync.mutex-unlinked-not-released")
	}
	old = atomic.SwapUint32(&m.word, newWord)
	listUnlock()
	return old, true
}

// unlinkLocked removes m from slot 0's chain and the mirror. The caller
// holds the list lock.
func unlinkLocked(m *Mutex) bool {
	mir := keepers.mirror
	n := len(mir)
	i := n - 1
	for i >= 0 && mir[i] != m { // usually the newest: locks nest
		i--
	}
	if i < 0 {
		return false
	}
	head := &keepers.slots[0].head
	succ := uint64(uintptr(unsafe.Pointer(head)))
	if i > 0 {
		succ = uint64(uintptr(unsafe.Pointer(mir[i-1])))
	}
	if i == n-1 {
		head.Next = succ
	} else {
		mir[i+1].next = succ
	}
	copy(mir[i:], mir[i+1:])
	mir[n-1] = nil
	keepers.mirror = mir[:n-1]
	return true
}

// ForgetRange deregisters from this process's keepers every Mutex held by
// this process whose address lies in mem, without releasing them, so that
// mem can be unmapped without leaving the kernel (and our own list code)
// pointers into a dead mapping. The forgotten locks stay held by this
// process until it exits; then waiters recover them through the /proc
// fallback (ErrOwnerDead). It returns how many were forgotten. Unlocking
// before unmapping is better; a segment's Close may call this as a guard.
//
// It must not run concurrently with Lock or Unlock of a Mutex in mem, and
// a forgotten Mutex must not be unlocked (Unlock panics: not held).
func ForgetRange(mem []byte) int {
	if len(mem) == 0 {
		return 0
	}
	ensureKeepers()
	lo := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(mem))))
	hi := lo + uint64(len(mem))
	forgot := 0
	for i := 1; i < numSlots; i++ {
		k := &keepers.slots[i]
		if p := atomic.LoadUint64(&k.head.ListOpPending); p >= lo && p < hi {
			atomicx.StoreRelease64(&k.head.ListOpPending, 0)
			forgot++
		}
	}
	listLock(lo)
	for {
		var found *Mutex
		for _, e := range keepers.mirror {
			if a := uint64(uintptr(unsafe.Pointer(e))); a >= lo && a < hi {
				found = e
				break
			}
		}
		if found == nil {
			break
		}
		unlinkLocked(found)
		forgot++
	}
	listUnlock()
	return forgot
}

// Unmapping a segment must not leave a lock inside it registered with a
// keeper: at exit the kernel would walk into unmapped (or reused) memory.
// segment.Close runs this hook on every mapping before unmapping it; a
// process that never locked has no keepers and pays nothing.
func init() {
	segment.OnUnmap(func(mem []byte) {
		if atomic.LoadUint32(&keepers.slots[0].tid) != 0 {
			ForgetRange(mem)
		}
	})
}
