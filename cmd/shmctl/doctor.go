package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"

	"github.com/shmkit/shmkit/segment"
	"golang.org/x/sys/unix"
)

var cmdDoctor = &command{
	name:    "doctor",
	summary: "find stale state left by dead processes, and repair it",
	help: `Usage: shmctl doctor [--fix] [--json] [SPEC...]

Look for state that processes left behind when they died: segments whose
creator died before finishing initialization (they can never become ready),
ring roles held by dead processes, shared locks whose owner died holding
them, and corrupt segments. With no SPEC, every shmkit segment on the host
that ls would show is examined; without --fix nothing is changed. With --fix
each problem is repaired the way the library itself repairs it, by calling
the owning package's own recovery, never a reimplementation: a segment whose
creator died during initialization is removed, which is what opening it
tells a program to do. Some findings have nothing for shmctl to repair and
are only reported: a dead ring role is taken over by the next producer or
consumer, which resumes from the shared cursors, and a lock whose owner died
must be repaired by the program, which alone knows the data it guards (its
next Lock returns ErrOwnerDead). A segment whose creator finished and
exited and that nobody maps is idle, not broken (it keeps its data for the
next run): doctor does not report it; remove it with 'shmctl rm' if it is
no longer wanted.

Options:
  --fix    repair what was found and report each action
  --json   print the findings (and actions) as a JSON array

Examples:
  shmctl doctor
  shmctl doctor --fix posix:/orders
  shmctl doctor --fix --json

Exit status:
  0  nothing is wrong, or everything found was repaired
  1  problems remain (not repaired, not repairable, or corrupt segments)
  2  usage error
`,
}

func init() { cmdDoctor.run = runDoctor }

// finding is one segment's diagnosis and, with --fix, what was done.
type finding struct {
	Spec     string    `json:"spec"`
	Status   string    `json:"status"`
	Error    string    `json:"error,omitempty"`
	Problems []Problem `json:"problems"`
	Actions  []string  `json:"actions,omitempty"`
	FixError string    `json:"fix_error,omitempty"`
	// Remaining is true when problems are left after the run.
	Remaining bool `json:"remaining"`
}

func runDoctor(e *env, args []string) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fix := fs.Bool("fix", false, "")
	asJSON := fs.Bool("json", false, "")
	operands, status, ok := parseFlags(e, cmdDoctor, fs, args)
	if !ok {
		return status
	}
	ps := scanProc()
	var ts []*target
	var errs []error
	if len(operands) == 0 {
		ts, errs = discoverHost(ps)
	} else {
		for _, a := range operands {
			t, err := resolve(a, ps)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			ts = append(ts, t)
		}
	}
	status = exitOK
	for _, err := range errs {
		e.errorf("doctor: %v", err)
		status = exitProblem
	}
	findings := []*finding{}
	for _, t := range ts {
		r := inspect(t, ps)
		if !r.Shmkit && len(operands) == 0 {
			continue
		}
		f := diagnose(r)
		if f == nil {
			continue
		}
		if *fix && len(f.Problems) > 0 {
			repair(t, r, f)
			after := inspect(t, scanProc())
			if after.Status == "error" && len(f.Actions) > 0 {
				f.Remaining = false // removed
			} else {
				g := diagnose(after)
				f.Remaining = g != nil && len(g.Problems) > 0
			}
		} else {
			f.Remaining = len(f.Problems) > 0
		}
		if f.Remaining {
			status = exitProblem
		}
		findings = append(findings, f)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(findings)
		return status
	}
	for _, f := range findings {
		printFinding(e, f, *fix)
	}
	if len(findings) == 0 {
		fmt.Fprintln(e.stdout, "no problems found")
	}
	return status
}

// diagnose turns a report into a finding, or nil when there is nothing to say.
func diagnose(r *Report) *finding {
	f := &finding{Spec: r.Spec, Status: r.Status, Problems: []Problem{}}
	switch r.Status {
	case "corrupt", "error":
		f.Error = r.Error
		f.Problems = append(f.Problems, Problem{What: r.Status, Detail: r.Error})
	case "foreign":
		d := "not a shmkit segment"
		if r.Error != "" {
			d += ": " + r.Error
		}
		f.Problems = append(f.Problems, Problem{What: "foreign", Detail: d})
	}
	f.Problems = append(f.Problems, r.Stale...)
	if len(f.Problems) == 0 {
		return nil
	}
	return f
}

// repair applies the fixes for f's problems and records what it did.
func repair(t *target, r *Report, f *finding) {
	kindRepaired := false
	for _, p := range f.Problems {
		if !p.Fixable {
			continue
		}
		if p.What == "half-initialized" {
			if err := segment.Remove(t.Spec); err != nil {
				f.FixError = err.Error()
				continue
			}
			f.Actions = append(f.Actions, fmt.Sprintf("removed %s: its creator pid %d died during initialization", t.Spec, r.Creator.PID))
			continue
		}
		if kindRepaired {
			continue
		}
		kindRepaired = true
		pr, ok := probes[r.kind]
		if !ok || pr.repair == nil {
			f.FixError = "no repair known for kind " + r.kind.String()
			continue
		}
		spec, done, err := writableSpec(t)
		if err != nil {
			f.FixError = err.Error()
			continue
		}
		acts, err := pr.repair(spec)
		done()
		f.Actions = append(f.Actions, acts...)
		if err != nil {
			f.FixError = err.Error()
		}
	}
}

// writableSpec returns a spec through which the segment can be opened for
// writing: its own spec, or for an object reached through another process's
// descriptor, a read-write descriptor of our own.
func writableSpec(t *target) (string, func(), error) {
	switch t.Backend {
	case "posix", "file", "sysv":
		return t.Spec, func() {}, nil
	}
	fd, err := unix.Open(t.Path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, &os.PathError{Op: "open", Path: t.Path, Err: err}
	}
	return "fd:" + strconv.Itoa(fd), func() { _ = unix.Close(fd) }, nil
}

func printFinding(e *env, f *finding, fixing bool) {
	for _, p := range f.Problems {
		hint := ""
		if !fixing && p.Fixable {
			hint = " (--fix repairs this)"
		}
		fmt.Fprintf(e.stdout, "%s: %s: %s%s\n", f.Spec, p.What, p.Detail, hint)
	}
	for _, a := range f.Actions {
		fmt.Fprintf(e.stdout, "%s: fixed: %s\n", f.Spec, a)
	}
	if f.FixError != "" {
		fmt.Fprintf(e.stdout, "%s: repair failed: %s\n", f.Spec, f.FixError)
	}
	if fixing && f.Remaining {
		fmt.Fprintf(e.stdout, "%s: problems remain\n", f.Spec)
	}
}
