package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/shmkit/shmkit/internal/baseline"
)

// A team is a set of peer processes running one row, coordinated over two
// pipes: every child gets the write end of the status pipe as fd 3 and
// the read end of the start pipe as fd 4; the row's own files follow as
// fd 5, 6, .... Children report with 9-byte records (a tag and a
// little-endian uint64; writes under PIPE_BUF are atomic, so children can
// share the pipe): 'R' ready, then e.g. 'A' done with the count they saw.
// The parent starts them all at once by writing one byte per child.
type team struct {
	peers    []*baseline.Peer
	status   *os.File // read end
	startW   *os.File // write end
	deadline time.Time
}

const (
	tagReady    = 'R'
	tagDone     = 'A' // a consumer or worker finished; value: items seen
	tagProduced = 'P' // a producer finished; value: items pushed
)

// startTeam starts one child per element of args as peer role, each with
// the team pipes and files.
func startTeam(cfg runConfig, role string, files []*os.File, args ...[]string) (*team, error) {
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	startR, startW, err := os.Pipe()
	if err != nil {
		statusR.Close()
		statusW.Close()
		return nil, err
	}
	t := &team{status: statusR, startW: startW, deadline: time.Now().Add(cfg.timeout())}
	defer statusW.Close() // only the children keep write ends: EOF when all exit
	defer startR.Close()
	for _, a := range args {
		p, err := baseline.StartPeer(role, append([]*os.File{statusW, startR}, files...), a...)
		if err != nil {
			t.kill()
			return nil, err
		}
		t.peers = append(t.peers, p)
	}
	_ = statusR.SetReadDeadline(t.deadline)
	return t, nil
}

// next reads the next status record.
func (t *team) next() (byte, uint64, error) {
	var rec [9]byte
	if _, err := io.ReadFull(t.status, rec[:]); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, 0, errors.New("peers did not finish before the row's deadline (killed)")
		}
		return 0, 0, fmt.Errorf("a peer exited early (see its stderr above): %w", err)
	}
	return rec[0], binary.LittleEndian.Uint64(rec[1:]), nil
}

// expect reads n records that must all carry tag and returns their sum.
func (t *team) expect(tag byte, n int) (uint64, error) {
	var sum uint64
	for range n {
		got, v, err := t.next()
		if err != nil {
			return sum, err
		}
		if got != tag {
			return sum, fmt.Errorf("peer status %q, want %q", got, tag)
		}
		sum += v
	}
	return sum, nil
}

// ready waits for every child's ready record.
func (t *team) ready() error {
	_, err := t.expect(tagReady, len(t.peers))
	return err
}

// launchTeam is startTeam and launch: the team, started and released,
// and the time it was released.
func launchTeam(cfg runConfig, role string, files []*os.File, args ...[]string) (*team, time.Time, error) {
	t, err := startTeam(cfg, role, files, args...)
	if err != nil {
		return nil, time.Time{}, err
	}
	start, err := t.launch()
	return t, start, err
}

// launch waits until every child is ready, then releases them all and
// returns the time it did so (a row's clock starts there); on failure it
// kills the team (see fail).
func (t *team) launch() (time.Time, error) {
	if err := t.ready(); err != nil {
		return time.Time{}, t.fail(err)
	}
	start := time.Now()
	if err := t.start(); err != nil {
		return time.Time{}, t.fail(err)
	}
	return start, nil
}

// start releases every child at once.
func (t *team) start() error {
	buf := make([]byte, len(t.peers))
	_, err := t.startW.Write(buf)
	return err
}

// wait reaps every child; the first failure is returned.
func (t *team) wait() error {
	var first error
	for _, p := range t.peers {
		if err := p.Wait(max(time.Until(t.deadline), time.Second)); err != nil && first == nil {
			first = err
		}
	}
	t.close()
	return first
}

// fail kills the children and returns err.
func (t *team) fail(err error) error {
	t.kill()
	return err
}

func (t *team) kill() {
	for _, p := range t.peers {
		p.Kill()
	}
	t.close()
}

func (t *team) close() {
	t.status.Close()
	t.startW.Close()
}

// ---- child side ----

// member is a child's end of the team pipes.
type member struct {
	status, start *os.File
}

func joinTeam() member {
	return member{status: os.NewFile(3, "status"), start: os.NewFile(4, "start")}
}

// file returns the row's i-th file (fd 5+i).
func (m member) file(i int) *os.File { return os.NewFile(uintptr(5+i), "file"+strconv.Itoa(i)) }

// fdSpec is the segment spec of the row's i-th file.
func (m member) fdSpec(i int) string { return "fd:" + strconv.Itoa(5+i) }

func (m member) report(tag byte, v uint64) error {
	var rec [9]byte
	rec[0] = tag
	binary.LittleEndian.PutUint64(rec[1:], v)
	_, err := m.status.Write(rec[:])
	return err
}

// report2 sends two records in one write, so that they arrive together
// even when other children report at the same time.
func (m member) report2(tag1 byte, v1 uint64, tag2 byte, v2 uint64) error {
	var rec [18]byte
	rec[0] = tag1
	binary.LittleEndian.PutUint64(rec[1:], v1)
	rec[9] = tag2
	binary.LittleEndian.PutUint64(rec[10:], v2)
	_, err := m.status.Write(rec[:])
	return err
}

// ready reports readiness and waits for the start signal.
func (m member) ready() error {
	if err := m.report(tagReady, 0); err != nil {
		return err
	}
	var b [1]byte
	_, err := io.ReadFull(m.start, b[:])
	return err
}

// atoi parses peer arguments (written by this program, so a bad one is a bug).
func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(fmt.Sprintf("shmbench: bad peer argument %q", s))
	}
	return n
}

func itoa(n int) string { return strconv.Itoa(n) }

// registerPeer registers a peer role whose body gets the team pipes.
// Use at package level (var _ = registerPeer(...)) so children have it.
func registerPeer(name string, fn func(m member, args []string) error) bool {
	baseline.RegisterPeer(name, func(args []string) error { return fn(joinTeam(), args) })
	return true
}
