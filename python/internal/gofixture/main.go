// Command gofixture makes shmkit segments from Go for the Python package's
// tests (python/tests) and prints what they hold as JSON, one line.
//
//	gofixture value SPEC                      Value[Point]
//	gofixture ring SPEC CAP N POP             Ring[Item]: push N, pop POP
//	gofixture map SPEC N                      Map[uint64, Item]: put N, delete every 7th
//	gofixture map2 SPEC N                     Map[Key, Point] (a padded struct key)
//	gofixture bus SPEC CAP N block|overwrite WAIT
//	    Bus[Item]: create, print {"ready":true}, wait (WAIT=sub: for a
//	    subscriber to join; WAIT=stdin: for a line on stdin), publish N,
//	    CloseWrites, print {"published":N}
//	gofixture ring-produce SPEC CAP N
//	    Ring[Item]: create, print {"ready":true}, push N (blocking: the
//	    consumer must keep up), wait until drained, print {"pushed":N}
//	gofixture ring-check SPEC                 print a Ring[Item]'s stats
//	gofixture remove SPEC
//
// Item, Point and Key are the types the Python tests expect.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/shmkit/shmkit/layout"
	"github.com/shmkit/shmkit/segment"
	"github.com/shmkit/shmkit/shmbus"
	"github.com/shmkit/shmkit/shmmap"
	"github.com/shmkit/shmkit/shmring"
)

// Item is a ring and bus element: padding between Val and Sum.
type Item struct {
	Seq uint64
	Val int32
	Sum float64
}

// Point is a value with a byte array, a small array and a complex.
type Point struct {
	X    int64
	Y    float64
	Name [16]byte
	Tags [3]uint16
	Flag uint8
	Z    complex64
}

// Key is a map key with trailing padding.
type Key struct {
	A uint32
	B uint16
}

func item(i uint64) Item { return Item{Seq: i, Val: int32(i*3) - 7, Sum: float64(i) / 2} }

func point(i int) Point {
	p := Point{X: int64(i) - 5, Y: float64(i) * 1.25, Tags: [3]uint16{uint16(i), 2, 3}, Flag: uint8(i % 2), Z: complex(float32(i), -1)}
	copy(p.Name[:], fmt.Sprintf("point-%d", i))
	return p
}

type jsonPoint struct {
	X    int64      `json:"X"`
	Y    float64    `json:"Y"`
	Name string     `json:"Name"`
	Tags [3]uint16  `json:"Tags"`
	Flag uint8      `json:"Flag"`
	Z    [2]float32 `json:"Z"`
}

func jp(p Point) jsonPoint {
	n := 0
	for n < len(p.Name) && p.Name[n] != 0 {
		n++
	}
	return jsonPoint{X: p.X, Y: p.Y, Name: string(p.Name[:n]), Tags: p.Tags, Flag: p.Flag, Z: [2]float32{real(p.Z), imag(p.Z)}}
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gofixture:", err)
		os.Exit(1)
	}
}

func emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gofixture: bad number", s)
		os.Exit(2)
	}
	return n
}

func run(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: gofixture value|ring|map|map2|bus|ring-produce|ring-check|remove SPEC ...")
	}
	cmd, spec := args[0], args[1]
	ctx := context.Background()
	switch cmd {
	case "value":
		v, err := layout.CreateValue[Point](spec)
		if err != nil {
			return err
		}
		*v.Ptr() = point(7)
		emit(jp(*v.Ptr()))
		return v.Close()
	case "ring":
		capacity, n, pop := atoi(args[2]), atoi(args[3]), atoi(args[4])
		r, err := shmring.Create[Item](spec, capacity)
		if err != nil {
			return err
		}
		defer r.Close()
		// Pop as soon as the ring is full, so the cursors wrap.
		popped := 0
		for i := range n {
			for !r.TryPush(item(uint64(i))) {
				if popped == pop {
					return fmt.Errorf("ring full at %d", i)
				}
				if _, ok := r.TryPop(); !ok {
					return fmt.Errorf("ring empty")
				}
				popped++
			}
		}
		for ; popped < pop; popped++ {
			if _, ok := r.TryPop(); !ok {
				return fmt.Errorf("ring empty")
			}
		}
		var left []Item
		for i := pop; i < n; i++ {
			left = append(left, item(uint64(i)))
		}
		emit(map[string]any{"head": pop, "tail": n, "items": left})
		return nil
	case "map":
		n := atoi(args[2])
		m, err := shmmap.Create[uint64, Item](spec, max(n, 1))
		if err != nil {
			return err
		}
		defer m.Close()
		want := map[string]Item{}
		for i := range n {
			k := uint64(i)*0x9e3779b97f4a7c15 + 1
			if err := m.Put(k, item(uint64(i))); err != nil {
				return err
			}
			want[strconv.FormatUint(k, 10)] = item(uint64(i))
		}
		for i := 0; i < n; i += 7 {
			k := uint64(i)*0x9e3779b97f4a7c15 + 1
			m.Delete(k)
			delete(want, strconv.FormatUint(k, 10))
		}
		emit(want)
		return nil
	case "map2":
		n := atoi(args[2])
		m, err := shmmap.Create[Key, Point](spec, max(n, 1), shmmap.WithShards(4))
		if err != nil {
			return err
		}
		defer m.Close()
		type kv struct {
			A, B uint32
			V    jsonPoint
		}
		var want []kv
		for i := range n {
			k := Key{A: uint32(i * 11), B: uint16(i)}
			if err := m.Put(k, point(i)); err != nil {
				return err
			}
			want = append(want, kv{k.A, uint32(k.B), jp(point(i))})
		}
		emit(want)
		return nil
	case "bus":
		capacity, n, mode, wait := atoi(args[2]), atoi(args[3]), args[4], args[5]
		ov := shmbus.Block
		if mode == "overwrite" {
			ov = shmbus.Overwrite
		}
		b, err := shmbus.Create[Item](spec, capacity, shmbus.WithOverflow(ov))
		if err != nil {
			return err
		}
		defer b.Close()
		emit(map[string]any{"ready": true})
		switch wait {
		case "sub":
			deadline := time.Now().Add(20 * time.Second)
			for {
				st, err := b.Stats()
				if err != nil {
					return err
				}
				if len(st.Subscribers) > 0 {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("no subscriber joined")
				}
				time.Sleep(time.Millisecond)
			}
		case "stdin":
			if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
				return err
			}
		}
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		for i := range n {
			if err := b.Publish(ctx, item(uint64(i))); err != nil {
				return err
			}
		}
		if err := b.CloseWrites(); err != nil {
			return err
		}
		emit(map[string]any{"published": n})
		return nil
	case "ring-produce":
		capacity, n := atoi(args[2]), atoi(args[3])
		r, err := shmring.Create[Item](spec, capacity)
		if err != nil {
			return err
		}
		defer r.Close()
		emit(map[string]any{"ready": true})
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		for i := range n {
			if err := r.Push(ctx, item(uint64(i))); err != nil {
				return fmt.Errorf("push %d: %w", i, err)
			}
		}
		for r.Len() > 0 {
			if ctx.Err() != nil {
				return fmt.Errorf("ring not drained: %d left", r.Len())
			}
			time.Sleep(time.Millisecond)
		}
		emit(map[string]any{"pushed": n})
		return nil
	case "ring-check":
		r, err := shmring.Open[Item](spec)
		if err != nil {
			return err
		}
		defer r.Close()
		st, err := r.Stats()
		if err != nil {
			return err
		}
		emit(st)
		return nil
	case "remove":
		return segment.Remove(spec)
	}
	return fmt.Errorf("unknown command %q", cmd)
}
