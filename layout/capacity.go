package layout

import (
	"fmt"
	"math/bits"
)

// RoundCapacity is the one capacity rule of the slot-based structures (ring,
// byte ring, queue, bus): their slot count is a power of two (a cursor's slot
// is cursor & (capacity-1)), and Create rounds the capacity asked for up to
// the next power of two, which Cap then reports. n below min or a rounded
// value above max is refused with ErrCapacity, naming the range. (A map's
// capacity is a number of keys: it sizes its table from it, see shmmap.)
func RoundCapacity(n int, min, max uint64) (uint64, error) {
	if n <= 0 || uint64(n) < min {
		return 0, fmt.Errorf("%w: %d is below the minimum %d", ErrCapacity, n, min)
	}
	c := uint64(1) << bits.Len64(uint64(n)-1)
	if c > max {
		return 0, fmt.Errorf("%w: %d rounds up to %d, above the maximum %d", ErrCapacity, n, c, max)
	}
	return c, nil
}

// FormatBytes writes a byte count for people: 64 TiB, 1.5 GiB, 4 KiB, 100 B.
func FormatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	suffix := "KMGTPE"[exp : exp+1]
	if v == float64(uint64(v)) {
		return fmt.Sprintf("%d %siB", uint64(v), suffix)
	}
	return fmt.Sprintf("%.1f %siB", v, suffix)
}
