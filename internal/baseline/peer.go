package baseline

import (
	"fmt"
	"io"
	"os"
	"strconv"
)

// runPeer runs the child side of a measurement. Files arrive as fd 3, 4.
func runPeer(role string, args []string) error {
	ints := make([]int, len(args))
	for i, a := range args {
		n, err := strconv.Atoi(a)
		if err != nil {
			return fmt.Errorf("bad argument %q", a)
		}
		ints[i] = n
	}
	need := func(n int) error {
		if len(ints) != n {
			return fmt.Errorf("want %d arguments, got %q", n, args)
		}
		return nil
	}
	switch role {
	case "stream-sink":
		if err := need(2); err != nil {
			return err
		}
		return streamSink(os.NewFile(3, "in"), os.NewFile(4, "out"), ints[0], ints[1])
	case "stream-echo":
		if err := need(2); err != nil {
			return err
		}
		return streamEcho(os.NewFile(3, "in"), os.NewFile(4, "out"), ints[0], ints[1])
	case "msgq-sink":
		if err := need(3); err != nil {
			return err
		}
		return msgqSink(ints[0], ints[1], ints[2])
	case "msgq-echo":
		if err := need(3); err != nil {
			return err
		}
		return msgqEcho(ints[0], ints[1], ints[2])
	case "spin-echo":
		if err := need(1); err != nil {
			return err
		}
		return spinEcho(ints[0])
	case "futex-echo":
		if err := need(1); err != nil {
			return err
		}
		return futexEcho(ints[0])
	}
	return fmt.Errorf("unknown peer role %q", role)
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
