package layout

import (
	"sync/atomic"
	"unsafe"
)

// headerBytes returns the memory of h as bytes.
func headerBytes(h *Header) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(h)), HeaderSize)
}

// stateWord returns the shared State word of the header at the start of b.
// b must hold at least HeaderSize bytes; the word is 4-aligned because
// mappings are page-aligned.
func stateWord(b []byte) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&b[offState]))
}

// creatorRecord reads the creator fields of a possibly half-written header.
func creatorRecord(b []byte) ProcRecord {
	p := (*ProcRecord)(unsafe.Pointer(&b[offCreator]))
	return ProcRecord{
		PID:   atomic.LoadInt32(&p.PID),
		Start: atomic.LoadUint64(&p.Start),
	}
}

// writeCreator publishes the creator fields atomically, so an opener racing
// the creator reads whole values.
func writeCreator(b []byte, r ProcRecord) {
	p := (*ProcRecord)(unsafe.Pointer(&b[offCreator]))
	atomic.StoreUint64(&p.Start, r.Start)
	atomic.StoreInt32(&p.PID, r.PID)
}
