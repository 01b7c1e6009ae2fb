package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shmkit/shmkit/shmbus"
)

// run publishes n messages to three subscriber processes with the given
// policy and reports whether each accounted for all of them.
func run(policy string, n uint64, capacity int) (bool, error) {
	over := shmbus.Block
	if policy == "overwrite" {
		over = shmbus.Overwrite
	}
	spec := fmt.Sprintf("posix:/shmkit-fanout-%d-%s", os.Getpid(), policy)
	_ = shmbus.Remove(spec)
	bus, err := shmbus.Create[Tick](spec, capacity, shmbus.WithOverflow(over))
	if err != nil {
		return false, err
	}
	defer shmbus.Remove(spec)
	defer bus.Close()

	self, err := os.Executable()
	if err != nil {
		return false, err
	}
	names := []string{"fast-1", "fast-2", "slow"}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results = map[string]string{}
		cmds    []*exec.Cmd
	)
	for _, name := range names {
		args := []string{"-sub", name, "-spec", spec}
		if name == "slow" {
			args = append(args, "-slow")
		}
		cmd := exec.Command(self, args...)
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return false, err
		}
		if err := cmd.Start(); err != nil {
			return false, err
		}
		cmds = append(cmds, cmd)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				line := sc.Text()
				fmt.Printf("%s: %s\n", policy, line)
				if strings.HasPrefix(line, "subscriber ") {
					mu.Lock()
					results[name] = line
					mu.Unlock()
				}
			}
		}()
	}
	kill := func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
	// Wait for the three to join: they start from the oldest message, so
	// nothing published after this is missed by a late joiner.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := bus.Stats()
		if err != nil {
			kill()
			return false, err
		}
		if len(st.Subscribers) == len(names) {
			break
		}
		if time.Now().After(deadline) {
			kill()
			return false, fmt.Errorf("only %d of %d subscribers joined", len(st.Subscribers), len(names))
		}
		time.Sleep(time.Millisecond)
	}

	ctx := context.Background()
	start := time.Now()
	last := start
	for i := range n {
		if err := bus.Publish(ctx, makeTick(i)); err != nil {
			kill()
			return false, err
		}
		if i%200 == 199 && over == shmbus.Overwrite {
			time.Sleep(time.Millisecond) // let the fast ones keep up
		}
		if now := time.Now(); now.Sub(last) >= 100*time.Millisecond || i == n-1 {
			last = now
			printStats(policy, bus, now.Sub(start))
		}
	}
	if err := bus.CloseWrites(); err != nil {
		kill()
		return false, err
	}
	good := true
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			fmt.Printf("%s: subscriber %s: %v\n", policy, names[i], err)
			good = false
		}
	}
	wg.Wait()
	for _, name := range names {
		var got, missed, lapped uint64
		if _, err := fmt.Sscanf(results[name], "subscriber "+name+": received %d missed %d lapped %d", &got, &missed, &lapped); err != nil {
			fmt.Printf("%s: subscriber %s: no result line\n", policy, name)
			good = false
			continue
		}
		if got+missed != n {
			fmt.Printf("%s: subscriber %s: received %d + missed %d != published %d\n", policy, name, got, missed, n)
			good = false
		}
		if over == shmbus.Block && missed != 0 {
			fmt.Printf("%s: subscriber %s missed %d on a blocking bus\n", policy, name, missed)
			good = false
		}
	}
	return good, nil
}

func printStats(policy string, bus *shmbus.Bus[Tick], elapsed time.Duration) {
	st, err := bus.Stats()
	if err != nil {
		fmt.Printf("%s: stats: %v\n", policy, err)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %6.0f ms published %d |", policy, elapsed.Seconds()*1000, st.Published)
	for _, s := range st.Subscribers {
		fmt.Fprintf(&b, " sub %d (pid %d) lag %d lapped %d missed %d |", s.Index, s.Owner.PID, s.Lag, s.Lapped, s.Missed)
	}
	fmt.Println(b.String())
}
