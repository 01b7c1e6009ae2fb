// Package quickstart tests README.md's quick start program as a user would
// run it: the program is extracted from README.md itself (so the two cannot
// drift), built as a module of its own, and run as two producers and two
// consumers.
package quickstart
