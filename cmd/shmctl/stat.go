package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

var cmdStat = &command{
	name:    "stat",
	summary: "show a segment's header, live state and validation result",
	help: `Usage: shmctl stat [--json] SPEC

Show everything shmctl can tell about one segment: the decoded header
(format version, kind, init state, capacity, flags, creation time, the
creator's pid and start time and whether that process is still alive, each
element type's name, size, alignment, fingerprint and stored layout string,
the offsets and sizes of the type descriptions and of every region, and the
kind-specific parameters), the processes that map it, the live state of the
structure (head, tail and length, cumulative counters, parked waiters, ring
role holders and lock owners, each marked alive or dead), and the
validation result. The segment is validated exactly as a program opening it
would validate it; a segment that fails is reported as corrupt together with
the check that failed. The segment is opened read-only.

Options:
  --json   print the report as one JSON object

Examples:
  shmctl stat posix:/orders
  shmctl stat /dev/shm/orders
  shmctl stat --json sysv:0x5eed
  shmctl stat /proc/4242/fd/7          a memfd held by process 4242

Exit status:
  0  the segment is valid and nothing is stale: in use, idle (its creator
     has exited and nobody maps it, which is how a segment keeps data
     between runs), or still being initialized by a live creator
  1  the segment is corrupt or stale, is not a shmkit segment, or could not
     be read
  2  usage error
`,
}

func init() { cmdStat.run = runStat }

func runStat(e *env, args []string) int {
	fs := flag.NewFlagSet("stat", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "")
	operands, status, ok := parseFlags(e, cmdStat, fs, args)
	if !ok {
		return status
	}
	if len(operands) != 1 {
		return usageError(e, cmdStat, "want exactly one SPEC, got %d", len(operands))
	}
	ps := scanProc()
	t, err := resolve(operands[0], ps)
	if err != nil {
		e.errorf("stat: %v", err)
		return exitProblem
	}
	r := inspect(t, ps)
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
	} else {
		printStat(e.stdout, r)
	}
	switch r.Status {
	case "ok", "idle", "initializing":
		return exitOK
	case "error":
		e.errorf("stat: %s: %s", r.Spec, r.Error)
	case "corrupt":
		e.errorf("stat: %s: corrupt: %s", r.Spec, r.Error)
	case "foreign":
		e.errorf("stat: %s: not a shmkit segment: %s", r.Spec, r.Error)
	case "stale":
		e.errorf("stat: %s: stale (run 'shmctl doctor %s')", r.Spec, r.Spec)
	}
	return exitProblem
}

func printStat(w io.Writer, r *Report) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	p := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s:\t"+format+"\n", append([]any{k}, a...)...) }
	p("spec", "%s", r.Spec)
	p("backend", "%s", r.Backend)
	if r.Path != "" {
		p("path", "%s", r.Path)
	}
	if r.Name != "" {
		p("memfd name", "%s", r.Name)
	}
	if r.MemFD != nil {
		p("held by", "%s", strings.Join(r.MemFD.Holders, " "))
	}
	p("size", "%d bytes", r.Size)
	p("status", "%s", r.Status)
	if r.Note != "" {
		p("note", "%s", r.Note)
	}
	switch {
	case r.Status == "corrupt":
		p("validation", "FAILED: %s", r.Error)
	case r.Status == "foreign":
		p("validation", "not a shmkit segment: %s", r.Error)
	case r.Valid != nil && *r.Valid:
		p("validation", "ok")
	case r.Error != "":
		p("error", "%s", r.Error)
	}
	if h := r.Header; h != nil {
		p("format", "version %d, header %d bytes", h.Version, h.HeaderSize)
		p("kind", "%s (%d)", h.Kind, h.KindCode)
		p("state", "%s", h.State)
		p("capacity", "%d", h.Capacity)
		p("flags", "%#x", h.Flags)
		p("segment size", "%d bytes", h.SegmentSize)
		if h.Created != nil {
			p("created", "%s (%s ago)", h.Created.Format(time.RFC3339Nano), time.Since(*h.Created).Round(time.Second))
		}
	}
	if c := r.Creator; c != nil {
		p("creator", "pid %d (start %d), %s", c.PID, c.Start, aliveWord(c.Alive))
	}
	if h := r.Header; h != nil {
		for i, t := range h.Types {
			name := t.Name
			if name == "" {
				name = "?"
			}
			p(fmt.Sprintf("type[%d]", i), "%s  size %d  align %d  fingerprint %s", name, t.Size, t.Align, t.Fingerprint)
			if t.Layout != "" {
				p(fmt.Sprintf("layout[%d]", i), "%s", t.Layout)
			}
		}
		p("type descs", "[%d, +%d)", h.TypeDescOff, h.TypeDescLen)
		for i, rg := range h.Regions {
			p(fmt.Sprintf("region[%d]", i), "[%d, +%d)", rg.Off, rg.Size)
		}
		p("params", "%v", h.Params)
		p("checksum", "%s", h.Checksum)
	}
	if s := r.SysV; s != nil {
		p("sysv", "key %s  shmid %d  perms %s  nattch %d  cpid %d  lpid %d", s.Key, s.ShmID, s.Perms, s.Nattch, s.CPID, s.LPID)
	}
	if len(r.Users) > 0 {
		p("users", "%s", pidList(r.Users))
	} else {
		p("users", "none")
	}
	if l := r.Live; l != nil {
		opt := func(k string, v *uint64) {
			if v != nil {
				p(k, "%d", *v)
			}
		}
		opt("len", l.Len)
		opt("head", l.Head)
		opt("tail", l.Tail)
		opt("in total", l.In)
		opt("out total", l.Out)
		if l.SyncBackend != "" {
			p("sync backend", "%s", l.SyncBackend)
		}
		if l.Closed != nil {
			p("closed", "%v", *l.Closed)
		}
		for _, wt := range l.Waiters {
			p("waiters "+wt.Name, "%d", wt.Value)
		}
		for _, o := range l.Owners {
			p(o.Role, "pid %d (start %d), %s", o.PID, o.Start, aliveWord(o.Alive))
		}
		for _, d := range l.Details {
			p(d.Name, "%d", d.Value)
		}
	}
	for _, pr := range r.Stale {
		fix := ""
		if pr.Fixable {
			fix = " (doctor --fix repairs this)"
		}
		p("STALE", "%s: %s%s", pr.What, pr.Detail, fix)
	}
	_ = tw.Flush()
}
