package baseline

import (
	"fmt"
	"io"
	"os"
	"strconv"
)

// builtinPeers are the peers of this package's own measurements, by role:
// how many integer arguments each takes and what it runs. They run from
// init; peers registered with RegisterPeer run from RunPeer. Files arrive
// as fd 3, 4.
var builtinPeers = map[string]struct {
	args int
	run  func(a []int) error
}{
	"stream-sink":    {2, func(a []int) error { return streamSink(os.NewFile(3, "in"), os.NewFile(4, "out"), a[0], a[1]) }},
	"stream-echo":    {2, func(a []int) error { return streamEcho(os.NewFile(3, "in"), os.NewFile(4, "out"), a[0], a[1]) }},
	"msgq-sink":      {3, func(a []int) error { return msgqSink(a[0], a[1], a[2]) }},
	"msgq-echo":      {3, func(a []int) error { return msgqEcho(a[0], a[1], a[2]) }},
	"spin-echo":      {1, func(a []int) error { return spinEcho(a[0]) }},
	"futex-echo":     {1, func(a []int) error { return futexEcho(a[0]) }},
	"spin-ring-sink": {2, func(a []int) error { return spinRingSink(a[0], a[1]) }},
	"spin-ring-echo": {1, func(a []int) error { return spinRingEcho(a[0]) }},
}

// runPeer runs the child side of a measurement.
func runPeer(role string, args []string) error {
	p, ok := builtinPeers[role]
	if !ok {
		return fmt.Errorf("unknown peer role %q", role)
	}
	if len(args) != p.args {
		return fmt.Errorf("want %d arguments, got %q", p.args, args)
	}
	ints := make([]int, len(args))
	for i, a := range args {
		n, err := strconv.Atoi(a)
		if err != nil {
			return fmt.Errorf("bad argument %q", a)
		}
		ints[i] = n
	}
	return p.run(ints)
}

func streamSink(in, out *os.File, count, size int) error {
	if _, err := out.Write([]byte{'R'}); err != nil {
		return err
	}
	buf := make([]byte, 256<<10)
	total := int64(count) * int64(size)
	for got := int64(0); got < total; {
		n, err := in.Read(buf[:min(int64(len(buf)), total-got)])
		got += int64(n)
		if err != nil && got < total {
			return fmt.Errorf("read after %d of %d bytes: %w", got, total, err)
		}
	}
	_, err := out.Write([]byte{'A'})
	return err
}

func streamEcho(in, out *os.File, count, size int) error {
	if _, err := out.Write([]byte{'R'}); err != nil {
		return err
	}
	msg := make([]byte, size)
	for range count {
		if _, err := io.ReadFull(in, msg); err != nil {
			return err
		}
		if _, err := out.Write(msg); err != nil {
			return err
		}
	}
	return nil
}

func msgqSink(id, count, size int) error {
	buf := make([]byte, 8+size)
	setType(buf, typeToParent)
	if err := msgSend(id, buf); err != nil {
		return err
	}
	for range count {
		if _, err := msgRecv(id, buf, typeToChild); err != nil {
			return err
		}
	}
	setType(buf, typeToParent)
	return msgSend(id, buf)
}

func msgqEcho(id, count, size int) error {
	buf := make([]byte, 8+size)
	setType(buf, typeToParent)
	if err := msgSend(id, buf); err != nil {
		return err
	}
	for range count {
		if _, err := msgRecv(id, buf, typeToChild); err != nil {
			return err
		}
		setType(buf, typeToParent)
		if err := msgSend(id, buf); err != nil {
			return err
		}
	}
	return nil
}
