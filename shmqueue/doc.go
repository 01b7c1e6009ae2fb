// Package shmqueue provides Queue[T], a bounded multi-producer
// multi-consumer blocking queue in shared memory: any number of producer and
// consumer processes (and any number of goroutines in each) share one queue
// of fixed-size, pointer-free T.
//
// # Backends
//
// The synchronization backend is chosen at Create (WithBackend) and recorded
// in the segment header; Open uses whatever the creator chose.
//
//   - BackendFutex (default): a lock-free Vyukov-style ring. No system call
//     on the uncontended path; goroutines park on sync.Notifier futex words
//     only when the queue is empty or full, and a peer issues FUTEX_WAKE
//     only when someone is parked.
//   - BackendSysV: the classic producer/consumer design over a System V
//     semaphore set {slots, items, lock} plus a fourth "dirty" semaphore
//     that makes a holder's death detectable (see below). Two semop calls
//     per operation (or batch) when uncontended; it exists for interoperability with tools that watch
//     semaphores (ipcs) and as the textbook baseline.
//
// # The futex backend
//
// Layout. A control region holds the enqueue cursor, the dequeue cursor
// (each alone on a 128-byte line), two notifiers (items: consumers park
// there; slots: producers park there) and cold counters. The slot region is
// an array of capacity slots {seq uint64; val T}; capacity is a power of two
// and position p lives in slot p & (capacity-1). Cursors are free-running
// 56-bit positions (bit 63 of the enqueue cursor is the closed flag; at
// 100 M items/s the positions last 22 years).
//
// Slot sequence protocol (Dmitry Vyukov's bounded MPMC queue). Slot i starts
// with seq = i. For position p in slot p&mask:
//
//	seq == p             free: the producer of p may claim it
//	seq == p+1           published: the item of p may be consumed
//	seq == (p+1)|hole    p was claimed by a producer that died: skip it
//	seq == p+capacity    released: free for position p+capacity
//
// A producer reads the enqueue cursor p, checks seq == p (for a batch, the
// run of free slots after it, up to 64), claims [p, p+n) with one CAS on the
// enqueue cursor, writes the values and publishes each slot by storing
// seq = p+1. A consumer symmetrically checks seq == p+1, claims with a CAS
// on the dequeue cursor, copies the values out and releases each slot by
// storing seq = p+capacity. The claim CAS is the only contended write; the
// data and the seq store touch a line that, in steady state, only the
// claimant and the one peer that later takes over the slot touch.
//
// # Crash safety (futex backend)
//
// The cursor CAS and the seq store are two steps, and a process may be
// SIGKILLed between them:
//
//   - A producer killed after claiming p and before publishing leaves slot
//     p at seq == p forever. Consumers reach p, see it unpublished while the
//     enqueue cursor is past it, and would wait forever: a hole.
//   - A consumer killed after claiming p and before releasing leaves seq ==
//     p+1. Producers wrap around to p+capacity, see the slot still occupied
//     while the dequeue cursor is past p, and would wait forever.
//
// Both are detected and repaired with a participant table. Every attached
// handle owns a member record {owner; lanes[15]} (one line) in the members
// region; owner is the process's proc.ID word (pid and process start time),
// so a reused pid is not mistaken for the owner. Each in-flight claim is announced in a
// lane: active, push or pop, first position and count, one atomic word. A
// goroutine takes a free lane of its handle's record and announces in the
// same step, by a CAS of the lane word from 0, so the fast path pays two
// extra atomic operations per claim (this CAS and the clearing store):
//
//	announce(lane, p, n)     BEFORE the claim CAS: there is no unannounced window
//	CAS cursor p -> p+n      the claim
//	write/read, store seqs   publish / release
//	lane = 0                 AFTER the last seq store (frees the lane too)
//
// A waiter that finds the slot of position p claimed but not finished for a
// while (about a millisecond; at once, the first time, for TryPush/TryPop) scans the
// lanes for an announcement covering p whose owner is alive (proc.Dead, by
// pid and start time). If there is none, it re-reads the slot with a CAS:
// a producer hole p -> (p+1)|hole (consumers then pass it over without
// delivering anything), a consumer's stuck slot p+1 -> p+capacity (the
// consumer's item is dropped: it had been taken out of the queue by the
// consumer that died). Why this is safe: the claimant stored its lane
// before its CAS, and clears it only after its seq store. The waiter saw the
// cursor past p (so after the CAS), then read the lanes (so after the
// announcement). If the claimant is alive, the waiter either sees its lane
// still covering p (and keeps waiting) or sees it cleared or reused, and
// then the seq store came before, so the repair CAS fails. Stale
// announcements (a claimant whose CAS failed, or a dead process whose
// member record was taken over) can only make a waiter wait longer, never
// repair a live claim. The announcement and the CASes are sync/atomic's
// (sequentially consistent); clearing a lane is a release store
// (internal/atomicx), which is all the argument needs of it: it must not
// become visible before the seq store, and a waiter that reads it as
// cleared read it after the cursor that the claim's CAS moved. The seq
// stores are CASes too, or, with light wakes (below), a check of the word
// and a release store: neither ever writes over a repair that was made
// before the check.
//
// What a SIGKILL can lose or redeliver, exactly:
//
//   - Nothing is ever delivered twice, and nothing that was not pushed is
//     ever delivered.
//   - An item whose Push (PushBatch) returned nil is delivered exactly once,
//     unless the consumer that popped it dies before its Pop returns (and
//     of course items popped by a consumer that dies before processing
//     them are gone: Pop removes).
//   - A producer killed inside Push: its item is either delivered (the seq
//     store happened) or skipped as a hole; never half-written. Inside
//     PushBatch, a prefix of the current claim (up to 64 items) is
//     delivered and the rest skipped; earlier claims were all delivered.
//   - A consumer killed inside Pop (PopBatch): the items of its claim (at
//     most one for Pop, at most 64 for one claim of PopBatch) are lost.
//   - A process killed while parked leaves the notifier's parked bit set
//     until the next Notify, which then makes one FUTEX_WAKE for nobody
//     and clears it. Nothing is lost or blocked by it.
//
// The queue never wedges: holes and stuck slots are repaired by whichever
// waiter reaches them; parked waiters re-check every 10 ms even when nobody
// wakes them, because a claimant that dies never calls Notify.
//
// Liveness is internal/proc's one check: a process is dead only on
// definite evidence (no such process, a zombie, or a start time that no
// longer matches); any doubt counts as alive, since a wrong "dead" would
// corrupt the queue while a wrong "alive" only delays a repair. Every
// process using a queue must run in the same PID namespace, as for robust
// futexes.
//
// # Try operations
//
// TryPush, TryPop and TryPopBatch never wait for room or items, and they
// are linearizable (checked with a linearizability checker over histories
// of several processes, with peers SIGSTOPped mid-operation): TryPush
// says ErrFull only if, at some instant during the call, the queue held
// capacity items, and TryPop says ErrEmpty only if it held none. A push
// takes effect at its claim (its position fixes its place in the queue)
// and a pop at its claim. So a Try operation may have to wait out a LIVE
// peer that is in flight where it needs to go:
//
//   - TryPop at position p finds p claimed by a producer that has not
//     published it yet. That item is in the queue, ahead of every later
//     one, so "empty" would be false; TryPop waits for the publication.
//   - TryPush finds that the slot it needs still holds the item of the
//     previous round, which a consumer has claimed (popped) but not yet
//     released. The queue is not full; TryPush waits for the release.
//
// It waits with the same waiter as a blocking call and checks, at once
// and then every millisecond, whether the claimant is still alive
// (internal/proc: definite evidence only); a dead claimant's position is
// repaired as a blocked call would (a hole skipped, a slot reclaimed) and
// the Try operation goes on. A live claimant finishes within microseconds
// unless it is stopped (SIGSTOP, a debugger) or starved of CPU: a Try
// operation waits for it at most TryStallLimit in all, then returns an
// error wrapping ErrPeerStalled (and context.DeadlineExceeded) having done
// nothing. A hostile peer that forges a live claim therefore delays a Try
// operation by TryStallLimit at most.
//
// The SysV backend answers full or empty from head and tail read in the
// order that makes the answer true at one instant, or under the lock; a
// Try operation waits for a lock holder (who is in the middle of an
// operation) for at most TryStallLimit too, then ErrPeerStalled.
//
// # Waiting
//
// Every blocked call waits with shmkit's one waiter (sync.Notifier.WaitPoll)
// under the handle's sync.WaitPolicy (WithWaitPolicy; DefaultWaitPolicy is
// a short spin and about 100 µs of yielding re-checks, then a park on the
// items or slots notifier). A notifier has a parked bit, not a waiter
// count, so a waiter killed while parked cannot leave peers paying a
// FUTEX_WAKE per item forever. Parked consumers wait for the item at the
// dequeue cursor, so a producer calls Notify only when its claim starts at
// or before the dequeue cursor it sees after publishing, and only if the
// parked bit is set (a load of a line nobody writes while nobody parks);
// symmetrically a consumer notifies producers only when they have wrapped
// onto a slot it released. So a parked peer costs one FUTEX_WAKE, not one
// per item. Parks are bounded: a waiter at a stuck slot polls every
// millisecond for a dead claimant to repair, and a waiter at an empty or
// full queue looks again every 10 ms.
//
// Light wakes (futex backend). The publishing seq store and the releasing
// one are each followed by a load of the peers' parked bit, which must not
// pass the store (Dekker's handshake; see sync.Notifier). A CAS orders
// them, but it stops the claimant until the slot's line comes back from
// the core of the peer polling it, once per item. Where the kernel lets a
// process register for membarrier(2) (sync.LightWakes; Linux 4.16 and
// later, unless a seccomp filter forbids it), the handle uses a check and
// a release store instead. The only waits that a seq store ends are those
// at a stuck slot (claimed by a live peer that has not finished), and
// each of their parks first issues MEMBARRIER_CMD_GLOBAL_EXPEDITED, which
// makes every running registered process execute the missing fence (about
// a microsecond; such parks are rare: the claimant must have been
// descheduled mid-claim for longer than the spin and yield phases). A wait
// at an empty or full queue is ended by a peer's cursor CAS, which orders
// that peer's load of the parked bit by itself. A process that cannot
// register keeps the CAS; a waiter that cannot issue the barrier parks
// for at most a millisecond at a time, as a stuck-slot waiter does anyway.
//
// A Queue is a sync.Waitable (WaitSource): a sync.WaitSet parks on the
// items notifiers of several queues (either backend), rings and bus
// subscribers at once.
//
// # The SysV backend and SEM_UNDO
//
// Layout. A control region of its own (head, tail, closed, a repairs
// counter, and the items and slots notifiers), then the slot array (the
// seq words unused). Semaphores: slots (free capacity), items (queued
// items), lock (a binary semaphore) and dirty. A push is
//
//	semop {lock -1 UNDO, dirty ==0, dirty +1, slots -1}, all NOWAIT  (atomic)
//	write item at tail; tail++                                       (commit)
//	semop {items +1, dirty -1, lock +1 UNDO}                         (atomic)
//
// and a pop mirrors it, and then notifies the items (slots) notifier,
// which is one load when nobody is parked. The first semop never sleeps: the kernel completes
// a sleeping semop as soon as it can proceed, which would hand the lock to
// a process that is not running yet and queue everybody behind it (a lock
// convoy; 4 producers and 4 consumers moved ~50k items/s that way). So a
// caller waits on the slots notifier (items for a consumer; the same
// waiter and policy as the futex backend) while head and tail say no
// token exists, retries while they suggest one does, yielding between
// attempts, and after 16 failures takes the
// lock the blocking way and looks at the state under it. SEM_UNDO is on the lock only: if the holder dies,
// the kernel releases the lock. It is never on slots or items: the kernel
// would undo a dead producer's V(items) at its exit, un-counting an item it
// really produced, and undo a dead consumer's P(items), resurrecting an
// item it really consumed. Instead, the token taken from slots/items is
// taken in the same atomic semop as the lock, so outside the lock nobody
// holds a token: while the lock is held, items and slots must equal
// tail-head and capacity-(tail-head) up to the holder's own token. The
// dirty semaphore (no undo) is 1 exactly while a holder is inside; a holder
// that dies leaves it at 1 with the lock released. The next locker's
// "dirty ==0" fails (EAGAIN), so it takes the lock alone, sees dirty >= 2,
// and recomputes slots and items from head and tail, which changed only at
// the single commit store. Parked waiters look at head and tail again
// every 20 ms, since a holder that died between its commit and its post leaves
// the token missing until somebody repairs. So the SysV backend loses exactly what
// the futex backend loses: a consumer killed after its commit loses its
// item; a producer killed after its commit still delivers its item.
//
// After CloseWrites both counting semaphores carry a bonus of 8192 so that
// every blocked producer and consumer wakes, sees closed, and puts its
// token back; this bounds SysV capacity to 16384.
//
// # Never trusting the segment
//
// Cursors, sequence numbers and lane words are validated on every use: a
// sequence number that no legal history can produce, a cursor beyond the
// 56-bit range or a dequeue cursor ahead of the enqueue cursor makes the
// operation return an error wrapping ErrCorrupt. A value that claims a peer
// moved on is re-checked against the cursor, so garbage cannot make a
// caller spin; the worst a hostile peer can do is make callers wait (their
// context still bounds the wait) or return odd values.
//
// # Concurrency
//
// All methods of a Queue may be called concurrently from any number of
// goroutines, except Close, which must not run concurrently with any other
// method. A Queue handle belongs to the process that created or opened it.
//
// # Truncated segments
//
// A peer with write access to a posix: or file: segment can ftruncate it;
// a process touching a lost page then takes SIGBUS. Queue calls catch such
// a fault (see shmring's "Truncated segments" and internal/faultguard) and
// return an error wrapping ErrCorrupt and ErrTruncated ("segment truncated
// by another process") naming the call and the spec; from then on the
// handle is good only for Close, and every other call returns that first
// error. Always guarded: attaching (the member record claim), every
// blocking wait (futex and SysV, Try operations waiting out a peer
// included), PushBatch, PopBatch, TryPopBatch, CloseWrites, Stats, Len (0
// after a fault), Inspect, Close and the WaitSource check (a fault makes it
// ready; the next call reports it). Push, TryPush, Pop and TryPop are
// guarded as a whole only on a handle made WithFaultGuard (a few ns per
// call, see BenchmarkFaultGuard); otherwise only their waits are.
//
// A memfd segment is normally out of reach of all this (segment's
// CannotFault): it is sealed against shrinking, and a page a peer punches
// out of it (fallocate PUNCH_HOLE) comes back, zeroed, on the next touch.
// There no call is guarded, and WithFaultGuard changes nothing. The guard
// stays as above on an unsealed memfd (accepted with WithUnsealed), one on
// hugetlbfs, and where the kernel may refuse to give a punched-out page back
// (vm.overcommit_memory=2, or 0 before Linux 5.2). SysV segments cannot be
// truncated either, but stay guarded: a peer may have made one huge-page
// backed without a reserve, which faults when the pool runs dry, and that is
// not visible from here.
package shmqueue
