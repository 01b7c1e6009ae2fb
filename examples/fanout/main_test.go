package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmkit/shmkit/examples/internal/extest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	extest.Cleanup()
	os.Exit(code)
}

const pkg = "github.com/shmkit/shmkit/examples/fanout"

var resultRE = regexp.MustCompile(`(block|overwrite): subscriber (\S+): received (\d+) missed (\d+) lapped (\d+)`)

// TestFanoutBothPolicies runs the example once per policy: in block mode
// nobody misses anything; in overwrite mode every subscriber's received +
// missed is the published count, and the slow one was lapped.
func TestFanoutBothPolicies(t *testing.T) {
	bin := extest.Build(t, pkg)
	const n = 20000
	p := extest.Start(t, bin, "-n", strconv.Itoa(n))
	if code := p.Wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, p.Stdout(), p.Stderr())
	}
	out := p.Stdout()
	if !strings.Contains(out, "every subscriber accounted for every message") {
		t.Fatalf("summary missing:\n%s", out)
	}
	seen := map[string]int{}
	for _, m := range resultRE.FindAllStringSubmatch(out, -1) {
		policy, name := m[1], m[2]
		got, _ := strconv.Atoi(m[3])
		missed, _ := strconv.Atoi(m[4])
		lapped, _ := strconv.Atoi(m[5])
		seen[policy]++
		if got+missed != n {
			t.Errorf("%s %s: received %d + missed %d != %d", policy, name, got, missed, n)
		}
		if policy == "block" && (missed != 0 || lapped != 0) {
			t.Errorf("block %s: missed %d, lapped %d", name, missed, lapped)
		}
		if policy == "overwrite" && name == "slow" && lapped == 0 {
			t.Errorf("overwrite: the slow subscriber was never lapped:\n%s", out)
		}
	}
	if seen["block"] != 3 || seen["overwrite"] != 3 {
		t.Fatalf("want 3 result lines per policy, got %v:\n%s", seen, out)
	}
	if !regexp.MustCompile(`overwrite: .*lapped [1-9]`).MatchString(out) {
		t.Errorf("no stats line shows a lapped subscriber:\n%s", out)
	}
}
