package main

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/shmbus"
	"github.com/stretchr/testify/require"
)

// busSubChild subscribes to the bus at args[0], says so, and waits to be
// killed.
var busSubChild = testproc.Register("shmctl-bus-sub", func(args []string) error {
	b, err := shmbus.Open[Item](args[0])
	if err != nil {
		return err
	}
	if _, err := b.Subscribe(); err != nil {
		return err
	}
	println("subscribed")
	time.Sleep(time.Minute)
	return nil
})

// TestBusLiveStateAndDeadSubscriber: stat shows a bus's subscribers (a
// durable one and a SIGKILLed anonymous one), doctor reports the dead one
// and --fix frees its record through shmbus.ReleaseDeadSubscribers.
func TestBusLiveStateAndDeadSubscriber(t *testing.T) {
	spec := posixSpec(t, "ctl-bus")
	b, err := shmbus.Create[Item](spec, 64)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	_, err = b.Subscribe(shmbus.Durable("audit"))
	require.NoError(t, err)
	p := busSubChild.Start(t, spec)
	require.Eventually(t, func() bool {
		st, err := b.Stats()
		return err == nil && len(st.Subscribers) == 2
	}, 30*time.Second, time.Millisecond, p.Output())
	p.Kill()
	for i := range 5 {
		require.NoError(t, b.TryPublish(Item{Seq: uint64(i)}))
	}

	res := runBin(t, "stat", "--json", spec)
	require.Equal(t, 1, res.code, "a dead subscriber is stale: "+res.stdout+res.stderr)
	var r Report
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &r), res.stdout)
	require.Equal(t, "stale", r.Status)
	require.Equal(t, "bus", r.Header.Kind)
	require.NotNil(t, r.Live)
	require.Equal(t, uint64(5), *r.Live.Tail)
	require.Len(t, r.Stale, 1)
	require.Equal(t, "dead-participant", r.Stale[0].What)

	doc := runBin(t, "doctor", "--fix", spec)
	require.Equal(t, 0, doc.code, doc.stdout+doc.stderr)
	require.Contains(t, doc.stdout, "dead pid "+strconv.Itoa(p.Pid()))
	require.Equal(t, 0, runBin(t, "stat", spec).code)
	st, err := b.Stats()
	require.NoError(t, err)
	require.Len(t, st.Subscribers, 1)
	require.Equal(t, "audit", st.Subscribers[0].Name)
}
