// Package shmmap is a fixed-capacity hash table in a shared-memory segment:
// many processes read and write one Map[K, V] with no server in between.
//
// # Design
//
// Shards. The table is split into 2^b independent shards (by default about
// 1024 keys per shard, at most 256 shards; WithShards overrides). A key's 64-bit hash picks its
// shard by its top bits; each shard is its own open-addressing array with
// its own robust writer lock, sequence count, live count and redo record.
// Probes never leave a shard, so one shard lock covers every slot a
// mutation touches and readers of other shards are never disturbed.
//
// Hash. hash(k) = xxhash64(LE64(seed) || the non-padding bytes of k). The
// seed is chosen at Create (random, or WithSeed) and stored in the segment
// header, so every process computes the same hash (hash/maphash cannot: its
// seeds are per process). Padding bytes are left out because a struct key
// can carry garbage there; keys are then compared with ==, which also
// ignores padding. Float and complex key fields are rejected with
// ErrUnsupportedType: == on them is not bitwise (+0 == -0 with different
// bytes, NaN != NaN), so a key could hash two ways or never be found; key on
// math.Float64bits instead.
//
// Slots and deletion. Linear probing with backward-shift deletion: deleting
// a key moves later entries of its cluster back into the hole, so the shard
// is always exactly as if the live keys had been inserted with no deletions
// in between. There are no tombstones, so probe lengths depend only on the
// load factor and never degrade under insert/delete churn, and no periodic
// rehash (with its own crash window) is needed. Each slot stores the key's
// tag (hash | 1) next to the key: the shift computes home slots from it
// without rehashing, and lookups compare keys only when tags match.
//
// Capacity. Each shard accepts at most 3/4 of its slots (the maximum load
// factor; linear probing then expects ~2.5 probes for a hit and ~8.5 for a
// miss). Create sizes shards so that capacity keys spread by the hash fit
// with overwhelming probability: each shard's limit is the per-shard mean
// plus six standard deviations plus 8, and it has 4/3 of that in slots
// (rounded up to a multiple of 8; shard sizes need not be powers of two, a
// key's home slot comes from a multiply-shift of its hash). So Len can go
// somewhat past capacity, and Put returns ErrFull when the key's own shard
// is at its limit. With one shard (WithShards(1)) the limit is exactly
// 3/4 of the slots, at least capacity. A slot is an 8-byte tag, K and V
// (Go-aligned): 1 M keys of 8 bytes with 64-byte values take 122 MB.
//
// Readers. Get normally takes no lock and makes no system call. It reads
// the shard's sequence count, probes and copies the value out, and rereads
// the count; if a writer was active it retries. After readAttempts failed
// attempts (a writer is descheduled, or died mid-write leaving the count
// odd) it takes the shard lock, which blocks only behind a live writer and
// goes through the repair path below if the writer died; then it reads
// under the lock. So a Get never returns a torn value and never spins
// forever; it waits only as long as a live writer holds its shard (a
// writer stopped with SIGSTOP mid-write stalls that shard's readers until
// it continues or dies). All snapshots one shard at a time the same way.
// The copy is made with plain loads; SeqCount.Retry orders them before its
// re-read of the count (a no-op on amd64, STLR+LDAR on arm64: see
// shmkit/sync's SeqCount), and SeqCount.BeginWrite orders the odd count
// before a writer's plain slot stores.
//
// Writers and crashes. A mutation is described in the shard's redo record
// (op, slot, and a full copy of the new entry) before any slot changes:
//
//	write redo entry, RedoSlot; RedoOp = op   (publish the intent)
//	seq.BeginWrite; mutate slots, Count; seq.EndWrite
//	RedoOp = none                              (done)
//
// Every op is idempotent when replayed from its record: insert and update
// copy the logged entry or value into the logged slot; delete runs the
// backward shift from the hole recorded in RedoSlot, which is advanced after
// each moved entry (rerunning a shift from an already-filled hole finds the
// same entry to move, or nothing); clear empties the shard. A writer
// SIGKILLed at any instruction leaves the lock word to the kernel's robust
// list: the next locker (writer, or a reader that fell back) gets
// ErrOwnerDead, replays the record under an odd sequence count, recounts
// the shard, makes the count even and marks the lock consistent. So the
// in-flight mutation of a killed writer is either fully applied (its record
// was published) or not at all; nothing else is ever lost, and the table is
// never left torn. A repairer killed mid-repair is repaired in turn.
// A published mutation takes effect when it is repaired, normally by the
// next access to the shard: a reader that finds the count odd falls back to
// the lock; one that finds the count even but the redo record set tries the
// lock without waiting, which succeeds at once if the kernel has reported
// the holder dead, and finishes the mutation itself.
//
// Never trusting the segment. Every index read from shared memory is masked
// or checked against the shard size, and read once into a local (what is
// checked is what is used, whatever a peer writes meanwhile); every probe
// and shift is bounded by the shard size, and Check walks the whole table.
// A repair copies the redo entry out once and replays an insert only if the
// entry's tag is its key's hash in this shard and the target slot is empty
// or already holds that tag; a live count above the shard's limit (which no
// writer produces) makes an insert fail with ErrCorrupt. A blocked lock checks
// every quarter second that the lock word names a live thread of the
// process recorded as its holder (a scribbled word naming some unrelated
// live thread would otherwise never be released) and gives up after the
// lock timeout. It reports the word as corrupt only on definite evidence
// (internal/proc: the recorded holder certainly exited, or its visible
// /proc/PID/task certainly lacks the thread); under any doubt (hidepid,
// EPERM) it waits, so a live holder is never reported bogus. A peer that scribbles garbage can make operations return
// ErrCorrupt or odd values, but never panic, index out of range or hang.
//
// Concurrency. A Map handle may be used from any number of goroutines, and
// any number of processes may Open the same segment. Close must not race
// with other calls on the same handle. Values are returned by copy: nothing
// returned aliases shared memory.
//
// # Truncated segments
//
// A peer with write access to a posix: or file: segment can ftruncate it;
// a process touching a lost page then takes SIGBUS. Map calls catch such a
// fault (internal/faultguard, shared with the rings, queues and buses) and
// return an error wrapping ErrCorrupt and ErrTruncated ("segment truncated
// by another process") naming the call (or "lock", "repair", "all" where
// the fault hit inside one) and the spec; from then on the handle is good
// only for Close, and every other call returns that first error (Get:
// zero, false; Len: 0; All: nothing). Always guarded: Open's and Create's
// validation after mapping, the blocking part of taking a shard lock (the
// wait, the dead-holder checks, repair and the owner-death protocol), the
// locked read path, a reader's settle of a pending redo record, All (a
// fault ends the iteration; the next call reports it), Clear, Len, Stats,
// Check and Inspect. Close touches no shared memory. Get, Load, Put,
// Delete, LoadAndDelete, Update, CompareAndSwap, CompareAndDelete and
// LoadOrStore are guarded as a whole only on a handle made WithFaultGuard
// (a few ns per call, see BenchmarkFaultGuard); otherwise only their lock
// waits and locked reads are. Under the race detector an atomic operation
// on the mapping runs in the detector's C code, where a fault that lands
// just then cannot be caught.
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
package shmmap
