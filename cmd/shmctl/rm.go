package main

import (
	"flag"
	"strconv"

	"github.com/shmkit/shmkit/segment"
)

var cmdRm = &command{
	name:    "rm",
	summary: "remove segments that no live process uses",
	help: `Usage: shmctl rm [--force] SPEC...

Remove each named segment: unlink a /dev/shm object or a file, or mark a
System V segment for destruction (IPC_RMID). Processes that have the segment
mapped keep their mapping; the memory is freed when the last of them lets
go. Because removing a segment that is in use splits its users (new openers
would create or find a different object), rm refuses while any live process
maps the object or holds a descriptor of it (for System V: while its attach
count is not zero), and refuses objects that are not shmkit segments. A
memfd has no name to remove; it is freed when its last holder exits.

Options:
  --force   remove even while processes use the segment, and remove
            objects that are not shmkit segments

Examples:
  shmctl rm posix:/orders
  shmctl rm --force sysv:0x5eed /var/lib/app/state.shm

Exit status:
  0  every segment was removed
  1  a segment was refused, not found, or could not be removed
  2  usage error
`,
}

func init() { cmdRm.run = runRm }

func runRm(e *env, args []string) int {
	fs := flag.NewFlagSet("rm", flag.ContinueOnError)
	force := fs.Bool("force", false, "")
	operands, status, ok := parseFlags(e, cmdRm, fs, args)
	if !ok {
		return status
	}
	if len(operands) == 0 {
		return usageError(e, cmdRm, "no SPEC given")
	}
	ps := scanProc()
	status = exitOK
	for _, arg := range operands {
		if err := removeOne(arg, *force, ps); err != "" {
			e.errorf("rm: %s", err)
			status = exitProblem
		}
	}
	return status
}

// removeOne removes one segment and returns "" or why it did not.
func removeOne(arg string, force bool, ps *procScan) string {
	t, err := resolve(arg, ps)
	if err != nil {
		return err.Error()
	}
	switch t.Backend {
	case "memfd", "fd":
		return t.Spec + ": a memfd or descriptor has no name to remove; it is freed when its last holder closes it"
	}
	r := inspect(t, ps)
	if !force {
		if r.Status == "foreign" {
			return t.Spec + ": not a shmkit segment (use --force to remove it anyway)"
		}
		if len(r.Users) > 0 {
			return t.Spec + ": in use by live processes " + pidList(r.Users) + " (use --force to remove it anyway)"
		}
		if r.SysV != nil && r.SysV.Nattch > 0 {
			return t.Spec + ": attached " + itoa(r.SysV.Nattch) + " times (use --force to remove it anyway)"
		}
	}
	remove := segment.Remove
	if p, ok := probes[r.kind]; ok && r.Shmkit && p.remove != nil {
		remove = p.remove
	}
	if err := remove(t.Spec); err != nil {
		return err.Error()
	}
	return ""
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }
