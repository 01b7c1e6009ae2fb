package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
)

var cmdLs = &command{
	name:    "ls",
	summary: "list segments, their owners and whether they are stale",
	help: `Usage: shmctl ls [--all] [--json] [DIR|FILE|SPEC...]

List shmkit segments. With no operands, ls looks at every backend on the
host: the objects in /dev/shm, System V shared memory segments
(/proc/sysvipc/shm), and memfds held by processes it can read. Operands
limit the listing: a directory lists the regular files in it (segments in
files live wherever their users put them, so they are only found this way),
anything else names one object. For each segment ls shows its backend, the
spec to pass to the other commands, the structure kind, the element type,
the capacity, the current occupancy where the structure has one, the size
in bytes, who owns and maps it (creator pid, attached pids, ring roles and
lock owners, each marked alive or dead), and its status: ok, idle (valid,
its creator has exited and no process maps it: normal for a segment that
keeps data between runs), STALE (owners are dead: the creator died during
initialization, or a ring role or lock holder died), CORRUPT (the header
or control block fails validation), INIT (a live creator is still
initializing it), "removed, still attached by N" (a SysV segment removed
with ipcrm or IPC_RMID that N processes still have attached; the kernel
frees it when the last one detaches) or ERROR (it could not be read). Objects are opened
read-only; objects that are not shmkit segments are listed only with --all,
marked "-", and never opened for writing, as are objects shmctl has no
permission to read (marked ERROR; without --all ls says on stderr how many
it left out).

Options:
  --all    also list objects that are not shmkit segments
  --json   print a JSON array with one object per segment (the same
           fields as 'shmctl stat --json')

Examples:
  shmctl ls                   every shmkit segment on the host
  shmctl ls --all             including other shared memory objects
  shmctl ls /var/lib/app      segments in files under /var/lib/app
  shmctl ls --json | jq '.[] | select(.status == "stale") | .spec'

Exit status:
  0  the listing succeeded (stale or corrupt segments are listed, not errors)
  1  an operand could not be found or read
  2  usage error
`,
}

func init() { cmdLs.run = runLs }

func runLs(e *env, args []string) int {
	fs := flag.NewFlagSet("ls", flag.ContinueOnError)
	all := fs.Bool("all", false, "")
	asJSON := fs.Bool("json", false, "")
	operands, status, ok := parseFlags(e, cmdLs, fs, args)
	if !ok {
		return status
	}
	ps := scanProc()
	var ts []*target
	var errs []error
	if len(operands) == 0 {
		ts, errs = discoverHost(ps)
	} else {
		ts, errs = discoverArgs(operands, ps)
	}
	reports := inspectAll(ts, ps)
	var shown []*Report
	unreadable := 0
	for _, r := range reports {
		if r.Shmkit || *all || len(operands) > 0 && r.Status == "error" {
			shown = append(shown, r)
		} else if r.Status == "error" {
			unreadable++ // may be a shmkit segment: say it was left out
		}
	}
	if *asJSON {
		if shown == nil {
			shown = []*Report{}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(shown)
	} else {
		printTable(e.stdout, shown)
	}
	if unreadable > 0 {
		e.errorf("ls: %s not readable by uid %d left out; --all to list them", plural(unreadable, "object"), os.Geteuid())
	}
	for _, err := range errs {
		e.errorf("ls: %v", err)
	}
	if len(errs) > 0 {
		return exitProblem
	}
	if len(operands) > 0 {
		for _, r := range shown {
			if r.Status == "error" {
				e.errorf("ls: %s: %s", r.Spec, r.Error)
				return exitProblem
			}
		}
	}
	return exitOK
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func printTable(w io.Writer, reports []*Report) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKEND\tSPEC\tKIND\tTYPE\tCAP\tLEN\tSIZE\tOWNERS\tSTATUS")
	for _, r := range reports {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n",
			r.Backend, displaySpec(r), kindCol(r), typeCol(r), capCol(r), lenCol(r), r.Size, ownersCol(r), statusCol(r))
	}
	_ = tw.Flush()
}

func displaySpec(r *Report) string {
	if r.Backend == "memfd" {
		return r.Spec + " (memfd:" + r.Name + ")"
	}
	return r.Spec
}

func kindCol(r *Report) string {
	if !r.Shmkit {
		return "-"
	}
	if r.Header == nil || r.Header.KindCode == 0 {
		return "?"
	}
	return r.Header.Kind
}

func typeCol(r *Report) string {
	if r.Header == nil || len(r.Header.Types) == 0 {
		return "-"
	}
	var names []string
	for _, t := range r.Header.Types {
		if t.Name == "" {
			names = append(names, "?")
		} else {
			names = append(names, t.Name)
		}
	}
	return strings.Join(names, ",")
}

func capCol(r *Report) string {
	if r.Header == nil || r.Header.State != "ready" {
		return "-"
	}
	return strconv.FormatUint(r.Header.Capacity, 10)
}

func lenCol(r *Report) string {
	if r.Live == nil || r.Live.Len == nil {
		return "-"
	}
	return strconv.FormatUint(*r.Live.Len, 10)
}

func aliveWord(alive bool) string {
	if alive {
		return "alive"
	}
	return "dead"
}

func pidList(pids []int32) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}

func ownersCol(r *Report) string {
	var parts []string
	if r.Creator != nil {
		parts = append(parts, fmt.Sprintf("creator=%d/%s", r.Creator.PID, aliveWord(r.Creator.Alive)))
	}
	if r.Live != nil {
		for _, o := range r.Live.Owners {
			parts = append(parts, fmt.Sprintf("%s=%d/%s", o.Role, o.PID, aliveWord(o.Alive)))
		}
	}
	if r.SysV != nil {
		if r.Creator == nil {
			parts = append(parts, fmt.Sprintf("cpid=%d", r.SysV.CPID))
		}
		parts = append(parts, fmt.Sprintf("nattch=%d", r.SysV.Nattch), fmt.Sprintf("lpid=%d", r.SysV.LPID))
	}
	if len(r.Users) > 0 {
		parts = append(parts, "users="+pidList(r.Users))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func statusCol(r *Report) string {
	switch r.Status {
	case "foreign":
		return "-"
	case "initializing":
		return "INIT"
	case "ok", "idle":
		return r.Status
	case "removed":
		if r.SysV != nil {
			return fmt.Sprintf("removed, still attached by %d", r.SysV.Nattch)
		}
	}
	return strings.ToUpper(r.Status)
}
