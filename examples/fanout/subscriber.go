package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shmkit/shmkit/shmbus"
)

// subscriber reads the bus from the oldest message until it is closed,
// checks every message (whole, in order; gaps only as ErrLagged says) and
// prints its counts.
func subscriber(spec, name string, slow bool) error {
	bus, err := shmbus.Open[Tick](spec)
	if err != nil {
		return err
	}
	defer bus.Close()
	sub, err := bus.Subscribe(shmbus.FromOldest())
	if err != nil {
		return err
	}
	defer sub.Close()
	ctx := context.Background()
	var next, got, missed, lapped uint64
	for {
		if slow && got%50 == 49 {
			time.Sleep(time.Millisecond)
		}
		t, err := sub.Next(ctx)
		var lag *shmbus.LaggedError
		switch {
		case errors.As(err, &lag):
			missed += lag.Missed
			next += lag.Missed
			lapped++
			continue
		case errors.Is(err, shmbus.ErrClosed):
			fmt.Printf("subscriber %s: received %d missed %d lapped %d\n", name, got, missed, lapped)
			return nil
		case err != nil:
			return err
		}
		if !t.ok() {
			return fmt.Errorf("torn message %+v", t)
		}
		if t.Seq != next {
			return fmt.Errorf("got message %d, want %d", t.Seq, next)
		}
		next++
		got++
	}
}
