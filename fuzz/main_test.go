package fuzz_test

import (
	"testing"

	"github.com/shmkit/shmkit/internal/testproc"
)

// TestMain lets the hostile-peer tests re-execute this binary as a
// scribbling child process.
func TestMain(m *testing.M) { testproc.Main(m) }
