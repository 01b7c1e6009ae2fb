//go:build !race

package extest

// Race reports whether this binary was built with -race.
const Race = false
