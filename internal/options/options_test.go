package options

import (
	"strings"
	"testing"
	"time"

	shmsync "github.com/shmkit/shmkit/sync"
)

type ringSettings struct{ depth int }

func TestBuild(t *testing.T) {
	own := &ringSettings{depth: 1}
	withDepth := New("shmring", "WithDepth", func(c *Config) { c.Own.(*ringSettings).depth = 7 })
	c, err := Build("shmring", own, []Option{WithMode(0o640), WithPopulate(), withDepth, {}})
	if err != nil {
		t.Fatal(err)
	}
	if own.depth != 7 || len(c.Layout) != 2 || c.PolicySet {
		t.Fatalf("config %+v, own %+v", c, own)
	}
	if got := c.PolicyOr(shmsync.ParkOnly); got != shmsync.ParkOnly {
		t.Fatalf("default policy %v", got)
	}
	c, err = Build("shmring", own, []Option{WithWaitPolicy(shmsync.SpinOnly)})
	if err != nil || c.PolicyOr(shmsync.ParkOnly) != shmsync.SpinOnly {
		t.Fatalf("policy %v, %v", c.Policy, err)
	}
}

func TestBuildRefusesForeignAndBadOptions(t *testing.T) {
	foreign := New("shmqueue", "WithBackend", func(*Config) { t.Fatal("a foreign option was applied") })
	_, err := Build("shmring", nil, []Option{foreign})
	if err == nil || !strings.Contains(err.Error(), "shmqueue.WithBackend is for shmqueue, not shmring") {
		t.Fatalf("foreign option: %v", err)
	}
	_, err = Build("shmring", nil, []Option{WithWaitPolicy(shmsync.WaitPolicy{Spin: -time.Second})})
	if err == nil || !strings.Contains(err.Error(), "negative") {
		t.Fatalf("negative policy: %v", err)
	}
}
