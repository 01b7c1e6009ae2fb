package sync

// fence orders every memory access before it against every access after it,
// as seen by other processes. It is SeqCount's one barrier (see fence in
// fence_other.go for the weakly ordered case). On amd64 (TSO) the hardware
// already keeps what SeqCount needs in order: loads are not reordered with
// later loads, stores are not reordered with later stores, and a locked
// read-modify-write (BeginWrite's LOCK OR) is a full barrier; the compiler
// never moves memory accesses across the sync/atomic operations around the
// call. So nothing is emitted, and the fast paths cost what they did.
func fence() {}
