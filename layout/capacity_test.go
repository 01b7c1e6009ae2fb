package layout

import (
	"errors"
	"testing"
)

func TestRoundCapacity(t *testing.T) {
	for _, c := range []struct {
		n        int
		min, max uint64
		want     uint64
	}{{1, 1, 8, 1}, {3, 1, 8, 4}, {4, 1, 8, 4}, {5, 1, 8, 8}, {100, 64, 1 << 20, 128}} {
		got, err := RoundCapacity(c.n, c.min, c.max)
		if err != nil || got != c.want {
			t.Errorf("RoundCapacity(%d) = %d, %v; want %d", c.n, got, err, c.want)
		}
	}
	for _, n := range []int{0, -1, 9, 1 << 40} {
		if _, err := RoundCapacity(n, 1, 8); !errors.Is(err, ErrCapacity) {
			t.Errorf("RoundCapacity(%d) = %v, want ErrCapacity", n, err)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 100: "100 B", 4096: "4 KiB", 1 << 46: "64 TiB", 3 << 29: "1.5 GiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
