// Command shmctl is ipcs for shmkit: it lists shmkit segments across every
// backend, decodes and validates them, shows live state and rates, removes
// them safely, and finds and repairs state left behind by dead processes.
//
// # Design
//
// Shared memory outlives the processes that use it, so the questions users
// ask most are "what is there, who owns it, and is it stale?". shmctl
// answers them from two sources: the kernel's view (/dev/shm, the files it
// is given, /proc/sysvipc/shm, and each process's /proc/PID/maps and
// /proc/PID/fd, which say who maps or holds what, by device and inode), and
// the segment's own view (the shmkit header: kind, element types, capacity,
// creator pid and start time, and the structure's control block with ring
// roles, lock owners and counters).
//
// Inspection never writes. Objects are opened O_RDONLY (SysV: SHM_RDONLY)
// and headers of fd-based objects are read with pread, which cannot fault;
// only segments whose magic says shmkit are mapped, and then through
// layout.Open, so shmctl validates a segment exactly as a program opening
// it would and reports the same error text. Mapped reads run with
// debug.SetPanicOnFault, so a peer shrinking an object under us yields an
// error, not a crash. Objects that are not shmkit segments are listed only
// with ls --all and never opened for writing, removed, or repaired.
//
// Repairs are not reimplemented here. doctor --fix calls the owning
// package's own recovery (the code a live participant runs when it finds a
// dead owner), and removes only segments that can never become ready (their
// creator died during initialization), which is what layout.Open tells a
// program to do.
//
// The whole tool is run(args, stdout, stderr) so tests can call it in
// process as well as through the built binary.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK      = 0 // success, nothing wrong found
	exitProblem = 1 // a problem was found, or an operation failed
	exitUsage   = 2 // bad command line
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	help    string // full help text, printed by --help
	run     func(env *env, args []string) int
}

// env carries the output streams of one invocation.
type env struct {
	stdout, stderr io.Writer
}

func (e *env) errorf(format string, a ...any) {
	fmt.Fprintf(e.stderr, "shmctl: "+format+"\n", a...)
}

var commands []*command

func init() {
	commands = []*command{cmdLs, cmdStat, cmdWatch, cmdRm, cmdDoctor}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

const toolHelp = `Usage: shmctl COMMAND [OPTIONS] [ARGUMENTS]

shmctl inspects and maintains shmkit shared-memory segments, like ipcs(1)
and ipcrm(1) do for System V objects. It lists segments across every backend
(/dev/shm, files, SysV shared memory, memfds held by live processes), decodes
and validates their headers, shows who owns and maps them and whether those
processes are alive, shows live state and rates, removes segments safely, and
finds and repairs state left behind by processes that died. Inspection only
ever opens objects read-only.

Commands:
%s
Segment specs:
  posix:/NAME         POSIX shared memory, /dev/shm/NAME (also: /dev/shm/NAME)
  file:PATH           a segment in a regular file (also: a bare PATH)
  sysv:0xKEY          System V shared memory by key (sysv:ftok:PATH:ID too)
  memfd:NAME          a memfd held by any readable process, found by name
  /proc/PID/fd/N      a descriptor held by process PID (how memfds are named)

Exit status:
  0  success
  1  a problem was found, or an operation failed
  2  usage error

Run 'shmctl COMMAND --help' for the options of a command.
`

func printToolHelp(w io.Writer) {
	var b strings.Builder
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, toolHelp, b.String())
}

// run is the whole tool: it parses args (without the program name), writes
// to stdout and stderr, and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		printToolHelp(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		printToolHelp(stdout)
		return exitOK
	case "help":
		if len(args) == 1 {
			printToolHelp(stdout)
			return exitOK
		}
		c := lookup(args[1])
		if c == nil {
			e.errorf("unknown command %q (run 'shmctl --help')", args[1])
			return exitUsage
		}
		fmt.Fprint(stdout, c.help)
		return exitOK
	}
	c := lookup(args[0])
	if c == nil {
		e.errorf("unknown command %q (run 'shmctl --help')", args[0])
		return exitUsage
	}
	return c.run(e, args[1:])
}

// parseFlags parses fs over args, allowing flags after operands
// ("shmctl rm SPEC --force") as most Unix tools do; "--" ends the flags.
// It returns the operands, or an exit status when the caller should stop:
// help was printed (0) or the command line was bad (2).
func parseFlags(e *env, c *command, fs *flag.FlagSet, args []string) ([]string, int, bool) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var operands []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(e.stdout, c.help)
			return nil, exitOK, false
		}
		if err != nil {
			e.errorf("%s: %v", c.name, err)
			fmt.Fprintf(e.stderr, "%s\nRun 'shmctl %s --help' for usage.\n", usageLine(c), c.name)
			return nil, exitUsage, false
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(operands, rest...), 0, true
		}
		if len(rest) == 0 {
			return operands, 0, true
		}
		operands = append(operands, rest[0])
		args = rest[1:]
	}
}

func usageLine(c *command) string {
	line, _, _ := strings.Cut(c.help, "\n")
	return line
}

func usageError(e *env, c *command, format string, a ...any) int {
	e.errorf("%s: "+format, append([]any{c.name}, a...)...)
	fmt.Fprintf(e.stderr, "%s\nRun 'shmctl %s --help' for usage.\n", usageLine(c), c.name)
	return exitUsage
}
